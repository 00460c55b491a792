// bulyan: Bulyan (El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed Learning in
// Byzantium", ICML 2018).
//
//   1. selection: theta = n - 2f rows, chosen one at a time by Krum: from the r rows not chosen yet, take
//      the one with the lowest score(i) = sum of ||x_i - x_j||^2 over its k = r - f - 2 nearest rows
//   2. per coordinate j, with S the theta chosen rows and med[j] their coordinate-wise median:
//      out[j] = (1/beta) * sum of the beta = theta - 2f values S_i[j] closest to med[j]
//
// Needs n >= 4f + 3, refused otherwise. The distances come from one float32 Gram matrix with error bounds
// (phalanx::PairwiseDistances) and are ranked by phalanx::krum_order, which recomputes in float64 the rows
// too close to a winner for the bounds to decide (so every winner is the float64 one); the
// second stage is phalanx::coordinate_mean_closest_to (the SDK's sorting network), and the median of an
// even count is the mean of the two middle values.
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
#include <numeric>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/distances.hpp"
#include "phalanx/helpers/byzantine_count.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class Bulyan : public Aggregator {
 public:
  explicit Bulyan(std::int64_t f) : f_(f) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    PairwiseDistances distances(inputs);
    const std::vector<std::int64_t> index = distances.finite_rows();
    const auto n = static_cast<std::int64_t>(index.size());
    if (n == 0) throw Error("aggregator 'bulyan': every message contains NaN or Inf; nothing to aggregate");
    const std::int64_t f =
        std::min(std::max<std::int64_t>(0, f_ - (inputs.size(0) - n)), n >= 3 ? (n - 3) / 4 : std::int64_t{0});
    const std::int64_t theta = n - 2 * f, beta = theta - 2 * f;

    // 1. theta rows by repeated Krum on the (small) distance matrix; each winner is the float64 one.
    std::vector<std::int64_t> remaining = index, chosen;
    while (static_cast<std::int64_t>(chosen.size()) < theta) {
      const auto r = static_cast<std::int64_t>(remaining.size());
      std::int64_t pick = 0;
      if (r > 1) pick = krum_order(distances, remaining, std::clamp<std::int64_t>(r - f - 2, 1, r - 1), 1)[0];
      chosen.push_back(remaining[static_cast<std::size_t>(pick)]);
      remaining.erase(remaining.begin() + pick);
    }
    // The second stage sorts every column, so the order of the chosen rows does not change the result.
    std::sort(chosen.begin(), chosen.end());

    // 2. per coordinate, the beta values closest to the median of the selection (read in place).
    return coordinate_mean_closest_to(inputs, chosen, beta, ColumnCentre::Median);
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
       {byzantine_count_param()}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = byzantine_count(p, c);
        require_workers_for(p, f, n, 4, "Bulyan");
        return std::make_unique<Bulyan>(f);
      });
}
