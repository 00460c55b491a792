// mean: the average of the n rows, (1/n) sum_i x_i. Not robust: one Byzantine row moves it arbitrarily.
//
// A row holding NaN or Inf would silently poison the model, so mean refuses it with a clear error
// instead (robust rules drop such rows).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
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
    // the block's column sums while the block is still in cache (a separate finite check over the whole
    // input would read it from memory twice; docs/BENCHMARKS.md). The sums are ATen's, block by block, divided by n
    // at the end: the same additions in the same order as inputs.mean(0). A float is NaN or Inf exactly
    // when its exponent bits are all ones, and adding one exponent step then carries into the sign bit;
    // the integer operations vectorise.
    at::Tensor x = inputs.contiguous();
    const std::int64_t n = x.size(0), d = x.size(1);
    at::Tensor out = at::empty({d});
    const auto* bits = reinterpret_cast<const std::uint32_t*>(x.data_ptr<float>());
    std::vector<std::uint32_t> flags(static_cast<std::size_t>(n), 0);
    constexpr std::int64_t kBlock = 4096;  // n x 16 KiB: in L2 or L3 until it is summed
    for (std::int64_t start = 0; start < d; start += kBlock) {
      const std::int64_t width = std::min(kBlock, d - start);
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint32_t* row = bits + i * d + start;
        std::uint32_t any = 0;
        for (std::int64_t j = 0; j < width; ++j) any |= (row[j] & 0x7f800000u) + 0x00800000u;
        flags[static_cast<std::size_t>(i)] |= any;
      }
      at::Tensor sum = out.narrow(0, start, width);
      at::sum_out(sum, x.narrow(1, start, width), 0);
    }
    std::int64_t bad = 0;
    for (std::uint32_t f : flags) bad += (f & 0x80000000u) != 0;
    check_finite(bad, n);
    return out.div_(static_cast<double>(n));
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
