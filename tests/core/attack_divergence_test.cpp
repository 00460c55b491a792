// A model that diverges under an attack that searches against the defence ends "diverged", not "failed": the
// engines check the honest messages before an omniscient attack reads them, because such an attack refuses
// non-finite honest rows (plugins/attacks/defence_search.hpp) and its error used to end the run first
// (docs/results/compare_opt_attacks.md: mean under opt_alie and opt_ipm).
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine.hpp"
#include "small_run.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

// configs/compare_opt_attacks.yaml's mean column under opt_alie, where the model diverges.
const char* kMeanUnderOptAlie = R"(name: diverging
seed: 1
data: {name: synthetic, train_size: 2000, test_size: 500, classes: 10, separation: 0.4}
model: {name: mlp, hidden: [32]}
workers: {count: 11, byzantine: 2}
optimizer: {name: sgd, lr: 0.1}
aggregator: {name: mean}
attack: {name: opt_alie}
training: {batch_size: 16, budget: {steps: 150}, eval_every: 150}
)";

core::RunResult run(const std::vector<std::string>& overrides) {
  const core::PipelineSpec spec = resolve_config(kMeanUnderOptAlie, overrides, builtin_registry(), "diverging.yaml");
  return core::run_pipeline(spec, builtin_registry(), "", nullptr);
}

TEST(AttackDivergence, MeanUnderOptAlieEndsDivergedBeforeTheAttackSearches) {
  for (const std::string engine : {"sync", "async"}) {
    SCOPED_TRACE(engine);
    std::vector<std::string> overrides;
    if (engine == "async") overrides.push_back("engine={name: async, buffer: 11, speed: {name: homogeneous}}");
    const core::RunResult r = run(overrides);
    EXPECT_EQ(r.status, core::RunStatus::diverged) << r.message;
    EXPECT_THAT(r.message, ::testing::HasSubstr("an honest worker's gradient became non-finite"));
  }
}

// A robust rule under the same attack is unaffected: the check only fires on non-finite honest messages.
TEST(AttackDivergence, ARobustRuleUnderTheSameAttackStillEndsOk) {
  const core::RunResult r = run({"aggregator={name: cm}", "training.budget={steps: 20}"});
  EXPECT_EQ(r.status, core::RunStatus::ok) << r.message;
}

}  // namespace
}  // namespace phalanx::test
