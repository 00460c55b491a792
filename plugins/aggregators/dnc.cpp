// dnc: Divide-and-Conquer (Shejwalkar, Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning
// Attacks and Defenses for Federated Learning", NDSS 2021).
//
//   for it = 1..niters:
//     J    = the first min(b, d) entries of a uniform random permutation of the d coordinates
//     Z    = the rows restricted to J, centred on their mean
//     v    = top right singular vector of Z
//     s_i  = <Z_i, v>^2;  G_it = the n - floor(c f) rows with the smallest s_i   (ties: lower index)
//   out = mean of the full rows x_i, i in G_1 ∩ ... ∩ G_niters   (the zero vector if the intersection is empty)
//
// The singular vector is never formed: with B = Z Z^T (n x n, the centred Gram matrix from
// phalanx::pairwise_squared_distances on the J columns) and (lambda, e) its top eigenpair, v = Z^T e / sqrt(lambda)
// and <Z_i, v> = sqrt(lambda) e_i, so s_i = lambda e_i^2. An iteration costs O(n^2 min(b, d) + n^3) plus the
// O(d) permutation.
//
// The parameters and the intersection follow fedlib (fedlib/fedlib, fedlib/aggregators/aggregators.py: class
// DnC, the aggregator package current Blades imports), which is the paper's algorithm. Older Blades
// (src/blades/aggregators/dnc.py) used one iteration and the union of the kept sets, and the SignGuard
// authors' copy uses one iteration, b = 1000 and c = (n - 1) / n; set niters, sub_dim and filter_frac for those.
//
// When d <= b every J holds all coordinates and the result does not depend on their order, so no permutation
// is drawn and the rule is deterministic. Otherwise the permutations come from a generator seeded with this
// plugin's own seed (Context::seed()), saved by save_state() so a resumed run draws the same ones.
//
// Rows holding NaN or Inf are dropped first; each counts as one of the f Byzantine rows (f' = max(0, f -
// dropped)); with fewer rows than workers (bucketing), f' is also capped at (n' - 1) / 2.
//
// | parameter   | default                     | meaning                                              |
// |-------------|-----------------------------|------------------------------------------------------|
// | f           | number of Byzantine workers | Byzantine rows the rule removes (times filter_frac)  |
// | sub_dim     | 10000                       | coordinates sampled per iteration (b)                |
// | niters      | 5                           | iterations; a row must be kept in every one          |
// | filter_frac | 1.0                         | each iteration removes floor(filter_frac * f) rows   |
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/distances.hpp"
#include "phalanx/generator_state.hpp"
#include "phalanx/helpers/byzantine_count.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

// s_i = lambda e_i^2 for the top eigenpair of the centred Gram matrix of `rows` ([n, b]).
std::vector<double> outlier_scores(const at::Tensor& rows) {
  const std::int64_t n = rows.size(0);
  at::Tensor dist = pairwise_squared_distances(rows);
  // Centred Gram matrix B = -1/2 J D J (J the centring matrix).
  at::Tensor row_mean = dist.mean(1, /*keepdim=*/true);
  at::Tensor gram = dist.sub(row_mean).sub(row_mean.t()).add(dist.mean()).mul(-0.5);
  auto [values, vectors] = at::linalg_eigh(gram);
  const double lambda = std::max(values[n - 1].item<double>(), 0.0);
  at::Tensor e = vectors.select(1, n - 1).contiguous();
  std::vector<double> score(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double component = e[i].item<double>();
    score[i] = lambda * component * component;
  }
  return score;
}

class DivideAndConquer : public Aggregator {
 public:
  DivideAndConquer(std::int64_t f, std::int64_t sub_dim, std::int64_t niters, double filter_frac, std::uint64_t seed)
      : f_(f), sub_dim_(sub_dim), niters_(niters), filter_frac_(filter_frac), seed_(seed),
        generator_(make_generator(seed)) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor index = finite_row_mask(inputs).nonzero().squeeze(1);
    const std::int64_t n = index.numel(), d = inputs.size(1);
    if (n == 0) throw Error("aggregator 'dnc': every message contains NaN or Inf; nothing to aggregate");
    const std::int64_t f = std::min(std::max<std::int64_t>(0, f_ - (inputs.size(0) - n)), (n - 1) / 2);
    at::Tensor x = n < inputs.size(0) ? inputs.index_select(0, index) : inputs;
    const auto removed = static_cast<std::int64_t>(std::floor(filter_frac_ * static_cast<double>(f)));
    std::vector<bool> good(static_cast<std::size_t>(n), true);
    for (std::int64_t it = 0; it < niters_; ++it) {
      at::Tensor sub = x;
      if (d > sub_dim_) {
        at::Tensor columns = at::randperm(d, generator_, at::TensorOptions().dtype(at::kLong)).narrow(0, 0, sub_dim_);
        sub = x.index_select(1, columns);
      }
      const std::vector<double> score = outlier_scores(sub);
      std::vector<std::int64_t> order(static_cast<std::size_t>(n));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return score[a] < score[b]; });
      for (std::int64_t k = n - removed; k < n; ++k) good[order[k]] = false;
      if (d <= sub_dim_) break;  // every iteration would see the same columns and keep the same rows
    }
    std::vector<std::int64_t> kept;
    for (std::int64_t i = 0; i < n; ++i)
      if (good[i]) kept.push_back(i);
    if (kept.empty()) return at::zeros({d}, inputs.options());
    return x.index_select(0, at::tensor(kept, at::kLong)).mean(0);
  }

  State save_state() const override { return save_generator(generator_); }
  void load_state(const State& state) override { load_generator(state, generator_, seed_, "aggregator 'dnc'"); }

 private:
  std::int64_t f_, sub_dim_, niters_;
  double filter_frac_;
  std::uint64_t seed_;
  at::Generator generator_;
};

}  // namespace

PHALANX_PLUGIN("dnc", "1.0") {
  registrar.add_aggregator(
      {"dnc",
       "Divide-and-Conquer: drop the rows with the largest projection on the top singular direction of random "
       "coordinate subsets",
       {byzantine_count_param("Byzantine rows to remove (auto: number of Byzantine workers)"),
        {"sub_dim", ParamType::Int, 10000, "coordinates sampled per iteration", 1},
        {"niters", ParamType::Int, 5, "iterations (a row must survive every one)", 1, 1000},
        {"filter_frac", ParamType::Double, 1.0, "each iteration removes floor(filter_frac * f) rows", 0.0, 1.0}}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = byzantine_count(p, c);
        require_honest_majority(p, f, n, "dnc");
        return std::make_unique<DivideAndConquer>(f, p.get_int("sub_dim"), p.get_int("niters"),
                                                  p.get_double("filter_frac"), c.seed());
      });
}
