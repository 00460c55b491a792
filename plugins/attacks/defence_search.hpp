// Shared by the attacks that search against the configured defence through the oracle (opt_alie, opt_ipm,
// agr_minmax, agr_minsum): the objective D, ByzFL's line search with the attack built on it (LineSearchAttack)
// and the halving search of Shejwalkar and Houmansadr (NDSS 2021). Header-only: each attack is its own plugin library.
//
// D(row) = ||F(honest rows, then every Byzantine row set to `row`) - mean_h||, computed in float64, where F is
// the configured pre-aggregators + aggregator (AttackRound::defence, which runs on a copy of their state, so the
// real defence is untouched and a randomized F answers every query with the same draws). A non-finite D never
// counts as an improvement: it is taken as -infinity.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/attack.hpp"
#include "phalanx/error.hpp"
#include "phalanx/params.hpp"
#include "phalanx/round.hpp"
#include "repeated_row.hpp"

namespace phalanx::defence_search {

/// True when the round gives nothing to search against, and the attacks send the Byzantine workers' true
/// messages: no honest message (a distributed round that timed out before any arrived), or no defence to
/// query (an asynchronous buffer that holds only Byzantine rows: the defence never sees the stand-in honest
/// row such a round carries). A config whose engine never provides the defence fails at validation instead
/// (PluginInfo::needs).
inline bool nothing_to_search(const AttackRound& round) {
  return !round.defence || !round.honest.defined() || round.honest.dim() != 2 || round.honest.size(0) == 0;
}

/// The honest rows (at least one, see nothing_to_search) as float64 after the checks every searching attack
/// needs.
inline at::Tensor checked_honest(const AttackRound& round, const std::string& attack) {
  if (!at::isfinite(round.honest).all().item<bool>())
    throw Error("attack '" + attack + "': an honest message holds NaN or Inf; the search needs finite honest rows");
  return round.honest.to(at::kDouble);
}

/// D(row) as above; -infinity when the defence's output is not finite.
inline double deviation(const AttackRound& round, const at::Tensor& row, const at::Tensor& honest_mean) {
  const std::int64_t b = round.byzantine_true.size(0);
  at::Tensor candidate = at::cat({round.honest.to(at::kFloat), repeated(row, b)});
  at::Tensor out = round.defence->evaluate(candidate).to(at::kDouble);
  const double d = out.sub(honest_mean).norm().item<double>();
  return std::isfinite(d) ? d : -std::numeric_limits<double>::infinity();
}

struct LineSearch {
  std::int64_t evals = 20;
  double start = 0.0, delta = 10.0, ratio = 0.8;
};

/// The declared parameters of the ByzFL search, with ByzFL's defaults.
inline std::vector<ParamSpec> line_search_params() {
  return {{"evals", ParamType::Int, 20, "calls of the defence per round (ByzFL: 20)", 1, 100000},
          {"start", ParamType::Double, 0.0, "first factor evaluated (ByzFL: 0.0)"},
          {"delta", ParamType::Double, 10.0, "first step of the search, nonzero (ByzFL: 10.0)"},
          {"ratio", ParamType::Double, 0.8, "step contraction after a failed proposal, in (0.5, 1) (ByzFL: 0.8)"}};
}

inline LineSearch line_search_from(const Params& p) {
  LineSearch s;
  s.evals = p.get_int("evals");
  s.start = p.get_double("start");
  s.delta = p.get_double("delta");
  s.ratio = p.get_double("ratio");
  if (s.delta == 0.0 || !std::isfinite(s.delta)) p.fail("delta", "the first step must be a nonzero finite number");
  if (!(s.ratio > 0.5 && s.ratio < 1.0)) p.fail("ratio", "must lie strictly between 0.5 and 1 (ByzFL's range)");
  if (!std::isfinite(s.start)) p.fail("start", "must be finite");
  return s;
}

/// ByzFL's search (byzfl/attacks/attacks.py, Optimal_ALittleIsEnough and Optimal_InnerProductManipulation):
/// exactly `evals` calls of objective(tau). Expansion from `start` doubles the step while the proposal
/// best + delta improves; the first failure scales the step by `ratio` and contraction then proposes
/// best + delta, scaling delta by `ratio` after every proposal. Returns the best tau.
template <class Objective>
double byzfl_line_search(const LineSearch& s, Objective objective) {
  double best_x = s.start, best_y = objective(best_x), delta = s.delta;
  std::int64_t remaining = s.evals - 1;
  while (remaining > 0) {
    const double x = best_x + delta, y = objective(x);
    --remaining;
    if (y > best_y) {
      best_x = x;
      best_y = y;
      delta *= 2;
    } else {
      delta *= s.ratio;
      break;
    }
  }
  while (remaining > 0) {
    const double x = best_x + delta, y = objective(x);
    --remaining;
    if (y > best_y) {
      best_x = x;
      best_y = y;
    }
    delta *= s.ratio;
  }
  return best_x;
}

/// An attack whose Byzantine workers all send one row a(tau) of a one-parameter family, tau chosen by ByzFL's
/// search to maximize D (opt_alie, opt_ipm). `family(honest, mean)` gives a(.) for the round's honest rows
/// (float64, checked) and their mean; it is called once per round, so what a(.) precomputes is computed once.
/// A round without Byzantine workers or anything to search against leaves the true messages (nothing_to_search).
class LineSearchAttack : public Attack {
 public:
  using Row = std::function<at::Tensor(double tau)>;
  using Family = std::function<Row(const at::Tensor& honest, const at::Tensor& mean)>;

  LineSearchAttack(std::string name, LineSearch search, Family family)
      : name_(std::move(name)), search_(search), family_(std::move(family)) {}

  at::Tensor craft(const AttackRound& round) override {
    const std::int64_t b = round.byzantine_true.size(0);
    if (b == 0 || nothing_to_search(round)) return round.byzantine_true;
    at::Tensor honest = checked_honest(round, name_);
    at::Tensor mean = honest.mean(0);
    const Row row = family_(honest, mean);
    const double tau = byzfl_line_search(search_, [&](double t) { return deviation(round, row(t), mean); });
    round.report("tau", tau);
    return repeated(row(tau), b);
  }
  bool omniscient() const override { return true; }

 private:
  std::string name_;
  LineSearch search_;
  Family family_;
};

/// The halving search of the AGR-tailored attacks (Shejwalkar and Houmansadr 2021, the released notebooks'
/// our_attack_trmean): gamma starts at gamma_init with step gamma_init; a gamma is accepted when
/// `allowed(gamma)` holds and objective(gamma) beats the previous evaluation (not the best so far: the
/// reference's rule), then gamma += step/2, else gamma -= step/2; the step halves every time; stops when the
/// last accepted gamma is within tol of gamma. The objective is not called for a gamma that is not allowed.
/// Returns the last accepted gamma (0 if none). At most 2000 steps, so a tol below float64's resolution
/// still ends (tol = 1e-5 from gamma_init = 10 takes 20).
template <class Allowed, class Objective>
double halving_search(double gamma_init, double tol, Allowed allowed, Objective objective) {
  double gamma = gamma_init, step = gamma_init, accepted = 0.0, previous = -1.0;
  for (int steps = 0; std::abs(accepted - gamma) > tol && steps < 2000; ++steps) {
    bool ok = allowed(gamma);
    if (ok) {
      const double y = objective(gamma);
      ok = y > previous;
      previous = y;
    }
    if (ok) {
      accepted = gamma;
      gamma += step / 2;
    } else {
      gamma -= step / 2;
    }
    step /= 2;
  }
  return accepted;
}

}  // namespace phalanx::defence_search
