// smea: smallest maximum eigenvalue averaging (Allouah, Guerraoui, Gupta, Pinot, Stephan, "On the
// Privacy-Robustness-Utility Trilemma in Distributed Learning", ICML 2023).
//
//   S*  = argmin over subsets S of n - f rows of  lambda_max( sum_{i in S} (x_i - mu_S)(x_i - mu_S)^T )
//   out = mu_S* = (1/(n - f)) sum_{i in S*} x_i
//
// Subsets are visited in lexicographic order of their sorted index tuples (Python's
// itertools.combinations(range(n), n - f)); the first subset with the smallest value wins (strict <).
//
// lambda_max is computed without ever forming a d x d matrix: the scatter matrix of S has the same nonzero
// eigenvalues as the centred Gram block B_S = -1/2 J D_S J (J the centring matrix, D_S the squared distances
// among S, from phalanx::pairwise_squared_distances, one float64 Gram matrix for all subsets), an
// (n - f) x (n - f) matrix. So after the O(n^2 d) distance matrix the search does not depend on d.
//
// power_iters = 0 (the default) takes the exact top eigenvalue of every B_S (LAPACK, in batches). power_iters =
// P >= 1 is ByzFL's estimate (LPD-EPFL/byzfl, byzfl/aggregators/aggregators.py: class SMEA, P = 1): from a
// start vector u ~ N(0, I_d) drawn for each subset in subset order, P power steps w = sum_i <z_i, u> z_i,
// lambda = ||w||, u <- w / lambda. Only the first projections <x_i, u> touch d coordinates; the later steps
// run on B_S. Why the default differs from ByzFL's P = 1: one power step underestimates lambda_max by a
// random amount, so the pick varies with the start vectors and can miss the argmin (on ByzFL's own documented
// example, rows (1,2,3), (4,5,6), (7,8,9) with f = 1, the start vectors of tests/plugins/aggregator_references_test.cpp
// give the worst subset's mean (4,5,6) where the exact answer is (2.5,3.5,4.5)), and a start vector drawn per
// subset index makes the result depend on the order of the rows. The exact mode is deterministic, independent of
// the row order (up to exact ties) and cheaper at large d. The start vectors come from a generator seeded with
// this plugin's own seed (Context::seed()); its position is saved by save_state() so a resumed run draws the
// same vectors.
//
// The search visits C(n, f) subsets, so it is refused (an error naming max_subsets) when C(n, f) exceeds
// max_subsets. Rows holding NaN or Inf are dropped first; each counts as one of the f Byzantine rows (f' =
// max(0, f - dropped)); with fewer rows than workers (bucketing), f' is also capped at (n' - 1) / 2. An
// estimate of exactly 0 (all rows of S coincide) counts as 0, where ByzFL's division gives NaN.
//
// | parameter   | default                     | meaning                                                |
// |-------------|-----------------------------|--------------------------------------------------------|
// | f           | number of Byzantine workers | Byzantine rows tolerated (needs n > 2f)                |
// | power_iters | 0                           | 0: exact eigenvalue; P >= 1: P power steps (ByzFL: 1)  |
// | max_subsets | 1000000                     | refuse inputs with more than this many subsets C(n, f) |
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

// C(n, k), saturated at `cap` + 1 so that a huge count never overflows.
std::int64_t binomial_capped(std::int64_t n, std::int64_t k, std::int64_t cap) {
  k = std::min(k, n - k);
  double count = 1.0;
  for (std::int64_t i = 1; i <= k; ++i) {
    count = count * static_cast<double>(n - k + i) / static_cast<double>(i);
    if (count > static_cast<double>(cap)) return cap + 1;
  }
  return static_cast<std::int64_t>(std::llround(count));
}

std::string too_many_subsets(std::int64_t n, std::int64_t f, std::int64_t max_subsets) {
  return "smea searches all C(n, f) subsets of n - f rows; with n = " + std::to_string(n) + " and f = " +
         std::to_string(f) + " that is more than max_subsets = " + std::to_string(max_subsets) +
         ". Raise max_subsets (the search time grows with it), lower f, or use caf, which approximates smea in "
         "polynomial time.";
}

// The centred Gram block of the rows `subset`: B = -1/2 (D - r 1^T - 1 r^T + rbar), r_i the mean of row i of D
// over the subset. Written row-major into `out` (m x m).
void centred_gram(const double* dist, std::int64_t n, const std::vector<std::int64_t>& subset, double* out) {
  const auto m = static_cast<std::int64_t>(subset.size());
  std::vector<double> r(static_cast<std::size_t>(m), 0.0);
  double rbar = 0.0;
  for (std::int64_t a = 0; a < m; ++a) {
    for (std::int64_t b = 0; b < m; ++b) r[a] += dist[subset[a] * n + subset[b]];
    r[a] /= static_cast<double>(m);
    rbar += r[a];
  }
  rbar /= static_cast<double>(m);
  for (std::int64_t a = 0; a < m; ++a)
    for (std::int64_t b = 0; b < m; ++b)
      out[a * m + b] = -0.5 * (dist[subset[a] * n + subset[b]] - r[a] - r[b] + rbar);
}

// Advances `subset` (sorted indices into 0..n-1) to the next one in lexicographic order; false after the last.
bool next_subset(std::vector<std::int64_t>& subset, std::int64_t n) {
  const auto m = static_cast<std::int64_t>(subset.size());
  std::int64_t i = m - 1;
  while (i >= 0 && subset[i] == n - m + i) --i;
  if (i < 0) return false;
  ++subset[i];
  for (std::int64_t j = i + 1; j < m; ++j) subset[j] = subset[j - 1] + 1;
  return true;
}

// <x, u> with x float32 and u float64, summed in float64.
double dot(const float* x, const double* u, std::int64_t d) {
  double sum = 0.0;
  for (std::int64_t j = 0; j < d; ++j) sum += static_cast<double>(x[j]) * u[j];
  return sum;
}

class SmallestMaxEigenvalueAveraging : public Aggregator {
 public:
  SmallestMaxEigenvalueAveraging(std::int64_t f, std::int64_t power_iters, std::int64_t max_subsets,
                                 std::uint64_t seed)
      : f_(f), power_iters_(power_iters), max_subsets_(max_subsets), seed_(seed), generator_(make_generator(seed)) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor index = finite_row_mask(inputs).nonzero().squeeze(1);
    const std::int64_t n = index.numel();
    if (n == 0) throw Error("aggregator 'smea': every message contains NaN or Inf; nothing to aggregate");
    const std::int64_t f = std::min(std::max<std::int64_t>(0, f_ - (inputs.size(0) - n)), (n - 1) / 2);
    at::Tensor x = n < inputs.size(0) ? inputs.index_select(0, index) : inputs;
    if (f == 0) return x.mean(0);
    if (binomial_capped(n, f, max_subsets_) > max_subsets_)
      throw Error("aggregator 'smea': " + too_many_subsets(n, f, max_subsets_));
    at::Tensor dist = pairwise_squared_distances(x).contiguous();
    std::vector<std::int64_t> best = power_iters_ == 0 ? exact_search(dist, n - f) : estimated_search(x, dist, n - f);
    return x.index_select(0, at::tensor(best, at::kLong)).mean(0);
  }

  State save_state() const override { return save_generator(generator_); }
  void load_state(const State& state) override { load_generator(state, generator_, seed_, "aggregator 'smea'"); }

 private:
  // Exact top eigenvalues of the centred Gram blocks, in batches of subsets (one LAPACK call per batch).
  std::vector<std::int64_t> exact_search(const at::Tensor& dist, std::int64_t m) const {
    const std::int64_t n = dist.size(0);
    constexpr std::int64_t kBatch = 1024;
    at::Tensor blocks = at::empty({kBatch, m, m}, at::kDouble);
    std::vector<std::int64_t> subset(static_cast<std::size_t>(m)), best;
    for (std::int64_t i = 0; i < m; ++i) subset[i] = i;
    std::vector<std::vector<std::int64_t>> batch;
    double best_value = std::numeric_limits<double>::infinity();
    bool more = true;
    while (more) {
      batch.clear();
      while (more && static_cast<std::int64_t>(batch.size()) < kBatch) {
        centred_gram(dist.data_ptr<double>(), n, subset, blocks.data_ptr<double>() + batch.size() * m * m);
        batch.push_back(subset);
        more = next_subset(subset, n);
      }
      const auto count = static_cast<std::int64_t>(batch.size());
      at::Tensor top = at::linalg_eigvalsh(blocks.narrow(0, 0, count)).select(1, m - 1).contiguous();
      const double* value = top.data_ptr<double>();
      for (std::int64_t s = 0; s < count; ++s) {
        if (value[s] < best_value) {
          best_value = value[s];
          best = batch[s];
        }
      }
    }
    return best;
  }

  // ByzFL's estimate: P power steps from a random start vector per subset.
  std::vector<std::int64_t> estimated_search(const at::Tensor& rows, const at::Tensor& dist, std::int64_t m) {
    const std::int64_t n = dist.size(0), d = rows.size(1);
    at::Tensor x = rows.to(at::kFloat).contiguous();
    const float* data = x.data_ptr<float>();
    std::vector<std::int64_t> subset(static_cast<std::size_t>(m)), best;
    for (std::int64_t i = 0; i < m; ++i) subset[i] = i;
    std::vector<double> gram(static_cast<std::size_t>(m * m)), c(m), next(m);
    double best_value = std::numeric_limits<double>::infinity();
    do {
      at::Tensor u = at::randn({d}, generator_, at::TensorOptions().dtype(at::kDouble));
      const double* start = u.data_ptr<double>();
      const double norm = std::sqrt(dot_self(start, d));
      double mean = 0.0;
      for (std::int64_t a = 0; a < m; ++a) mean += c[a] = dot(data + subset[a] * d, start, d) / norm;
      mean /= static_cast<double>(m);
      for (double& v : c) v -= mean;  // <z_i, u> = <x_i, u> - <mu_S, u>
      centred_gram(dist.data_ptr<double>(), n, subset, gram.data());
      double value = 0.0;
      for (std::int64_t step = 0; step < power_iters_; ++step) {
        // w = sum_i c_i z_i: ||w||^2 = c^T B c, and the next projections <z_j, w / ||w||> = (B c)_j / ||w||.
        double squared = 0.0;
        for (std::int64_t a = 0; a < m; ++a) {
          next[a] = 0.0;
          for (std::int64_t b = 0; b < m; ++b) next[a] += gram[a * m + b] * c[b];
          squared += c[a] * next[a];
        }
        value = std::sqrt(std::max(squared, 0.0));
        if (value == 0.0) break;
        for (std::int64_t a = 0; a < m; ++a) c[a] = next[a] / value;
      }
      if (value < best_value) {
        best_value = value;
        best = subset;
      }
    } while (next_subset(subset, n));
    return best;
  }

  static double dot_self(const double* u, std::int64_t d) {
    double sum = 0.0;
    for (std::int64_t j = 0; j < d; ++j) sum += u[j] * u[j];
    return sum;
  }

  std::int64_t f_, power_iters_, max_subsets_;
  std::uint64_t seed_;
  at::Generator generator_;
};

}  // namespace

PHALANX_PLUGIN("smea", "1.0") {
  registrar.add_aggregator(
      {"smea",
       "smallest maximum eigenvalue averaging: mean of the n - f rows whose covariance has the smallest top "
       "eigenvalue",
       {byzantine_count_param(),
        {"power_iters", ParamType::Int, 0, "0: exact top eigenvalue; P >= 1: P power steps from a random start "
                                           "(ByzFL uses 1)", 0, 1000},
        {"max_subsets", ParamType::Int, 1000000, "refuse inputs whose C(n, f) subsets exceed this", 1}}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = byzantine_count(p, c);
        const std::int64_t max_subsets = p.get_int("max_subsets");
        require_honest_majority(p, f, n, "smea");
        if (f > 0 && binomial_capped(n, f, max_subsets) > max_subsets)
          p.fail("max_subsets", too_many_subsets(n, f, max_subsets));
        return std::make_unique<SmallestMaxEigenvalueAveraging>(f, p.get_int("power_iters"), max_subsets, c.seed());
      });
}
