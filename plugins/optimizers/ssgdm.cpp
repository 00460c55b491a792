// ssgdm: synchronous SGD with server momentum, the synchronous reference of OrMo (Shi, Yang, Li, "Ordered
// Momentum for Asynchronous SGD", NeurIPS 2024, arXiv 2407.19234; shared/papers/ormo.md, issue 4).
//
//   each round, with the K workers' gradients g_1..g_K computed at the same w:
//     u <- beta * u + eta * sum_k g_k;   w <- w - u                                 (u starts at 0)
//
// The synchronous engine hands apply() the aggregate of the round's messages, the mean by default. With
// `reduce: mean` that aggregate is used as it is (u <- beta u + eta * mean, the usual data-parallel form);
// with `reduce: sum` it is multiplied by K, which is the paper's formula and the one OrMo reproduces when
// every gradient arrives fresh (invariant 3 of the spec). It is meant for the synchronous engine; under the
// asynchronous one every arrival would count as a round, which is naive_asgdm.
//
// | parameter | default | meaning                                                              |
// |-----------|---------|----------------------------------------------------------------------|
// | beta      | 0.9     | server momentum, in [0, 1]                                           |
// | reduce    | mean    | `mean`: the update is the engine's aggregate; `sum`: aggregate * K   |
//
// State: "momentum" (u, absent before the first round).
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class SyncMomentum : public Optimizer {
 public:
  // `scale` turns the engine's aggregate into the sum the formula wants (1 for mean, K for sum).
  SyncMomentum(double beta, double scale) : beta_(beta), scale_(scale) {}

  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<IdentityWorkerRule>();
  }

  void apply(at::Tensor& params, const at::Tensor& aggregate, const Arrival&, double lr) override {
    if (!momentum_.defined()) {
      momentum_ = at::zeros_like(params);
    } else if (!momentum_.sizes().equals(params.sizes())) {
      throw Error("optimizer 'ssgdm': the momentum holds " + std::to_string(momentum_.numel()) +
                  " values but the model has " + std::to_string(params.numel()) +
                  "; was the checkpoint written for another model?");
    }
    momentum_.mul_(beta_).add_(aggregate, lr * scale_);
    params.sub_(momentum_);
  }

  State save_state() const override { return momentum_.defined() ? State{{"momentum", momentum_.clone()}} : State{}; }
  void load_state(const State& state) override {
    auto it = state.find("momentum");
    momentum_ = it == state.end() ? at::Tensor() : it->second.clone();
  }

 private:
  double beta_, scale_;
  at::Tensor momentum_;  // u; undefined until the first round
};

}  // namespace

PHALANX_PLUGIN("ssgdm", "1.0") {
  registrar.add_optimizer(
      {"ssgdm",
       "synchronous SGD with momentum: u <- beta u + lr * sum_k g_k (or the mean), w <- w - u",
       {{"beta", ParamType::Double, 0.9, "server momentum coefficient", 0.0, 1.0},
        {"reduce",
         ParamType::String,
         "mean",
         "mean: use the engine's aggregate as it is; sum: multiply it by the number of workers (the paper's sum)",
         {},
         {},
         {"mean", "sum"}}}},
      [](const Params& p, const Context& c) {
        double scale = 1.0;
        if (p.get_string("reduce") == "sum") {
          if (c.run().workers < 1) p.fail("reduce", "'sum' multiplies by the number of workers, but the run has none");
          scale = static_cast<double>(c.run().workers);
        }
        return std::make_unique<SyncMomentum>(p.get_double("beta"), scale);
      });
}
