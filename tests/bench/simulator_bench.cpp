// The simulators' own overhead: the share of a run's training time spent outside the workers' forward/backward
// passes and the optimizer's server update (batching, copies, finiteness checks, the event queue, the
// attack/aggregation plumbing). Evaluation is timed separately and left out of the denominator, which makes the
// share stricter than "of the whole run".
//
//   ./build/bin/phalanx_sim_bench [--benchmark_filter=async/mlp/K64]
//
// Runs Fashion-MNIST with the MLP of the quick start (784-200-10), batch 32, one intra-op thread, a fixed number of
// arrivals and a single evaluation at the end. Counters: engine_pct = engine / (training time: all but evaluation),
// compute_ms / aggregation_ms / update_ms / engine_ms per gradient. Aggregation (summing K messages) is part of
// the method in the synchronous engine, so it is timed apart from the engine's overhead.
#include <benchmark/benchmark.h>

#include <string>

#include "phalanx/core/config.hpp"
#include "phalanx/core/pipeline.hpp"
#include "phalanx/core/registry.hpp"
#include "phalanx/core/sync_engine.hpp"
#include "phalanx/core/threads.hpp"
#include "phalanx/error.hpp"

namespace {

using namespace phalanx;

struct Case {
  std::string engine, optimizer;
  std::int64_t workers, arrivals;
};

std::string config_for(const Case& c) {
  // The sync engine's budget counts rounds of K gradients; both engines compute `arrivals` gradients.
  const std::int64_t steps = c.engine == "sync" ? c.arrivals / c.workers : c.arrivals;
  return "name: bench\nseed: 1\ndata: {name: fashion_mnist}\nmodel: {name: mlp, hidden: [200]}\n"
         "workers: {count: " + std::to_string(c.workers) + "}\n"
         "engine: {name: " + c.engine + ", speed: {name: heterogeneous, spread: 0.1, slow_fraction: 0.25, slow_factor: 4}}\n"
         "optimizer: {name: " + c.optimizer + ", lr: 0.01}\n"
         "training: {batch_size: 32, budget: {steps: " + std::to_string(steps) + "}, eval_every: 1000000, "
         "threads: 1}\n";
}

void run_case(benchmark::State& state, const core::Registry* registry, Case c) {
  core::TimeBreakdown sum;
  std::int64_t arrivals = 0;
  try {
    core::PipelineSpec spec = core::resolve_pipeline(core::parse_yaml(config_for(c), "bench.yaml"), *registry);
    for (auto _ : state) {
      core::RunResult result = core::run_pipeline(spec, *registry, "", nullptr);
      if (result.status != "ok") throw Error("run ended '" + result.status + "': " + result.message);
      sum.compute += result.time.compute;
      sum.aggregation += result.time.aggregation;
      sum.update += result.time.update;
      sum.evaluation += result.time.evaluation;
      sum.total += result.time.total;
      arrivals += c.arrivals;
    }
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  const double training = sum.total - sum.evaluation;
  state.counters["engine_pct"] = 100.0 * sum.engine() / training;
  state.counters["aggregation_ms"] = 1e3 * sum.aggregation / static_cast<double>(arrivals);
  state.counters["compute_ms"] = 1e3 * sum.compute / static_cast<double>(arrivals);
  state.counters["update_ms"] = 1e3 * sum.update / static_cast<double>(arrivals);
  state.counters["engine_ms"] = 1e3 * sum.engine() / static_cast<double>(arrivals);
}

}  // namespace

int main(int argc, char** argv) {
  core::set_compute_threads(1);
  benchmark::Initialize(&argc, argv);
  core::Registry registry;
  registry.load_directory(core::plugin_search_path().front());
  for (const Case& c : {Case{"async", "ormo", 64, 4096}, Case{"async", "asgd", 64, 4096},
                        Case{"async", "ormo", 256, 4096}, Case{"sync", "ssgdm", 64, 4096}}) {
    const std::string label = c.engine + "/mlp/K" + std::to_string(c.workers) + "/" + c.optimizer;
    benchmark::RegisterBenchmark(label.c_str(), run_case, &registry, c)
        ->Unit(benchmark::kSecond)
        ->UseRealTime()
        ->Iterations(3);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
