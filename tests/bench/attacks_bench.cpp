// Benchmarks every attack of this build on one round, beside the memory-traffic bound: the time it takes just
// to read, once, the rows the attack's formula reads (the honest rows for an omniscient attack, the Byzantine
// workers' own rows otherwise) at the bandwidth this machine reaches in the same run (`bound_ms`), and the
// ratio measured / bound (`x_bound`). Two shapes: the quick start's (5 honest and 3 Byzantine workers,
// d = 159,010, the MLP of configs/quickstart.yaml) and n = 64 with f = 15 at d = 1e6.
//
//   ./build/bin/phalanx_attack_bench [--benchmark_filter=alie] [--benchmark_min_time=0.5]
//
// Attacks that search against the defence (agr_minmax, agr_minsum, opt_alie, opt_ipm) run here without one, so
// they return at once: their cost is the defence's, evaluated many times, and the rule benchmarks measure that.
#include <benchmark/benchmark.h>

#include <string>

#include <ATen/ATen.h>

#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/run/run_output.hpp"
#include "phalanx/error.hpp"
#include "read_bound.hpp"

namespace {

using namespace phalanx;

double g_bandwidth = 0;

struct Shape {
  std::string label;
  std::int64_t honest, byzantine, d;
};

void run_case(benchmark::State& state, const core::Registry* registry, std::string name, Shape shape) {
  RunInfo info;
  info.workers = shape.honest + shape.byzantine;
  info.byzantine = shape.byzantine;
  info.dimension = shape.d;
  core::RunContext ctx(info, 1, name, nullptr);
  const at::Tensor rows = at::randn({shape.honest + shape.byzantine, shape.d}).mul_(0.01f);
  AttackRound round;
  round.honest = rows.narrow(0, 0, shape.honest);
  round.byzantine_true = rows.narrow(0, shape.honest, shape.byzantine);
  round.previous_aggregate = at::randn({shape.d}).mul_(0.01f);
  bool omniscient = false;
  try {
    Params params = registry->validate(core::Kind::Attack, name, Value::map({}), core::kind_name(core::Kind::Attack));
    auto attack = registry->make_attack(name, params, ctx);
    omniscient = attack->omniscient();
    // One untimed call first, as in training, where an attack runs every round.
    benchmark::DoNotOptimize(attack->craft(round));
    for (auto _ : state) {
      ++round.step;
      benchmark::DoNotOptimize(attack->craft(round));
    }
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  const double bytes = 4.0 * static_cast<double>(omniscient ? shape.honest : shape.byzantine) * shape.d;
  state.counters["bound_ms"] = 1e3 * bytes / g_bandwidth;
}

}  // namespace

int main(int argc, char** argv) {
  g_bandwidth = bench::start_bound_benchmark(&argc, argv, "rows read by the formula * d * 4 bytes");
  core::Registry registry;
  registry.load_directory(core::plugin_search_path().front());
  const Shape shapes[] = {{"quickstart", 5, 3, 159'010}, {"n64", 49, 15, 1'000'000}};
  for (const auto* entry : registry.list(core::Kind::Attack))
    for (const Shape& shape : shapes) {
      const std::string label = "attack/" + entry->info.name + "/" + shape.label;
      benchmark::RegisterBenchmark(label.c_str(), run_case, &registry, entry->info.name, shape)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  bench::BoundReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
