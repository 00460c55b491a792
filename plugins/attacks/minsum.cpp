// minsum: the Min-Sum attack of Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model
// Poisoning Attacks and Defenses for Federated Learning", NDSS 2021. Every Byzantine worker sends
//
//   m(gamma) = mean_h + gamma * p
//   gamma    = max { gamma >= 0 : sum_{i honest} ||m(gamma) - x_i||^2 <= max_{i honest} sum_{j honest} ||x_i - x_j||^2 }
//
// i.e. the malicious vector is pushed as far as possible along p while its summed squared distance to the
// honest messages (the quantity Krum-like scores add up) stays within the largest such sum of an honest
// message. Perturbations (parameter `direction`):
//   std:  p = -std_h (coordinate-wise unbiased standard deviation of the honest messages; 0 if h = 1)
//   unit: p = -mean_h / ||mean_h||
//   sign: p = -sign(mean_h)
//
// The search for gamma: the paper halves a step from gamma_init = 10, which cannot go beyond 20. Here the
// feasible set is an interval [0, gamma*] (the left side is a convex quadratic in gamma that holds at
// gamma = 0), so gamma* is bracketed by doubling and then bisected for a bounded number of steps; the
// returned gamma is always on the feasible side. Distances are evaluated in float64 as
// ||mean_h - x_i||^2 + 2 gamma <mean_h - x_i, p> + gamma^2 ||p||^2. Omniscient: it reads the honest messages.
//
// | parameter  | default | meaning                                      |
// |------------|---------|----------------------------------------------|
// | direction  | std     | perturbation p: std, unit or sign (see above) |
// | iterations | 60      | bisection steps after bracketing gamma*      |
#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include "phalanx/distances.hpp"
#include "phalanx/gamma_search.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class MinSum : public Attack {
 public:
  MinSum(std::string direction, std::int64_t iterations) : direction_(std::move(direction)), iterations_(iterations) {}

  at::Tensor craft(const AttackRound& round) override {
    const std::int64_t h = round.honest.size(0);
    if (h == 0) throw Error("attack 'minsum' needs at least one honest message");
    at::Tensor honest = round.honest.to(at::kDouble);
    at::Tensor mean = honest.mean(0);
    at::Tensor p = perturbation_direction(direction_, honest, mean);
    // The honest maximum: the largest sum of squared distances from one honest message to the others.
    const double bound = pairwise_squared_distances(round.honest).sum(1).max().item<double>();

    at::Tensor offsets = mean.unsqueeze(0) - honest;  // m(gamma) - x_i = offsets_i + gamma * p
    const double a = p.dot(p).item<double>();
    // sum_i ||offsets_i + gamma p||^2 = C + 2 gamma B + h gamma^2 a (B is 0 up to rounding: offsets sum to 0).
    const double c = offsets.square().sum().item<double>(), b = offsets.sum(0).dot(p).item<double>();
    auto feasible = [&](double gamma) { return c + 2 * gamma * b + static_cast<double>(h) * gamma * gamma * a <= bound; };

    // gamma at which the quadratic term alone reaches the bound; unused when a = 0 (p = 0: gamma is 0)
    const double start = bound > 0 ? std::sqrt(bound / (static_cast<double>(h) * a)) : 1.0;
    const double gamma = a > 0 ? largest_feasible_gamma(feasible, start, iterations_) : 0.0;
    at::Tensor malicious = mean.add(p, gamma).to(at::kFloat);
    return malicious.unsqueeze(0).expand({round.byzantine_true.size(0), malicious.size(0)}).contiguous();
  }
  bool omniscient() const override { return true; }

 private:
  std::string direction_;
  std::int64_t iterations_;
};

}  // namespace

PHALANX_PLUGIN("minsum", "1.0") {
  registrar.add_attack(
      {"minsum",
       "Min-Sum (Shejwalkar & Houmansadr 2021): mean_h + gamma * p, summed distance to honest within the honest maximum",
       {{"direction", ParamType::String, "std", "perturbation p: -std_h (std), -mean_h/||mean_h|| (unit), -sign(mean_h) (sign)",
         std::nullopt, std::nullopt, {"std", "unit", "sign"}},
        {"iterations", ParamType::Int, 60, "bisection steps for gamma after bracketing it", 1, 1000}}},
      [](const Params& p, const Context&) {
        return std::make_unique<MinSum>(p.get_string("direction"), p.get_int("iterations"));
      });
}
