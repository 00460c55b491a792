// The other floor beside the read bound (read_bound.hpp): how many float32 multiply-adds one thread of this
// machine does per second when nothing waits on memory. A rule whose formula needs F multiply-adds cannot take
// less than F / rate, however its input is read; Krum's float32 Gram matrix needs about n (n + 1) / 2 * d of them
// (the upper triangle and the squared norms), so at n = 64 and d = 1e6 its compute floor can lie above its read
// bound. The benchmarks that know their count set the counter `fma_ms`; the reporter adds `x_fma` beside it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace phalanx::bench {

namespace fma_probe {

// Twelve independent chains: enough to cover a multiply-add's latency (4 cycles) on two units. The values stay
// finite (acc * 0.999 + 0.001 converges to 1), so no denormal or infinity slows a chain down.
constexpr int kChains = 12;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) inline float run_avx512(std::int64_t iterations) {
  __m512 acc[kChains];
  for (auto& a : acc) a = _mm512_set1_ps(0.5f);
  const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  for (std::int64_t i = 0; i < iterations; ++i)
    for (auto& a : acc) a = _mm512_fmadd_ps(a, m, c);
  __m512 sum = acc[0];
  for (int k = 1; k < kChains; ++k) sum = _mm512_add_ps(sum, acc[k]);
  return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) inline float run_avx2(std::int64_t iterations) {
  __m256 acc[kChains];
  for (auto& a : acc) a = _mm256_set1_ps(0.5f);
  const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  for (std::int64_t i = 0; i < iterations; ++i)
    for (auto& a : acc) a = _mm256_fmadd_ps(a, m, c);
  __m256 sum = acc[0];
  for (int k = 1; k < kChains; ++k) sum = _mm256_add_ps(sum, acc[k]);
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}
#endif

}  // namespace fma_probe

/// Float32 multiply-adds per second on one thread, registers only, with the widest vectors this CPU has
/// (AVX-512F, else AVX2 with FMA; 0 elsewhere, and no benchmark then sets `fma_ms`); best of five runs.
inline double measure_fma_rate() {
#if defined(__x86_64__)
  const bool avx512 = __builtin_cpu_supports("avx512f");
  if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
  const int lanes = avx512 ? 16 : 8;
  const std::int64_t iterations = 20'000'000;
  double best = 0;
  volatile float sink = 0;
  for (int run = 0; run < 5; ++run) {
    const auto start = std::chrono::steady_clock::now();
    sink = sink + (avx512 ? fma_probe::run_avx512(iterations) : fma_probe::run_avx2(iterations));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(iterations) * fma_probe::kChains * lanes / s);
  }
  return best;
#else
  return 0;
#endif
}

}  // namespace phalanx::bench
