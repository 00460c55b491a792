// meamed: mean around the median (Xie, Koyejo, Gupta, "Generalized Byzantine-tolerant SGD",
// arXiv:1802.10116, 2018).
//
//   per coordinate j, with med[j] the median of x_1[j], ..., x_n[j] (the mean of the two middle values when
//   n is even):
//   out[j] = 1/(n - f) * sum of the n - f values x_i[j] closest to med[j]
//
// Needs n > 2f, refused otherwise. Columns are sorted with the SDK's sorting network
// (phalanx::reduce_sorted_columns); of two values equally close to the median the lower one is kept, so the
// result depends only on the values, not on the order of the rows.
//
// Rows holding NaN or Inf are dropped first. They are Byzantine by definition, so each one dropped is one
// of the f values the rule had to leave out: the remaining n' rows use f' = max(0, f - dropped), which keeps
// n - f values per coordinate. When fewer rows arrive than there are workers (a pre-aggregator such as
// bucketing shrank them), f' is also capped at (n' - 1) / 2.
//
// | parameter | default                    | meaning                                 |
// |-----------|----------------------------|-----------------------------------------|
// | f         | number of Byzantine workers | Byzantine rows the rule must tolerate |
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

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

// Median of each column of a sorted block: the middle value, or the mean of the two middle values.
void median_of_sorted(const float* sorted, std::int64_t n, std::int64_t width, float* out) {
  const float* low = sorted + ((n - 1) / 2) * width;
  const float* high = sorted + (n / 2) * width;
  for (std::int64_t j = 0; j < width; ++j) out[j] = 0.5f * low[j] + 0.5f * high[j];
}

class MeanAroundMedian : public Aggregator {
 public:
  explicit MeanAroundMedian(std::int64_t f) : f_(f) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor rows = finite_rows(inputs);
    const std::int64_t n = rows.size(0);
    if (n == 0) throw Error("aggregator 'meamed': every message contains NaN or Inf; nothing to aggregate");
    const std::int64_t f = std::min(std::max<std::int64_t>(0, f_ - (inputs.size(0) - n)), (n - 1) / 2);
    if (f == 0) return rows.mean(0);
    return reduce_sorted_columns(rows, [f](const float* sorted, std::int64_t n, std::int64_t width, float* out) {
      std::vector<float> median(static_cast<std::size_t>(width));
      median_of_sorted(sorted, n, width, median.data());
      mean_of_nearest(sorted, n, width, n - f, median.data(), out);
    });
  }

 private:
  std::int64_t f_;
};

}  // namespace

PHALANX_PLUGIN("meamed", "1.0") {
  registrar.add_aggregator(
      {"meamed",
       "mean around the median: per coordinate, the mean of the n - f values closest to the median",
       {{"f", ParamType::Int, Value(), "Byzantine rows tolerated (auto: number of Byzantine workers)", 0}}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = p.get_int_or("f", c.run().byzantine);
        if (n <= 2 * f) {
          p.fail("f", "MeaMed keeps the n - f values of every coordinate nearest to the median and needs a majority of "
                          "honest rows, n > 2f; f = " + std::to_string(f) + " with n = " + std::to_string(n) +
                          " is too many. The largest f for n = " + std::to_string(n) + " is " +
                          std::to_string((n - 1) / 2) + ".");
        }
        return std::make_unique<MeanAroundMedian>(f);
      });
}
