// The plain SGD family: one server step w <- w - eta_t * u, registered under two names.
//   sgd   synchronous or asynchronous SGD: u is the round's aggregate (synchronous) or the single arrival
//         (asynchronous).
//   asgd  asynchronous SGD, the momentum-free baseline of OrMo (Shi, Yang, Li, "Ordered Momentum for
//         Asynchronous SGD", NeurIPS 2024, arXiv 2407.19234; docs/ormo.md): on the arrival of g from any
//         worker, however stale, w <- w - eta * g. Workers pull the current w and send raw gradients. The
//         staleness in Arrival is ignored on purpose: that is what makes it the baseline the delay-aware
//         rules (ormo, ormo_da) are measured against. Under the synchronous engine each round's aggregate is
//         one arrival, so it is plain SGD. It is the same arithmetic as `sgd`; it exists under the paper's
//         name so the experiments list the method they compare.
//
// No parameters; no state.
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class Sgd : public Optimizer {
 public:
  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<IdentityWorkerRule>();
  }
  void apply(at::Tensor& params, const at::Tensor& update, const Arrival&, double lr) override {
    params.add_(update, -lr);
  }
};

}  // namespace

PHALANX_PLUGIN("sgd", "1.0") {
  registrar.add_optimizer({"sgd", "SGD: w <- w - lr * u, workers send raw gradients", {}},
                          [](const Params&, const Context&) { return std::make_unique<Sgd>(); });
  registrar.add_optimizer({"asgd", "ASGD: w <- w - lr * g on every arrival, staleness ignored", {}},
                          [](const Params&, const Context&) { return std::make_unique<Sgd>(); });
}
