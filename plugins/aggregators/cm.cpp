// cm: coordinate-wise median (Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning:
// Towards Optimal Statistical Rates", ICML 2018).
//
//   out[j] = median(x_1[j], ..., x_n[j])   (the mean of the two middle values when n is even)
//
// Rows holding NaN or Inf are dropped first (they are Byzantine by definition).
#include <ATen/ATen.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class CoordinateMedian : public Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override {
    // Usually every row is finite: then the median's own pass over the input checks that, and no separate
    // pass is made to look for NaN/Inf rows (docs/BENCHMARKS.md).
    bool finite = true;
    at::Tensor median = coordinate_median(inputs, &finite);
    if (finite) return median;
    at::Tensor rows = finite_rows(inputs);
    const std::int64_t n = rows.size(0);
    if (n == 0) throw Error("aggregator 'cm': every message contains NaN or Inf; nothing to aggregate");
    return coordinate_median(rows);
  }
};

}  // namespace

PHALANX_PLUGIN("cm", "1.0") {
  registrar.add_aggregator({"cm", "coordinate-wise median", {}},
                           [](const Params&, const Context&) { return std::make_unique<CoordinateMedian>(); });
}
