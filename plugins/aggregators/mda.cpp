// mda: minimum-diameter averaging (El Mhamdi, Guerraoui, Rouault, "Distributed Momentum for
// Byzantine-resilient Stochastic Gradient Descent", ICLR 2021; the subset idea is Rousseeuw's minimum
// volume ellipsoid, 1985).
//
//   S*  = argmin over subsets S of n - f rows of  diam(S) = max_{i, j in S} ||x_i - x_j||
//   out = (1/(n - f)) sum_{i in S*} x_i
//
// Needs n > 2f. The search is exponential (C(n, f) subsets), so mda refuses n > 25 and asks for another
// rule; a branch-and-bound search over the distance matrix (phalanx::pairwise_squared_distances, one Gram
// matrix) abandons a partial subset as soon as its diameter reaches the best one found, which makes typical
// inputs far cheaper than the worst case.
//
// Rows holding NaN or Inf are dropped first (they are infinitely far from every row, so any subset holding
// one has an infinite diameter); each one dropped is one of the f Byzantine rows, so the remaining n' rows
// use f' = max(0, f - dropped), which keeps the subset size n - f. When fewer rows arrive than there are
// workers (bucketing shrank them), f' is also capped at (n' - 1) / 2. Exact ties between subsets go to the
// first found.
//
// | parameter | default                    | meaning                                 |
// |-----------|----------------------------|-----------------------------------------|
// | f         | number of Byzantine workers | Byzantine rows the rule must tolerate |
#include <algorithm>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/distances.hpp"
#include "phalanx/helpers/byzantine_count.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

constexpr std::int64_t kMaxWorkers = 25;

// Depth-first search over subsets of `size` rows in increasing index order, keeping the one with the
// smallest diameter (squared distances compare like distances).
class DiameterSearch {
 public:
  DiameterSearch(const at::Tensor& dist, std::int64_t size)
      : n_(dist.size(0)), size_(size), dist_(dist.contiguous()), d_(dist_.data_ptr<double>()) {}

  std::vector<std::int64_t> run() {
    extend(0, 0.0);
    return best_;
  }

 private:
  void extend(std::int64_t next, double diameter) {
    if (static_cast<std::int64_t>(current_.size()) == size_) {
      if (best_.empty() || diameter < best_diameter_) {
        best_ = current_;
        best_diameter_ = diameter;
      }
      return;
    }
    const std::int64_t last = n_ - (size_ - static_cast<std::int64_t>(current_.size()));
    for (std::int64_t i = next; i <= last; ++i) {
      double grown = diameter;
      for (std::int64_t j : current_) grown = std::max(grown, d_[i * n_ + j]);
      if (!best_.empty() && grown >= best_diameter_) continue;  // adding rows never shrinks a diameter
      current_.push_back(i);
      extend(i + 1, grown);
      current_.pop_back();
    }
  }

  std::int64_t n_, size_;
  at::Tensor dist_;
  const double* d_;
  std::vector<std::int64_t> current_, best_;
  double best_diameter_ = 0.0;
};

std::string too_many_workers(std::int64_t n) {
  return "minimum-diameter averaging searches all subsets of n - f of the n messages, which is exponential in "
         "n; it is limited to n <= " + std::to_string(kMaxWorkers) + " and got n = " + std::to_string(n) +
         ". Use multikrum, bulyan or gm for more workers.";
}

class MinimumDiameterAveraging : public Aggregator {
 public:
  explicit MinimumDiameterAveraging(std::int64_t f) : f_(f) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    if (inputs.size(0) > kMaxWorkers) throw Error("aggregator 'mda': " + too_many_workers(inputs.size(0)));
    at::Tensor index = finite_row_mask(inputs).nonzero().squeeze(1);
    const std::int64_t n = index.numel();
    if (n == 0) throw Error("aggregator 'mda': every message contains NaN or Inf; nothing to aggregate");
    const std::int64_t f = std::min(std::max<std::int64_t>(0, f_ - (inputs.size(0) - n)), (n - 1) / 2);
    if (f == 0) return inputs.index_select(0, index).mean(0);
    at::Tensor dist = pairwise_squared_distances(inputs);
    if (n < inputs.size(0)) dist = dist.index_select(0, index).index_select(1, index);
    std::vector<std::int64_t> subset = DiameterSearch(dist, n - f).run();
    return inputs.index_select(0, index.index_select(0, at::tensor(subset, at::kLong))).mean(0);
  }

 private:
  std::int64_t f_;
};

}  // namespace

PHALANX_PLUGIN("mda", "1.0") {
  registrar.add_aggregator(
      {"mda",
       "minimum-diameter averaging: mean of the n - f rows with the smallest diameter (n <= 25)",
       {byzantine_count_param()}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = byzantine_count(p, c);
        // The worker count is not one of mda's parameters; the error points at the choice of aggregator.
        if (n > kMaxWorkers) p.fail("name", too_many_workers(n));
        require_honest_majority(p, f, n, "minimum-diameter averaging");
        return std::make_unique<MinimumDiameterAveraging>(f);
      });
}
