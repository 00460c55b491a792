// The simulators' own overhead: the share of a run's training time spent outside the workers' forward/backward
// passes and the optimizer's server update (batching, copies, finiteness checks, the event queue, the
// attack/aggregation plumbing). Evaluation is timed separately and left out of the denominator, which makes the
// share stricter than "of the whole run".
//
//   ./build/bin/phalanx_sim_bench [--benchmark_filter=async/mlp/K64]
//
// Runs Fashion-MNIST with the MLP of the quick start (784-200-10), batch 32, one gradient thread, a fixed number of
// arrivals and a single evaluation at the end. Counters: engine_pct = engine / (training time: all but evaluation),
// engine_per_fb_pct = engine / forward-backward, compute_ms / aggregation_ms / update_ms / engine_ms and the
// engine's parts (attack_ms, batches_ms, rules_ms) per gradient. Aggregation is part of the method, so it is
// timed apart from the engine's overhead. The quickstart/... cases are the quick start's nine cells
// (configs/quickstart.yaml: 8 workers, 3 Byzantine, ByzSGDnm) with 512 gradients each. parts/honest_comparison
// times one of the engine's per-round passes alone: the honest-deviation metric on the quick start's five honest
// rows of d = 159,010 (compare_with_honest_mean), with its rows read in GB/s. The other parts/... cases time what
// one quick-start worker costs per round on its own, side by side in one run: its forward/backward (the MLP at
// batch 32), its momentum update (ByzSGDnm's MomentumWorkerRule kept in a row of an [8, d] matrix, as the
// engine keeps it) and the gather of its 32 images from the 60,000; docs/BENCHMARKS.md ("Where the engine's
// overhead ends") compares their sum with the issue's 10 % line.
#include <benchmark/benchmark.h>

#include <string>
#include <utility>
#include <vector>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/engine/flat_model.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/run/process_memory.hpp"
#include "phalanx/core/engine/sync_engine.hpp"
#include "phalanx/core/engine/threads.hpp"
#include "phalanx/error.hpp"
#include "phalanx/optimizer.hpp"

namespace {

using namespace phalanx;

struct Case {
  std::string engine, optimizer;
  std::int64_t workers, arrivals;
  std::string aggregator = "mean", attack = "none";  // set: a quick-start cell
};

std::string quickstart_config(const Case& c) {
  return "name: bench\nseed: 1\ndata: {name: fashion_mnist, partition: iid}\nmodel: {name: mlp, hidden: [200]}\n"
         "workers: {count: 8, byzantine: 3}\noptimizer: {name: byzsgdnm, lr: 0.1, beta: 0.9, schedule: cosine}\n"
         "aggregator: " + c.aggregator + "\nattack: " + c.attack + "\n"
         "training: {batch_size: 32, budget: {steps: " + std::to_string(c.arrivals / 8) + "}, eval_every: 1000000, "
         "threads: 1}\n";
}

std::string config_for(const Case& c) {
  if (c.aggregator != "mean" || c.attack != "none") return quickstart_config(c);
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
      if (result.status != core::RunStatus::ok) throw Error("run ended '" + std::string(core::to_string(result.status)) + "': " + result.message);
      sum.compute += result.time.compute;
      sum.aggregation += result.time.aggregation;
      sum.update += result.time.update;
      sum.evaluation += result.time.evaluation;
      sum.total += result.time.total;
      sum.attack += result.time.attack;
      sum.batches += result.time.batches;
      sum.worker_rules += result.time.worker_rules;
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
  state.counters["engine_per_fb_pct"] = 100.0 * sum.engine() / sum.compute;
  state.counters["attack_ms"] = 1e3 * sum.attack / static_cast<double>(arrivals);
  state.counters["batches_ms"] = 1e3 * sum.batches / static_cast<double>(arrivals);
  state.counters["rules_ms"] = 1e3 * sum.worker_rules / static_cast<double>(arrivals);
}

void honest_comparison(benchmark::State& state) {
  const std::int64_t h = 5, d = 159010;
  at::manual_seed(3);
  const at::Tensor honest = at::randn({h, d}), aggregate = honest.mean(0) + 0.1 * at::randn({d});
  double deviation = 0;
  for (auto _ : state) {
    deviation += core::compare_with_honest_mean(aggregate, honest, nullptr).deviation;
    benchmark::DoNotOptimize(deviation);
  }
  state.counters["rows_GBps"] = benchmark::Counter(static_cast<double>((h + 1) * d * 4) * state.iterations(),
                                                   benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// The quick start's MLP (784-200-10), built as a run builds it, with one worker's mini-batch of 32.
void forward_backward(benchmark::State& state, const core::Registry* registry) {
  try {
    const core::PipelineSpec spec =
        core::resolve_pipeline(core::parse_yaml(quickstart_config(Case{"sync", "byzsgdnm", 8, 512}), "bench.yaml"),
                               *registry);
    Dataset shape;
    shape.sample_shape = {1, 28, 28};
    shape.classes = 10;
    const auto model = core::build_model(spec, *registry, core::run_info(spec, ""), shape, nullptr);
    at::manual_seed(5);
    const at::Tensor x = at::randn({32, 1, 28, 28}), y = at::randint(10, {32}, at::kLong);
    double loss = 0;
    for (auto _ : state) {
      loss += model->loss_and_gradient(x, y).first;
      benchmark::DoNotOptimize(loss);
    }
    state.counters["d"] = static_cast<double>(model->dimension());
  } catch (const Error& e) {
    state.SkipWithError(e.what());
  }
}

// ByzSGDnm's worker momentum for eight workers whose momenta live in the rows of one [8, d] matrix (the engine's
// message matrix), one worker per iteration in turn, each fed the same gradient (in cache, as a gradient is
// right after its backward pass). One iteration reads the gradient and the row and writes the row.
void worker_momentum(benchmark::State& state) {
  const std::int64_t workers = 8, d = 159010;
  at::manual_seed(7);
  const at::Tensor rows = at::empty({workers, d}), gradient = at::randn({d});
  std::vector<MomentumWorkerRule> rules(static_cast<std::size_t>(workers), MomentumWorkerRule(0.9));
  for (std::int64_t w = 0; w < workers; ++w) {
    rules[w].message(at::randn({d}), 0);  // the first message starts the momentum; then it moves into the row
    if (!rules[w].keep_momentum_in(rows[w])) {
      state.SkipWithError("the momentum did not move into its row");
      return;
    }
  }
  std::int64_t w = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(rules[w].message(gradient, 1).data_ptr());
    w = (w + 1) % workers;
  }
  state.counters["GBps"] = benchmark::Counter(static_cast<double>(3 * d * 4) * state.iterations(),
                                              benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// One worker's mini-batch: 32 of the 60,000 training images (784 floats each) at random places, gathered as the
// engine gathers them (index_select).
void batch_gather(benchmark::State& state) {
  at::manual_seed(9);
  const at::Tensor images = at::randn({60000, 784});
  at::Generator generator = make_generator(11);
  for (auto _ : state) {
    const at::Tensor indices = at::randint(60000, {32}, generator, at::kLong);
    benchmark::DoNotOptimize(images.index_select(0, indices).data_ptr());
  }
}

}  // namespace

int main(int argc, char** argv) {
  phalanx::core::tune_process_memory();  // as the phalanx command does (core/cli/main.cpp)
  core::set_compute_threads(1);
  benchmark::Initialize(&argc, argv);
  core::Registry registry;
  registry.load_directory(core::plugin_search_path().front());
  std::vector<std::pair<std::string, Case>> cases{{"async/mlp/K64/ormo", Case{"async", "ormo", 64, 4096}},
                                                  {"async/mlp/K64/asgd", Case{"async", "asgd", 64, 4096}},
                                                  {"async/mlp/K256/ormo", Case{"async", "ormo", 256, 4096}},
                                                  {"sync/mlp/K64/ssgdm", Case{"sync", "ssgdm", 64, 4096}}};
  for (const char* aggregator : {"mean", "cm", "cc"})
    for (const char* attack : {"none", "bitflip", "alie"}) {
      Case c{"sync", "byzsgdnm", 8, 512};
      c.aggregator = std::string("{name: ") + aggregator + (std::string(aggregator) == "cc" ? ", tau: 0.1}" : "}");
      c.attack = std::string("{name: ") + attack + (std::string(attack) == "bitflip" ? ", scale: 10}" : "}");
      cases.push_back({std::string("quickstart/") + aggregator + "/" + attack, c});
    }
  for (const auto& [label, c] : cases) {
    benchmark::RegisterBenchmark(label.c_str(), run_case, &registry, c)
        ->Unit(benchmark::kSecond)
        ->UseRealTime()
        ->Iterations(3);
  }
  benchmark::RegisterBenchmark("parts/honest_comparison/h5/d159010", honest_comparison)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("parts/forward_backward/mlp200/b32", forward_backward, &registry)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("parts/worker_momentum/w8/d159010", worker_momentum)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("parts/batch_gather/b32/of60000", batch_gather)->Unit(benchmark::kMicrosecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
