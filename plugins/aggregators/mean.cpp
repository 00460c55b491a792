// mean: the average of the n rows, (1/n) sum_i x_i. Not robust: one Byzantine row moves it arbitrarily.
//
// A row holding NaN or Inf would silently poison the model, so mean refuses it with a clear error
// instead (robust rules drop such rows).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/helpers/parallel.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class Mean : public Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override {
    if (inputs.scalar_type() != at::kFloat || inputs.dim() != 2) {
      check_finite(count_nonfinite_rows(inputs), inputs.size(0));
      return inputs.mean(0);
    }
    // One pass over memory: block of columns by block of columns, the check for NaN/Inf rows and then
    // the block's column means while the block is still in cache (a separate finite check over the whole
    // input would read it from memory twice; docs/BENCHMARKS.md). The means are inputs.mean(0)'s bits
    // (phalanx::column_means), on whichever thread a block runs (phalanx/helpers/parallel.hpp). A float is
    // NaN or Inf exactly when its exponent bits are all ones, and adding one exponent step then carries into
    // the sign bit; the integer operations vectorise.
    at::Tensor x = inputs.contiguous();
    const std::int64_t n = x.size(0), d = x.size(1);
    at::Tensor out = at::empty({d});
    const float* values = x.data_ptr<float>();
    const auto* bits = reinterpret_cast<const std::uint32_t*>(values);
    float* means = out.data_ptr<float>();
    constexpr std::int64_t kBlock = 4096;  // n x 16 KiB: in L2 or L3 until it is summed
    const std::int64_t blocks = (d + kBlock - 1) / kBlock;
    std::vector<std::uint32_t> flags(static_cast<std::size_t>(n * blocks), 0);  // row i, block k at i * blocks + k
    for_each_block(blocks, [&](std::int64_t k) {
      const std::int64_t start = k * kBlock, width = std::min(kBlock, d - start);
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint32_t* row = bits + i * d + start;
        std::uint32_t any = 0;
        for (std::int64_t j = 0; j < width; ++j) any |= (row[j] & 0x7f800000u) + 0x00800000u;
        flags[static_cast<std::size_t>(i * blocks + k)] = any;
      }
      column_means(values, n, d, start, start + width, means);
    });
    std::int64_t bad = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      std::uint32_t any = 0;
      for (std::int64_t k = 0; k < blocks; ++k) any |= flags[static_cast<std::size_t>(i * blocks + k)];
      bad += (any & 0x80000000u) != 0;
    }
    check_finite(bad, n);
    return out;
  }

 private:
  static void check_finite(std::int64_t bad, std::int64_t n) {
    if (bad == 0) return;
    throw Error("aggregator 'mean': " + std::to_string(bad) + " of " + std::to_string(n) +
                " messages contain NaN or Inf; the mean of them is not finite. Use a robust aggregator "
                "(cm, cc, ...) when workers may send such messages.");
  }
};

}  // namespace

PHALANX_PLUGIN("mean", "1.0") {
  registrar.add_aggregator({"mean", "arithmetic mean of the messages (not robust)", {}},
                           [](const Params&, const Context&) { return std::make_unique<Mean>(); });
}
