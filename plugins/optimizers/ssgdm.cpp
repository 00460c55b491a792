// The server-momentum family: one buffer u, u <- beta * u + eta * scale * x; w <- w - u (u starts at 0),
// registered under two names that differ in what x is and whether it is scaled.
//
// ssgdm: synchronous SGD with server momentum, the synchronous reference of OrMo (Shi, Yang, Li, "Ordered
// Momentum for Asynchronous SGD", NeurIPS 2024, arXiv 2407.19234; docs/ormo.md).
//   each round, with the K workers' gradients g_1..g_K computed at the same w:
//     u <- beta * u + eta * sum_k g_k;   w <- w - u
// The synchronous engine hands apply() the aggregate of the round's messages, the mean by default. With
// `reduce: mean` that aggregate is used as it is (u <- beta u + eta * mean, the usual data-parallel form);
// with `reduce: sum` it is multiplied by K, which is the paper's formula. OrMo does not reproduce these
// iterates: with every gradient fresh and in order it reduces to this recursion in its look-ahead (Nesterov)
// form, gradients taken at w - beta * u (docs/ormo.md, invariant 3). It is meant for the synchronous engine;
// under the asynchronous one every arrival would count as a round, which is naive_asgdm.
//
// | parameter | default | meaning                                                              |
// |-----------|---------|----------------------------------------------------------------------|
// | beta      | 0.9     | server momentum, in [0, 1]                                           |
// | reduce    | mean    | `mean`: the update is the engine's aggregate; `sum`: aggregate * K   |
//
// naive_asgdm: asynchronous SGD with one server momentum buffer that takes every arrival as the newest
// gradient, the baseline OrMo improves on (same paper).
//   on the arrival of g from any worker:   u <- beta * u + eta * g;   w <- w - u
// The staleness in Arrival is ignored: a gradient computed many iterations ago enters the momentum with the
// same weight as a fresh one, which is the mis-ordering the paper blames for its poor convergence. eta sits
// inside u (as in ssgdm), so a learning-rate schedule scales new gradients only.
//
// | parameter | default | meaning                       |
// |-----------|---------|-------------------------------|
// | beta      | 0.9     | server momentum, in [0, 1]    |
//
// State (both): "momentum" (u, absent before the first round or arrival).
#include <ATen/ATen.h>

#include "phalanx/helpers/state_checks.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class ServerMomentum : public Optimizer {
 public:
  // `scale` turns the engine's aggregate into the sum the formula wants (1 for mean and for naive_asgdm's
  // single arrivals, K for ssgdm's sum); `plugin` is the registered name, for the messages.
  ServerMomentum(const char* plugin, double beta, double scale) : plugin_(plugin), beta_(beta), scale_(scale) {}

  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<IdentityWorkerRule>();
  }

  void apply(at::Tensor& params, const at::Tensor& update, const Arrival&, double lr) override {
    zeros_or_require_like(momentum_, params, std::string("optimizer '") + plugin_ + "': the momentum");
    // lr * 1.0 == lr exactly, so naive_asgdm's arithmetic is u <- beta u + lr g bit for bit.
    momentum_.mul_(beta_).add_(update, lr * scale_);
    params.sub_(momentum_);
  }

  State save_state() const override { return momentum_.defined() ? State{{"momentum", momentum_.clone()}} : State{}; }
  void load_state(const State& state) override {
    auto it = state.find("momentum");
    momentum_ = it == state.end() ? at::Tensor() : it->second.clone();
  }

 private:
  const char* plugin_;
  double beta_, scale_;
  at::Tensor momentum_;  // u; undefined until the first call (the dimension is not known before)
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
        return std::make_unique<ServerMomentum>("ssgdm", p.get_double("beta"), scale);
      });
  registrar.add_optimizer(
      {"naive_asgdm",
       "naive asynchronous momentum: u <- beta u + lr g, w <- w - u on every arrival, staleness ignored",
       {{"beta", ParamType::Double, 0.9, "server momentum coefficient", 0.0, 1.0}}},
      [](const Params& p, const Context&) {
        return std::make_unique<ServerMomentum>("naive_asgdm", p.get_double("beta"), 1.0);
      });
}
