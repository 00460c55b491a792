// arc: adaptive robust clipping (Allouah, Guerraoui, Gupta, Jellouli, Rizk, Stephan, "Boosting Robustness
// by Clipping Gradients in Distributed Learning", 2024, arXiv:2405.14432). The k largest rows are clipped
// to the norm of the (k+1)-th largest:
//
//   k = floor(2 (f/n) (n - f)),   C = the (k+1)-th largest of ||x_1||, ..., ||x_n||
//   y_i = x_i * min(1, C / ||x_i||)
//
// Two passes over the input: one norm per row (accumulated in float64), a partial sort of the n norms, and
// every row scaled (or copied) into an output buffer reused between rounds.
//
// Non-finite rows count as having infinite norm, so they are among the k largest and never set C while
// at most k rows are bad; with more than k bad rows C is infinite and the finite rows are left as they
// are. A non-finite row is passed through unchanged, so the aggregator after arc still sees it as bad.
//
// | parameter | default | meaning                                                |
// |-----------|---------|--------------------------------------------------------|
// | f         | auto    | rows to tolerate (auto: number of Byzantine workers)   |
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/helpers/byzantine_count.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class AdaptiveRobustClipping : public PreAggregator {
 public:
  explicit AdaptiveRobustClipping(std::int64_t f) : f_(f) {}

  bool keeps_row_order() const override { return true; }  // row i of the output stays worker i's
  at::Tensor transform(const at::Tensor& inputs) override {
    const std::int64_t n = inputs.size(0);
    require_rows_above(f_, n, "arc");
    // Integer arithmetic for floor(2 (f/n) (n - f)), so no rounding can move k.
    const std::int64_t k = 2 * f_ * (n - f_) / n;
    if (inputs.scalar_type() != at::kFloat || !inputs.is_contiguous()) return transform_any(inputs, k);
    // Two passes at memory speed: one norm per row (float64 sums; non-finite exactly for NaN/Inf rows), then
    // every row scaled or copied with streaming stores into an output reused between rounds.
    const std::int64_t d = inputs.size(1);
    const float* x = inputs.data_ptr<float>();
    std::vector<double> norms(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const double squared = squared_norm(x + i * d, d);
      norms[static_cast<std::size_t>(i)] = std::isfinite(squared) ? std::sqrt(squared) : kInfinity;
    }
    std::vector<double> sorted = norms;
    std::nth_element(sorted.begin(), sorted.begin() + k, sorted.end(), std::greater<>());
    const double threshold = sorted[static_cast<std::size_t>(k)];
    at::Tensor out = output_.get({n, d});
    float* o = out.data_ptr<float>();
    for (std::int64_t i = 0; i < n; ++i) {
      const double norm = norms[static_cast<std::size_t>(i)];
      // Non-finite rows pass unchanged (x * 1 is x, NaN stays NaN).
      const bool clipped = norm > threshold && norm != kInfinity;
      scale_row_streaming(x + i * d, clipped ? static_cast<float>((1.0 / norm) * threshold) : 1.0f, o + i * d, d);
    }
    return out;
  }

 private:
  static constexpr double kInfinity = std::numeric_limits<double>::infinity();

  // Any other dtype or layout: the same rule with tensor operations.
  at::Tensor transform_any(const at::Tensor& inputs, std::int64_t k) const {
    at::Tensor finite = finite_row_mask(inputs).unsqueeze(1);
    at::Tensor norms = at::linalg_vector_norm(inputs, 2, at::IntArrayRef{1}, /*keepdim=*/true, at::kDouble)
                           .masked_fill_(finite.logical_not(), kInfinity);
    const double threshold = std::get<0>(norms.squeeze(1).sort(/*dim=*/0, /*descending=*/true))[k].item<double>();
    at::Tensor scale = at::where(norms > threshold, norms.reciprocal().mul_(threshold), at::ones_like(norms));
    at::Tensor clipped = inputs.mul(scale.to(inputs.scalar_type()));
    return at::where(finite, clipped, inputs);
  }

  std::int64_t f_;
  OutputBuffer output_;
};

}  // namespace

PHALANX_PLUGIN("arc", "1.0") {
  registrar.add_preaggregator(
      {"arc",
       "adaptive robust clipping: clip the largest floor(2(f/n)(n-f)) rows to the next norm",
       {byzantine_count_param("rows to tolerate (auto: number of Byzantine workers)")}},
      [](const Params& p, const Context& c) {
        const std::int64_t f = byzantine_count(p, c);
        // Refused here as well as per round, so `phalanx validate` catches it before a run starts.
        if (f >= c.run().workers)
          throw Error("pre-aggregator 'arc': f = " + std::to_string(f) + " but the run has only " +
                      std::to_string(c.run().workers) + " workers (f must be below n); lower preaggregator f");
        return std::make_unique<AdaptiveRobustClipping>(f);
      });
}
