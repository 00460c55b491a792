// bulyan: Bulyan (El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed Learning in
// Byzantium", ICML 2018).
//
//   1. selection: theta = n - 2f rows, chosen one at a time by Krum: from the r rows not chosen yet, take
//      the one with the lowest score(i) = sum of ||x_i - x_j||^2 over its k = r - f - 2 nearest rows
//   2. per coordinate j, with S the theta chosen rows and med[j] their coordinate-wise median:
//      out[j] = (1/beta) * sum of the beta = theta - 2f values S_i[j] closest to med[j]
//
// Needs n >= 4f + 3, refused otherwise. The distances come from one Gram matrix
// (phalanx::pairwise_squared_distances), not from per-pair loops; the chosen rows' columns are sorted with
// the SDK's sorting network (phalanx::reduce_sorted_columns), and the median of an even count is the mean
// of the two middle values.
//
// Rows holding NaN or Inf are dropped first (infinitely far from every other row, Krum would never choose
// them); each one dropped is one of the f Byzantine rows, so the remaining n' rows use
// f' = max(0, f - dropped). When fewer rows arrive than there are workers (bucketing shrank them), f' is
// also capped at (n' - 3) / 4 (0 below 3 rows, which makes Bulyan the mean) and k is kept within 1..r-1.
//
// Ties in the Krum score (two mutual nearest rows always tie when k = 1) are broken by comparing the next
// nearest distances, and of two values equally close to the median the lower one is kept, so the result
// depends only on the rows, not on their order.
//
// | parameter | default                    | meaning                                 |
// |-----------|----------------------------|-----------------------------------------|
// | f         | number of Byzantine workers | Byzantine rows the rule must tolerate |
#include <algorithm>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/distances.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

// Squared distances among the rows listed in `index`, made exactly symmetric so that two rows see the same
// distance to each other.
at::Tensor distances_among(const at::Tensor& inputs, const at::Tensor& index) {
  at::Tensor dist = pairwise_squared_distances(inputs);
  if (index.numel() < inputs.size(0)) dist = dist.index_select(0, index).index_select(1, index);
  return dist.add(dist.t()).mul_(0.5);
}

// Rows of `dist` ([r, r], r >= 2) ordered by Krum score (the sum of the k smallest distances to other rows),
// best first, ties broken by the next nearest distances.
std::vector<std::int64_t> krum_order(const at::Tensor& dist, std::int64_t k) {
  const std::int64_t r = dist.size(0);
  at::Tensor others = dist.clone();
  others.fill_diagonal_(std::numeric_limits<double>::infinity());
  at::Tensor nearest = std::get<0>(others.sort(1)).contiguous();  // row i: distances to the others, ascending
  at::Tensor score = nearest.narrow(1, 0, k).sum(1).contiguous();
  auto s = score.accessor<double, 1>();
  auto near = nearest.accessor<double, 2>();
  std::vector<std::int64_t> order(r);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    if (s[a] != s[b]) return s[a] < s[b];
    for (std::int64_t j = k; j < r - 1; ++j)
      if (near[a][j] != near[b][j]) return near[a][j] < near[b][j];
    return false;
  });
  return order;
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

// Median of each column of a sorted block: the middle value, or the mean of the two middle values.
void median_of_sorted(const float* sorted, std::int64_t n, std::int64_t width, float* out) {
  const float* low = sorted + ((n - 1) / 2) * width;
  const float* high = sorted + (n / 2) * width;
  for (std::int64_t j = 0; j < width; ++j) out[j] = 0.5f * low[j] + 0.5f * high[j];
}

class Bulyan : public Aggregator {
 public:
  explicit Bulyan(std::int64_t f) : f_(f) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor index = finite_row_mask(inputs).nonzero().squeeze(1);
    const std::int64_t n = index.numel();
    if (n == 0) throw Error("aggregator 'bulyan': every message contains NaN or Inf; nothing to aggregate");
    const std::int64_t f =
        std::min(std::max<std::int64_t>(0, f_ - (inputs.size(0) - n)), n >= 3 ? (n - 3) / 4 : std::int64_t{0});
    const std::int64_t theta = n - 2 * f, beta = theta - 2 * f;

    // 1. theta rows by repeated Krum on the (small) distance matrix.
    at::Tensor dist = distances_among(inputs, index);
    std::vector<std::int64_t> remaining(n), chosen;
    std::iota(remaining.begin(), remaining.end(), 0);
    while (static_cast<std::int64_t>(chosen.size()) < theta) {
      const std::int64_t r = static_cast<std::int64_t>(remaining.size());
      std::int64_t pick = 0;
      if (r > 1) {
        at::Tensor at_remaining = at::tensor(remaining, at::kLong);
        at::Tensor sub = dist.index_select(0, at_remaining).index_select(1, at_remaining);
        pick = krum_order(sub, std::clamp<std::int64_t>(r - f - 2, 1, r - 1)).front();
      }
      chosen.push_back(remaining[pick]);
      remaining.erase(remaining.begin() + pick);
    }
    at::Tensor selected = inputs.index_select(0, index.index_select(0, at::tensor(chosen, at::kLong)));

    // 2. per coordinate, the beta values closest to the median of the selection.
    return reduce_sorted_columns(selected, [beta](const float* sorted, std::int64_t n, std::int64_t width, float* out) {
      std::vector<float> median(static_cast<std::size_t>(width));
      median_of_sorted(sorted, n, width, median.data());
      mean_of_nearest(sorted, n, width, beta, median.data(), out);
    });
  }

 private:
  std::int64_t f_;
};

}  // namespace

PHALANX_PLUGIN("bulyan", "1.0") {
  registrar.add_aggregator(
      {"bulyan",
       "Bulyan: n - 2f rows chosen by repeated Krum, then per coordinate the mean of the n - 4f values closest "
       "to their median",
       {{"f", ParamType::Int, Value(), "Byzantine rows tolerated (auto: number of Byzantine workers)", 0}}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = p.get_int_or("f", c.run().byzantine);
        if (n < 4 * f + 3) {
          p.fail("f", "Bulyan needs n >= 4f + 3 workers; f = " + std::to_string(f) + " with n = " + std::to_string(n) +
                          " is too many. " +
                          (n >= 3 ? "The largest f for n = " + std::to_string(n) + " is " + std::to_string((n - 3) / 4) + "."
                                  : std::string("Bulyan needs at least 3 workers even with f = 0.")));
        }
        return std::make_unique<Bulyan>(f);
      });
}
