// tm: coordinate-wise trimmed mean (Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed
// Learning: Towards Optimal Statistical Rates", ICML 2018).
//
//   per coordinate j, with x_(1)[j] <= ... <= x_(n)[j] the sorted values:
//   out[j] = 1/(n - 2b) * sum_{k = b+1}^{n-b} x_(k)[j]
//
// i.e. drop the b largest and the b smallest values of every coordinate and average the n - 2b others.
// Needs n > 2b, refused otherwise. Columns are sorted with the SDK's sorting network
// (phalanx::coordinate_trimmed_mean), in blocks that stay in L1. From 16 rows on, the network's last pass
// (which only sorts aligned groups of 8 rows that already hold the right ranks) is fused with the sum: groups
// wholly inside the kept ranks are summed unsorted, groups wholly outside are skipped, and only the two
// groups across a boundary are sorted, in registers; the sorted block is never stored or read again
// (docs/BENCHMARKS.md).
//
// Rows holding NaN or Inf are dropped first. They are Byzantine by definition, so each one dropped is one
// of the b values the rule had to trim: the remaining n' rows are trimmed by b' = max(0, b - dropped).
// When fewer rows arrive than there are workers (a pre-aggregator such as bucketing shrank them), b is
// also capped at (n' - 1) / 2 so at least one value per coordinate remains.
//
// | parameter | default                    | meaning                                      |
// |-----------|----------------------------|----------------------------------------------|
// | b         | number of Byzantine workers | values trimmed at each end of every coordinate |
#include <algorithm>
#include <string>

#include <ATen/ATen.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class TrimmedMean : public Aggregator {
 public:
  explicit TrimmedMean(std::int64_t b) : b_(b) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    // Usually every row is finite: then the sort's own pass over the input checks that, and no separate
    // pass is made to look for NaN/Inf rows (docs/BENCHMARKS.md).
    const std::int64_t trim = std::min(b_, (inputs.size(0) - 1) / 2);
    if (trim > 0) {
      bool finite = true;
      at::Tensor mean = coordinate_trimmed_mean(inputs, trim, &finite);
      if (finite) return mean;
    }
    at::Tensor rows = finite_rows(inputs);
    const std::int64_t n = rows.size(0);
    if (n == 0) throw Error("aggregator 'tm': every message contains NaN or Inf; nothing to aggregate");
    const std::int64_t dropped = inputs.size(0) - n;
    const std::int64_t b = std::min(std::max<std::int64_t>(0, b_ - dropped), (n - 1) / 2);
    if (b == 0) return rows.mean(0);
    return coordinate_trimmed_mean(rows, b);
  }

 private:
  std::int64_t b_;
};

}  // namespace

PHALANX_PLUGIN("tm", "1.0") {
  registrar.add_aggregator(
      {"tm",
       "coordinate-wise trimmed mean: drop the b largest and b smallest values per coordinate",
       {{"b", ParamType::Int, Value(), "values trimmed at each end of every coordinate (auto: number of Byzantine workers)",
         0}}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t b = p.get_int_or("b", c.run().byzantine);
        if (n <= 2 * b) {
          p.fail("b", "the trimmed mean drops b values at each end of every coordinate, so it needs n > 2b; b = " +
                          std::to_string(b) + " with n = " + std::to_string(n) + " workers leaves nothing. The largest b for n = " +
                          std::to_string(n) + " is " + std::to_string((n - 1) / 2) + ".");
        }
        return std::make_unique<TrimmedMean>(b);
      });
}
