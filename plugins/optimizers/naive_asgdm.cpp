// naive_asgdm: asynchronous SGD with one server momentum buffer that takes every arrival as the newest
// gradient, the baseline OrMo improves on (Shi, Yang, Li, "Ordered Momentum for Asynchronous SGD",
// NeurIPS 2024, arXiv 2407.19234; shared/papers/ormo.md, issue 4).
//
//   on the arrival of g from any worker:   u <- beta * u + eta * g;   w <- w - u        (u starts at 0)
//
// The staleness in Arrival is ignored: a gradient computed many iterations ago enters the momentum with the
// same weight as a fresh one, which is the mis-ordering the paper blames for its poor convergence. eta sits
// inside u (as in SSGDm below), so a learning-rate schedule scales new gradients only.
//
// | parameter | default | meaning                       |
// |-----------|---------|-------------------------------|
// | beta      | 0.9     | server momentum, in [0, 1]    |
//
// State: "momentum" (u, absent before the first arrival).
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class NaiveAsyncMomentum : public Optimizer {
 public:
  explicit NaiveAsyncMomentum(double beta) : beta_(beta) {}

  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<IdentityWorkerRule>();
  }

  void apply(at::Tensor& params, const at::Tensor& gradient, const Arrival&, double lr) override {
    if (!momentum_.defined()) {
      momentum_ = at::zeros_like(params);
    } else if (!momentum_.sizes().equals(params.sizes())) {
      throw Error("optimizer 'naive_asgdm': the momentum holds " + std::to_string(momentum_.numel()) +
                  " values but the model has " + std::to_string(params.numel()) +
                  "; was the checkpoint written for another model?");
    }
    momentum_.mul_(beta_).add_(gradient, lr);
    params.sub_(momentum_);
  }

  State save_state() const override { return momentum_.defined() ? State{{"momentum", momentum_.clone()}} : State{}; }
  void load_state(const State& state) override {
    auto it = state.find("momentum");
    momentum_ = it == state.end() ? at::Tensor() : it->second.clone();
  }

 private:
  double beta_;
  at::Tensor momentum_;  // u; undefined until the first arrival (the dimension is not known before)
};

}  // namespace

PHALANX_PLUGIN("naive_asgdm", "1.0") {
  registrar.add_optimizer(
      {"naive_asgdm",
       "naive asynchronous momentum: u <- beta u + lr g, w <- w - u on every arrival, staleness ignored",
       {{"beta", ParamType::Double, 0.9, "server momentum coefficient", 0.0, 1.0}}},
      [](const Params& p, const Context&) { return std::make_unique<NaiveAsyncMomentum>(p.get_double("beta")); });
}
