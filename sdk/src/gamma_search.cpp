#include "phalanx/gamma_search.hpp"

#include <ATen/ATen.h>

namespace phalanx {

at::Tensor perturbation_direction(const std::string& direction, const at::Tensor& honest, const at::Tensor& mean) {
  if (direction == "unit") {
    const double norm = mean.norm().item<double>();
    return norm > 0 ? mean.div(-norm) : at::zeros_like(mean);
  }
  if (direction == "sign") return mean.sign().neg_();
  return honest.size(0) > 1 ? honest.std(0, /*unbiased=*/true).neg_() : at::zeros_like(mean);
}

double largest_feasible_gamma(const std::function<bool(double)>& feasible, double start, std::int64_t iterations) {
  double lo = 0, hi = start;
  for (int k = 0; k < 200 && feasible(hi); ++k) lo = hi, hi *= 2;
  for (std::int64_t k = 0; k < iterations && hi - lo > 1e-12 * hi; ++k) {
    const double mid = 0.5 * (lo + hi);
    (feasible(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace phalanx
