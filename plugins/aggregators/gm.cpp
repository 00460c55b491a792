// gm: geometric median by the smoothed Weiszfeld algorithm (Pillutla, Kakade, Harchaoui, "Robust
// Aggregation for Federated Learning", IEEE Transactions on Signal Processing 2022, Algorithm 2 "RFA").
//
//   out ~ argmin_z sum_i ||z - x_i||, approximated by
//   z_{t+1} = sum_i w_i x_i / sum_i w_i   with   w_i = 1 / max(nu, ||z_t - x_i||)
//
// for at most `iterations` steps, stopping early once the objective sum_i ||z_t - x_i|| changes by no more
// than `tolerance` times its value (tolerance 0 always runs every step). nu keeps a weight finite when z
// lands on a row.
//
// The paper starts from the mean; this plugin starts from the coordinate-wise median instead,
// because one row of size 1e20 drags the mean so far that a handful of Weiszfeld steps cannot come back,
// while the median starts among the honest rows. A row so far away that its distance overflows gets weight
// 0, which is the limit of 1/distance.
//
// Rows holding NaN or Inf are ignored. The geometric median tolerates any minority of Byzantine rows, so the
// rule has no f.
//
// | parameter  | default | meaning                                                         |
// |------------|---------|-----------------------------------------------------------------|
// | iterations | 8       | Weiszfeld steps at most                                         |
// | nu         | 1e-6    | smoothing: distances below nu count as nu                       |
// | tolerance  | 1e-6    | stop when the objective changes by at most tolerance * objective |
#include <cmath>

#include <ATen/ATen.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class GeometricMedian : public Aggregator {
 public:
  GeometricMedian(std::int64_t iterations, double nu, double tolerance)
      : iterations_(iterations), nu_(nu), tolerance_(tolerance) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor rows = finite_rows(inputs);
    if (rows.size(0) == 0) throw Error("aggregator 'gm': every message contains NaN or Inf; nothing to aggregate");
    at::Tensor z = coordinate_median(rows);
    double previous = 0.0;
    for (std::int64_t t = 0; t < iterations_; ++t) {
      at::Tensor distance = (rows - z).norm(2, /*dim=*/1).to(at::kDouble);  // [n]; +inf where it overflows
      const double objective = distance.sum().item<double>();
      if (t > 0 && std::isfinite(objective) && std::abs(previous - objective) <= tolerance_ * objective) break;
      previous = objective;
      at::Tensor weight = distance.clamp_min(nu_).reciprocal();
      const double total = weight.sum().item<double>();
      if (!(total > 0.0)) break;  // every row overflow-far from z: nothing better than z to offer
      weight.div_(total);
      z = at::matmul(weight.to(rows.scalar_type()), rows);
    }
    return z;
  }

 private:
  std::int64_t iterations_;
  double nu_;
  double tolerance_;
};

}  // namespace

PHALANX_PLUGIN("gm", "1.0") {
  registrar.add_aggregator(
      {"gm",
       "geometric median (smoothed Weiszfeld, started from the coordinate-wise median)",
       {{"iterations", ParamType::Int, 8, "Weiszfeld steps at most", 1, 10000},
        {"nu", ParamType::Double, 1e-6, "smoothing: distances below nu count as nu (> 0)", 1e-30},
        {"tolerance", ParamType::Double, 1e-6,
         "stop when the objective changes by at most tolerance times its value (0: run every step)", 0.0}}},
      [](const Params& p, const Context&) {
        return std::make_unique<GeometricMedian>(p.get_int("iterations"), p.get_double("nu"), p.get_double("tolerance"));
      });
}
