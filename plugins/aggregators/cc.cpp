// cc: centered clipping (Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust
// Optimization", ICML 2021).
//
//   v_0 = the previous round's output (0 in the first round); for l = 1..L:
//   v_l = v_{l-1} + (1/n) sum_i (x_i - v_{l-1}) * min(1, tau / ||x_i - v_{l-1}||)
//
// A row holding NaN or Inf contributes nothing (as if clipped to zero length). The previous output is
// state, saved in checkpoints.
//
// | parameter  | default | meaning              |
// |------------|---------|----------------------|
// | tau        | 0.1     | clipping radius      |
// | iterations | 1       | clipping iterations L |
#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"

namespace {

using namespace phalanx;

class CenteredClipping : public Aggregator {
 public:
  CenteredClipping(double tau, std::int64_t iterations) : tau_(tau), iterations_(iterations) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor x = inputs.to(at::kFloat).contiguous();
    const std::int64_t n = x.size(0), d = x.size(1);
    if (!center_.defined() || center_.size(0) != d) center_ = at::zeros({d});
    at::Tensor v = center_.clone();
    const float* in = x.data_ptr<float>();
    float* center = v.data_ptr<float>();
    const float weight = static_cast<float>(1.0 / static_cast<double>(n));
    // Two passes over the input per iteration, each in blocks of columns so that the block of v (and of
    // the step) stays in L1 while the n rows stream through: (1) the n distances ||x_i - v||, summed in
    // double (phalanx::squared_distance), where finite rows cannot overflow, so a non-finite distance
    // means the row holds NaN or Inf and no separate pass is needed to find those rows; (2) the clipped
    // differences added up, column block by column block, and v moved.
    constexpr std::int64_t kBlock = 2048;
    std::vector<double> squared(static_cast<std::size_t>(n));
    std::vector<float> scale(static_cast<std::size_t>(n));
    std::vector<float> step(static_cast<std::size_t>(std::min(kBlock, d)));
    for (std::int64_t l = 0; l < iterations_; ++l) {
      std::fill(squared.begin(), squared.end(), 0.0);
      for (std::int64_t start = 0; start < d; start += kBlock) {
        const std::int64_t width = std::min(kBlock, d - start);
        for (std::int64_t i = 0; i < n; ++i)
          squared[static_cast<std::size_t>(i)] += squared_distance(in + i * d + start, center + start, width);
      }
      bool any_finite = false;
      for (std::int64_t i = 0; i < n; ++i) {
        const double norm = std::sqrt(squared[static_cast<std::size_t>(i)]);
        any_finite = any_finite || std::isfinite(norm);
        // min(1, tau / ||x_i - v||); 0 for a NaN/Inf row, which is then skipped
        scale[static_cast<std::size_t>(i)] =
            !std::isfinite(norm) ? 0.0f : static_cast<float>(norm > tau_ ? tau_ / norm : 1.0);
      }
      if (!any_finite) throw Error("aggregator 'cc': every message contains NaN or Inf; nothing to aggregate");
      for (std::int64_t start = 0; start < d; start += kBlock) {
        const std::int64_t width = std::min(kBlock, d - start);
        float* sum = step.data();
        float* c = center + start;
        std::fill(sum, sum + width, 0.0f);
        for (std::int64_t i = 0; i < n; ++i) {
          if (!std::isfinite(squared[static_cast<std::size_t>(i)])) continue;
          const float* row = in + i * d + start;
          const float s = scale[static_cast<std::size_t>(i)];
          for (std::int64_t j = 0; j < width; ++j) sum[j] += s * (row[j] - c[j]);
        }
        for (std::int64_t j = 0; j < width; ++j) c[j] += weight * sum[j];
      }
    }
    center_ = v;
    return v.clone();
  }

  State save_state() const override { return center_.defined() ? State{{"center", center_.clone()}} : State{}; }
  void load_state(const State& state) override {
    auto it = state.find("center");
    center_ = it == state.end() ? at::Tensor() : it->second.clone();
  }

 private:
  double tau_;
  std::int64_t iterations_;
  at::Tensor center_;
};

}  // namespace

PHALANX_PLUGIN("cc", "1.0") {
  registrar.add_aggregator(
      {"cc",
       "centered clipping around the previous aggregate",
       {{"tau", ParamType::Double, 0.1, "clipping radius (> 0)", 1e-12},
        {"iterations", ParamType::Int, 1, "clipping iterations per round", 1, 1000}}},
      [](const Params& p, const Context&) {
        return std::make_unique<CenteredClipping>(p.get_double("tau"), p.get_int("iterations"));
      });
}
