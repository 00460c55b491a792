// The shared core of the Min-Max and Min-Sum attacks (Shejwalkar & Houmansadr, "Manipulating the
// Byzantine: Optimizing Model Poisoning Attacks and Defenses for Federated Learning", NDSS 2021): a
// perturbation direction p, and the largest gamma for which mean_h + gamma * p still passes the attack's
// test. Each attack keeps only its own test.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"

namespace phalanx {

/// The perturbation p for `direction` from the honest messages `honest` ([h, d]) and their mean `mean`:
///   "std":  -std_h (coordinate-wise unbiased standard deviation; 0 if h = 1)
///   "unit": -mean / ||mean|| (0 if the mean is 0)
///   "sign": -sign(mean)
PHALANX_EXPORT at::Tensor perturbation_direction(const std::string& direction, const at::Tensor& honest,
                                                 const at::Tensor& mean);

/// The largest gamma >= 0 with feasible(gamma), where the feasible set is an interval [0, gamma*] that
/// holds 0: gamma* is bracketed by doubling from `start` (> 0), then bisected for at most `iterations`
/// steps (or until the bracket is 1e-12 of its size). The result is always on the feasible side.
PHALANX_EXPORT double largest_feasible_gamma(const std::function<bool(double)>& feasible, double start,
                                             std::int64_t iterations);

}  // namespace phalanx
