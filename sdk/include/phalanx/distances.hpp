// Pairwise distances between messages, computed once with one matrix product (BLAS) instead of per-pair
// loops: Krum, Multi-Krum, Bulyan and NNM all start from this matrix.
#pragma once

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"

namespace phalanx {

/// [n, n] float64 matrix of squared Euclidean distances between the rows of `rows` ([n, d]), computed as
/// ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j with the Gram matrix from one BLAS call, clamped at 0, diagonal 0.
/// A row holding NaN or Inf is infinitely far from every other row (its distances are +inf), so rules
/// built on the matrix treat it as the farthest outlier.
PHALANX_EXPORT at::Tensor pairwise_squared_distances(const at::Tensor& rows);

}  // namespace phalanx
