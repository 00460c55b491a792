// The asynchronous discrete-event engine: determinism, staleness and simulated time, equivalence with the
// synchronous engine for one worker, Byzantine pushes with and without a buffer, speed models.
#include "phalanx/core/engine/async_engine.hpp"
#include "phalanx/core/engine/sync_engine.hpp"

#include <ATen/ATen.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "small_run.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

const char* kAsync = R"(name: async
seed: 3
data: {name: synthetic, train_size: 800, test_size: 200, features: 10, classes: 3}
model: {name: mlp, hidden: [16]}
workers: {count: 6}
engine: {name: async, speed: {name: gamma, shape: 4, spread: 0.5}}
optimizer: {name: sgd, lr: 0.05}
training: {batch_size: 8, budget: {steps: 120}, eval_every: 40}
)";

TEST(AsyncEngine, SameSeedGivesIdenticalMetrics) {
  const std::string a = temp_dir("async_det_a"), b = temp_dir("async_det_b");
  core::run_async(resolve_config(kAsync), builtin_registry(), a, nullptr);
  core::run_async(resolve_config(kAsync), builtin_registry(), b, nullptr);
  EXPECT_EQ(metrics_without_wall_time(a), metrics_without_wall_time(b));
  EXPECT_NE(metrics_without_wall_time(a), "");
}

// Gradients pulled between two updates are computed side by side on training.threads threads: every row
// must be the same for any count, with a buffer (several pulls per update), an attack, and a look-ahead
// optimizer (SMEGA2 computes each gradient at its own point, one at a time).
TEST(AsyncEngine, ThreadCountDoesNotChangeAnyMetric) {
  const std::vector<std::vector<std::string>> variants{
      {"engine.buffer=4", "workers={count: 6, byzantine: 1}", "attack={name: alie}", "aggregator={name: cm}",
       "training.eval_batch_size=7"},  // several test batches, scored on the threads
      {"engine.buffer=1"},
      {"optimizer={name: smega2, lr: 0.05}"}};
  for (const auto& overrides : variants) {
    std::string reference;
    for (int threads : {1, 2, 3}) {
      std::vector<std::string> all = overrides;
      all.push_back("training.threads=" + std::to_string(threads));
      const std::string dir = temp_dir("async_threads_" + std::to_string(threads));
      core::RunResult r = core::run_async(resolve_config(kAsync, all), builtin_registry(), dir, nullptr);
      ASSERT_EQ(r.status, core::RunStatus::ok) << r.message;
      const std::string metrics = metrics_without_wall_time(dir);
      EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 3);
      if (threads == 1) reference = metrics;
      EXPECT_EQ(metrics, reference) << overrides.front() << ", " << threads << " threads";
    }
  }
}

TEST(AsyncEngine, HomogeneousWorkersAreStaleByKMinusOne) {
  // K equal workers deliver in turn: after the first round every gradient is K - 1 updates old, and the
  // simulated clock advances by one compute time per K updates.
  core::RunResult r = core::run_async(
      resolve_config(kAsync, {"engine.speed={name: homogeneous, time: 2.0}", "training.eval_every=60"}), builtin_registry(), "",
      nullptr);
  EXPECT_EQ(r.last.step, 120);
  EXPECT_EQ(r.last.staleness_max, 5);
  EXPECT_DOUBLE_EQ(r.last.staleness_mean, 5.0);  // the second window has no warm-up
  EXPECT_DOUBLE_EQ(r.last.sim_time, 2.0 * 120 / 6);
  EXPECT_EQ(r.last.gradients, 120 * 8);
}

TEST(AsyncEngine, SlowWorkersMakeStalerGradients) {
  core::RunResult even = core::run_async(resolve_config(kAsync, {"engine.speed=homogeneous"}), builtin_registry(), "", nullptr);
  core::RunResult slow = core::run_async(
      resolve_config(kAsync, {"engine.speed={name: heterogeneous, slow_fraction: 0.34, slow_factor: 8}"}), builtin_registry(), "",
      nullptr);
  EXPECT_GT(slow.last.staleness_max, 3 * even.last.staleness_max);
}

TEST(AsyncEngine, OneWorkerEqualsTheSynchronousEngine) {
  // With K = 1 nothing is ever stale: the asynchronous run is plain SGD, step for step the same as the
  // synchronous engine with one worker (same data stream, same model initialisation).
  const std::vector<std::string> one{"workers.count=1", "engine.speed=homogeneous"};
  core::RunResult a = core::run_async(resolve_config(kAsync, one), builtin_registry(), "", nullptr);
  core::PipelineSpec sync_spec = resolve_config(kAsync, {"workers.count=1", "engine={name: sync}"});
  core::RunResult s = core::run_sync(sync_spec, builtin_registry(), "", nullptr);
  EXPECT_EQ(a.last.step, s.last.step);
  EXPECT_EQ(a.last.test_loss, s.last.test_loss);
  EXPECT_EQ(a.last.test_accuracy, s.last.test_accuracy);
  EXPECT_EQ(a.last.staleness_max, 0);
}

TEST(AsyncEngine, TwoHundredFiftySixWorkersRun) {
  core::RunResult r = core::run_async(resolve_config(kAsync, {"workers.count=256", "training.budget.steps=600"}),
                                      builtin_registry(), "", nullptr);
  EXPECT_EQ(r.status, core::RunStatus::ok);
  EXPECT_EQ(r.last.step, 600);
  EXPECT_GT(r.last.staleness_max, 200);
}

TEST(AsyncEngine, BufferedRobustAggregationSurvivesBitflipping) {
  core::RunResult r = core::run_async(
      resolve_config(kAsync, {"workers={count: 7, byzantine: 2}", "engine.buffer=7", "aggregator={name: cm}",
                    "attack={name: bitflip, scale: 10}", "training.budget.steps=60", "training.eval_every=20"}),
      builtin_registry(), "", nullptr);
  EXPECT_EQ(r.status, core::RunStatus::ok);
  EXPECT_EQ(r.last.step, 60);
  EXPECT_GT(r.last.test_accuracy, 0.6);
}

TEST(AsyncEngine, UnbufferedServerRefusesNonFiniteMessages) {
  core::RunResult r = core::run_async(resolve_config(kAsync, {"workers={count: 6, byzantine: 2}", "attack=nan"}),
                                      builtin_registry(), "", nullptr);
  EXPECT_EQ(r.status, core::RunStatus::ok);
  EXPECT_GT(r.last.nonfinite_messages, 0);
  EXPECT_TRUE(std::isfinite(r.last.test_loss));
}

TEST(AsyncEngine, OverflowingHonestGradientsEndTheRunAsDiverged) {
  // With a huge step the loss overflows and honest workers push non-finite gradients: that is the model
  // diverging (reported as such at once), not a Byzantine message to refuse.
  core::RunResult r = core::run_async(resolve_config(kAsync, {"optimizer.lr=1e12"}), builtin_registry(), "", nullptr);
  EXPECT_EQ(r.status, core::RunStatus::diverged);
  EXPECT_NE(r.message.find("non-finite"), std::string::npos) << r.message;
  EXPECT_LT(r.last.step, 120);
}

TEST(AsyncEngine, SummaryBreaksTheWallTimeDown) {
  const std::string dir = temp_dir("async_time");
  core::RunResult r = core::run_async(resolve_config(kAsync), builtin_registry(), dir, nullptr);
  EXPECT_GT(r.time.compute, 0);
  EXPECT_GT(r.time.update, 0);
  EXPECT_GT(r.time.evaluation, 0);
  EXPECT_GE(r.time.engine(), 0);
  EXPECT_NE(read_file(dir + "/summary.json").find("\"time\": {\"compute_s\": "), std::string::npos);
}

TEST(SpeedModel, TraceFileIsCycledAndCheckedPerLine) {
  const std::string dir = temp_dir("trace");
  write_file(dir + "/t.txt", "# one line per worker\n1 2\n3\n");
  core::SpeedSpec s;
  s.name = "trace";
  s.file = dir + "/t.txt";
  core::SpeedModel model(s, 2, 1);
  EXPECT_EQ(model.next(0), 1);
  EXPECT_EQ(model.next(0), 2);
  EXPECT_EQ(model.next(0), 1);
  EXPECT_EQ(model.next(1), 3);
  EXPECT_ERROR_WITH(core::SpeedModel(s, 3, 1), "has times for 2 workers, the run has 3");
  write_file(dir + "/t.txt", "1 -2\n");
  EXPECT_ERROR_WITH(core::SpeedModel(s, 1, 1), "t.txt:1", "'-2' is not a positive compute time");
}

TEST(SpeedModel, HeterogeneousSpreadAndSlowFraction) {
  core::SpeedSpec s;
  s.name = "heterogeneous";
  s.spread = 0.5;
  s.slow_fraction = 0.25;
  s.slow_factor = 4;
  core::SpeedModel model(s, 4, 1);
  EXPECT_DOUBLE_EQ(model.next(0), 4.0);  // slow worker: 1 * (1 + 0) * 4
  EXPECT_DOUBLE_EQ(model.next(1), 1.5);
  EXPECT_DOUBLE_EQ(model.next(3), 2.5);
}

TEST(SpeedModel, CommunicationTimeIsAddedToEveryComputeTime) {
  core::SpeedSpec s;
  s.name = "heterogeneous";
  s.slow_fraction = 0.5;
  s.slow_factor = 4;
  s.comm = 0.25;
  core::SpeedModel model(s, 2, 1);
  EXPECT_DOUBLE_EQ(model.next(0), 4.25);
  EXPECT_DOUBLE_EQ(model.next(1), 1.25);
}

TEST(AsyncEngine, CommunicationTimeStretchesTheClockNotTheStaleness) {
  // K equal workers with a round trip of 1 on top of a compute time of 2: the clock runs 1.5x as long for the
  // same updates, and every gradient is still K - 1 updates old.
  core::RunResult r = core::run_async(
      resolve_config(kAsync, {"engine.speed={name: homogeneous, time: 2.0, comm: 1.0}", "training.eval_every=60"}),
      builtin_registry(), "", nullptr);
  EXPECT_EQ(r.last.step, 120);
  EXPECT_EQ(r.last.staleness_max, 5);
  EXPECT_DOUBLE_EQ(r.last.sim_time, 3.0 * 120 / 6);
}

TEST(SyncEngine, ARoundPaysTheCommunicationTimeOnceAfterItsSlowestWorker) {
  core::RunResult r = core::run_sync(
      resolve_config(kAsync, {"engine={name: sync, speed: {name: heterogeneous, slow_fraction: 0.2, slow_factor: 4, "
                              "comm: 0.5}}",
                              "training.budget.steps=10", "training.eval_every=10"}),
      builtin_registry(), "", nullptr);
  EXPECT_EQ(r.last.step, 10);
  EXPECT_DOUBLE_EQ(r.last.sim_time, 10 * 4.5);
}

TEST(SpeedModel, GammaHasTheRequestedMean) {
  core::SpeedSpec s;
  s.name = "gamma";
  s.shape = 100;
  s.time = 2;
  core::SpeedModel model(s, 1, 7);
  double sum = 0;
  for (int i = 0; i < 4000; ++i) sum += model.next(0);
  EXPECT_NEAR(sum / 4000, 2.0, 0.02);
}

}  // namespace
}  // namespace phalanx::test
