// Declared needs (PluginInfo::needs): a config that cannot give a plugin what it needs fails when it is
// validated, with an error naming the config line, the plugin and the key to add, instead of at the first round.
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

const char* kConfig = R"(name: needs
seed: 1
data: {name: synthetic, train_size: 200, test_size: 50, features: 4, classes: 2}
model: {name: logreg}
workers: {count: 6, byzantine: 1}
optimizer: {name: sgd, lr: 0.1}
aggregator: {name: fltrust}
attack: {name: opt_alie}
training: {batch_size: 4, budget: {steps: 2}}
)";

core::PipelineSpec resolve(const std::vector<std::string>& overrides) {
  Value root = core::parse_yaml(kConfig, "needs.yaml");
  for (const auto& o : overrides) core::apply_override(root, o);
  return core::resolve_pipeline(root, builtin_registry());
}

TEST(PluginNeeds, AServerGradientWithoutServerDataFailsAtValidationNamingTheKey) {
  EXPECT_ERROR_WITH(resolve({}), "needs.yaml:7", "aggregator 'fltrust' (aggregator) needs the server's gradient",
                    "add `server_data: {samples: 100}`");
  EXPECT_NO_THROW(resolve({"server_data={samples: 20}"}));
  EXPECT_ERROR_WITH(resolve({"engine.distributed=true"}), "aggregator 'fltrust'", "add `server_data");
  EXPECT_NO_THROW(resolve({"server_data={samples: 20}", "engine.distributed=true"}));
}

TEST(PluginNeeds, TheDefenceOracleNeedsBufferedAsyncRoundsInEveryMode) {
  const std::string fed = "server_data={samples: 20}";
  EXPECT_ERROR_WITH(resolve({fed, "engine={name: async}"}), "needs.yaml:8",
                    "attack 'opt_alie' (attack) needs the defence oracle", "set `engine: {buffer: N}` with N >= 2");
  EXPECT_NO_THROW(resolve({fed, "engine={name: async, buffer: 3}"}));
  EXPECT_ERROR_WITH(resolve({"aggregator={name: cm}", "engine={name: async, distributed: true}"}),
                    "attack 'opt_alie'", "set `engine: {buffer: N}` with N >= 2");
  EXPECT_NO_THROW(resolve({"aggregator={name: cm}", "engine={name: async, buffer: 3, distributed: true}"}));
  EXPECT_NO_THROW(resolve({"aggregator={name: cm}", "engine.distributed=true"}));
}

TEST(PluginNeeds, WorkerIdsReachEveryEngine) {
  EXPECT_NO_THROW(resolve({"aggregator={name: foolsgold}", "engine={name: async, buffer: 2}"}));
  EXPECT_NO_THROW(resolve({"aggregator={name: foolsgold}", "attack=none",
                           "engine={name: async, buffer: 2, distributed: true}"}));
}

TEST(PluginNeeds, PluginsDeclareWhatTheyNeed) {
  auto needs = [](core::Kind kind, const std::string& name) { return builtin_registry().find(kind, name).info.needs; };
  EXPECT_EQ(needs(core::Kind::Aggregator, "fltrust"), std::vector<Need>{Need::ServerGradient});
  EXPECT_EQ(needs(core::Kind::Aggregator, "foolsgold"), std::vector<Need>{Need::WorkerIds});
  for (const std::string attack : {"opt_alie", "opt_ipm", "agr_minmax", "agr_minsum"})
    EXPECT_EQ(needs(core::Kind::Attack, attack), std::vector<Need>{Need::DefenceOracle}) << attack;
  for (const std::string attack : {"alie", "foe", "gaussian", "inf", "nan", "mimic", "minmax", "minsum", "signflip",
                                   "zero"})
    EXPECT_EQ(needs(core::Kind::Attack, attack), std::vector<Need>{Need::ByzantineShapeOnly}) << attack;
  for (const std::string attack : {"none", "bitflip", "labelflip"})  // their rows are the Byzantine messages
    EXPECT_TRUE(needs(core::Kind::Attack, attack).empty()) << attack;
  EXPECT_TRUE(needs(core::Kind::Aggregator, "cm").empty());
}

}  // namespace
}  // namespace phalanx::test
