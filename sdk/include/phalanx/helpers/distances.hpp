// Pairwise distances between messages, computed once with one matrix product (BLAS) instead of per-pair
// loops: Krum, Multi-Krum, Bulyan and NNM all start from this matrix.
#pragma once

#include <cstdint>

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

}  // namespace phalanx
