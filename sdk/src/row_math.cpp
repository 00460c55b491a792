#include "phalanx/row_math.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include <ATen/ATen.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace phalanx {

namespace {

// Eight independent float64 sums, so the additions do not wait on each other and the compiler vectorises
// them (one sum would be a chain of dependent additions, four cycles per element).
constexpr std::int64_t kSums = 8;

// Every kernel below has AVX-512 and AVX2 clones beside the baseline. The file is built with -ffp-contract=off
// (sdk/CMakeLists.txt), so no clone fuses a product into an addition (AVX-512 has FMA at hand) and every clone
// gives the same bits: SquaredDistance.* and ColumnMeans.* check them against the plain arithmetic and LibTorch.

}  // namespace

__attribute__((target_clones("avx512f", "avx2", "default"))) double squared_norm(const float* x, std::int64_t d) {
  double sum[kSums] = {};
  std::int64_t j = 0;
  for (; j + kSums <= d; j += kSums)
    for (std::int64_t l = 0; l < kSums; ++l) sum[l] += static_cast<double>(x[j + l]) * x[j + l];
  for (; j < d; ++j) sum[0] += static_cast<double>(x[j]) * x[j];
  double total = 0;
  for (double s : sum) total += s;
  return total;
}

namespace {

// The one body of squared_distance and squared_distance_of_wide_rows, so that both do the same arithmetic
// (a float converted to float64 is the same number as the float64 copy of it).
template <typename T>
inline __attribute__((always_inline)) double squared_distance_body(const T* x, const T* y, std::int64_t d) {
  double sum[kSums] = {};
  std::int64_t j = 0;
  for (; j + kSums <= d; j += kSums)
    for (std::int64_t l = 0; l < kSums; ++l) {
      const double t = static_cast<double>(x[j + l]) - static_cast<double>(y[j + l]);
      sum[l] += t * t;
    }
  for (; j < d; ++j) {
    const double t = static_cast<double>(x[j]) - static_cast<double>(y[j]);
    sum[0] += t * t;
  }
  double total = 0;
  for (double s : sum) total += s;
  return total;
}

}  // namespace

__attribute__((target_clones("avx512f", "avx2", "default"))) double squared_distance(const float* x, const float* y,
                                                                                      std::int64_t d) {
  return squared_distance_body(x, y, d);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) double squared_distance_of_wide_rows(
    const double* x, const double* y, std::int64_t d) {
  return squared_distance_body(x, y, d);
}

void scale_row_streaming(const float* x, float scale, float* out, std::int64_t d) {
  std::int64_t j = 0;
#if defined(__SSE2__)
  // Streaming stores need 16-byte aligned addresses: plain stores up to the first one.
  for (; j < d && reinterpret_cast<std::uintptr_t>(out + j) % 16 != 0; ++j) out[j] = x[j] * scale;
  const __m128 s = _mm_set1_ps(scale);
  for (; j + 4 <= d; j += 4) _mm_stream_ps(out + j, _mm_mul_ps(_mm_loadu_ps(x + j), s));
  _mm_sfence();
#endif
  for (; j < d; ++j) out[j] = x[j] * scale;
}

namespace {

__attribute__((target_clones("avx512f", "avx2", "default"))) void add_to_sums(const float* row, double* sum, std::int64_t width) {
  for (std::int64_t j = 0; j < width; ++j) sum[j] += static_cast<double>(row[j]);
}

// Four rows in one go, added in row order as four calls of add_to_sums would (so the same sums bit for bit),
// with one load and store of each sum instead of four.
__attribute__((target_clones("avx512f", "avx2", "default"))) void add_four_to_sums(const float* a, const float* b, const float* c,
                                                                       const float* e, double* sum,
                                                                       std::int64_t width) {
  for (std::int64_t j = 0; j < width; ++j)
    sum[j] = (((sum[j] + static_cast<double>(a[j])) + static_cast<double>(b[j])) + static_cast<double>(c[j])) +
             static_cast<double>(e[j]);
}

}  // namespace

at::Tensor mean_of_rows(const at::Tensor& rows, const std::vector<std::int64_t>& chosen) {
  if (rows.scalar_type() != at::kFloat || !rows.is_contiguous() || chosen.empty())
    return rows.index_select(0, at::tensor(chosen, at::kLong)).mean(0);
  const std::int64_t d = rows.size(1);
  at::Tensor out = at::empty({d}, at::kFloat);
  const float* x = rows.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const double scale = 1.0 / static_cast<double>(chosen.size());
  // 64 KB of float64 sums, in L2: each chosen row is then read 32 KB at a time, which the hardware prefetcher
  // follows better than 8 KB pieces of 49 rows (docs/BENCHMARKS.md, "Multi-Krum's mean in wider blocks").
  constexpr std::int64_t kBlock = 8192;
  std::vector<double> sums(static_cast<std::size_t>(std::min(kBlock, d)));
  double* sum = sums.data();
  for (std::int64_t start = 0; start < d; start += kBlock) {
    const std::int64_t width = std::min(kBlock, d - start);
    std::fill(sum, sum + width, 0.0);
    std::size_t r = 0;
    for (; r + 4 <= chosen.size(); r += 4)
      add_four_to_sums(x + chosen[r] * d + start, x + chosen[r + 1] * d + start, x + chosen[r + 2] * d + start,
                       x + chosen[r + 3] * d + start, sum, width);
    for (; r < chosen.size(); ++r) add_to_sums(x + chosen[r] * d + start, sum, width);
    for (std::int64_t j = 0; j < width; ++j) o[start + j] = static_cast<float>(sum[j] * scale);
  }
  return out;
}

at::Tensor OutputBuffer::get(at::IntArrayRef sizes) {
  // Reusable when this object holds the only reference to the tensor and to its storage (a view of it
  // held elsewhere shares the storage).
  if (buffer_.defined() && buffer_.use_count() == 1 && buffer_.storage().use_count() == 1 &&
      buffer_.sizes() == sizes)
    return buffer_;
  buffer_ = at::empty(sizes, at::kFloat);
  return buffer_;
}

namespace {

// ceil(log2(x)) for x >= 1, as LibTorch's utils::CeilLog2.
std::int64_t ceil_log2(std::int64_t x) {
  std::int64_t bits = 0;
  while ((std::int64_t(1) << bits) < x) ++bits;
  return bits;
}

constexpr std::int64_t kMeanColumns = 256;  // a block's four levels of float32 sums: 4 KB, in L1

}  // namespace

// LibTorch's cascade sum (aten/src/ATen/native/cpu/SumKernel.cpp, multi_row_sum) over the rows of each
// column: runs of 2^p rows (p = max(4, ceil(log2 n) / 4)) are added in order into level 0, each full run is
// carried into level 1 (and on up, every 2^p runs), and the levels are added at the end. For n < 16 that is
// a plain sum in row order. LibTorch does this for the columns in whole groups of four vectors (32 floats
// with AVX2, 64 with AVX-512) counted from the first column; the last columns get another order (four
// interleaved partial sums), so column_means leaves the last d mod 64 columns to LibTorch itself.
__attribute__((target_clones("avx512f", "avx2", "default"))) void cascade_column_means(const float* rows, std::int64_t n,
                                                                             std::int64_t d, std::int64_t begin,
                                                                             std::int64_t end, float* out) {
  constexpr std::int64_t kLevels = 4;
  const std::int64_t power = std::max<std::int64_t>(4, ceil_log2(n) / kLevels);
  const std::int64_t step = std::int64_t(1) << power, mask = step - 1;
  const float count = static_cast<float>(n);
  float acc[kLevels][kMeanColumns];
  for (std::int64_t start = begin; start < end; start += kMeanColumns) {
    const std::int64_t width = std::min(kMeanColumns, end - start);
    if (n < step) {  // one run: a plain sum (adding the other levels' zeros would change nothing)
      std::fill(acc[0], acc[0] + width, 0.0f);
      for (std::int64_t i = 0; i < n; ++i) {
        const float* x = rows + i * d + start;
        for (std::int64_t j = 0; j < width; ++j) acc[0][j] += x[j];
      }
      for (std::int64_t j = 0; j < width; ++j) out[start + j] = acc[0][j] / count;
      continue;
    }
    for (auto& level : acc) std::fill(level, level + width, 0.0f);
    std::int64_t i = 0;
    const auto add_row = [&](std::int64_t row) {
      const float* x = rows + row * d + start;
      for (std::int64_t j = 0; j < width; ++j) acc[0][j] += x[j];
    };
    while (i + step <= n) {
      for (std::int64_t k = 0; k < step; ++k, ++i) add_row(i);
      for (std::int64_t l = 1; l < kLevels; ++l) {
        for (std::int64_t j = 0; j < width; ++j) {
          acc[l][j] += acc[l - 1][j];
          acc[l - 1][j] = 0.0f;
        }
        if ((i & (mask << (l * power))) != 0) break;
      }
    }
    for (; i < n; ++i) add_row(i);
    for (std::int64_t l = 1; l < kLevels; ++l)
      for (std::int64_t j = 0; j < width; ++j) acc[0][j] += acc[l][j];
    for (std::int64_t j = 0; j < width; ++j) out[start + j] = acc[0][j] / count;
  }
}

void column_means(const float* rows, std::int64_t n, std::int64_t d, std::int64_t begin, std::int64_t end,
                  float* out) {
  constexpr std::int64_t kGroup = 64;  // LibTorch's widest group of columns summed alike (AVX-512)
  const std::int64_t tail = d / kGroup * kGroup;
  cascade_column_means(rows, n, d, begin, std::min(end, tail), out);
  if (end <= tail) return;
  // The tail as LibTorch computes it: a sum over the tail alone starts its groups where the whole one would.
  const at::Tensor all = at::from_blob(const_cast<float*>(rows), {n, d}, at::kFloat);
  const at::Tensor means = all.narrow(1, tail, d - tail).mean(0);
  const std::int64_t from = std::max(begin, tail);
  std::copy(means.data_ptr<float>() + (from - tail), means.data_ptr<float>() + (end - tail), out + from);
}

}  // namespace phalanx
