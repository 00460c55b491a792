// What the rule and attack benchmarks measure themselves against: the time it takes just to read their input
// once at the bandwidth this machine reaches in the same run. A benchmark sets the counter `bound_ms`; the
// reporter adds `x_bound` = measured time / bound_ms beside it.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/core/engine/threads.hpp"
#include "phalanx/core/run/process_memory.hpp"

namespace phalanx::bench {

/// Bytes per second for one streaming read of a large tensor (a sum reads each byte once); best of five.
inline double measure_read_bandwidth() {
  at::Tensor big = at::randn({64, 1'000'000});
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(big.sum().item<float>());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(big.numel()) * 4.0 / s);
  }
  return best;
}

/// What a bound benchmark's main() does first: the phalanx command's memory settings (core/cli/main.cpp), one
/// intra-op thread as in the engines, Google Benchmark's flags, then this machine's read bandwidth, printed with
/// what `bound_ms` means here. Returns the bandwidth in bytes per second.
inline double start_bound_benchmark(int* argc, char** argv, const std::string& bound_ms_is) {
  core::tune_process_memory();
  core::set_compute_threads(1);
  benchmark::Initialize(argc, argv);
  const double bandwidth = measure_read_bandwidth();
  std::cout << "read bandwidth (one thread, streaming sum of 256 MB): " << bandwidth / 1e9 << " GB/s\n"
            << "x_bound = measured time / bound_ms; bound_ms = " << bound_ms_is << " / bandwidth\n";
  return bandwidth;
}

/// The console reporter with x_bound = time / bound_ms on every row that has a bound_ms counter, and
/// x_fma = time / fma_ms on every row that has an fma_ms counter (fma_rate.hpp).
class BoundReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> copy = runs;
    for (auto& r : copy) {
      if (r.error_occurred || r.iterations == 0) continue;
      for (const auto& [floor, ratio] : {std::pair{"bound_ms", "x_bound"}, std::pair{"fma_ms", "x_fma"}}) {
        auto it = r.counters.find(floor);
        if (it != r.counters.end() && it->second.value > 0)
          r.counters[ratio] = r.GetAdjustedRealTime() / it->second.value;  // in the benchmark's unit (ms)
      }
    }
    ConsoleReporter::ReportRuns(copy);
  }
};

}  // namespace phalanx::bench
