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
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class CenteredClipping : public Aggregator {
 public:
  CenteredClipping(double tau, std::int64_t iterations) : tau_(tau), iterations_(iterations) {}

  at::Tensor aggregate(const at::Tensor& inputs) override {
    const std::int64_t n = inputs.size(0), d = inputs.size(1);
    at::Tensor finite = finite_row_mask(inputs);
    const bool* is_finite = finite.data_ptr<bool>();
    if (!finite.any().item<bool>())
      throw Error("aggregator 'cc': every message contains NaN or Inf; nothing to aggregate");
    if (!center_.defined() || center_.size(0) != d) center_ = at::zeros({d});
    at::Tensor v = center_.clone();
    at::Tensor diff = at::empty({d}), step = at::empty({d});
    for (std::int64_t l = 0; l < iterations_; ++l) {
      step.zero_();
      // Row by row, so each input row is read from memory once per iteration and the d-sized temporaries
      // stay in cache (a whole [n, d] difference tensor would triple the memory traffic).
      for (std::int64_t i = 0; i < n; ++i) {
        if (!is_finite[i]) continue;
        at::sub_out(diff, inputs[i], v);
        const double norm = diff.norm().item<double>();
        step.add_(diff, norm > tau_ ? tau_ / norm : 1.0);  // min(1, tau / ||x_i - v||)
      }
      v.add_(step, 1.0 / static_cast<double>(n));
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
