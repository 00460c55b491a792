// multikrum: Multi-Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries:
// Byzantine Tolerant Gradient Descent", NeurIPS 2017; named and analysed in El Mhamdi, Guerraoui, Rouault,
// "The Hidden Vulnerability of Distributed Learning in Byzantium", ICML 2018).
//
//   score(i) = sum of ||x_i - x_j||^2 over the k = n - f - 2 rows x_j (j != i) nearest to x_i
//   out      = (1/m) sum of the m rows with the lowest scores        (m = n - f by default)
//
// Needs n >= 2f + 3 and 1 <= m <= n - f, refused otherwise. m = 1 is Krum. The distances come from one
// float32 Gram matrix with error bounds (phalanx::PairwiseDistances), ranked by phalanx::krum_order, which
// recomputes in float64 the rows too close to the m-th for the bounds to decide, so the m rows averaged are
// the float64 ones; they are summed in row order, without copying them first.
//
// Rows holding NaN or Inf are dropped first (infinitely far from every other row, they would score worst);
// each one dropped is one of the f Byzantine rows, so the remaining n' rows use f' = max(0, f - dropped),
// which keeps k = n - f - 2 and the automatic m = n - f. When fewer rows arrive than there are workers
// (bucketing shrank them), k is kept within 1..n'-1 and m within 1..n'.
//
// Ties in the score (two mutual nearest rows always tie when k = 1) are broken by comparing the next
// nearest distances, so the choice depends only on the rows, not on their order.
//
// | parameter | default                    | meaning                                 |
// |-----------|----------------------------|-----------------------------------------|
// | f         | number of Byzantine workers | Byzantine rows the rule must tolerate |
// | m         | n - f                      | rows averaged                           |
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/distances.hpp"
#include "phalanx/helpers/byzantine_count.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"

namespace {

using namespace phalanx;

class MultiKrum : public Aggregator {
 public:
  MultiKrum(std::int64_t f, std::optional<std::int64_t> m) : f_(f), m_(m) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    PairwiseDistances distances(inputs);
    const std::vector<std::int64_t> index = distances.finite_rows();
    const auto n = static_cast<std::int64_t>(index.size());
    if (n == 0) throw Error("aggregator 'multikrum': every message contains NaN or Inf; nothing to aggregate");
    if (n == 1) return inputs[index[0]].clone();
    const std::int64_t f = std::min(std::max<std::int64_t>(0, f_ - (inputs.size(0) - n)), n - 1);
    const std::int64_t k = std::clamp<std::int64_t>(n - f - 2, 1, n - 1);
    const std::int64_t m = std::clamp<std::int64_t>(m_.value_or(n - f), 1, n);
    // Only which m rows are averaged matters; their order among themselves does not.
    std::vector<std::int64_t> order = krum_order(distances, index, k, /*certain=*/m);
    std::vector<std::int64_t> chosen(static_cast<std::size_t>(m));
    for (std::int64_t p = 0; p < m; ++p) chosen[static_cast<std::size_t>(p)] = index[static_cast<std::size_t>(order[static_cast<std::size_t>(p)])];
    std::sort(chosen.begin(), chosen.end());
    return mean_of_rows(inputs, chosen);
  }

 private:
  std::int64_t f_;
  std::optional<std::int64_t> m_;  // empty: n - f
};

}  // namespace

PHALANX_PLUGIN("multikrum", "1.0") {
  registrar.add_aggregator(
      {"multikrum",
       "Multi-Krum: average of the m rows with the lowest Krum scores",
       {byzantine_count_param(),
        {"m", ParamType::Int, Value(), "rows averaged, at most n - f (auto: n - f)", 1}}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = byzantine_count(p, c);
        require_workers_for(p, f, n, 2, "Multi-Krum");
        std::optional<std::int64_t> m;
        if (p.has("m")) {
          m = p.get_int("m");
          if (*m > n - f)
            p.fail("m", "Multi-Krum averages at most n - f rows (more would include Byzantine ones); m = " +
                            std::to_string(*m) + " with n = " + std::to_string(n) + " and f = " + std::to_string(f) +
                            " is too many; use at most " + std::to_string(n - f) + ".");
        }
        return std::make_unique<MultiKrum>(f, m);
      });
}
