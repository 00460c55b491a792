#include "phalanx/gamma_search.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

#include "phalanx/helpers/parallel.hpp"
#include "phalanx/helpers/row_math.hpp"

namespace phalanx {

namespace {

// The coordinate-wise unbiased standard deviation of `rows` ([h, d], h >= 2): Welford's update in float64, rows
// in order, per coordinate, which for float32 rows is bit for bit what rows.std(0, true) gives on one thread
// (float64 rows LibTorch reduces in another order; CoordinateStd.IsLibTorchsStdBitForBitOnFloat32Rows). LibTorch
// runs that update through a generic per-output reduction that costs about 0.2 us per coordinate (35 ms for
// 5 x 159,010 in the quick start's ALIE rounds); here it streams over the rows a block of coordinates at a time,
// with the block's running means and sums of squares in cache.

// One block of coordinates [start, start + len) of `h` rows of length `d`: out = sqrt(m2 / (h - 1)).
template <typename T>
inline __attribute__((always_inline)) void welford_block(const T* x, std::int64_t h, std::int64_t d,
                                                         std::int64_t start, std::int64_t len, T* out) {
  constexpr std::int64_t kBlock = 512;
  double mean[kBlock], m2[kBlock];
  std::fill(mean, mean + len, 0.0);
  std::fill(m2, m2 + len, 0.0);
  for (std::int64_t i = 0; i < h; ++i) {
    const double count = static_cast<double>(i + 1);
    const T* row = x + i * d + start;
    if (((i + 1) & i) == 0) {
      // count is a power of two: delta * (1 / count) is the same correctly rounded number as delta / count
      // (1 / count is exact), and a multiplication costs a fraction of a division.
      const double inverse = 1.0 / count;
      for (std::int64_t j = 0; j < len; ++j) {
        const double delta = row[j] - mean[j];
        const double next_mean = mean[j] + delta * inverse;
        m2[j] = m2[j] + delta * (row[j] - next_mean);
        mean[j] = next_mean;
      }
      continue;
    }
    for (std::int64_t j = 0; j < len; ++j) {
      const double delta = row[j] - mean[j];
      const double next_mean = mean[j] + delta / count;
      m2[j] = m2[j] + delta * (row[j] - next_mean);
      mean[j] = next_mean;
    }
  }
  const double divisor = static_cast<double>(h - 1);
  if (((h - 1) & (h - 2)) == 0) {  // h - 1 is a power of two: multiplying by its exact inverse is the same division
    const double inverse = 1.0 / divisor;
    for (std::int64_t j = 0; j < len; ++j) out[start + j] = static_cast<T>(std::sqrt(m2[j] * inverse));
    return;
  }
  for (std::int64_t j = 0; j < len; ++j) out[start + j] = static_cast<T>(std::sqrt(m2[j] / divisor));
}

}  // namespace

// AVX-512 and AVX2 clones for wider divisions; the file is built with -ffp-contract=off (sdk/CMakeLists.txt), so
// no multiply-add is fused into an FMA that would change a rounding. (Outside the anonymous
// namespace: GCC makes an ifunc for each, which wants external linkage; the SDK exports only PHALANX_EXPORT.)
// Columns [begin, end) of the result.
__attribute__((target_clones("avx512f", "avx2", "default"))) void welford_std(
    const float* x, std::int64_t h, std::int64_t d, std::int64_t begin, std::int64_t end, float* out) {
  for (std::int64_t start = begin; start < end; start += 512)
    welford_block(x, h, d, start, std::min<std::int64_t>(512, end - start), out);
}
__attribute__((target_clones("avx512f", "avx2", "default"))) void welford_std(
    const double* x, std::int64_t h, std::int64_t d, std::int64_t begin, std::int64_t end, double* out) {
  for (std::int64_t start = begin; start < end; start += 512)
    welford_block(x, h, d, start, std::min<std::int64_t>(512, end - start), out);
}

void column_stds(const float* rows, std::int64_t n, std::int64_t d, std::int64_t begin, std::int64_t end,
                 float* out) {
  welford_std(rows, n, d, begin, end, out);
}

namespace {

template <typename T>
at::Tensor coordinate_std(const at::Tensor& input) {
  const at::Tensor rows = input.contiguous();
  const std::int64_t h = rows.size(0), d = rows.size(1);
  at::Tensor out = at::empty({d}, rows.options());
  // Each coordinate is its own computation, so the blocks may run on the engine's idle gradient threads
  // (phalanx/helpers/parallel.hpp) with the same result.
  constexpr std::int64_t kColumns = 8192;
  const T* x = rows.data_ptr<T>();
  T* result = out.data_ptr<T>();
  for_each_block((d + kColumns - 1) / kColumns, [&](std::int64_t i) {
    welford_std(x, h, d, i * kColumns, std::min(d, (i + 1) * kColumns), result);
  });
  return out;
}

}  // namespace

at::Tensor perturbation_direction(const std::string& direction, const at::Tensor& honest, const at::Tensor& mean) {
  if (direction == "unit") {
    const double norm = mean.norm().item<double>();
    return norm > 0 ? mean.div(-norm) : at::zeros_like(mean);
  }
  if (direction == "sign") return mean.sign().neg_();
  if (honest.size(0) < 2) return at::zeros_like(mean);
  if (honest.dim() == 2 && honest.scalar_type() == at::kFloat) return coordinate_std<float>(honest).neg_();
  if (honest.dim() == 2 && honest.scalar_type() == at::kDouble) return coordinate_std<double>(honest).neg_();
  return honest.std(0, /*unbiased=*/true).neg_();
}

double largest_feasible_gamma(const std::function<bool(double)>& feasible, double start, std::int64_t iterations) {
  double lo = 0, hi = start;
  for (int k = 0; k < 200 && feasible(hi); ++k) lo = hi, hi *= 2;
  for (std::int64_t k = 0; k < iterations && hi - lo > 1e-12 * hi; ++k) {
    const double mid = 0.5 * (lo + hi);
    (feasible(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace phalanx
