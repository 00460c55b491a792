// SDK v2 round context and defence oracle: what the engines hand a defence (round, worker ids, staleness,
// parameters, server gradient) and an omniscient attack (previous aggregate, an oracle that leaves the real
// defence's state alone).
#include <set>
#include <sstream>

#include <ATen/ATen.h>

#include "phalanx/core/engine/async_engine.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine/round_parts.hpp"
#include "phalanx/core/engine/sync_engine.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "small_run.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

// The built-in plugins plus the probes of tests/test_plugins/context_probe.cpp.
const core::Registry& probe_registry() {
  static core::Registry* r = [] {
    auto* registry = new core::Registry();
    registry->load_directory(test::builtin_plugin_dir());
    registry->load_library(test::test_plugin_dir() + "/test_context_probe.so");
    return registry;
  }();
  return *r;
}

core::PipelineSpec spec(const std::vector<std::string>& overrides) {
  return resolve_config(kSmallRun, overrides, probe_registry());
}

struct Seen {
  std::int64_t round;
  std::vector<std::int64_t> ids, staleness;
  std::int64_t parameters, server_gradient;
};

std::vector<std::int64_t> numbers(const std::string& list) {
  std::vector<std::int64_t> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

std::vector<Seen> read_probe(const std::string& file) {
  std::vector<Seen> out;
  std::stringstream in(read_file(file));
  for (std::string line; std::getline(in, line);) {
    std::map<std::string, std::string> fields;
    std::stringstream words(line);
    for (std::string word; words >> word;) fields[word.substr(0, word.find('='))] = word.substr(word.find('=') + 1);
    out.push_back({std::stoll(fields["round"]), numbers(fields["ids"]), numbers(fields["staleness"]),
                   std::stoll(fields["parameters"]), std::stoll(fields["server_gradient"])});
  }
  return out;
}

TEST(RoundContext, SyncRoundsCarryRoundIdsZeroStalenessAndParameters) {
  const std::string dir = temp_dir("context_sync"), record = dir + "/probe.txt";
  core::RunResult r = core::run_sync(spec({"aggregator={name: context_probe, record: " + record + "}"}),
                                     probe_registry(), "", nullptr);
  ASSERT_EQ(r.status, core::RunStatus::ok) << r.message;
  const auto seen = read_probe(record);
  ASSERT_EQ(seen.size(), 3u);
  for (std::int64_t t = 0; t < 3; ++t) {
    EXPECT_EQ(seen[t].round, t);
    EXPECT_EQ(seen[t].ids, seen[0].ids) << "ids must be stable across rounds";
    EXPECT_EQ(seen[t].staleness, std::vector<std::int64_t>(6, 0));
    EXPECT_GT(seen[t].parameters, 0);
    EXPECT_EQ(seen[t].server_gradient, -1) << "no server_data configured";
  }
  EXPECT_EQ(std::set<std::int64_t>(seen[0].ids.begin(), seen[0].ids.end()), (std::set<std::int64_t>{0, 1, 2, 3, 4, 5}));
  // The Byzantine workers are the engine's last two rows; their ids must not simply be the last two.
  EXPECT_NE(seen[0].ids, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}));
}

TEST(RoundContext, ServerDataGivesTheServerGradientEveryRound) {
  const std::string dir = temp_dir("context_server"), record = dir + "/probe.txt";
  core::RunResult r = core::run_sync(
      spec({"aggregator={name: context_probe, record: " + record + "}", "server_data={samples: 50}"}),
      probe_registry(), "", nullptr);
  ASSERT_EQ(r.status, core::RunStatus::ok) << r.message;
  const auto seen = read_probe(record);
  ASSERT_EQ(seen.size(), 3u);
  for (const auto& s : seen) EXPECT_EQ(s.server_gradient, s.parameters);
}

TEST(RoundContext, ServerSampleComesOnlyFromHonestPartitions) {
  core::PipelineSpec s = spec({"server_data={samples: 200}", "data.partition={name: dirichlet, alpha: 0.3}"});
  Dataset data = core::load_data(s, probe_registry(), core::run_info(s, ""), nullptr);
  at::Tensor picked = core::server_sample_indices(s, data);
  ASSERT_EQ(picked.numel(), 200);
  std::vector<at::Tensor> parts = core::partition_indices(data.train_y, data.classes, s.workers, s.partition,
                                                          s.dirichlet_alpha, core::derive_seed(s.seed, "partition"));
  at::Tensor byzantine = at::cat({parts[4], parts[5]});
  EXPECT_FALSE(at::isin(picked, byzantine).any().item<bool>());
  EXPECT_TRUE(at::equal(picked, core::server_sample_indices(s, data))) << "drawn from the run seed";
  EXPECT_NO_THROW(spec({"server_data={samples: 200}", "engine.distributed=true"})) << "the distributed server draws it too";
}

TEST(RoundContext, AsyncBufferedRoundsCarryEachRowsStaleness) {
  const std::string dir = temp_dir("context_async"), record = dir + "/probe.txt";
  core::RunResult r = core::run_async(
      spec({"aggregator={name: context_probe, record: " + record + "}", "workers.byzantine=0",
            "engine={name: async, buffer: 3, speed: {name: homogeneous, time: 1.0}}"}),
      probe_registry(), "", nullptr);
  ASSERT_EQ(r.status, core::RunStatus::ok) << r.message;
  const auto seen = read_probe(record);
  ASSERT_GE(seen.size(), 2u);
  // Six workers start together at update 0: the first three arrivals make update 0, the next three (still
  // computed at update 0) arrive one update late.
  EXPECT_EQ(seen[0].round, 0);
  EXPECT_EQ(seen[0].staleness, (std::vector<std::int64_t>{0, 0, 0}));
  EXPECT_EQ(seen[1].round, 1);
  EXPECT_EQ(seen[1].staleness, (std::vector<std::int64_t>{1, 1, 1}));
  std::set<std::int64_t> ids(seen[0].ids.begin(), seen[0].ids.end());
  ids.insert(seen[1].ids.begin(), seen[1].ids.end());
  EXPECT_EQ(ids.size(), 6u) << "two rounds of three different workers";
}

TEST(RoundContext, ABucketingPreAggregatorDropsWorkerIds) {
  const std::string dir = temp_dir("context_bucketing"), record = dir + "/probe.txt";
  core::run_sync(spec({"aggregator={name: context_probe, record: " + record + ", pre: [{name: bucketing, s: 2}]}"}),
                 probe_registry(), "", nullptr);
  const auto seen = read_probe(record);
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen[0].ids.empty());
  EXPECT_TRUE(seen[0].staleness.empty());
}

// A defence with state in both stages: bucketing's generator and centered clipping's centre.
core::PipelineSpec stateful_defence() { return spec({"aggregator={name: cc, pre: [{name: bucketing, s: 2}]}"}); }

TEST(DefenceOracle, LeavesCenteredClippingsCentreAndBucketingsGeneratorUnchanged) {
  core::PipelineSpec s = stateful_defence();
  RunInfo info = core::run_info(s, "");
  core::EnginePlugins probed = core::make_plugins(s, probe_registry(), info, nullptr);
  core::EnginePlugins twin = core::make_plugins(s, probe_registry(), info, nullptr);
  at::manual_seed(11);
  const at::Tensor first = at::randn({6, 5}), second = at::randn({6, 5});
  // One real round each, so centered clipping has a centre and bucketing's generator has moved.
  core::aggregate_rows(s, probed, first);
  core::aggregate_rows(s, twin, first);
  const State cc_before = probed.aggregator->save_state();
  const State bucketing_before = probed.preaggregators[0]->save_state();
  ASSERT_TRUE(cc_before.count("center"));

  RoundContext round;
  round.worker_ids = {0, 1, 2, 3, 4, 5};
  round.staleness.assign(6, 0);
  core::EngineDefenceOracle oracle(s, probed, round, at::Tensor());
  const at::Tensor answer = oracle.evaluate(second);
  for (int i = 0; i < 3; ++i) oracle.evaluate(at::randn({6, 5}) * 100);
  EXPECT_TRUE(at::equal(oracle.evaluate(second), answer)) << "the same question gets the same answer";

  EXPECT_TRUE(at::equal(probed.aggregator->save_state().at("center"), cc_before.at("center")));
  EXPECT_TRUE(at::equal(probed.preaggregators[0]->save_state().at("generator"), bucketing_before.at("generator")));
  // The real defence goes on exactly as its twin that was never queried, and the oracle predicted it.
  const at::Tensor real = core::aggregate_rows(s, probed, second);
  EXPECT_TRUE(at::equal(real, core::aggregate_rows(s, twin, second)));
  EXPECT_TRUE(at::equal(real, answer));
  EXPECT_ERROR_WITH(oracle.evaluate(at::randn({5, 5})), "defence oracle takes [6, d]");
}

TEST(DefenceOracle, AnAttackQueryingItChangesNothingInSyncAndAsyncRuns) {
  for (const std::string engine : {"sync", "async"}) {
    const std::string a = temp_dir("oracle_none_" + engine), b = temp_dir("oracle_probe_" + engine);
    std::vector<std::string> common{"aggregator={name: cc, pre: [{name: bucketing, s: 2}]}",
                                    "training.budget={steps: 4}", "training.eval_every=2"};
    if (engine == "async") common.push_back("engine={name: async, buffer: 6, speed: {name: homogeneous, time: 1.0}}");
    auto with = [&](std::string attack) {
      auto o = common;
      o.push_back("attack=" + attack);
      return spec(o);
    };
    core::run_pipeline(with("none"), probe_registry(), a, nullptr);
    core::run_pipeline(with("{name: oracle_probe, record: " + b + "/probe.txt}"), probe_registry(), b, nullptr);
    EXPECT_EQ(metrics_without_wall_time(a), metrics_without_wall_time(b)) << engine;
    const std::string probe = read_file(b + "/probe.txt");
    EXPECT_THAT(probe, ::testing::HasSubstr("round=0 previous=0 oracle=")) << engine;
    EXPECT_THAT(probe, ::testing::HasSubstr("round=1 previous=1 oracle=")) << engine;
  }
}

}  // namespace
}  // namespace phalanx::test
