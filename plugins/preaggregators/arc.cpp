// arc: adaptive robust clipping (Allouah, Guerraoui, Gupta, Jellouli, Rizk, Stephan, "Boosting Robustness
// by Clipping Gradients in Distributed Learning", 2024, arXiv:2405.14432). The k largest rows are clipped
// to the norm of the (k+1)-th largest:
//
//   k = floor(2 (f/n) (n - f)),   C = the (k+1)-th largest of ||x_1||, ..., ||x_n||
//   y_i = x_i * min(1, C / ||x_i||)
//
// Vectorised: one norm per row (accumulated in float64), one sort, one scaling.
//
// Non-finite rows count as having infinite norm, so they are among the k largest and never set C while
// at most k rows are bad; with more than k bad rows C is infinite and the finite rows are left as they
// are. A non-finite row is passed through unchanged, so the aggregator after arc still sees it as bad.
//
// | parameter | default | meaning                                                |
// |-----------|---------|--------------------------------------------------------|
// | f         | auto    | rows to tolerate (auto: number of Byzantine workers)   |
#include <limits>
#include <string>
#include <tuple>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class AdaptiveRobustClipping : public PreAggregator {
 public:
  explicit AdaptiveRobustClipping(std::int64_t f) : f_(f) {}

  bool keeps_row_order() const override { return true; }  // row i of the output stays worker i's
  at::Tensor transform(const at::Tensor& inputs) override {
    const std::int64_t n = inputs.size(0);
    if (f_ >= n)
      throw Error("pre-aggregator 'arc': f = " + std::to_string(f_) + " but it receives only " + std::to_string(n) +
                  " rows (f must be below n); lower f, or move arc before a pre-aggregator that reduces the rows");
    // Integer arithmetic for floor(2 (f/n) (n - f)), so no rounding can move k.
    const std::int64_t k = 2 * f_ * (n - f_) / n;
    at::Tensor finite = finite_row_mask(inputs).unsqueeze(1);
    at::Tensor norms = at::linalg_vector_norm(inputs, 2, at::IntArrayRef{1}, /*keepdim=*/true, at::kDouble)
                           .masked_fill_(finite.logical_not(), std::numeric_limits<double>::infinity());
    const double threshold = std::get<0>(norms.squeeze(1).sort(/*dim=*/0, /*descending=*/true))[k].item<double>();
    at::Tensor scale = at::where(norms > threshold, norms.reciprocal().mul_(threshold), at::ones_like(norms));
    at::Tensor clipped = inputs.mul(scale.to(inputs.scalar_type()));
    return at::where(finite, clipped, inputs);
  }

 private:
  std::int64_t f_;
};

}  // namespace

PHALANX_PLUGIN("arc", "1.0") {
  registrar.add_preaggregator(
      {"arc",
       "adaptive robust clipping: clip the largest floor(2(f/n)(n-f)) rows to the next norm",
       {{"f", ParamType::Int, Value(), "rows to tolerate (auto: number of Byzantine workers)", 0}}},
      [](const Params& p, const Context& c) {
        const std::int64_t f = p.get_int_or("f", c.run().byzantine);
        // Refused here as well as per round, so `phalanx validate` catches it before a run starts.
        if (f >= c.run().workers)
          throw Error("pre-aggregator 'arc': f = " + std::to_string(f) + " but the run has only " +
                      std::to_string(c.run().workers) + " workers (f must be below n); lower preaggregator f");
        return std::make_unique<AdaptiveRobustClipping>(f);
      });
}
