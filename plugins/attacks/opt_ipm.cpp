// opt_ipm: Optimal IPM, ByzFL's Optimal_InnerProductManipulation (LPD-EPFL/byzfl, byzfl/attacks/attacks.py; used
// in Allouah et al., "Fixing by Mixing", AISTATS 2023), after inner product manipulation (Xie, Koyejo, Gupta,
// "Fall of Empires", UAI 2020). Every Byzantine worker sends
//
//   a(tau) = -tau * mean_h
//
// with tau maximizing D(tau) = ||F(honest rows, then b copies of a(tau)) - mean_h|| by ByzFL's line search
// (exactly `evals` calls of the configured defence F through the oracle; see opt_alie.cpp and
// plugins/attacks/defence_search.hpp). Omniscient; needs the oracle. Without honest messages in a round the
// Byzantine workers send their true messages, as opt_alie.
//
// Diagnostic `opt_ipm.tau`: the factor the search chose, mean over the rounds since the previous metrics row.
//
// | parameter | default | meaning                       |
// |-----------|---------|-------------------------------|
// | evals     | 20      | calls of the defence per round |
// | start     | 0.0     | first tau evaluated            |
// | delta     | 10.0    | first step (nonzero)           |
// | ratio     | 0.8     | step contraction, in (0.5, 1)  |
#include <ATen/ATen.h>

#include "defence_search.hpp"
#include "phalanx/plugin.hpp"

PHALANX_PLUGIN("opt_ipm", "1.0") {
  using namespace phalanx;
  using defence_search::LineSearchAttack;
  registrar.add_attack(
      {"opt_ipm",
       "Optimal IPM (ByzFL): -tau * mean_h with tau line-searched to push the defence's output farthest from the "
       "honest mean",
       defence_search::line_search_params(),
       {{"tau", "the factor the line search chose, mean over the rounds since the previous metrics row"}},
       {Need::DefenceOracle}},
      [](const Params& p, const Context&) {
        return std::make_unique<LineSearchAttack>(
            "opt_ipm", defence_search::line_search_from(p),
            [](const at::Tensor&, const at::Tensor& mean) -> LineSearchAttack::Row {
              return [mean](double tau) { return mean.mul(-tau); };
            });
      });
}
