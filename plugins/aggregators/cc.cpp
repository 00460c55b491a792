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
    const std::int64_t n = inputs.size(0);
    at::Tensor rows = finite_rows(inputs);
    if (rows.size(0) == 0) throw Error("aggregator 'cc': every message contains NaN or Inf; nothing to aggregate");
    if (!center_.defined() || center_.sizes() != inputs.sizes().slice(1)) center_ = at::zeros({inputs.size(1)});
    at::Tensor v = center_.clone();
    for (std::int64_t l = 0; l < iterations_; ++l) {
      at::Tensor diff = rows - v;
      at::Tensor norms = diff.norm(2, /*dim=*/1, /*keepdim=*/true);
      // min(1, tau / norm); a zero norm gives 1 (tau / 0 = inf).
      at::Tensor scale = at::clamp_max(norms.reciprocal().mul_(tau_), 1.0);
      v.add_(diff.mul_(scale).sum(0), 1.0 / static_cast<double>(n));
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
