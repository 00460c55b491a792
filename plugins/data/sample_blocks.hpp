// Element-wise work on a data set's samples in blocks, on the threads the engine lends to a load
// (phalanx/helpers/parallel.hpp). Element-wise ATen operations give the same bits on a block as on the whole
// tensor, and the first touch of fresh memory (the kernel zeroing the pages of a tensor of hundreds of MB, a
// good part of a short run's start) is shared as well (docs/BENCHMARKS.md, "The data load on the gradient
// threads"). The data readers of plugins/data/ share these.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace phalanx::data {

/// op(first, count) for consecutive blocks of `n` samples (dimension 0), each exactly once, in any order.
void for_each_sample_block(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& op);

/// The uint8 images of `parts` (each [n_i, ...], one sample shape) as one float32 tensor in [0, 1]:
/// at::cat(parts).to(at::kFloat).div_(255.0f), bit for bit, without the uint8 concatenation.
at::Tensor unit_floats(const std::vector<at::Tensor>& parts);

/// x.sub_(mean).div_(std), bit for bit, block by block: `mean` and `std` are numbers (one statistic for the
/// data set) or tensors that broadcast over a block (one per channel).
template <typename Statistic>
void standardise(at::Tensor& x, const Statistic& mean, const Statistic& std) {
  for_each_sample_block(x.size(0), [&](std::int64_t first, std::int64_t count) {
    x.narrow(0, first, count).sub_(mean).div_(std);
  });
}

}  // namespace phalanx::data
