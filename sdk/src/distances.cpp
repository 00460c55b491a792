#include "phalanx/distances.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/error.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx {

at::Tensor pairwise_squared_distances(const at::Tensor& rows) {
  if (rows.dim() != 2) throw Error("pairwise_squared_distances expects an [n, d] tensor");
  const std::int64_t n = rows.size(0), d = rows.size(1);
  // The Gram matrix in float64: ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j cancels badly in float32 when rows are
  // close to each other and far from the origin. It is accumulated over blocks of columns converted to
  // float64 one at a time (n x 256 KiB, in cache), so no float64 copy of the whole input is made: that
  // copy used to take most of the time of Krum, Multi-Krum, Bulyan and NNM (issue 3).
  at::Tensor gram = at::zeros({n, n}, at::kDouble);
  const std::int64_t columns = std::max<std::int64_t>(256, (std::int64_t{1} << 15) / std::max<std::int64_t>(n, 1));
  at::Tensor buffer = at::empty({n, std::min(columns, d)}, at::kDouble);
  for (std::int64_t start = 0; start < d; start += columns) {
    const std::int64_t width = std::min(columns, d - start);
    at::Tensor part = width == buffer.size(1) ? buffer : at::empty({n, width}, at::kDouble);
    part.copy_(rows.narrow(1, start, width));
    gram.addmm_(part, part.t());
  }
  // The squared norms are the diagonal. Finite float32 values cannot overflow a float64 sum of squares, so
  // a non-finite norm means a NaN or Inf in the row, without a separate pass to find those rows (their
  // entries of the Gram matrix are overwritten below).
  at::Tensor norms = gram.diagonal().clone();
  at::Tensor dist = norms.unsqueeze(1).add(norms.unsqueeze(0)).sub_(gram.mul_(2.0)).clamp_min_(0.0);
  dist.fill_diagonal_(0.0);
  at::Tensor bad = at::isfinite(norms).logical_not();
  if (bad.any().item<bool>()) {
    at::Tensor either = bad.unsqueeze(1).logical_or(bad.unsqueeze(0));
    either.fill_diagonal_(false);
    dist.masked_fill_(either, std::numeric_limits<double>::infinity());
  }
  return dist;
}

at::Tensor krum_order(const at::Tensor& distances, std::int64_t neighbours) {
  if (distances.dim() != 2 || distances.size(0) != distances.size(1) || distances.scalar_type() != at::kDouble)
    throw Error("krum_order expects an [r, r] float64 distance matrix");
  const std::int64_t r = distances.size(0);
  if (r <= 1) return at::zeros({r}, at::kLong);
  if (neighbours < 1 || neighbours > r - 1)
    throw Error("krum_order: " + std::to_string(neighbours) + " neighbours among " + std::to_string(r) +
                " rows; needs 1 to " + std::to_string(r - 1));
  const std::int64_t k = neighbours;
  at::Tensor others = distances.add(distances.t()).mul_(0.5);
  others.fill_diagonal_(std::numeric_limits<double>::infinity());
  at::Tensor nearest = std::get<0>(others.sort(1)).contiguous();  // row i: distances to the others, ascending
  at::Tensor score = nearest.narrow(1, 0, k).sum(1).contiguous();
  auto s = score.accessor<double, 1>();
  auto near = nearest.accessor<double, 2>();
  std::vector<std::int64_t> order(static_cast<std::size_t>(r));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    if (s[a] != s[b]) return s[a] < s[b];
    for (std::int64_t j = k; j < r - 1; ++j)
      if (near[a][j] != near[b][j]) return near[a][j] < near[b][j];
    return false;
  });
  return at::tensor(order, at::kLong);
}

}  // namespace phalanx
