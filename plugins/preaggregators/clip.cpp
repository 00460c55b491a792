// clip: static norm clipping of every row (e.g. Karimireddy, He, Jaggi, ICML 2021 discuss it as the
// naive baseline to centered clipping; Allouah et al. 2024 compare it with adaptive clipping, see arc):
//
//   y_i = x_i * min(1, c / ||x_i||)
//
// Norms are accumulated in float64 so finite rows with huge entries are clipped, not overflowed. A
// non-finite row is passed through unchanged, so the aggregator after clip still sees it as a bad row
// (clipping an Inf row would give NaN anyway, and turning it into a finite vector would hide it).
//
// | parameter | default  | meaning                              |
// |-----------|----------|--------------------------------------|
// | c         | required | largest norm a row keeps (>= 0)      |
#include <cmath>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class StaticClipping : public PreAggregator {
 public:
  explicit StaticClipping(double c) : c_(c) {}

  bool keeps_row_order() const override { return true; }  // row i of the output stays worker i's
  at::Tensor transform(const at::Tensor& inputs) override {
    if (inputs.scalar_type() != at::kFloat || inputs.dim() != 2) return transform_generic(inputs);
    // Per row: its norm (squares summed in double, see phalanx::squared_norm: a finite float32 row can
    // hold values whose squares overflow float32, never double), then the scaled row, written with
    // streaming stores into an output reused between rounds (a fresh [n, d] output costs more in page
    // faults than reading the input; docs/BENCHMARKS.md). The row is still in cache for the second read. A NaN or Inf
    // anywhere in the row makes the sum non-finite, and such a row is passed through unchanged.
    at::Tensor x = inputs.contiguous();
    const std::int64_t n = x.size(0), d = x.size(1);
    at::Tensor out = output_.get(x.sizes());
    const float* in = x.data_ptr<float>();
    float* result = out.data_ptr<float>();
    for (std::int64_t i = 0; i < n; ++i) {
      const float* row = in + i * d;
      const double norm = std::sqrt(squared_norm(row, d));
      // Rows already within c (and zero rows, where c / 0 is undefined) keep scale 1.
      const float scale = std::isfinite(norm) && norm > c_ ? static_cast<float>(c_ / norm) : 1.0f;
      scale_row_streaming(row, scale, result + i * d, d);
    }
    return out;
  }

  // Other dtypes or shapes: the same rule with tensor operations.
  at::Tensor transform_generic(const at::Tensor& inputs) const {
    at::Tensor norms = at::linalg_vector_norm(inputs, 2, at::IntArrayRef{1}, /*keepdim=*/true, at::kDouble);
    at::Tensor scale = at::where(norms > c_, norms.reciprocal().mul_(c_), at::ones_like(norms));
    at::Tensor clipped = inputs.mul(scale.to(inputs.scalar_type()));
    return at::where(finite_row_mask(inputs).unsqueeze(1), clipped, inputs);
  }


 private:
  double c_;
  OutputBuffer output_;
};

}  // namespace

PHALANX_PLUGIN("clip", "1.0") {
  registrar.add_preaggregator(
      {"clip",
       "clip every row to norm <= c",
       {{"c", ParamType::Double, Value(), "largest norm a row keeps (required)", 0.0}}},
      [](const Params& p, const Context&) { return std::make_unique<StaticClipping>(p.get_double("c")); });
}
