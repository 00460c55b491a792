#include "phalanx/distances.hpp"

#include <limits>

#include <ATen/ATen.h>

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

}  // namespace phalanx
