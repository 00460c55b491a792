#include "phalanx/coordinate_sort.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/error.hpp"

namespace phalanx {

namespace {

// Batcher's odd-even merge sort network for n inputs (the power-of-two network with every comparator
// that touches an index >= n removed: those indices act as +infinity and never move).
const std::vector<std::pair<int, int>>& sorting_network(int n) {
  static std::mutex mutex;
  static std::map<int, std::vector<std::pair<int, int>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(n);
  if (it != cache.end()) return it->second;
  int size = 1;
  while (size < n) size <<= 1;
  std::vector<std::pair<int, int>> network;
  for (int p = 1; p < size; p <<= 1)
    for (int k = p; k >= 1; k >>= 1)
      for (int j = k % p; j + k < size; j += 2 * k)
        for (int i = 0; i < std::min(k, size - j - k); ++i)
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p) && i + j + k < n) network.emplace_back(i + j, i + j + k);
  return cache.emplace(n, std::move(network)).first->second;
}

// Columns per block: the n x width block (about 256 KiB) stays in L2 while the network passes over it
// hundreds of times.
std::int64_t block_width(std::int64_t n) { return std::clamp<std::int64_t>(65536 / n, 64, 4096) / 8 * 8; }

// lo[j], hi[j] <- min, max of the pair, for every lane j. The rows never overlap (restrict), so the
// compiler turns this into packed min/max instructions.
// Cloned for AVX2 (8 lanes) and baseline x86-64 (4 lanes); the loader picks the one the CPU supports.
__attribute__((target_clones("avx2", "default"))) void compare_exchange(float* __restrict lo, float* __restrict hi,
                                                                           std::int64_t width) {
  for (std::int64_t j = 0; j < width; ++j) {
    const float u = lo[j], v = hi[j];
    lo[j] = std::min(u, v);
    hi[j] = std::max(u, v);
  }
}  // columns per block: n x 512 floats stay in L2 for n <= 128

// Mean of each column of a sorted block after dropping the `trim` smallest and `trim` largest values.
void trimmed_mean_of_sorted(const float* sorted, std::int64_t n, std::int64_t width, std::int64_t trim, float* out) {
  std::fill(out, out + width, 0.0f);
  for (std::int64_t i = trim; i < n - trim; ++i) {
    const float* row = sorted + i * width;
    for (std::int64_t j = 0; j < width; ++j) out[j] += row[j];
  }
  const float scale = 1.0f / static_cast<float>(n - 2 * trim);
  for (std::int64_t j = 0; j < width; ++j) out[j] *= scale;
}

// Median of each column of a sorted block: the middle value, or the mean of the two middle values.
void median_of_sorted(const float* sorted, std::int64_t n, std::int64_t width, float* out) {
  const float* low = sorted + ((n - 1) / 2) * width;
  const float* high = sorted + (n / 2) * width;
  for (std::int64_t j = 0; j < width; ++j) out[j] = 0.5f * low[j] + 0.5f * high[j];
}

// For each column of a sorted block (value i of column j at sorted[i * width + j]), the mean of the `keep`
// values nearest to center[j]. In sorted order the nearest values are consecutive: of the n - keep + 1
// windows of keep consecutive values, the one whose farther end is nearest to the center (the lowest such
// window on exact ties, a choice that depends only on the values, not on the order of the rows). Every
// inner loop runs across the columns, which the compiler vectorises.
void mean_of_nearest(const float* sorted, std::int64_t n, std::int64_t width, std::int64_t keep, const float* center,
                     float* out) {
  std::vector<float> reach(static_cast<std::size_t>(width), std::numeric_limits<float>::infinity());
  std::vector<std::int32_t> start(static_cast<std::size_t>(width), 0);  // 32-bit: as wide as the floats
  for (std::int32_t w = 0; w + keep <= n; ++w) {
    const float* first = sorted + w * width;
    const float* last = sorted + (w + keep - 1) * width;
    for (std::int64_t j = 0; j < width; ++j) {
      const float farther = std::max(center[j] - first[j], last[j] - center[j]);
      if (farther < reach[j]) {
        reach[j] = farther;
        start[j] = w;
      }
    }
  }
  std::fill(out, out + width, 0.0f);
  const auto size = static_cast<std::int32_t>(keep);
  for (std::int32_t i = 0; i < n; ++i) {
    const float* row = sorted + i * width;
    for (std::int64_t j = 0; j < width; ++j) out[j] += (i >= start[j] && i < start[j] + size) ? row[j] : 0.0f;
  }
  const float scale = 1.0f / static_cast<float>(keep);
  for (std::int64_t j = 0; j < width; ++j) out[j] *= scale;
}

}  // namespace

at::Tensor reduce_sorted_columns(const at::Tensor& rows, const SortedBlockReducer& reduce) {
  if (rows.dim() != 2 || rows.scalar_type() != at::kFloat)
    throw Error("reduce_sorted_columns expects an [n, d] float32 tensor");
  at::Tensor x = rows.contiguous();
  const std::int64_t n = x.size(0), d = x.size(1);
  if (n == 0) throw Error("reduce_sorted_columns: no rows");
  at::Tensor out = at::empty({d}, at::kFloat);
  const auto& network = sorting_network(static_cast<int>(n));
  const std::int64_t block_columns = block_width(n);
  std::vector<float> block(static_cast<std::size_t>(n * block_columns));
  const float* in = x.data_ptr<float>();
  float* result = out.data_ptr<float>();
  for (std::int64_t start = 0; start < d; start += block_columns) {
    const std::int64_t width = std::min(block_columns, d - start);
    for (std::int64_t i = 0; i < n; ++i)
      std::memcpy(block.data() + i * width, in + i * d + start, static_cast<std::size_t>(width) * sizeof(float));
    for (const auto& [a, b] : network) compare_exchange(block.data() + a * width, block.data() + b * width, width);
    reduce(block.data(), n, width, result + start);
  }
  return out;
}

at::Tensor coordinate_median(const at::Tensor& rows) {
  return reduce_sorted_columns(rows, [](const float* sorted, std::int64_t n, std::int64_t width, float* out) {
    const float* low = sorted + ((n - 1) / 2) * width;
    const float* high = sorted + (n / 2) * width;
    for (std::int64_t j = 0; j < width; ++j) out[j] = 0.5f * (low[j] + high[j]);
  });
}

at::Tensor coordinate_trimmed_mean(const at::Tensor& rows, std::int64_t trim) {
  const std::int64_t n = rows.size(0);
  if (trim < 0 || 2 * trim >= n)
    throw Error("trimmed mean: cannot drop " + std::to_string(trim) + " values at each end of " + std::to_string(n));
  return reduce_sorted_columns(rows, [trim](const float* sorted, std::int64_t n, std::int64_t width, float* out) {
    trimmed_mean_of_sorted(sorted, n, width, trim, out);
  });
}

at::Tensor coordinate_mean_closest_to(const at::Tensor& rows, std::int64_t m, ColumnCentre centre, std::int64_t trim) {
  const std::int64_t n = rows.dim() == 2 ? rows.size(0) : 0;
  if (m < 1 || m > n)
    throw Error("mean closest to the centre: cannot keep " + std::to_string(m) + " of " + std::to_string(n) +
                " values per coordinate");
  if (centre == ColumnCentre::TrimmedMean && (trim < 0 || 2 * trim >= n))
    throw Error("trimmed mean: cannot drop " + std::to_string(trim) + " values at each end of " + std::to_string(n));
  return reduce_sorted_columns(rows, [m, centre, trim](const float* sorted, std::int64_t n, std::int64_t width,
                                                       float* out) {
    std::vector<float> center(static_cast<std::size_t>(width));
    if (centre == ColumnCentre::Median)
      median_of_sorted(sorted, n, width, center.data());
    else
      trimmed_mean_of_sorted(sorted, n, width, trim, center.data());
    mean_of_nearest(sorted, n, width, m, center.data(), out);
  });
}

}  // namespace phalanx
