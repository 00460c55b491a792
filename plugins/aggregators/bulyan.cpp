// bulyan: Bulyan (El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed Learning in
// Byzantium", ICML 2018).
//
//   1. selection: theta = n - 2f rows, chosen one at a time by Krum: from the r rows not chosen yet, take
//      the one with the lowest score(i) = sum of ||x_i - x_j||^2 over its k = r - f - 2 nearest rows
//   2. per coordinate j, with S the theta chosen rows and med[j] their coordinate-wise median:
//      out[j] = (1/beta) * sum of the beta = theta - 2f values S_i[j] closest to med[j]
//
// Needs n >= 4f + 3, refused otherwise. The distances come from one Gram matrix
// (phalanx::pairwise_squared_distances), not from per-pair loops; the median of an even count is the mean
// of the two middle values.
//
// Rows holding NaN or Inf are dropped first (infinitely far from every other row, Krum would never choose
// them); each one dropped is one of the f Byzantine rows, so the remaining n' rows use
// f' = max(0, f - dropped). When fewer rows arrive than there are workers (bucketing shrank them), f' is
// also capped at (n' - 3) / 4 (0 below 3 rows, which makes Bulyan the mean) and k is kept within 1..r-1.
//
// Ties in the Krum score (two mutual nearest rows always tie when k = 1) are broken by comparing the next
// nearest distances, and ties in the closeness to the median by position in sorted order, so the result
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

// Per coordinate, the mean of the `keep` values of `sorted` (sorted along dim 0) closest to `center`. In
// sorted order the nearest values form a window of consecutive positions: of the n - keep + 1 windows, the
// one whose farther end is nearest to the center (the first on exact ties, a choice that depends only on
// the values).
at::Tensor mean_of_closest(const at::Tensor& sorted, const at::Tensor& center, std::int64_t keep) {
  const std::int64_t n = sorted.size(0), windows = n - keep + 1;
  if (windows == 1) return sorted.mean(0);
  at::Tensor below = center - sorted.narrow(0, 0, windows);         // first value of each window
  at::Tensor above = sorted.narrow(0, keep - 1, windows) - center;  // last value of each window
  at::Tensor start = at::maximum(below, above).argmin(0);
  at::Tensor position = at::arange(n, at::kLong).unsqueeze(1);
  at::Tensor inside = position.ge(start).logical_and_(position.lt(start + keep));
  return at::where(inside, sorted, at::zeros({}, sorted.options())).sum(0).div_(static_cast<double>(keep));
}

at::Tensor median_of_sorted(const at::Tensor& sorted) {
  const std::int64_t n = sorted.size(0);
  if (n % 2 == 1) return sorted[n / 2];
  return sorted[n / 2 - 1].mul(0.5).add_(sorted[n / 2], 0.5);
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
    at::Tensor sorted = std::get<0>(selected.sort(0));
    return mean_of_closest(sorted, median_of_sorted(sorted), beta);
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
