// signguard: SignGuard (Xu, Huang, Zhang, Xie, "SignGuard: Byzantine-robust Federated Learning through
// Collaborative Malicious Gradient Filtering", arXiv 2109.05872, ICDCS 2022). A norm filter and a clustering of
// sign statistics each propose a benign set; the rows in both are clipped to the median norm and averaged.
//
//   nu_i = ||x_i||,  M = median(nu)                                   (even count: mean of the two middle)
//   S1   = { i : L M <= nu_i <= R M }                                 (raw norms)
//   s_i  = (#{j in J : x_ij > 0}, #{x_ij < 0}, #{x_ij = 0}) / |J|      (sign statistics)
//   S2   = the larger cluster of a 2-means clustering of the s_i
//   out  = agg over i in S1 ∩ S2 of x_i min(1, M / nu_i)              (the zero vector if the set is empty)
//
// J is all d coordinates when sign_fraction = 1; otherwise a contiguous block of max(1, floor(sign_fraction d))
// coordinates whose start is uniform in {0, ..., d - |J| - 1}. The 2-means clustering is Lloyd's algorithm from
// k-means++ seeds (first centre a uniform row, the second drawn with probability proportional to the squared
// distance to the first), iterated until the labels settle, restarted n_init times; the restart with the lowest
// inertia is kept (the first on a tie). On equal cluster sizes S2 is the cluster whose centre is nearer the
// coordinate-wise median of the features, then the one holding the lowest row. The block starts and seeds come
// from a generator seeded with this plugin's own seed (Context::seed()), saved by save_state().
//
// References disagree, and this follows the paper and the older Blades (lishenghui/blades history,
// src/blades/aggregators/signguard.py): fedlib (fedlib/fedlib, fedlib/aggregators/signguard.py: class Signguard,
// which current Blades imports) first clips every row to M, so the upper bound R never removes anything, and
// clips with M / (nu_i + 1e-6); its KMeans is scikit-learn's (greedy k-means++ with local trials, random_state
// 0). Here R filters the raw norms, as the paper's Algorithm 1 does, so a row with a huge norm is dropped rather
// than clipped and averaged. On inputs where every norm is <= R M both agree (tests/plugins/aggregator_references_test.cpp).
// The authors' code (JianXu95/SignGuard) clusters with MeanShift and uses a random 10% block: sign_fraction 0.1
// gives the block.
//
// Rows holding NaN or Inf are dropped first. f is not used: the filters need no count of Byzantine rows.
//
// | parameter     | default | meaning                                                        |
// |---------------|---------|----------------------------------------------------------------|
// | L             | 0.1     | lower norm bound, in multiples of the median norm              |
// | R             | 3.0     | upper norm bound, in multiples of the median norm              |
// | sign_fraction | 1.0     | fraction of the coordinates whose signs are counted            |
// | n_init        | 10      | k-means restarts (scikit-learn 1.2's KMeans default)           |
// | agg           | mean    | mean or median (coordinate-wise) of the selected clipped rows  |
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/generator_state.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

using Point = std::array<double, 3>;

double squared_gap(const Point& a, const Point& b) {
  double sum = 0.0;
  for (int k = 0; k < 3; ++k) sum += (a[k] - b[k]) * (a[k] - b[k]);
  return sum;
}

double median_of(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t m = values.size();
  return m % 2 == 1 ? values[m / 2] : 0.5 * (values[m / 2 - 1] + values[m / 2]);
}

struct TwoClusters {
  std::vector<int> label;
  Point centre[2];
  double inertia = std::numeric_limits<double>::infinity();
};

// Lloyd's iterations from the two given centres until no label changes (ties go to cluster 0).
TwoClusters lloyd(const std::vector<Point>& points, const Point& first, const Point& second) {
  const std::size_t n = points.size();
  TwoClusters result;
  result.centre[0] = first;
  result.centre[1] = second;
  result.label.assign(n, -1);
  for (int iteration = 0; iteration < 300; ++iteration) {
    bool changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      const int label = squared_gap(points[i], result.centre[1]) < squared_gap(points[i], result.centre[0]) ? 1 : 0;
      changed = changed || label != result.label[i];
      result.label[i] = label;
    }
    if (!changed) break;
    for (int c = 0; c < 2; ++c) {
      Point sum{0.0, 0.0, 0.0};
      int count = 0;
      for (std::size_t i = 0; i < n; ++i) {
        if (result.label[i] != c) continue;
        for (int k = 0; k < 3; ++k) sum[k] += points[i][k];
        ++count;
      }
      if (count > 0)  // an empty cluster keeps its centre
        for (int k = 0; k < 3; ++k) result.centre[c][k] = sum[k] / count;
    }
  }
  result.inertia = 0.0;
  for (std::size_t i = 0; i < n; ++i) result.inertia += squared_gap(points[i], result.centre[result.label[i]]);
  return result;
}

class SignGuard : public Aggregator {
 public:
  SignGuard(double lower, double upper, double sign_fraction, std::int64_t n_init, bool median, std::uint64_t seed)
      : lower_(lower), upper_(upper), sign_fraction_(sign_fraction), n_init_(n_init), median_(median), seed_(seed),
        generator_(make_generator(seed)) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor finite = finite_rows(inputs);
    const std::int64_t n = finite.size(0), d = inputs.size(1);
    if (n == 0) throw Error("aggregator 'signguard': every message contains NaN or Inf; nothing to aggregate");
    at::Tensor x = finite.to(at::kFloat).contiguous();
    const float* data = x.data_ptr<float>();
    std::vector<double> norm(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) norm[i] = std::sqrt(squared_norm(data + i * d, d));
    const double m = median_of(norm);
    const std::vector<int> label = cluster_signs(sign_features(data, n, d));
    const int benign = larger_cluster(label, sign_features_cache_);
    std::vector<std::int64_t> kept;
    std::vector<float> scale;
    for (std::int64_t i = 0; i < n; ++i) {
      if (label[i] != benign || norm[i] < lower_ * m || norm[i] > upper_ * m) continue;
      kept.push_back(i);
      scale.push_back(static_cast<float>(norm[i] > m ? m / norm[i] : 1.0));
    }
    if (kept.empty()) return at::zeros({d}, inputs.options());
    at::Tensor selected = x.index_select(0, at::tensor(kept, at::kLong)).mul_(at::tensor(scale).unsqueeze(1));
    at::Tensor out = median_ ? coordinate_median(selected) : selected.mean(0);
    return out.to(inputs.scalar_type());
  }

  State save_state() const override { return save_generator(generator_); }
  void load_state(const State& state) override { load_generator(state, generator_, seed_, "aggregator 'signguard'"); }

 private:
  // Fractions of positive, negative and zero values over the block J of each row.
  const std::vector<Point>& sign_features(const float* data, std::int64_t n, std::int64_t d) {
    std::int64_t width = d, start = 0;
    if (sign_fraction_ < 1.0) {
      width = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(sign_fraction_ * static_cast<double>(d))));
      if (width < d) start = draw_below(d - width);
    }
    sign_features_cache_.assign(static_cast<std::size_t>(n), Point{0.0, 0.0, 0.0});
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t positive = 0, negative = 0;
      const float* row = data + i * d + start;
      for (std::int64_t j = 0; j < width; ++j) {
        positive += row[j] > 0.0f;
        negative += row[j] < 0.0f;
      }
      const double w = static_cast<double>(width);
      sign_features_cache_[i] = {positive / w, negative / w, static_cast<double>(width - positive - negative) / w};
    }
    return sign_features_cache_;
  }

  // Uniform in {0, ..., bound - 1}.
  std::int64_t draw_below(std::int64_t bound) {
    return at::randint(bound, {1}, generator_, at::TensorOptions().dtype(at::kLong)).item<std::int64_t>();
  }

  // The labels of the best of n_init 2-means runs from k-means++ seeds.
  std::vector<int> cluster_signs(const std::vector<Point>& points) {
    const auto n = static_cast<std::int64_t>(points.size());
    TwoClusters best;
    for (std::int64_t run = 0; run < n_init_; ++run) {
      const std::int64_t first = draw_below(n);
      std::vector<double> weight(static_cast<std::size_t>(n));
      double total = 0.0;
      for (std::int64_t i = 0; i < n; ++i) total += weight[i] = squared_gap(points[i], points[first]);
      std::int64_t second = first;
      const double target = at::rand({1}, generator_, at::TensorOptions().dtype(at::kDouble)).item<double>() * total;
      if (total > 0.0) {
        double cumulative = 0.0;
        for (second = 0; second < n - 1; ++second) {
          cumulative += weight[second];
          if (cumulative > target && weight[second] > 0.0) break;
        }
      }
      TwoClusters candidate = lloyd(points, points[first], points[second]);
      if (candidate.inertia < best.inertia) best = std::move(candidate);
    }
    return best.label;
  }

  // The larger cluster; on equal sizes the one whose centre is nearer the coordinate-wise median of the
  // features, then the one holding row 0.
  static int larger_cluster(const std::vector<int>& label, const std::vector<Point>& points) {
    std::int64_t size[2] = {0, 0};
    Point centre[2] = {{0.0, 0.0, 0.0}, {0.0, 0.0, 0.0}};
    for (std::size_t i = 0; i < label.size(); ++i) {
      ++size[label[i]];
      for (int k = 0; k < 3; ++k) centre[label[i]][k] += points[i][k];
    }
    if (size[0] != size[1]) return size[1] > size[0] ? 1 : 0;
    Point median;
    for (int k = 0; k < 3; ++k) {
      std::vector<double> column;
      for (const Point& p : points) column.push_back(p[k]);
      median[k] = median_of(column);
      for (int c = 0; c < 2; ++c) centre[c][k] /= static_cast<double>(size[c]);
    }
    const double gap0 = squared_gap(centre[0], median), gap1 = squared_gap(centre[1], median);
    if (gap0 != gap1) return gap1 < gap0 ? 1 : 0;
    return label[0];
  }

  double lower_, upper_, sign_fraction_;
  std::int64_t n_init_;
  bool median_;
  std::uint64_t seed_;
  at::Generator generator_;
  std::vector<Point> sign_features_cache_;
};

}  // namespace

PHALANX_PLUGIN("signguard", "1.0") {
  registrar.add_aggregator(
      {"signguard",
       "SignGuard: rows inside a norm band and in the larger cluster of sign statistics, clipped to the median "
       "norm and averaged",
       {{"L", ParamType::Double, 0.1, "lower norm bound, in multiples of the median norm", 0.0},
        {"R", ParamType::Double, 3.0, "upper norm bound, in multiples of the median norm", 1.0},
        {"sign_fraction", ParamType::Double, 1.0, "fraction of the coordinates whose signs are counted", 1e-9, 1.0},
        {"n_init", ParamType::Int, 10, "k-means restarts; the lowest inertia is kept", 1, 1000},
        {"agg", ParamType::String, "mean", "how the selected rows are combined", {}, {}, {"mean", "median"}}}},
      [](const Params& p, const Context& c) {
        if (p.get_double("L") > 1.0) p.fail("L", "the lower bound must be at most 1 (the median row must pass)");
        return std::make_unique<SignGuard>(p.get_double("L"), p.get_double("R"), p.get_double("sign_fraction"),
                                           p.get_int("n_init"), p.get_string("agg") == "median", c.seed());
      });
}
