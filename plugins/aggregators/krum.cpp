// krum: Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine
// Tolerant Gradient Descent", NeurIPS 2017).
//
//   score(i) = sum of ||x_i - x_j||^2 over the k = n - f - 2 rows x_j (j != i) nearest to x_i
//   out      = x_{i*} with i* = argmin_i score(i)
//
// Needs n >= 2f + 3, refused otherwise. The distances come from one float32 Gram matrix with error bounds
// (phalanx::PairwiseDistances), ranked by phalanx::krum_order, which recomputes in float64 the rows whose
// scores are too close to the winner's for the bounds to decide, so the winner is the float64 one.
//
// Rows holding NaN or Inf are dropped first (they are infinitely far from every other row, so they never
// win and are never a finite row's neighbour); each one dropped is one of the f Byzantine rows, so the
// remaining n' rows use f' = max(0, f - dropped), which keeps k = n - f - 2. When fewer rows arrive than
// there are workers (bucketing shrank them), k is kept within 1..n'-1.
//
// Ties in the score (two mutual nearest rows always tie when k = 1) are broken by comparing the next
// nearest distances, so the choice depends only on the rows, not on their order.
//
// | parameter | default                    | meaning                                 |
// |-----------|----------------------------|-----------------------------------------|
// | f         | number of Byzantine workers | Byzantine rows the rule must tolerate |
//
// Diagnostic `krum.selected`: the worker id (RoundContext::worker_ids) of the row chosen in the last round
// before each metrics row; the row's index when the ids are unknown (after bucketing).
#include <algorithm>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/distances.hpp"
#include "phalanx/helpers/byzantine_count.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class Krum : public Aggregator {
 public:
  explicit Krum(std::int64_t f) : f_(f) {}

  at::Tensor aggregate(const at::Tensor& inputs) override { return inputs[select(inputs)].clone(); }

  at::Tensor aggregate_with_context(const at::Tensor& inputs, const RoundContext& round) override {
    const std::int64_t chosen = select(inputs);
    const bool known = static_cast<std::int64_t>(round.worker_ids.size()) == inputs.size(0);
    round.report("selected", static_cast<double>(known ? round.worker_ids[static_cast<std::size_t>(chosen)] : chosen));
    return inputs[chosen].clone();
  }

 private:
  // The index of the chosen row among `inputs`.
  std::int64_t select(const at::Tensor& inputs) const {
    PairwiseDistances distances(inputs);
    const std::vector<std::int64_t> index = distances.finite_rows();
    const auto n = static_cast<std::int64_t>(index.size());
    if (n == 0) throw Error("aggregator 'krum': every message contains NaN or Inf; nothing to aggregate");
    if (n == 1) return index[0];
    const std::int64_t f = std::max<std::int64_t>(0, f_ - (inputs.size(0) - n));
    const std::int64_t k = std::clamp<std::int64_t>(n - f - 2, 1, n - 1);
    const std::int64_t best = krum_order(distances, index, k, /*certain=*/1)[0];
    return index[static_cast<std::size_t>(best)];
  }

  std::int64_t f_;
};

}  // namespace

PHALANX_PLUGIN("krum", "1.0") {
  registrar.add_aggregator(
      {"krum",
       "Krum: the row with the smallest sum of squared distances to its n - f - 2 nearest rows",
       {byzantine_count_param()},
       {{"selected", "worker id of the chosen row (the row's index when ids are unknown), last round before the row",
         DiagnosticSummary::Last}}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = byzantine_count(p, c);
        require_workers_for(p, f, n, 2, "Krum");
        return std::make_unique<Krum>(f);
      });
}
