// cc: centered clipping (Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust
// Optimization", ICML 2021).
//
//   v_0 = the previous round's output (0 in the first round); for l = 1..L:
//   v_l = v_{l-1} + (1/n) sum_i (x_i - v_{l-1}) * min(1, tau / ||x_i - v_{l-1}||)
//
// A row holding NaN or Inf contributes nothing (as if clipped to zero length). The previous output is
// state, saved in checkpoints.
//
// | parameter  | default | meaning              |
// |------------|---------|----------------------|
// | tau        | 0.1     | clipping radius      |
// | iterations | 1       | clipping iterations L |
//
// Diagnostic `cc.clipped`: the rows whose distance to v exceeded tau in the last iteration (finite rows only),
// mean over the rounds since the previous metrics row.
//
// Speed (docs/BENCHMARKS.md: within 4x of one read of the input at n = 64, d = 1e6). An iteration reads the input
// twice by nature: a row's distance ||x_i - v|| must be known before its clipped difference can be added, and a 4 MB
// row does not stay in cache until then. Both passes go over blocks of columns, so that v's block (and the sum's)
// stays in L1 while the n rows stream through, and both handle four rows at a time, so each vector of v is loaded
// once for four rows and the sum is loaded and stored once per four rows (one row at a time, the loads, stores and
// float64 conversions made the passes CPU-bound: 1.7 times the CPU time of two plain reads). The distances are
// float32 differences and squares, summed in float32 over 1024 columns and then in float64 (a relative error around
// 1e-6 in a clipping scale); a chunk whose float32 sum is not finite (a NaN or Inf in the row, or squares beyond
// float32's range) is summed again in float64 (phalanx::squared_distance), where only a NaN or Inf in the row makes
// it not finite. The result is written into a buffer reused between rounds (phalanx::OutputBuffer), and v is updated
// in place.
#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "phalanx/helpers/parallel.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"

namespace {

using namespace phalanx;

constexpr std::int64_t kBlock = 4096;  // columns per block: v's block and the sum's, 16 KB each, stay in L1
constexpr std::int64_t kChunk = 1024;  // columns summed in float32 before the sum moves to float64
constexpr int kRows = 4;               // rows per kernel call

// A block of `width` columns of `count` rows: ||rows[r] - v||^2 in partial[r * stride] (the block's first
// chunk; the others stay 0). Portable version.
void squared_distances_generic(const float* const* rows, int count, const float* v, std::int64_t width,
                               double* partial, std::int64_t stride) {
  for (int r = 0; r < count; ++r) partial[r * stride] = squared_distance(rows[r], v, width);
}

// A block of `width` columns of the rows (all finite): sum[j] += sum_r scale[r] * (rows[r][j] - v[j]),
// rows added in order. Portable version.
void add_clipped_generic(const float* const* rows, const float* scale, int count, const float* v, std::int64_t width,
                         float* sum) {
  for (int r = 0; r < count; ++r)
    for (std::int64_t j = 0; j < width; ++j) sum[j] += scale[r] * (rows[r][j] - v[j]);
}

#if defined(__x86_64__)
// A block of `width` columns of R rows: the squared distance of each chunk of kChunk columns in
// partial[r * stride + chunk index].
template <int R>
__attribute__((target("avx2,fma"))) void squared_distances_avx2(const float* const* rows, const float* v,
                                                                std::int64_t width, double* partial,
                                                                std::int64_t stride) {
  for (std::int64_t chunk = 0; chunk < width; chunk += kChunk) {
    const std::int64_t end = std::min(width, chunk + kChunk);
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    std::int64_t j = chunk;
    for (; j + 8 <= end; j += 8) {
      const __m256 c = _mm256_loadu_ps(v + j);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(rows[r] + j), c);
        acc[r] = _mm256_fmadd_ps(t, t, acc[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m256d wide = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(acc[r])),
                                         _mm256_cvtps_pd(_mm256_extractf128_ps(acc[r], 1)));
      double lanes[4];
      _mm256_storeu_pd(lanes, wide);
      double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
      for (std::int64_t k = j; k < end; ++k) {
        const double t = static_cast<double>(rows[r][k]) - static_cast<double>(v[k]);
        sum += t * t;
      }
      // Not finite: a NaN or Inf in the row, or a finite row whose squares overflow float32. float64 tells
      // them apart.
      if (!std::isfinite(sum)) sum = squared_distance(rows[r] + chunk, v + chunk, end - chunk);
      partial[r * stride + chunk / kChunk] = sum;
    }
  }
}

template <int R>
__attribute__((target("avx2,fma"))) void add_clipped_avx2(const float* const* rows, const float* scale,
                                                          const float* v, std::int64_t width, float* sum) {
  __m256 s[R];
  for (int r = 0; r < R; ++r) s[r] = _mm256_set1_ps(scale[r]);
  std::int64_t j = 0;
  for (; j + 8 <= width; j += 8) {
    const __m256 c = _mm256_loadu_ps(v + j);
    __m256 acc = _mm256_loadu_ps(sum + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc = _mm256_fmadd_ps(s[r], _mm256_sub_ps(_mm256_loadu_ps(rows[r] + j), c), acc);
    _mm256_storeu_ps(sum + j, acc);
  }
  for (; j < width; ++j)
    for (int r = 0; r < R; ++r) sum[j] += scale[r] * (rows[r][j] - v[j]);
}

bool has_avx2_fma() {
  static const bool yes =
      (__builtin_cpu_init(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  return yes;
}
#endif

// The kernels on up to kRows rows, picked for this CPU.
void squared_distances(const float* const* rows, int count, const float* v, std::int64_t width, double* partial,
                       std::int64_t stride) {
#if defined(__x86_64__)
  if (has_avx2_fma()) {
    if (count == kRows) return squared_distances_avx2<kRows>(rows, v, width, partial, stride);
    for (int r = 0; r < count; ++r) squared_distances_avx2<1>(rows + r, v, width, partial + r * stride, stride);
    return;
  }
#endif
  squared_distances_generic(rows, count, v, width, partial, stride);
}

void add_clipped(const float* const* rows, const float* scale, int count, const float* v, std::int64_t width,
                 float* sum) {
#if defined(__x86_64__)
  if (has_avx2_fma()) {
    if (count == kRows) return add_clipped_avx2<kRows>(rows, scale, v, width, sum);
    for (int r = 0; r < count; ++r) add_clipped_avx2<1>(rows + r, scale + r, v, width, sum);
    return;
  }
#endif
  add_clipped_generic(rows, scale, count, v, width, sum);
}

class CenteredClipping : public Aggregator {
 public:
  CenteredClipping(double tau, std::int64_t iterations) : tau_(tau), iterations_(iterations) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor x = inputs.to(at::kFloat).contiguous();
    const std::int64_t n = x.size(0), d = x.size(1);
    if (!center_.defined() || center_.size(0) != d) center_ = at::zeros({d});
    at::Tensor out = output_.get({d});
    const float* in = x.data_ptr<float>();
    float* center = center_.data_ptr<float>();
    float* result = out.data_ptr<float>();
    const float weight = static_cast<float>(1.0 / static_cast<double>(n));
    const std::int64_t blocks = (d + kBlock - 1) / kBlock, chunks = (d + kChunk - 1) / kChunk;
    std::vector<double> partial(static_cast<std::size_t>(n * chunks));  // row i, chunk c at i * chunks + c
    std::int64_t clipped = 0;
    for (std::int64_t l = 0; l < iterations_; ++l) {
      // Pass 1: the n distances ||x_i - v||. The blocks run on whichever threads the engine lends
      // (phalanx/helpers/parallel.hpp); each chunk's sum is kept and the chunks are added in column order
      // afterwards, so the distances are the same bits however the blocks were shared.
      std::fill(partial.begin(), partial.end(), 0.0);
      for_each_block(blocks, [&](std::int64_t k) {
        const std::int64_t start = k * kBlock, width = std::min(kBlock, d - start);
        const float* block_rows[kRows];
        for (std::int64_t i = 0; i < n; i += kRows) {
          const int count = static_cast<int>(std::min<std::int64_t>(kRows, n - i));
          for (int r = 0; r < count; ++r) block_rows[r] = in + (i + r) * d + start;
          squared_distances(block_rows, count, center + start, width, partial.data() + i * chunks + start / kChunk,
                            chunks);
        }
      });
      std::vector<const float*> kept_rows;  // the finite rows, in order, and their scales
      std::vector<float> kept_scale;
      clipped = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        double squared = 0;
        for (std::int64_t c = 0; c < chunks; ++c) squared += partial[static_cast<std::size_t>(i * chunks + c)];
        // min(1, tau / ||x_i - v||); a NaN/Inf row (not finite in float64) is skipped
        const double norm = std::sqrt(squared);
        if (!std::isfinite(norm)) continue;
        kept_rows.push_back(in + i * d);
        kept_scale.push_back(static_cast<float>(norm > tau_ ? tau_ / norm : 1.0));
        if (norm > tau_) ++clipped;
      }
      if (kept_rows.empty())
        throw Error("aggregator 'cc': every message contains NaN or Inf; nothing to aggregate");
      // Pass 2: the clipped differences added up, and v moved (v's block is read before it is written);
      // each column is its own computation.
      const bool last = l + 1 == iterations_;
      for_each_block(blocks, [&](std::int64_t k) {
        add_clipped_block(kept_rows, kept_scale, weight, k * kBlock, std::min(kBlock, d - k * kBlock), center,
                          last ? result : nullptr);
      });
    }
    last_clipped_ = clipped;
    return out;
  }

  at::Tensor aggregate_with_context(const at::Tensor& inputs, const RoundContext& round) override {
    at::Tensor out = aggregate(inputs);
    round.report("clipped", static_cast<double>(last_clipped_));
    return out;
  }

  State save_state() const override { return center_.defined() ? State{{"center", center_.clone()}} : State{}; }
  void load_state(const State& state) override {
    auto it = state.find("center");
    center_ = it == state.end() ? at::Tensor() : it->second.clone();
  }

 private:
  // Columns [start, start + width) of pass 2: v += weight * sum_i scale_i (x_i - v) over the kept rows, added
  // in order; the new v is also written to `result` when it is not null (the last iteration).
  static void add_clipped_block(const std::vector<const float*>& kept_rows, const std::vector<float>& kept_scale,
                                float weight, std::int64_t start, std::int64_t width, float* center, float* result) {
    float sum[kBlock];
    std::fill(sum, sum + width, 0.0f);
    const float* block_rows[kRows];
    const auto kept = static_cast<std::int64_t>(kept_rows.size());
    float* c = center + start;
    for (std::int64_t i = 0; i < kept; i += kRows) {
      const int count = static_cast<int>(std::min<std::int64_t>(kRows, kept - i));
      for (int r = 0; r < count; ++r) block_rows[r] = kept_rows[static_cast<std::size_t>(i + r)] + start;
      add_clipped(block_rows, kept_scale.data() + i, count, c, width, sum);
    }
    for (std::int64_t j = 0; j < width; ++j) c[j] += weight * sum[j];
    if (result) std::copy(c, c + width, result + start);
  }

  double tau_;
  std::int64_t iterations_;
  at::Tensor center_;    // v, updated in place (only this object holds it: state is saved and loaded as copies)
  OutputBuffer output_;  // the result, reused when the caller no longer holds the previous one
  std::int64_t last_clipped_ = 0;  // rows clipped in the last call's last iteration (a diagnostic, not state)
};

}  // namespace

PHALANX_PLUGIN("cc", "1.0") {
  registrar.add_aggregator(
      {"cc",
       "centered clipping around the previous aggregate",
       {{"tau", ParamType::Double, 0.1, "clipping radius (> 0)", 1e-12},
        {"iterations", ParamType::Int, 1, "clipping iterations per round", 1, 1000}},
       {{"clipped", "rows farther than tau from the centre in the last iteration, mean over the rounds"}}},
      [](const Params& p, const Context&) {
        return std::make_unique<CenteredClipping>(p.get_double("tau"), p.get_int("iterations"));
      });
}
