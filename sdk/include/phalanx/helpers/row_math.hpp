// Row-at-a-time kernels for rules that must run at memory speed on [n, d] float32 messages: norms summed
// in float64 (a finite float32 row can hold values whose squares overflow float32, never float64), and an
// output buffer that is reused between rounds so that writing a large result does not first page-fault
// a freshly mapped allocation (at d = 1e6 the page faults cost more than reading the input; docs/BENCHMARKS.md).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"

namespace phalanx {

/// sum_j x[j]^2, accumulated in float64. Not finite exactly when x holds a NaN or Inf.
PHALANX_EXPORT double squared_norm(const float* x, std::int64_t d);

/// sum_j (x[j] - y[j])^2 with the differences and the sum in float64. Not finite exactly when x or y holds
/// a NaN or Inf.
PHALANX_EXPORT double squared_distance(const float* x, const float* y, std::int64_t d);

/// squared_distance of float32 values already converted to float64: the same arithmetic, the same result.
PHALANX_EXPORT double squared_distance_of_wide_rows(const double* x, const double* y, std::int64_t d);

/// out[j] = x[j] * scale for j < d, written around the cache (streaming stores): the result is larger than
/// the cache and is read next by someone else, so caching it would only evict the input.
PHALANX_EXPORT void scale_row_streaming(const float* x, float scale, float* out, std::int64_t d);

/// [d] float32 mean of the rows `chosen` of `rows` ([n, d]), summed in float64 block by block in the order
/// given, without copying the rows first (index_select would write and read back m x d values).
PHALANX_EXPORT at::Tensor mean_of_rows(const at::Tensor& rows, const std::vector<std::int64_t>& chosen);

/// Columns [begin, end) of the mean of n float32 rows of length d (row-major at `rows`), into out[begin, end):
/// bit for bit what rows.mean(0) gives in LibTorch 1.13 on the CPU (its float32 column sums, which add the
/// rows in order in runs of 16 and then add the runs' sums, divided by n), without the cost of an ATen call
/// per block, so that blocks of columns can be shared out (phalanx/helpers/parallel.hpp).
PHALANX_EXPORT void column_means(const float* rows, std::int64_t n, std::int64_t d, std::int64_t begin,
                                 std::int64_t end, float* out);

/// Columns [begin, end) of the unbiased standard deviation of n >= 2 float32 rows of length d (row-major at
/// `rows`), into out[begin, end): bit for bit what rows.std(0, true) gives in LibTorch 1.13 on one thread
/// (Welford's update in float64, rows in order). With column_means on the same block of columns, a rule
/// gets both while the block is in cache: one pass over the rows instead of two.
PHALANX_EXPORT void column_stds(const float* rows, std::int64_t n, std::int64_t d, std::int64_t begin,
                                std::int64_t end, float* out);

/// A float32 tensor a rule returns every round, allocated once: get() hands back the previous round's
/// tensor when nobody holds it (or a view of it) any more and the shape is unchanged, else a new one. Its
/// contents are undefined; the rule overwrites all of them.
class PHALANX_EXPORT OutputBuffer {
 public:
  at::Tensor get(at::IntArrayRef sizes);

 private:
  at::Tensor buffer_;
};

}  // namespace phalanx
