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
// while the median starts among the honest rows. Distances are summed in float64 (a finite float32 row cannot
// overflow them); a weight that underflows is 0, the limit of 1/distance.
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
#include "phalanx/row_math.hpp"
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
      at::Tensor distance = distances_to(rows, z);  // [n] float64
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
  // ||x_i - z|| for every row, one pass over the rows with float64 sums (phalanx::squared_distance) rather
  // than a [n, d] tensor of differences.
  static at::Tensor distances_to(const at::Tensor& rows, const at::Tensor& z) {
    if (rows.scalar_type() != at::kFloat || z.scalar_type() != at::kFloat)
      return (rows - z).norm(2, /*dim=*/1).to(at::kDouble);
    const at::Tensor x = rows.contiguous(), centre = z.contiguous();
    const std::int64_t n = x.size(0), d = x.size(1);
    at::Tensor out = at::empty({n}, at::kDouble);
    for (std::int64_t i = 0; i < n; ++i)
      out.data_ptr<double>()[i] = std::sqrt(squared_distance(x.data_ptr<float>() + i * d, centre.data_ptr<float>(), d));
    return out;
  }

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
