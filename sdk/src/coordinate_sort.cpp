#include "phalanx/coordinate_sort.hpp"

#include <algorithm>
#include <cstring>
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
    std::fill(out, out + width, 0.0f);
    for (std::int64_t i = trim; i < n - trim; ++i) {
      const float* row = sorted + i * width;
      for (std::int64_t j = 0; j < width; ++j) out[j] += row[j];
    }
    const float scale = 1.0f / static_cast<float>(n - 2 * trim);
    for (std::int64_t j = 0; j < width; ++j) out[j] *= scale;
  });
}

}  // namespace phalanx
