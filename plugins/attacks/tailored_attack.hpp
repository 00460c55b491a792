// The AGR-tailored attacks of Shejwalkar and Houmansadr ("Manipulating the Byzantine: Optimizing Model
// Poisoning Attacks and Defenses for Federated Learning", NDSS 2021), shared by agr_minmax and agr_minsum, which
// differ only in their default stealth constraint. Every Byzantine worker sends
//
//   m(gamma) = mean_h + gamma * p      p: -std_h (std), -mean_h / ||mean_h|| (unit), -sign(mean_h) (sign)
//
// with gamma from the paper's halving search (defence_search::halving_search, gamma_init 10, tol 1e-5: 20
// steps) maximizing D(gamma) = ||F(honest rows, then b copies of m(gamma)) - mean_h||, F the configured defence
// queried through the oracle. A gamma is only tried when it passes the AGR-agnostic constraint (gamma = 0
// always does):
//   minmax: max_i ||m(gamma) - x_i||^2 <= max_{i,j} ||x_i - x_j||^2        (over honest rows)
//   minsum: sum_i ||m(gamma) - x_i||^2 <= min_j sum_i ||x_j - x_i||^2
//   none:   no constraint (the paper's plain tailored attack, as its our_attack_trmean)
// For krum, multikrum and bulyan the paper's tailored criterion is "every Byzantine row is selected", which
// needs the defence's selection; D is used for every defence here, so one attack fits any rule.
// Distances are evaluated in float64 as c_i + 2 gamma b_i + gamma^2 a with c_i = ||mean_h - x_i||^2,
// b_i = <mean_h - x_i, p>, a = ||p||^2 (as plugins/attacks/minmax.cpp). A round without honest messages (a
// distributed round that timed out before any arrived) leaves nothing to search against: the Byzantine
// workers send their true messages.
#pragma once

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "defence_search.hpp"
#include "phalanx/distances.hpp"
#include "phalanx/gamma_search.hpp"
#include "phalanx/plugin.hpp"

namespace phalanx::defence_search {

class TailoredAttack : public Attack {
 public:
  TailoredAttack(std::string name, const Params& p)
      : name_(std::move(name)), perturbation_(p.get_string("perturbation")), constraint_(p.get_string("constraint")),
        gamma_init_(p.get_double("gamma_init")), tol_(p.get_double("tol")) {}

  at::Tensor craft(const AttackRound& round) override {
    const std::int64_t b = round.byzantine_true.size(0);
    if (b == 0 || nothing_to_search(round)) return round.byzantine_true;
    at::Tensor honest = checked_honest(round, name_);
    at::Tensor mean = honest.mean(0);
    at::Tensor p = perturbation_direction(perturbation_, honest, mean);
    auto row = [&](double gamma) { return mean.add(p, gamma); };
    auto allowed = stealth_test(honest, mean, p);
    const double gamma =
        halving_search(gamma_init_, tol_, allowed, [&](double g) { return deviation(round, row(g), mean); });
    return repeated(row(gamma), b);
  }
  bool omniscient() const override { return true; }

 private:
  // The constraint as a test of gamma, from the honest rows' distances computed once.
  std::function<bool(double)> stealth_test(const at::Tensor& honest, const at::Tensor& mean, const at::Tensor& p) const {
    if (constraint_ == "none") return [](double) { return true; };
    const std::int64_t h = honest.size(0);
    at::Tensor distances = pairwise_squared_distances(honest.to(at::kFloat)).to(at::kDouble);
    at::Tensor offsets = mean.unsqueeze(0) - honest;  // m(gamma) - x_i = offsets_i + gamma p
    const double a = p.dot(p).item<double>();
    at::Tensor c_t = offsets.square().sum(1).contiguous(), b_t = offsets.mv(p).contiguous();
    std::vector<double> c(c_t.data_ptr<double>(), c_t.data_ptr<double>() + h);
    std::vector<double> b(b_t.data_ptr<double>(), b_t.data_ptr<double>() + h);
    if (constraint_ == "minmax") {
      const double bound = distances.max().item<double>();
      return [c, b, a, bound](double gamma) {
        double worst = 0;
        for (std::size_t i = 0; i < c.size(); ++i) worst = std::max(worst, c[i] + 2 * gamma * b[i] + gamma * gamma * a);
        return worst <= bound;
      };
    }
    const double bound = distances.sum(1).min().item<double>();
    return [c, b, a, bound](double gamma) {
      double total = 0;
      for (std::size_t i = 0; i < c.size(); ++i) total += c[i] + 2 * gamma * b[i] + gamma * gamma * a;
      return total <= bound;
    };
  }

  std::string name_, perturbation_, constraint_;
  double gamma_init_, tol_;
};

/// The declared parameters; `constraint` defaults to the attack's own.
inline std::vector<ParamSpec> tailored_params(const std::string& constraint) {
  return {{"perturbation", ParamType::String, "std",
           "direction p: -std_h (std), -mean_h/||mean_h|| (unit), -sign(mean_h) (sign); the paper's runs use std",
           std::nullopt, std::nullopt, {"std", "unit", "sign"}},
          {"gamma_init", ParamType::Double, 10.0, "first gamma and first step of the halving search (paper: 10)", 1e-12},
          {"tol", ParamType::Double, 1e-5, "stop when the last accepted gamma is this close (paper: 1e-5)", 1e-15},
          {"constraint", ParamType::String, constraint,
           "stealth test every tried gamma must pass: minmax, minsum or none (the plain tailored attack)",
           std::nullopt, std::nullopt, {"minmax", "minsum", "none"}}};
}

}  // namespace phalanx::defence_search
