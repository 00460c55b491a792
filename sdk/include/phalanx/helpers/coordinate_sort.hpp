// Coordinate-wise order statistics (median, trimmed mean, ...) at memory speed. Sorting an [n, d] tensor
// along dim 0 with at::sort is hundreds of times slower than reading it; here the columns are sorted in
// blocks that stay in L1 by one sorting network applied to many columns at once (vectorised min/max, with
// groups of rows kept in registers), and the caller reduces each sorted block straight into the [d] result.
//
// The values must be finite. Callers that would otherwise make a pass of their own to find rows holding
// NaN or Inf can pass `finite`: it is set to false when such a value was read (the result is then
// meaningless; drop the bad rows, e.g. with phalanx::finite_rows, and call again), so the common case of
// all rows finite reads the input once.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"

namespace phalanx {

/// Receives one block of `width` columns, sorted: sorted[i * width + j] is the i-th smallest of the n
/// values of column j of the block; writes the block's `width` results to out[0 .. width).
using SortedBlockReducer = std::function<void(const float* sorted, std::int64_t n, std::int64_t width, float* out)>;

/// Sorts each column of `rows` ([n, d] float32, every value finite: drop NaN/Inf rows first, or see
/// `finite` above) block by block and returns the [d] tensor the reducer fills.
PHALANX_EXPORT at::Tensor reduce_sorted_columns(const at::Tensor& rows, const SortedBlockReducer& reduce,
                                                bool* finite = nullptr);

/// Coordinate-wise median (mean of the two middle values when n is even) of finite rows.
PHALANX_EXPORT at::Tensor coordinate_median(const at::Tensor& rows, bool* finite = nullptr);

/// Coordinate-wise mean of the values left after dropping the `trim` smallest and `trim` largest.
PHALANX_EXPORT at::Tensor coordinate_trimmed_mean(const at::Tensor& rows, std::int64_t trim, bool* finite = nullptr);

/// The centre coordinate_mean_closest_to measures closeness to, per column.
enum class ColumnCentre {
  Median,       ///< the median: the middle value, or 0.5 * low + 0.5 * high of the two middle values
  TrimmedMean,  ///< the mean of the values left after dropping the `trim` smallest and `trim` largest
};

/// Per column j of the finite rows `rows` ([n, d] float32), the mean of the `m` values closest to
/// centre[j] (1 <= m <= n; for TrimmedMean also 0 <= 2 * trim < n, `trim` is ignored for Median). In sorted
/// order the m closest values are consecutive: of the n - m + 1 windows of m consecutive values, the one
/// whose farther end is nearest to the centre, the lowest such window on exact ties (so of two values
/// equally close to the centre the lower one is kept, and the result depends only on the values, not on the
/// order of the rows). Shared by MeaMed (median), Phocas (trimmed mean) and Bulyan's second stage.
/// With `finite`, the rows may hold NaN or Inf: *finite is set to false when they do (the result is then
/// meaningless), as for coordinate_median.
PHALANX_EXPORT at::Tensor coordinate_mean_closest_to(const at::Tensor& rows, std::int64_t m, ColumnCentre centre,
                                                     std::int64_t trim = 0, bool* finite = nullptr);

/// The same over the rows `chosen` of `rows` (n = chosen.size()), read in place: no copy of the chosen rows
/// is made (Bulyan's second stage works on 2f fewer rows than arrived).
PHALANX_EXPORT at::Tensor coordinate_mean_closest_to(const at::Tensor& rows, const std::vector<std::int64_t>& chosen,
                                                     std::int64_t m, ColumnCentre centre, std::int64_t trim = 0,
                                                     bool* finite = nullptr);

/// The sorting kernels these functions use: by default the widest this CPU runs (AVX-512F, else AVX2, else
/// SSE2); every lane computes the same operations in all of them, so the results are the same bits. For tests
/// and benchmarks: set_sort_kernel picks one for the whole process and returns false, changing nothing, when
/// this CPU cannot run it.
enum class SortKernel { Widest, Avx512, Avx2, Sse2 };
PHALANX_EXPORT bool set_sort_kernel(SortKernel kernel);

}  // namespace phalanx
