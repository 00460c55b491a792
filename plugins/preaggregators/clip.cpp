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
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class StaticClipping : public PreAggregator {
 public:
  explicit StaticClipping(double c) : c_(c) {}

  at::Tensor transform(const at::Tensor& inputs) override {
    at::Tensor norms = at::linalg_vector_norm(inputs, 2, at::IntArrayRef{1}, /*keepdim=*/true, at::kDouble);
    // Rows already within c (and zero rows, where c / 0 is undefined) keep scale 1.
    at::Tensor scale = at::where(norms > c_, norms.reciprocal().mul_(c_), at::ones_like(norms));
    at::Tensor clipped = inputs.mul(scale.to(inputs.scalar_type()));
    return at::where(finite_row_mask(inputs).unsqueeze(1), clipped, inputs);
  }

 private:
  double c_;
};

}  // namespace

PHALANX_PLUGIN("clip", "1.0") {
  registrar.add_preaggregator(
      {"clip",
       "clip every row to norm <= c",
       {{"c", ParamType::Double, Value(), "largest norm a row keeps (required)", 0.0}}},
      [](const Params& p, const Context&) { return std::make_unique<StaticClipping>(p.get_double("c")); });
}
