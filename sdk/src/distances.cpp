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
  at::Tensor finite = finite_row_mask(rows);
  // Zero the bad rows so the product stays finite, then overwrite their distances with +inf.
  at::Tensor clean = rows.masked_fill(finite.logical_not().unsqueeze(1), 0.0f);
  // Float64 for the squared norms and Gram matrix: the subtraction cancels badly in float32 when rows are
  // close to each other and far from the origin.
  at::Tensor x = clean.to(at::kDouble);
  at::Tensor norms = x.mul(x).sum(1);
  at::Tensor gram = at::mm(x, x.t());
  at::Tensor dist = norms.unsqueeze(1).add(norms.unsqueeze(0)).sub_(gram.mul_(2.0)).clamp_min_(0.0);
  dist.fill_diagonal_(0.0);
  if (!finite.all().item<bool>()) {
    at::Tensor bad = finite.logical_not();
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
