// caf: covariance-bound agnostic filter (Allouah, Guerraoui, Stephan, "Towards Trustworthy Federated Learning
// with Untrusted Participants", ICML 2025, the filter inside CafCor). Rows are down-weighted along the top
// principal direction of their weighted covariance until the weights sum to n - 2f; the output is the
// weighted mean that had the smallest top eigenvalue on the way.
//
//   c_i = 1; while C = sum_i c_i > n - 2f:
//     mu = sum_i c_i x_i / C,  z_i = x_i - mu,  Sigma_c = (1/C) sum_i c_i z_i z_i^T
//     (lambda, v) = top eigenpair of Sigma_c (estimated, see power_iters)
//     if lambda < lambda_best: lambda_best = lambda, best = mu        (lambda = 0: best = mu, stop)
//     tau_i = <z_i, v>^2,  c_i <- c_i (1 - tau_i / max tau)
//   out = best   (f = 0: the plain mean)
//
// No d x d matrix is formed: with p_i = c_i / C, <z_i, z_j> = B_ij = -1/2 (D_ij - r_i - r_j + rbar), where D
// holds the squared distances between rows (phalanx::pairwise_squared_distances, one float64 Gram matrix),
// r_i = sum_k p_k D_ik and rbar = sum_k p_k r_k. The covariance Z^T diag(p) Z has the nonzero eigenvalues of
// diag(p)^1/2 B diag(p)^1/2 (n x n), and every projection <z_i, v> is a combination of the B_ij. So a pass
// costs O(n^2) after the O(n^2 d) distance matrix, plus O(n d) for the random start vector's projections.
//
// power_iters = P >= 1 (default 1, as ByzFL: LPD-EPFL/byzfl, byzfl/aggregators/aggregators.py: class CAF) is
// the power method from u ~ N(0, I_d), u <- u / ||u||, one start vector per pass: w = (1/C) sum_i c_i <z_i, u> z_i,
// lambda = ||w||, u <- w / lambda; after P steps v = u. power_iters = 0 takes the exact top eigenpair. The start
// vectors come from a generator seeded with this plugin's own seed (Context::seed()); its position is saved by
// save_state() so a resumed run draws the same vectors. Neither depends on the order of the rows.
//
// tau_max_over = active (the default) takes max tau over the rows still weighted (c_i > 0); all takes it over
// every row, as ByzFL does. With all, a far outlier already at weight 0 keeps the largest tau, so the live
// weights shrink by tiny factors and the loop can run for very many passes; with active each pass zeroes at
// least one live row, so there are at most n passes. With all the
// loop stops after max_passes passes and returns the best mean so far.
//
// Rows holding NaN or Inf are dropped first; each counts as one of the f Byzantine rows (f' = max(0, f -
// dropped)); with fewer rows than workers (bucketing), f' is also capped at (n' - 1) / 2. ByzFL returns None
// for f = 0 and for n identical rows (its power step divides 0 by 0); here those give the mean.
//
// | parameter    | default                     | meaning                                               |
// |--------------|-----------------------------|-------------------------------------------------------|
// | f            | number of Byzantine workers | Byzantine rows tolerated (needs n > 2f)               |
// | power_iters  | 1                           | power steps per pass (0: exact top eigenpair)         |
// | tau_max_over | active                      | rows over which max tau is taken: active or all       |
// | max_passes   | 10000                       | with tau_max_over = all: stop after this many passes  |
#include <algorithm>
#include <cmath>
#include <limits>
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

using Vector = std::vector<double>;

// B_ij = <x_i - mu, x_j - mu> for mu = sum_k p_k x_k, from the squared distances (row-major n x n).
Vector weighted_centred_gram(const double* dist, std::int64_t n, const Vector& p) {
  Vector r(n, 0.0), gram(n * n);
  double rbar = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t k = 0; k < n; ++k) r[i] += p[k] * dist[i * n + k];
    rbar += p[i] * r[i];
  }
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) gram[i * n + j] = -0.5 * (dist[i * n + j] - r[i] - r[j] + rbar);
  return gram;
}

// (B y)_i for the n x n matrix B.
Vector multiply(const Vector& gram, const Vector& y) {
  const auto n = static_cast<std::int64_t>(y.size());
  Vector out(n, 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) out[i] += gram[i * n + j] * y[j];
  return out;
}

// The top eigenvalue estimate and the projections <z_i, v> on its direction.
struct Direction {
  double value = 0.0;
  Vector projection;
};

class CovarianceBoundFilter : public Aggregator {
 public:
  CovarianceBoundFilter(std::int64_t f, std::int64_t power_iters, bool over_active, std::int64_t max_passes,
                        std::uint64_t seed)
      : f_(f), power_iters_(power_iters), over_active_(over_active), max_passes_(max_passes), seed_(seed),
        generator_(make_generator(seed)) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor index = finite_row_mask(inputs).nonzero().squeeze(1);
    const std::int64_t n = index.numel();
    if (n == 0) throw Error("aggregator 'caf': every message contains NaN or Inf; nothing to aggregate");
    const std::int64_t f = std::min(std::max<std::int64_t>(0, f_ - (inputs.size(0) - n)), (n - 1) / 2);
    at::Tensor x = (n < inputs.size(0) ? inputs.index_select(0, index) : inputs).to(at::kFloat).contiguous();
    if (f == 0) return x.mean(0).to(inputs.scalar_type());
    at::Tensor dist = pairwise_squared_distances(x).contiguous();
    Vector best = filter(x, dist.data_ptr<double>(), n, f);
    at::Tensor weights = at::tensor(best, at::kDouble).to(at::kFloat);
    return at::matmul(weights, x).to(inputs.scalar_type());
  }

  State save_state() const override { return save_generator(generator_); }
  void load_state(const State& state) override { load_generator(state, generator_, seed_, "aggregator 'caf'"); }

 private:
  // The weights p (summing to 1) of the best mean.
  Vector filter(const at::Tensor& x, const double* dist, std::int64_t n, std::int64_t f) {
    Vector c(n, 1.0), best;
    double total = static_cast<double>(n), best_value = std::numeric_limits<double>::infinity();
    for (std::int64_t pass = 0; total > static_cast<double>(n - 2 * f); ++pass) {
      if (!over_active_ && pass == max_passes_) break;
      Vector p(n);
      for (std::int64_t i = 0; i < n; ++i) p[i] = c[i] / total;
      const Vector gram = weighted_centred_gram(dist, n, p);
      const Direction top = power_iters_ == 0 ? exact_direction(gram, p) : estimated_direction(x, gram, p);
      if (top.value < best_value || best.empty()) {
        best_value = top.value;
        best = p;
      }
      if (top.value == 0.0) break;  // the weighted rows coincide: nothing left to filter
      double tau_max = 0.0;
      for (std::int64_t i = 0; i < n; ++i)
        if (!over_active_ || c[i] > 0.0) tau_max = std::max(tau_max, top.projection[i] * top.projection[i]);
      if (!(tau_max > 0.0)) break;
      total = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        c[i] = std::max(0.0, c[i] * (1.0 - top.projection[i] * top.projection[i] / tau_max));
        total += c[i];
      }
    }
    return best;
  }

  // ByzFL's power method: u ~ N(0, I_d) normalized, then w = sum_i p_i <z_i, u> z_i, lambda = ||w||, u = w / lambda.
  Direction estimated_direction(const at::Tensor& x, const Vector& gram, const Vector& p) {
    const std::int64_t n = x.size(0);
    at::Tensor u = at::randn({x.size(1)}, generator_, at::TensorOptions().dtype(at::kDouble));
    u.div_(u.norm());
    // <x_i, u> summed in float64 straight from the float32 rows (no float64 copy of the input), then centred.
    const std::int64_t d = x.size(1);
    const float* rows = x.data_ptr<float>();
    const double* direction = u.data_ptr<double>();
    Vector a(n, 0.0);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < d; ++j) a[i] += static_cast<double>(rows[i * d + j]) * direction[j];
    double centre = 0.0;
    for (std::int64_t i = 0; i < n; ++i) centre += p[i] * a[i];
    Direction top;
    top.projection.resize(n);
    for (std::int64_t i = 0; i < n; ++i) top.projection[i] = a[i] - centre;
    for (std::int64_t step = 0; step < power_iters_; ++step) {
      Vector weighted(n);
      for (std::int64_t i = 0; i < n; ++i) weighted[i] = p[i] * top.projection[i];
      Vector next = multiply(gram, weighted);  // <z_j, w>
      double squared = 0.0;
      for (std::int64_t i = 0; i < n; ++i) squared += weighted[i] * next[i];
      top.value = std::sqrt(std::max(squared, 0.0));
      if (top.value == 0.0) break;
      for (std::int64_t i = 0; i < n; ++i) top.projection[i] = next[i] / top.value;
    }
    return top;
  }

  // The top eigenpair of diag(p)^1/2 B diag(p)^1/2; v = Z^T diag(p)^1/2 e / sqrt(lambda).
  static Direction exact_direction(const Vector& gram, const Vector& p) {
    const auto n = static_cast<std::int64_t>(p.size());
    Vector root(n), scaled(n * n);
    for (std::int64_t i = 0; i < n; ++i) root[i] = std::sqrt(p[i]);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) scaled[i * n + j] = root[i] * gram[i * n + j] * root[j];
    auto [values, vectors] = at::linalg_eigh(at::tensor(scaled, at::kDouble).reshape({n, n}));
    Direction top;
    top.value = std::max(values[n - 1].item<double>(), 0.0);
    top.projection.assign(n, 0.0);
    if (top.value == 0.0) return top;
    at::Tensor e = vectors.select(1, n - 1).contiguous();
    Vector y(n);
    for (std::int64_t i = 0; i < n; ++i) y[i] = root[i] * e[i].item<double>();
    Vector by = multiply(gram, y);
    for (std::int64_t i = 0; i < n; ++i) top.projection[i] = by[i] / std::sqrt(top.value);
    return top;
  }

  std::int64_t f_, power_iters_;
  bool over_active_;
  std::int64_t max_passes_;
  std::uint64_t seed_;
  at::Generator generator_;
};

}  // namespace

PHALANX_PLUGIN("caf", "1.0") {
  registrar.add_aggregator(
      {"caf",
       "covariance-bound agnostic filter: down-weight rows along the top principal direction, keep the weighted "
       "mean with the smallest top eigenvalue",
       {byzantine_count_param(),
        {"power_iters", ParamType::Int, 1, "power steps per pass from a random start (0: exact eigenpair)", 0, 1000},
        {"tau_max_over", ParamType::String, "active", "rows over which max tau is taken (ByzFL: all)", {}, {},
         {"active", "all"}},
        {"max_passes", ParamType::Int, 10000, "with tau_max_over = all, stop after this many passes", 1}}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = byzantine_count(p, c);
        require_honest_majority(p, f, n, "caf");
        return std::make_unique<CovarianceBoundFilter>(f, p.get_int("power_iters"),
                                                       p.get_string("tau_max_over") == "active",
                                                       p.get_int("max_passes"), c.seed());
      });
}
