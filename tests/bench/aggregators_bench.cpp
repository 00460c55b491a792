// Benchmarks every aggregator and pre-aggregator of this build at n in {8, 64} and d in {1e5, 1e6}
// (float32), beside the memory-traffic bound: the time it takes just to read the n x d input once at the
// bandwidth this machine reaches in the same run (`bound_ms`), and the ratio measured / bound (`x_bound`).
//
//   ./build/bin/phalanx_bench [--benchmark_filter=cm] [--benchmark_min_time=0.5] [--sort_kernel=avx2]
//
// --sort_kernel=avx512|avx2|sse2 runs the coordinate sort (cm, tm, meamed, phocas, bulyan's second stage,
// ...) on that instruction set instead of the widest this CPU has, to compare them in one sitting.
//
// gm also runs as gm-steps1 and gm-steps9 (1 and 9 Weiszfeld steps, no early stop): the difference / 8 is
// the cost of one step.
//
// krum, multikrum, bulyan and nnm also get `fma_ms`: the float32 multiply-adds their products need
// (fma_rate.hpp) at the rate this machine reaches on registers alone, and `x_fma` = time / fma_ms.
//
// f is the largest number that every rule accepts at that n: floor((n - 3) / 4) (Bulyan's limit).
#include <benchmark/benchmark.h>

#include <cstring>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/run/run_output.hpp"
#include "phalanx/context.hpp"
#include "phalanx/error.hpp"
#include "phalanx/helpers/coordinate_sort.hpp"
#include "fma_rate.hpp"
#include "read_bound.hpp"

namespace {

using namespace phalanx;

double g_bandwidth = 0;
double g_fma_rate = 0;

// Float32 multiply-adds of the products a rule's formula is computed with (0: not counted). The Gram matrix
// of phalanx::PairwiseDistances: the upper triangle and the squared norms, n (n + 1) / 2 per column; nnm
// then mixes with an [n, n] x [n, d] product, n * n more per column.
double multiply_adds(const std::string& rule, std::int64_t n, std::int64_t d) {
  const double gram = static_cast<double>(n) * (n + 1) / 2 * static_cast<double>(d);
  if (rule == "krum" || rule == "multikrum" || rule == "bulyan") return gram;
  if (rule == "nnm") return gram + static_cast<double>(n) * n * static_cast<double>(d);
  return 0;
}

struct Case {
  core::Kind kind;
  std::string name;
  std::int64_t n, d;
  std::vector<std::pair<std::string, Value>> params = {};  // beyond the defaults
};

void run_case(benchmark::State& state, const core::Registry* registry, Case c) {
  const std::int64_t f = (c.n - 3) / 4;
  RunInfo info;
  info.workers = c.n;
  info.byzantine = f;
  info.dimension = c.d;
  core::RunContext ctx(info, 1, c.name, nullptr);
  // The same input in every run and repetition: Krum-based rules re-check a number of distances that depends
  // on the values (docs/BENCHMARKS.md), so fresh values each time would be part of what the timings vary by.
  at::Tensor inputs = at::randn({c.n, c.d}, make_generator(static_cast<std::uint64_t>(c.n * 7919 + c.d))).mul_(0.01f);
  try {
    // Parameters without a default get a typical value (clip's radius).
    Value given = Value::map({});
    for (const auto& spec : registry->find(c.kind, c.name).info.params)
      if (spec.default_value.is_null() && spec.name == "c") given.set("c", Value(1.0));
    for (const auto& [key, value] : c.params) given.set(key, value);
    Params params = registry->validate(c.kind, c.name, given, core::kind_name(c.kind));
    // One untimed call first, as in training, where a rule runs every round: the timed calls are the
    // steady state (rules that reuse an output buffer allocate it in the first round).
    if (c.kind == core::Kind::Aggregator) {
      auto agg = registry->make_aggregator(c.name, params, ctx);
      benchmark::DoNotOptimize(agg->aggregate(inputs));
      for (auto _ : state) benchmark::DoNotOptimize(agg->aggregate(inputs));
    } else {
      auto pre = registry->make_preaggregator(c.name, params, ctx);
      benchmark::DoNotOptimize(pre->transform(inputs));
      for (auto _ : state) benchmark::DoNotOptimize(pre->transform(inputs));
    }
  } catch (const Error& e) {
    state.SkipWithError(e.what());  // e.g. a rule that refuses this n (mda is exponential)
    return;
  }
  const double bytes = static_cast<double>(c.n) * c.d * 4;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.counters["bound_ms"] = 1e3 * bytes / g_bandwidth;
  if (const double fmas = multiply_adds(c.name, c.n, c.d); fmas > 0 && g_fma_rate > 0)
    state.counters["fma_ms"] = 1e3 * fmas / g_fma_rate;
}

// Takes --sort_kernel=NAME out of argv (Google Benchmark refuses flags it does not know) and applies it.
// Returns false, having said why, for a name that is not a kernel or that this CPU cannot run.
bool apply_sort_kernel_flag(int* argc, char** argv) {
  const std::string flag = "--sort_kernel=";
  int kept = 1;
  bool ok = true;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind(flag, 0) != 0) {
      argv[kept++] = argv[i];
      continue;
    }
    const std::string name = arg.substr(flag.size());
    const SortKernel kernel = name == "avx512" ? SortKernel::Avx512
                              : name == "avx2" ? SortKernel::Avx2
                              : name == "sse2" ? SortKernel::Sse2
                                               : SortKernel::Widest;
    if ((kernel == SortKernel::Widest && name != "widest") || !set_sort_kernel(kernel)) {
      std::cerr << "phalanx_bench: --sort_kernel=" << name
                << " is not one this CPU runs; use avx512, avx2, sse2 or widest\n";
      ok = false;
    }
    std::cout << "sort kernel: " << name << "\n";
  }
  *argc = kept;
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (!apply_sort_kernel_flag(&argc, argv)) return 2;
  g_bandwidth = bench::start_bound_benchmark(&argc, argv, "n * d * 4 bytes");
  g_fma_rate = bench::measure_fma_rate();
  std::cout << "float32 multiply-adds (one thread, registers only): " << g_fma_rate / 1e9 << " G/s\n"
            << "x_fma = measured time / fma_ms; fma_ms = the rule's products' multiply-adds / that rate\n";
  core::Registry registry;
  registry.load_directory(core::plugin_search_path().front());
  for (core::Kind kind : {core::Kind::Aggregator, core::Kind::PreAggregator})
    for (const auto* entry : registry.list(kind))
      for (std::int64_t n : {8, 64})
        for (std::int64_t d : {100'000, 1'000'000}) {
          Case c{kind, entry->info.name, n, d};
          std::string label = std::string(core::kind_name(kind)) + "/" + c.name + "/n" + std::to_string(n) + "/d" +
                              std::to_string(d);
          benchmark::RegisterBenchmark(label.c_str(), run_case, &registry, c)->Unit(benchmark::kMillisecond)->UseRealTime();
        }
  // gm's cost per Weiszfeld step: (time of 9 steps - time of 1 step) / 8, both without early stopping.
  for (std::int64_t steps : {1, 9})
    for (std::int64_t n : {8, 64}) {
      Case c{core::Kind::Aggregator, "gm", n, 1'000'000, {{"iterations", Value(steps)}, {"tolerance", Value(0.0)}}};
      std::string label = "aggregator/gm-steps" + std::to_string(steps) + "/n" + std::to_string(n) + "/d1000000";
      benchmark::RegisterBenchmark(label.c_str(), run_case, &registry, c)->Unit(benchmark::kMillisecond)->UseRealTime();
    }
  bench::BoundReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
