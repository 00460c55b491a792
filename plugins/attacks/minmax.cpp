// minmax, minsum: the Min-Max and Min-Sum attacks of Shejwalkar & Houmansadr, "Manipulating the Byzantine:
// Optimizing Model Poisoning Attacks and Defenses for Federated Learning", NDSS 2021. One family: both push
// the honest mean along a perturbation p as far as a distance test allows, and differ only in the test.
// Every Byzantine worker sends
//
//   m(gamma) = mean_h + gamma * p
//   minmax: gamma = max { gamma >= 0 : max_{i honest} ||m(gamma) - x_i||^2 <= max_{i,j honest} ||x_i - x_j||^2 }
//   minsum: gamma = max { gamma >= 0 : sum_{i honest} ||m(gamma) - x_i||^2
//                                      <= max_{i honest} sum_{j honest} ||x_i - x_j||^2 }
//
// i.e. minmax stays no farther from any honest message than the two most distant honest messages are from
// each other, so distance-based rules cannot tell it from an honest one; minsum keeps its summed squared
// distance to the honest messages (the quantity Krum-like scores add up) within the largest such sum of an
// honest message. Perturbations (parameter `direction`):
//   std:  p = -std_h (coordinate-wise unbiased standard deviation of the honest messages; 0 if h = 1)
//   unit: p = -mean_h / ||mean_h||
//   sign: p = -sign(mean_h)
//
// The search for gamma: the paper halves a step from gamma_init = 10, which cannot go beyond 20. Here the
// feasible set is an interval [0, gamma*] (the left side is a convex function of gamma that holds at
// gamma = 0 because mean_h lies in the honest convex hull), so gamma* is bracketed by doubling and then
// bisected for a bounded number of steps; the returned gamma is always on the feasible side.
// Distances are evaluated in float64 as ||mean_h - x_i||^2 + 2 gamma <mean_h - x_i, p> + gamma^2 ||p||^2.
// Omniscient: they read the honest messages.
//
// | parameter  | default | meaning                                      |
// |------------|---------|----------------------------------------------|
// | direction  | std     | perturbation p: std, unit or sign (see above) |
// | iterations | 60      | bisection steps after bracketing gamma*      |
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/distances.hpp"
#include "phalanx/gamma_search.hpp"
#include "phalanx/plugin.hpp"
#include "repeated_row.hpp"

namespace {

using namespace phalanx;

enum class Test { max, sum };

class PerturbedMean : public Attack {
 public:
  PerturbedMean(std::string name, Test test, std::string direction, std::int64_t iterations)
      : name_(std::move(name)), test_(test), direction_(std::move(direction)), iterations_(iterations) {}

  at::Tensor craft(const AttackRound& round) override {
    const std::int64_t h = round.honest.size(0);
    if (h == 0) throw Error("attack '" + name_ + "' needs at least one honest message");
    at::Tensor honest = round.honest.to(at::kDouble);
    at::Tensor mean = honest.mean(0);
    at::Tensor p = perturbation_direction(direction_, honest, mean);
    at::Tensor offsets = mean.unsqueeze(0) - honest;  // m(gamma) - x_i = offsets_i + gamma * p
    const double a = p.dot(p).item<double>();
    // a = 0 (p = 0): gamma is 0
    const double gamma = a > 0 ? (test_ == Test::max ? max_gamma(round.honest, offsets, p, a)
                                                     : sum_gamma(round.honest, offsets, p, a))
                               : 0.0;
    return repeated(mean.add(p, gamma), round.byzantine_true.size(0));
  }
  bool omniscient() const override { return true; }

 private:
  // minmax: the largest squared distance from m(gamma) to an honest message stays within the honest
  // maximum, the largest squared distance between two honest messages.
  double max_gamma(const at::Tensor& rows, const at::Tensor& offsets, const at::Tensor& p, double a) const {
    const std::int64_t h = offsets.size(0);
    const double bound = pairwise_squared_distances(rows).max().item<double>();
    at::Tensor c_t = offsets.square().sum(1).contiguous(), b_t = offsets.mv(p).contiguous();
    const std::vector<double> c(c_t.data_ptr<double>(), c_t.data_ptr<double>() + h);
    const std::vector<double> b(b_t.data_ptr<double>(), b_t.data_ptr<double>() + h);
    auto feasible = [&](double gamma) {
      double worst = 0;
      for (std::int64_t i = 0; i < h; ++i) worst = std::max(worst, c[i] + 2 * gamma * b[i] + gamma * gamma * a);
      return worst <= bound;
    };
    // gamma at which the quadratic term alone reaches the bound
    const double start = bound > 0 ? std::sqrt(bound / a) : 1.0;
    return largest_feasible_gamma(feasible, start, iterations_);
  }

  // minsum: the summed squared distance from m(gamma) to the honest messages stays within the honest
  // maximum, the largest sum of squared distances from one honest message to the others.
  double sum_gamma(const at::Tensor& rows, const at::Tensor& offsets, const at::Tensor& p, double a) const {
    const auto h = static_cast<double>(offsets.size(0));
    const double bound = pairwise_squared_distances(rows).sum(1).max().item<double>();
    // sum_i ||offsets_i + gamma p||^2 = C + 2 gamma B + h gamma^2 a (B is 0 up to rounding: offsets sum to 0).
    const double c = offsets.square().sum().item<double>(), b = offsets.sum(0).dot(p).item<double>();
    auto feasible = [&](double gamma) { return c + 2 * gamma * b + h * gamma * gamma * a <= bound; };
    // gamma at which the quadratic term alone reaches the bound
    const double start = bound > 0 ? std::sqrt(bound / (h * a)) : 1.0;
    return largest_feasible_gamma(feasible, start, iterations_);
  }

  std::string name_;
  Test test_;
  std::string direction_;
  std::int64_t iterations_;
};

std::vector<ParamSpec> perturbed_mean_params() {
  return {{"direction", ParamType::String, "std",
           "perturbation p: -std_h (std), -mean_h/||mean_h|| (unit), -sign(mean_h) (sign)", std::nullopt, std::nullopt,
           {"std", "unit", "sign"}},
          {"iterations", ParamType::Int, 60, "bisection steps for gamma after bracketing it", 1, 1000}};
}

Factory<Attack> perturbed_mean_factory(const std::string& name, Test test) {
  return [name, test](const Params& p, const Context&) {
    return std::make_unique<PerturbedMean>(name, test, p.get_string("direction"), p.get_int("iterations"));
  };
}

}  // namespace

PHALANX_PLUGIN("minmax", "1.0") {
  registrar.add_attack(
      {"minmax",
       "Min-Max (Shejwalkar & Houmansadr 2021): mean_h + gamma * p, max distance to honest within the honest maximum",
       perturbed_mean_params(),
       {},
       {Need::ByzantineShapeOnly}},
      perturbed_mean_factory("minmax", Test::max));
  registrar.add_attack(
      {"minsum",
       "Min-Sum (Shejwalkar & Houmansadr 2021): mean_h + gamma * p, summed distance to honest within the honest "
       "maximum",
       perturbed_mean_params(),
       {},
       {Need::ByzantineShapeOnly}},
      perturbed_mean_factory("minsum", Test::sum));
}
