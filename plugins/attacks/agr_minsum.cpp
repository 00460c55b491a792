// agr_minsum: the AGR-tailored attack of Shejwalkar and Houmansadr (NDSS 2021) with the minsum stealth constraint
// by default: mean_h + gamma * p, gamma halving-searched against the configured defence through the oracle,
// every tried gamma passing the minsum test of the AGR-agnostic minsum attack. Formula, search and parameters:
// plugins/attacks/tailored_attack.hpp. Omniscient; needs the oracle (sync and async simulations, distributed
// synchronous server).
//
// | parameter    | default | meaning                                          |
// |--------------|---------|--------------------------------------------------|
// | perturbation | std     | direction p: std, unit or sign                   |
// | gamma_init   | 10.0    | first gamma and first step of the halving search |
// | tol          | 1e-5    | stopping distance between tried and accepted gamma |
// | constraint   | minsum  | stealth test: minmax, minsum or none             |
#include "tailored_attack.hpp"

PHALANX_PLUGIN("agr_minsum", "1.0") {
  using namespace phalanx;
  registrar.add_attack({"agr_minsum",
                        "AGR-tailored attack (Shejwalkar & Houmansadr 2021): mean_h + gamma * p maximizing the "
                        "defence's deviation under the minsum constraint",
                        defence_search::tailored_params("minsum"),
                        {},
                        {Need::DefenceOracle}},
                       [](const Params& p, const Context&) {
                         return std::make_unique<defence_search::TailoredAttack>("agr_minsum", p);
                       });
}
