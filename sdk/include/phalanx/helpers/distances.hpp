// Pairwise distances between messages, computed once with one matrix product (BLAS) instead of per-pair
// loops: Krum, Multi-Krum, Bulyan and NNM all start from this matrix.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"

namespace phalanx {

/// [n, n] float64 matrix of squared Euclidean distances between the rows of `rows` ([n, d]), computed as
/// ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j with the Gram matrix from one BLAS call, clamped at 0, diagonal 0.
/// A row holding NaN or Inf is infinitely far from every other row (its distances are +inf), so rules
/// built on the matrix treat it as the farthest outlier.
PHALANX_EXPORT at::Tensor pairwise_squared_distances(const at::Tensor& rows);

/// Rows of `distances` ([r, r] float64 squared distances, such as pairwise_squared_distances or a square
/// sub-matrix of it) ordered by Krum score, best first, as an [r] int64 tensor of row indices:
///
///   score(i) = sum of distances[i][j] over the `neighbours` rows j != i nearest to row i
///
/// The matrix is first made exactly symmetric ((D + D^T) / 2) so that two rows see the same distance to
/// each other. Ties in the score (two mutual nearest rows always tie when neighbours = 1) are broken by
/// comparing the next nearest distances in turn, then by the lower index, so the choice depends only on the
/// rows, not on their order. A row whose distances are +inf (a NaN/Inf row) scores +inf and comes last.
/// Needs 1 <= neighbours <= r - 1 when r >= 2; a single row gives [0].
PHALANX_EXPORT at::Tensor krum_order(const at::Tensor& distances, std::int64_t neighbours);

/// Squared Euclidean distances between the rows of an [n, d] tensor, each known within a bound, made exact
/// (float64) row by row only where a decision needs it (docs/BENCHMARKS.md, "krum, multikrum, bulyan, nnm").
///
/// Built from a float32 Gram matrix in which each float32 partial sum adds at most 16 products (the columns
/// l, l + 8, ... of one lane of 8, or l, l + 16, ... of one of 16 with AVX-512) before it is added in
/// float64. Such a sum is within gamma_16 = 16 u / (1 - 16 u) (u = 2^-24) of the sum of the magnitudes of its
/// products, so with the norms N_i read off the same diagonal every estimate D_ij is within
///   error(i, j) = gamma_16 (sqrt N_i + sqrt N_j)^2 (plus margins for the float64 sums and for underflow)
/// of the true distance. make_exact recomputes chosen entries in float64 from the differences x_i - x_j
/// (phalanx::squared_distance), all of them in one pass over the columns; their error is then 0 for the
/// callers' purposes. The entries of a row whose float32 products overflow are computed in float64
/// instead, and rows holding NaN or Inf are +inf away from every other row (error 0), as in
/// pairwise_squared_distances. Inputs that are not float32 take the float64 path for every entry.
class PHALANX_EXPORT PairwiseDistances {
 public:
  explicit PairwiseDistances(const at::Tensor& rows);

  std::int64_t size() const { return n_; }
  double value(std::int64_t i, std::int64_t j) const { return value_[static_cast<std::size_t>(i * n_ + j)]; }
  double error(std::int64_t i, std::int64_t j) const { return error_[static_cast<std::size_t>(i * n_ + j)]; }
  /// False when row i holds NaN or Inf.
  bool finite(std::int64_t i) const { return finite_[static_cast<std::size_t>(i)] != 0; }
  /// The rows without NaN or Inf, in order.
  std::vector<std::int64_t> finite_rows() const;
  /// True when every distance from row i is exact.
  bool exact(std::int64_t i) const { return inexact_[static_cast<std::size_t>(i)] == 0; }
  /// Recomputes the distances between the given pairs of rows (either order) in float64, in one pass over
  /// the columns; pairs already exact are skipped.
  void make_exact(const std::vector<std::pair<std::int64_t, std::int64_t>>& pairs);
  /// How many distances make_exact recomputed so far (for tests and benchmarks).
  std::int64_t entries_made_exact() const { return made_exact_; }
  /// [r, r] float64 matrix of the current values between the rows `subset`.
  at::Tensor matrix(const std::vector<std::int64_t>& subset) const;

 private:
  void build_from_float_gram();
  void build_exact();

  at::Tensor rows_;
  std::int64_t n_ = 0;
  std::int64_t made_exact_ = 0;
  std::vector<double> value_, error_;
  std::vector<char> finite_;
  std::vector<std::int64_t> inexact_;  // per row: distances from it that are not exact yet
};

/// The float32 Gram kernel PairwiseDistances uses: by default the widest this CPU runs (AVX-512F, else AVX2 +
/// FMA, else SSE2); every one keeps the same error bound. For tests and benchmarks: set_gram_kernel picks
/// one for the whole process and returns false, changing nothing, when this CPU cannot run it.
enum class GramKernel { Widest, Avx512, Avx2Fma, Sse2 };
PHALANX_EXPORT bool set_gram_kernel(GramKernel kernel);

/// Krum order (as krum_order above) of the rows `subset` of `distances`, as positions into `subset`, best
/// first. The first `certain` positions hold the rows the exact distances put there (as a set: their order
/// among themselves may differ; with certain = 1, the winner): while the score interval of a row among them
/// overlaps that of a row placed after them, both rows' distances to the rest of the subset are made exact
/// and the order recomputed.
PHALANX_EXPORT std::vector<std::int64_t> krum_order(PairwiseDistances& distances,
                                                    const std::vector<std::int64_t>& subset,
                                                    std::int64_t neighbours, std::int64_t certain);

/// [n, k] int64: for every row i, the k rows nearest to it, itself first among equals (its distance counts
/// as -1), in no particular order, as at::topk on the exact distances would choose them. Where the error
/// bounds do not separate a row's k nearest from the others, the distances in the overlap are made exact.
PHALANX_EXPORT at::Tensor nearest_rows(PairwiseDistances& distances, std::int64_t k);

}  // namespace phalanx
