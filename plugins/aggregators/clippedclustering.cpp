// clippedclustering: clipped clustering (Li, Ngai, Voigt, "An Experimental Study of Byzantine-Robust Aggregation
// Schemes in Federated Learning", IEEE Transactions on Big Data, 2023). Every row is clipped to the median of all
// norms seen so far, the rows are split in two by agglomerative clustering on cosine distance, and the larger
// part is averaged.
//
//   nu_i = ||x_i||; every nu_i joins the history;  tau = min(median(history), max_tau)
//   x_i <- x_i tau / (nu_i + 1e-6)  if nu_i > tau                         (fedlib's clip factor)
//   D_ij = 1 - cos(x_i, x_j)  (cos = 0 when a norm is 0),  D_ii = 0
//   agglomerative clustering on D (average linkage: mean of D over cross pairs; single: the minimum), merging the
//   closest pair of clusters (the first pair in index order on a tie) until two are left, A and B
//   out = mean (or coordinate-wise median) of the clipped rows of B if |B| > floor(n / 2), else of A
//
// A is the cluster formed by the later merge (a single row counts as formed before any merge; between two single
// rows, the one with the higher index). That is the labelling scikit-learn's AgglomerativeClustering gives (A gets
// label 0) and to which fedlib (fedlib/fedlib, fedlib/aggregators/clippedclustering.py: class Clippedclustering,
// which current Blades imports) applies "label 1 if more than n // 2 rows carry it": so A wins a tie in size.
// Clipping scales rows by positive factors, which leaves every cosine unchanged, so D is computed from the
// unclipped rows (one float64 Gram matrix through phalanx::pairwise_squared_distances).
//
// The history is state: it lives in two heaps (the lower half a max-heap, the upper half a min-heap), so the
// median costs O(log N) per norm instead of a sort of all N norms each round, and it is saved in checkpoints.
// Rows holding NaN or Inf are dropped first and their norms are not recorded (fedlib records NaN norms, which
// turn its median to NaN and switch clipping off for the rest of the run). f is not used.
//
// | parameter | default | meaning                                               |
// |-----------|---------|-------------------------------------------------------|
// | max_tau   | 1e5     | upper bound on the clipping threshold                 |
// | linkage   | average | cluster distance: average or single                   |
// | agg       | mean    | mean or median (coordinate-wise) of the selected rows |
#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/distances.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

// A multiset of numbers with its median: the lower half in a max-heap, the upper half in a min-heap, sizes equal
// or the lower one larger by one.
class RunningMedian {
 public:
  void add(double value) {
    if (lower_.empty() || value <= lower_.top()) lower_.push(value); else upper_.push(value);
    if (lower_.size() > upper_.size() + 1) {
      upper_.push(lower_.top());
      lower_.pop();
    } else if (upper_.size() > lower_.size()) {
      lower_.push(upper_.top());
      upper_.pop();
    }
  }
  double median() const {
    return lower_.size() > upper_.size() ? lower_.top() : 0.5 * (lower_.top() + upper_.top());
  }
  bool empty() const { return lower_.empty(); }
  std::vector<double> values() const {
    std::vector<double> all;
    for (auto lower = lower_; !lower.empty(); lower.pop()) all.push_back(lower.top());
    for (auto upper = upper_; !upper.empty(); upper.pop()) all.push_back(upper.top());
    return all;
  }
  void clear() { lower_ = {}; upper_ = {}; }

 private:
  std::priority_queue<double> lower_;
  std::priority_queue<double, std::vector<double>, std::greater<double>> upper_;
};

struct Cluster {
  std::vector<std::int64_t> rows;
  std::int64_t formed = -1;  // the merge step that formed it; -1 for a single row
};

// The two clusters left after merging the closest pair until two remain. dist is n x n, row-major.
std::pair<Cluster, Cluster> last_two(const std::vector<double>& dist, std::int64_t n, bool single) {
  std::vector<Cluster> clusters(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) clusters[i].rows = {i};
  std::vector<std::vector<double>> gap(n, std::vector<double>(n));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) gap[i][j] = dist[i * n + j];
  for (std::int64_t step = 0; clusters.size() > 2; ++step) {
    std::size_t a = 0, b = 1;
    for (std::size_t i = 0; i < clusters.size(); ++i)
      for (std::size_t j = i + 1; j < clusters.size(); ++j)
        if (gap[i][j] < gap[a][b]) a = i, b = j;
    const double size_a = static_cast<double>(clusters[a].rows.size());
    const double size_b = static_cast<double>(clusters[b].rows.size());
    for (std::size_t k = 0; k < clusters.size(); ++k) {
      if (k == a || k == b) continue;
      const double merged = single ? std::min(gap[a][k], gap[b][k])
                                   : (size_a * gap[a][k] + size_b * gap[b][k]) / (size_a + size_b);
      gap[a][k] = gap[k][a] = merged;
    }
    clusters[a].rows.insert(clusters[a].rows.end(), clusters[b].rows.begin(), clusters[b].rows.end());
    clusters[a].formed = step;
    clusters.erase(clusters.begin() + static_cast<std::ptrdiff_t>(b));
    gap.erase(gap.begin() + static_cast<std::ptrdiff_t>(b));
    for (auto& row : gap) row.erase(row.begin() + static_cast<std::ptrdiff_t>(b));
  }
  return {clusters[0], clusters[1]};
}

class ClippedClustering : public Aggregator {
 public:
  ClippedClustering(double max_tau, bool single, bool median) : max_tau_(max_tau), single_(single), median_(median) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor x = finite_rows(inputs).to(at::kFloat).contiguous();
    const std::int64_t n = x.size(0), d = x.size(1);
    if (n == 0) throw Error("aggregator 'clippedclustering': every message contains NaN or Inf; nothing to aggregate");
    at::Tensor dist = pairwise_squared_distances(x).contiguous();
    std::vector<double> norm(static_cast<std::size_t>(n));
    const float* data = x.data_ptr<float>();
    for (std::int64_t i = 0; i < n; ++i) history_.add(norm[i] = std::sqrt(squared_norm(data + i * d, d)));
    const double tau = std::min(history_.median(), max_tau_);
    std::vector<float> scale(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) scale[i] = static_cast<float>(norm[i] > tau ? tau / (norm[i] + 1e-6) : 1.0);
    at::Tensor clipped = x.mul(at::tensor(scale).unsqueeze(1));
    const std::vector<std::int64_t> selected = n == 1 ? std::vector<std::int64_t>{0} : select(dist, norm);
    at::Tensor chosen = clipped.index_select(0, at::tensor(selected, at::kLong));
    return (median_ ? coordinate_median(chosen) : chosen.mean(0)).to(inputs.scalar_type());
  }

  State save_state() const override {
    if (history_.empty()) return {};
    return {{"norms", at::tensor(history_.values(), at::kDouble)}};
  }
  void load_state(const State& state) override {
    history_.clear();
    auto it = state.find("norms");
    if (it == state.end()) return;
    at::Tensor norms = it->second.to(at::kDouble).contiguous();
    for (std::int64_t i = 0; i < norms.numel(); ++i) history_.add(norms.data_ptr<double>()[i]);
  }

 private:
  // The rows of the cluster to average, in increasing order.
  std::vector<std::int64_t> select(const at::Tensor& squared_distances, const std::vector<double>& norm) const {
    const auto n = static_cast<std::int64_t>(norm.size());
    const double* d2 = squared_distances.data_ptr<double>();
    std::vector<double> cosine_distance(static_cast<std::size_t>(n * n), 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        if (i == j) continue;
        const double product = 0.5 * (norm[i] * norm[i] + norm[j] * norm[j] - d2[i * n + j]);
        const double cosine = norm[i] > 0.0 && norm[j] > 0.0 ? product / (norm[i] * norm[j]) : 0.0;
        cosine_distance[i * n + j] = 1.0 - std::clamp(cosine, -1.0, 1.0);
      }
    }
    auto [first, second] = last_two(cosine_distance, n, single_);
    // A: formed by the later merge; between two single rows, the higher index.
    auto key = [](const Cluster& c) { return std::make_pair(c.formed, c.rows.front()); };
    const Cluster& a = key(first) > key(second) ? first : second;
    const Cluster& b = &a == &first ? second : first;
    std::vector<std::int64_t> rows = static_cast<std::int64_t>(b.rows.size()) > n / 2 ? b.rows : a.rows;
    std::sort(rows.begin(), rows.end());
    return rows;
  }

  double max_tau_;
  bool single_, median_;
  RunningMedian history_;
};

}  // namespace

PHALANX_PLUGIN("clippedclustering", "1.0") {
  registrar.add_aggregator(
      {"clippedclustering",
       "clip to the median of all norms seen, split by agglomerative clustering on cosine distance, average the "
       "larger part",
       {{"max_tau", ParamType::Double, 1e5, "upper bound on the clipping threshold", 1e-12},
        {"linkage", ParamType::String, "average", "cluster distance", {}, {}, {"average", "single"}},
        {"agg", ParamType::String, "mean", "how the selected rows are combined", {}, {}, {"mean", "median"}}}},
      [](const Params& p, const Context&) {
        return std::make_unique<ClippedClustering>(p.get_double("max_tau"), p.get_string("linkage") == "single",
                                                   p.get_string("agg") == "median");
      });
}
