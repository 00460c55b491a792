// monna: mean around the nearest neighbours of a trusted row (Farhadkhani, Guerraoui, Gupta, Hoang, Pinot,
// Stephan, "Robust Collaborative Learning with Linear Gradient Overhead", ICML 2023).
//
//   delta_i = ||x_i - x_r||,  r the trusted row (delta_r = 0, so x_r is always kept)
//   out     = mean of the n - f rows with the smallest delta_i   (ties go to the lower index)
//
// Peer to peer, the trusted row is the aggregating node's own vector; in a server run it is the row of a
// worker the configuration declares honest. Rows are identified by their position in the round, as ByzFL's
// idx (LPD-EPFL/byzfl, byzfl/aggregators/aggregators.py: class MoNNA): with the default trusted = 0 and the
// Byzantine workers the last b, the first worker's message is trusted. The result therefore depends on which
// row is the trusted one (not on the order of the others), and a pre-aggregator that mixes or shuffles rows
// (nnm, bucketing) changes what row `trusted` holds.
//
// Rows holding NaN or Inf are dropped first (as if infinitely far); each counts as one of the f Byzantine rows
// (f' = max(0, f - dropped)); with fewer rows than workers, f' is also capped at (n' - 1) / 2. A non-finite or
// missing trusted row is an error: the rule has nothing to stand on.
//
// | parameter | default                     | meaning                                 |
// |-----------|-----------------------------|-----------------------------------------|
// | f         | number of Byzantine workers | Byzantine rows tolerated (needs n > 2f) |
// | trusted   | 0                           | position of the trusted row             |
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/helpers/byzantine_count.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"

namespace {

using namespace phalanx;

class MeanAroundTrustedRow : public Aggregator {
 public:
  MeanAroundTrustedRow(std::int64_t f, std::int64_t trusted) : f_(f), trusted_(trusted) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    const std::int64_t rows = inputs.size(0), d = inputs.size(1);
    if (trusted_ >= rows) {
      throw Error("aggregator 'monna': the trusted row " + std::to_string(trusted_) + " does not exist, only " +
                  std::to_string(rows) + " rows arrived (a pre-aggregator may have merged them)");
    }
    at::Tensor x = inputs.to(at::kFloat).contiguous();
    const float* data = x.data_ptr<float>();
    const float* anchor = data + trusted_ * d;
    // One pass: the distances to the trusted row (not finite exactly for rows holding NaN or Inf).
    std::vector<double> distance(static_cast<std::size_t>(rows));
    std::vector<std::int64_t> finite;
    for (std::int64_t i = 0; i < rows; ++i) {
      distance[i] = squared_distance(data + i * d, anchor, d);
      if (std::isfinite(distance[i])) finite.push_back(i);
    }
    if (!std::isfinite(squared_norm(anchor, d)))
      throw Error("aggregator 'monna': the trusted row " + std::to_string(trusted_) + " contains NaN or Inf");
    const auto n = static_cast<std::int64_t>(finite.size());
    const std::int64_t f = std::min(std::max<std::int64_t>(0, f_ - (rows - n)), (n - 1) / 2);
    std::stable_sort(finite.begin(), finite.end(),
                     [&](std::int64_t a, std::int64_t b) { return distance[a] < distance[b]; });
    finite.resize(static_cast<std::size_t>(n - f));
    std::sort(finite.begin(), finite.end());  // sum in row order
    return x.index_select(0, at::tensor(finite, at::kLong)).mean(0).to(inputs.scalar_type());
  }

 private:
  std::int64_t f_, trusted_;
};

}  // namespace

PHALANX_PLUGIN("monna", "1.0") {
  registrar.add_aggregator(
      {"monna",
       "mean of the n - f rows nearest to a trusted row",
       {byzantine_count_param(),
        {"trusted", ParamType::Int, 0, "position of the trusted (honest) row in the round", 0}}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = byzantine_count(p, c);
        const std::int64_t trusted = p.get_int("trusted");
        require_honest_majority(p, f, n, "monna");
        if (trusted >= n) {
          p.fail("trusted", "the trusted row must be one of the n = " + std::to_string(n) + " workers' rows (0.." +
                                std::to_string(n - 1) + "); got " + std::to_string(trusted) + ".");
        }
        if (trusted >= n - c.run().byzantine) {
          p.fail("trusted", "row " + std::to_string(trusted) + " belongs to a Byzantine worker (the last " +
                                std::to_string(c.run().byzantine) + " of " + std::to_string(n) +
                                "); monna must trust an honest row.");
        }
        return std::make_unique<MeanAroundTrustedRow>(f, trusted);
      });
}
