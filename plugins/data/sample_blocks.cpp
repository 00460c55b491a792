#include "sample_blocks.hpp"

#include <algorithm>

#include <ATen/ATen.h>

#include "phalanx/error.hpp"
#include "phalanx/helpers/parallel.hpp"

namespace phalanx::data {

void for_each_sample_block(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& op) {
  constexpr std::int64_t kSamples = 4096;  // 12.8 MB of 28 x 28 float images, 50 MB of 3 x 32 x 32 ones
  for_each_block((n + kSamples - 1) / kSamples, [&](std::int64_t k) {
    const std::int64_t first = k * kSamples;
    op(first, std::min(kSamples, n - first));
  });
}

at::Tensor unit_floats(const std::vector<at::Tensor>& parts) {
  if (parts.empty()) throw Error("unit_floats: no images");
  std::vector<std::int64_t> sizes = parts.front().sizes().vec();
  sizes[0] = 0;
  for (const at::Tensor& part : parts) {
    if (part.dim() != parts.front().dim() || part.sizes().slice(1) != parts.front().sizes().slice(1))
      throw Error("unit_floats: images of different shapes in one data set");
    sizes[0] += part.size(0);
  }
  at::Tensor out = at::empty(sizes, at::kFloat);
  std::int64_t offset = 0;
  for (const at::Tensor& part : parts) {
    for_each_sample_block(part.size(0), [&](std::int64_t first, std::int64_t count) {
      out.narrow(0, offset + first, count).copy_(part.narrow(0, first, count)).div_(255.0f);
    });
    offset += part.size(0);
  }
  return out;
}

}  // namespace phalanx::data
