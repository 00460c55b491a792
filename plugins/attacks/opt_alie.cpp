// opt_alie: Optimal ALIE, ByzFL's Optimal_ALittleIsEnough (LPD-EPFL/byzfl, byzfl/attacks/attacks.py; used in
// Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, "Fixing by Mixing", AISTATS 2023), after "A Little Is
// Enough" (Baruch, Baruch, Goldberg, NeurIPS 2019). Every Byzantine worker sends
//
//   a(tau) = mean_h + tau * std_h          (coordinate-wise, std_h unbiased; 0 with one honest row)
//
// with tau maximizing D(tau) = ||F(honest rows, then b copies of a(tau)) - mean_h||, F the configured
// pre-aggregators + aggregator queried through the defence oracle (plugins/attacks/defence_search.hpp). The
// search is ByzFL's, exactly `evals` calls of D: expansion from `start`, doubling `delta` while best + delta
// improves, then contraction proposing best + delta with delta scaled by `ratio` after each proposal. Note the
// plus sign (the alie plugin subtracts): with start 0 and delta > 0 only tau >= 0 is visited, as in ByzFL.
// Where ByzFL queries a defence given to it (by default Average after Clipping), here F is always the run's.
// Omniscient; needs the oracle (sync and async simulations, distributed synchronous server). A round without
// honest messages (a distributed round that timed out before any arrived) leaves nothing to search against:
// the Byzantine workers then send their true messages.
//
// Diagnostic `opt_alie.tau`: the factor the search chose, mean over the rounds since the previous metrics row.
//
// | parameter | default | meaning                                             |
// |-----------|---------|-----------------------------------------------------|
// | evals     | 20      | calls of the defence per round                      |
// | start     | 0.0     | first tau evaluated                                 |
// | delta     | 10.0    | first step (nonzero)                                |
// | ratio     | 0.8     | step contraction, in (0.5, 1)                       |
#include <ATen/ATen.h>

#include "defence_search.hpp"
#include "phalanx/gamma_search.hpp"
#include "phalanx/plugin.hpp"

PHALANX_PLUGIN("opt_alie", "1.0") {
  using namespace phalanx;
  using defence_search::LineSearchAttack;
  registrar.add_attack(
      {"opt_alie",
       "Optimal ALIE (ByzFL): mean_h + tau * std_h with tau line-searched to push the defence's output farthest "
       "from the honest mean",
       defence_search::line_search_params(),
       {{"tau", "the factor the line search chose, mean over the rounds since the previous metrics row"}},
       {Need::DefenceOracle}},
      [](const Params& p, const Context&) {
        return std::make_unique<LineSearchAttack>(
            "opt_alie", defence_search::line_search_from(p),
            [](const at::Tensor& honest, const at::Tensor& mean) -> LineSearchAttack::Row {
              at::Tensor std =
                  honest.size(0) > 1 ? perturbation_direction("std", honest, mean).neg_() : at::zeros_like(mean);
              return [mean, std](double tau) { return mean.add(std, tau); };
            });
      });
}
