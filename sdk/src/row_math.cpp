#include "phalanx/row_math.hpp"

#include <cstring>

#include <ATen/ATen.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace phalanx {

namespace {

// Eight independent float64 sums, so the additions do not wait on each other and the compiler vectorises
// them (one sum would be a chain of dependent additions, four cycles per element).
constexpr std::int64_t kSums = 8;

}  // namespace

__attribute__((target_clones("avx2", "default"))) double squared_norm(const float* x, std::int64_t d) {
  double sum[kSums] = {};
  std::int64_t j = 0;
  for (; j + kSums <= d; j += kSums)
    for (std::int64_t l = 0; l < kSums; ++l) sum[l] += static_cast<double>(x[j + l]) * x[j + l];
  for (; j < d; ++j) sum[0] += static_cast<double>(x[j]) * x[j];
  double total = 0;
  for (double s : sum) total += s;
  return total;
}

__attribute__((target_clones("avx2", "default"))) double squared_distance(const float* x, const float* y,
                                                                           std::int64_t d) {
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

at::Tensor OutputBuffer::get(at::IntArrayRef sizes) {
  // Reusable when this object holds the only reference to the tensor and to its storage (a view of it
  // held elsewhere shares the storage).
  if (buffer_.defined() && buffer_.use_count() == 1 && buffer_.storage().use_count() == 1 &&
      buffer_.sizes() == sizes)
    return buffer_;
  buffer_ = at::empty(sizes, at::kFloat);
  return buffer_;
}

}  // namespace phalanx
