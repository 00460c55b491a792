// phocas: Phocas (Xie, Koyejo, Gupta, "Phocas: dimensional Byzantine-resilient stochastic gradient
// descent", arXiv:1805.09682, 2018).
//
//   per coordinate j, with x_(1)[j] <= ... <= x_(n)[j] the sorted values and the trimmed mean
//   tm[j] = 1/(n - 2f) * sum_{k = f+1}^{n-f} x_(k)[j]:
//   out[j] = 1/(n - f) * sum of the n - f values x_i[j] closest to tm[j]
//
// Needs n > 2f, refused otherwise. Columns are sorted with the SDK's sorting network
// (phalanx::reduce_sorted_columns) inside phalanx::coordinate_mean_closest_to; of two values equally close
// to the trimmed mean the lower one is kept, so the result depends only on the values, not on the order of the rows.
//
// Rows holding NaN or Inf are dropped first. They are Byzantine by definition, so each one dropped is one
// of the f values the rule had to leave out: the remaining n' rows use f' = max(0, f - dropped), which keeps
// n - f values per coordinate. When fewer rows arrive than there are workers (a pre-aggregator such as
// bucketing shrank them), f' is also capped at (n' - 1) / 2.
//
// | parameter | default                    | meaning                                 |
// |-----------|----------------------------|-----------------------------------------|
// | f         | number of Byzantine workers | Byzantine rows the rule must tolerate |
#include <algorithm>
#include <string>

#include <ATen/ATen.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/helpers/byzantine_count.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class Phocas : public Aggregator {
 public:
  explicit Phocas(std::int64_t f) : f_(f) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    // Usually every row is finite: then the sort's own pass over the input checks that, and no separate
    // pass is made to look for NaN/Inf rows (as in cm; docs/BENCHMARKS.md).
    const std::int64_t all = inputs.size(0), f_all = std::min(f_, (all - 1) / 2);
    if (f_all > 0 && inputs.dim() == 2 && inputs.scalar_type() == at::kFloat) {
      bool finite = true;
      at::Tensor out = coordinate_mean_closest_to(inputs, all - f_all, ColumnCentre::TrimmedMean, f_all, &finite);
      if (finite) return out;
    }
    at::Tensor rows = finite_rows(inputs);
    const std::int64_t n = rows.size(0);
    if (n == 0) throw Error("aggregator 'phocas': every message contains NaN or Inf; nothing to aggregate");
    const std::int64_t f = std::min(std::max<std::int64_t>(0, f_ - (inputs.size(0) - n)), (n - 1) / 2);
    if (f == 0) return rows.mean(0);
    return coordinate_mean_closest_to(rows, n - f, ColumnCentre::TrimmedMean, f);
  }

 private:
  std::int64_t f_;
};

}  // namespace

PHALANX_PLUGIN("phocas", "1.0") {
  registrar.add_aggregator(
      {"phocas",
       "Phocas: per coordinate, the mean of the n - f values closest to the trimmed mean",
       {byzantine_count_param()}},
      [](const Params& p, const Context& c) {
        const std::int64_t n = c.run().workers;
        const std::int64_t f = byzantine_count(p, c);
        require_honest_majority(p, f, n,
                                "Phocas keeps the n - f values of every coordinate nearest to the trimmed mean "
                                "(trimming f at each end) and");
        return std::make_unique<Phocas>(f);
      });
}
