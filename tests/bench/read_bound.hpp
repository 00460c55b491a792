// What the rule and attack benchmarks measure themselves against: the time it takes just to read their input
// once at the bandwidth this machine reaches in the same run. A benchmark sets the counter `bound_ms`; the
// reporter adds `x_bound` = measured time / bound_ms beside it.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include <ATen/ATen.h>

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

/// The console reporter with x_bound = time / bound_ms on every row that has a bound_ms counter.
class BoundReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> copy = runs;
    for (auto& r : copy) {
      auto it = r.counters.find("bound_ms");
      if (it != r.counters.end() && !r.error_occurred && r.iterations > 0)
        r.counters["x_bound"] = r.GetAdjustedRealTime() / it->second.value;  // in the benchmark's unit (ms)
    }
    ConsoleReporter::ReportRuns(copy);
  }
};

}  // namespace phalanx::bench
