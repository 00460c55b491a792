// sgd: plain (synchronous or asynchronous) SGD. Workers send their gradient; the server applies
//   w <- w - eta_t * u
// where u is the aggregate (synchronous) or the single arrival (asynchronous).
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
}
