// foolsgold: FoolsGold (Fung, Yoon, Beschastnikh, "The Limitations of Federated Learning in Sybil Settings",
// RAID 2020). Sybils push the same poisoned direction round after round, so their accumulated updates are more
// alike than honest workers' are; FoolsGold down-weights workers whose histories point the same way.
//
//   1. H[id_i] += x_i for every finite row (H is per worker id, zero when first seen; m = rows this round)
//   2. cs_ij = cos(H_i, H_j) for i != j (0 when either history is 0); cs_ii = 0, or -1 when H_i = 0
//   3. v_i = max_j cs_ij
//   4. pardoning: cs_ij <- cs_ij v_i / v_j for i != j with v_i < v_j
//   5. w_i = clip(1 - max_j cs_ij, 0, 1)
//   6. max w = 0 (every worker has a twin): w = 1 for all; else w <- w / max w, and w_i = 1 -> 0.99
//   7. w_i <- kappa (ln(w_i / (1 - w_i)) + 0.5), clipped to [0, 1] (ln 0 = -inf -> 0)
//   8. out = sum_i w_i x_i / Z, Z = m (normalize: mean), 1 (none) or sum_i w_i (weighted; 0 if that is 0)
//
// coords = [begin, end) restricts the cosines of step 2 to those coordinates (deep-fg/fg compares only the
// output layer's weights; the histories still hold every coordinate). Default: all.
//
// Steps 2-7 are the original code's `foolsgold(grads)` (DistributedML/FoolsGold, deep-fg/fg/foolsgold.py), with
// kappa (the paper's confidence) as a parameter (the code has none: kappa = 1) and two definitional fixes: its
// diagonal is computed as cos(H_i, H_i) - 1, whose float residues can make v_j exactly 0 (a division by zero
// in pardoning) — here it is set exactly; and where it returns NaN (max w = 0) all workers get weight 1, the
// plain mean, because nothing tells the twins apart. Normalization `mean` is deep-fg/fg/trainer.py's.
// Cosines are computed in float64. A row holding NaN or Inf is not added to H and gets w = 0 that round (its
// worker's earlier history still takes part in the cosines); a history that overflowed float32 gets w = 0 and
// cosine 0 with the others. Two rows of one worker in a round (an asynchronous
// buffer) share H and count as cosine 0 to each other.
//
// FoolsGold defends against sybils, not against magnitude: one lone huge row that resembles no one keeps a
// large weight. Combine it with a clipping pre-aggregator that keeps row order (clip) for that.
//
// Diagnostics, each the mean over the rounds since the previous metrics row: `foolsgold.weight_spread`, max w -
// min w of the weights of step 7 after masking (0: every row weighted alike), and `foolsgold.zero_weights`, the
// rows given weight 0 (taken for sybils, or not finite).
//
// State: the histories H ([workers, d] float32), saved by save_state(), so checkpoints and the defence oracle
// restore them. Needs each row's worker id: a pre-aggregator that mixes rows (bucketing) removes them, and
// that is an error.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

using Matrix = std::vector<std::vector<double>>;

// Steps 3-7 on the cosine matrix (diagonal already set); returns the weights before masking.
std::vector<double> foolsgold_weights(Matrix cs, double kappa) {
  const std::size_t m = cs.size();
  std::vector<double> v(m), w(m);
  for (std::size_t i = 0; i < m; ++i) v[i] = *std::max_element(cs[i].begin(), cs[i].end());
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < m; ++j)
      if (i != j && v[i] < v[j]) cs[i][j] *= v[i] / v[j];
  double largest = 0.0;
  for (std::size_t i = 0; i < m; ++i) {
    w[i] = std::clamp(1.0 - *std::max_element(cs[i].begin(), cs[i].end()), 0.0, 1.0);
    largest = std::max(largest, w[i]);
  }
  if (largest == 0.0) return std::vector<double>(m, 1.0);
  for (double& weight : w) {
    weight /= largest;
    if (weight == 1.0) weight = 0.99;
    const double logit = kappa * (std::log(weight / (1.0 - weight)) + 0.5);
    weight = std::isnan(logit) ? 0.0 : std::clamp(logit, 0.0, 1.0);
  }
  return w;
}

class FoolsGold : public Aggregator {
 public:
  FoolsGold(std::int64_t workers, double kappa, std::string normalize, std::vector<std::int64_t> coords)
      : workers_(workers), kappa_(kappa), normalize_(std::move(normalize)), coords_(std::move(coords)) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    (void)inputs;
    throw Error(needs_ids());
  }

  at::Tensor aggregate_with_context(const at::Tensor& inputs, const RoundContext& round) override {
    const std::int64_t m = inputs.size(0), d = inputs.size(1);
    if (static_cast<std::int64_t>(round.worker_ids.size()) != m) throw Error(needs_ids());
    prepare_history(d);
    at::Tensor finite = finite_row_mask(inputs);
    std::vector<std::int64_t> ids(round.worker_ids);
    for (std::int64_t i = 0; i < m; ++i) {
      if (ids[i] < 0 || ids[i] >= workers_)
        throw Error("aggregator 'foolsgold': worker id " + std::to_string(ids[i]) + " is outside [0, " +
                    std::to_string(workers_) + ")");
      if (finite[i].item<bool>()) history_[ids[i]].add_(inputs[i].to(at::kFloat));
    }
    at::Tensor histories = history_.index_select(0, at::tensor(ids, at::kLong));
    // A history that overflowed float32 (finite but huge rows, round after round) takes no part either.
    at::Tensor usable = finite.logical_and(at::isfinite(histories).all(1));
    std::vector<double> w = foolsgold_weights(cosines(compared(histories), ids), kappa_);
    double total = 0.0;
    for (std::int64_t i = 0; i < m; ++i) {
      if (!usable[i].item<bool>()) w[i] = 0.0;
      total += w[i];
    }
    round.report("weight_spread", *std::max_element(w.begin(), w.end()) - *std::min_element(w.begin(), w.end()));
    round.report("zero_weights", static_cast<double>(std::count(w.begin(), w.end(), 0.0)));
    const double z = normalize_ == "mean" ? static_cast<double>(m) : normalize_ == "none" ? 1.0 : total;
    if (!(z > 0.0) || total == 0.0) return at::zeros({d}, inputs.options());
    at::Tensor weights = at::tensor(w, at::kDouble).div_(z);
    at::Tensor rows = inputs.to(at::kDouble).masked_fill(usable.logical_not().unsqueeze(1), 0.0);
    return weights.matmul(rows).to(inputs.scalar_type());
  }

  State save_state() const override { return history_.defined() ? State{{"history", history_.clone()}} : State{}; }
  void load_state(const State& state) override {
    auto it = state.find("history");
    history_ = it == state.end() ? at::Tensor() : it->second.to(at::kFloat).clone();
    if (history_.defined() && (history_.dim() != 2 || history_.size(0) != workers_))
      throw Error("aggregator 'foolsgold': the saved history is for another number of workers (" +
                  std::to_string(history_.size(0)) + " rows, this run has " + std::to_string(workers_) + ")");
  }

 private:
  static std::string needs_ids() {
    return "aggregator 'foolsgold' needs each row's worker id to keep per-worker histories; it has none here (a "
           "pre-aggregator that mixes rows across workers, such as bucketing, removes them, and the distributed "
           "asynchronous server passes none): remove that pre-aggregator or use a rule without history";
  }

  // The coordinates step 2 compares: all, or [begin, end) (deep-fg compares only the output layer's weights).
  at::Tensor compared(const at::Tensor& histories) const {
    if (coords_.empty()) return histories;
    if (coords_[1] > histories.size(1))
      throw Error("aggregator 'foolsgold': coords ends at " + std::to_string(coords_[1]) + " but the rows have only " +
                  std::to_string(histories.size(1)) + " coordinates; lower coords or leave it out");
    return histories.slice(1, coords_[0], coords_[1]);
  }

  void prepare_history(std::int64_t d) {
    if (!history_.defined()) history_ = at::zeros({workers_, d}, at::kFloat);
    if (history_.size(1) != d)
      throw Error("aggregator 'foolsgold': the history has dimension " + std::to_string(history_.size(1)) +
                  " but the rows have " + std::to_string(d));
  }

  // Step 2 in float64: cos(H_i, H_j), 0 with a zero history; the diagonal 0, or -1 for a zero history. Two rows
  // of one worker (an asynchronous buffer may hold both) share a history; they are not each other's sybil: 0.
  static Matrix cosines(const at::Tensor& histories, const std::vector<std::int64_t>& ids) {
    at::Tensor h = histories.to(at::kDouble);
    at::Tensor norms = h.norm(2, {1});
    at::Tensor unit = h.div(norms.clamp_min(1e-300).unsqueeze(1));
    at::Tensor gram = unit.mm(unit.t()).contiguous();
    const std::int64_t m = h.size(0);
    const double* g = gram.data_ptr<double>();
    Matrix cs(m, std::vector<double>(m));
    for (std::int64_t i = 0; i < m; ++i) {
      const bool zero = norms[i].item<double>() == 0.0;  // an overflowed (infinite) norm is not zero
      for (std::int64_t j = 0; j < m; ++j) {
        if (i == j) cs[i][j] = zero ? -1.0 : 0.0;
        else if (ids[i] == ids[j] || !std::isfinite(g[i * m + j])) cs[i][j] = 0.0;  // non-finite: an overflowed H
        else cs[i][j] = std::clamp(g[i * m + j], -1.0, 1.0);
      }
    }
    return cs;
  }

  std::int64_t workers_;
  double kappa_;
  std::string normalize_;
  std::vector<std::int64_t> coords_;  // empty: all
  at::Tensor history_;
};

}  // namespace

PHALANX_PLUGIN("foolsgold", "1.0") {
  registrar.add_aggregator(
      {"foolsgold",
       "FoolsGold (Fung et al. 2020): down-weight workers whose accumulated updates point the same way (sybils)",
       {{"kappa", ParamType::Double, 1.0, "confidence of the logit weighting (the original code: 1)", 1e-9},
        {"normalize", ParamType::String, "mean", "divide the weighted sum by m rows (mean), 1 (none) or sum of weights",
         {}, {}, {"mean", "none", "weighted"}},
        {"coords", ParamType::IntList, Value(), "[begin, end): the coordinates whose histories are compared (auto: all)",
         0}},
       {{"weight_spread", "max - min of the rows' weights (after masking), mean over the rounds"},
        {"zero_weights", "rows given weight 0 (sybils or non-finite), mean over the rounds"}},
       {Need::WorkerIds}},
      [](const Params& p, const Context& c) {
        std::vector<std::int64_t> coords;
        if (p.has("coords")) {
          coords = p.get_int_list("coords");
          if (coords.size() != 2 || coords[0] >= coords[1])
            p.fail("coords", "takes two indices [begin, end) with begin < end, e.g. [0, 100]");
        }
        return std::make_unique<FoolsGold>(c.run().workers, p.get_double("kappa"), p.get_string("normalize"),
                                           std::move(coords));
      });
}
