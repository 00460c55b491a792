// byzsgdm: Byzantine-robust SGD with worker momentum (Karimireddy, He, Jaggi, "Learning from History for
// Byzantine Robust Optimization", ICML 2021), the baseline of Yang et al. (ICLR 2024).
//
//   worker k:  u_k = g_k at its first step, then u_k = beta * u_k + (1 - beta) * g_k; sends u_k
//   server:    u = Agg(u_1..u_m);  w <- w - eta_t * u
//
// | parameter | default | meaning                  |
// |-----------|---------|--------------------------|
// | beta      | 0.9     | worker momentum          |
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class ByzSgdm : public Optimizer {
 public:
  explicit ByzSgdm(double beta) : beta_(beta) {}
  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<MomentumWorkerRule>(beta_);
  }
  void apply(at::Tensor& params, const at::Tensor& update, const Arrival&, double lr) override {
    params.add_(update, -lr);
  }

 private:
  double beta_;
};

}  // namespace

PHALANX_PLUGIN("byzsgdm", "1.0") {
  registrar.add_optimizer(
      {"byzsgdm",
       "ByzSGDm: worker momentum, server w <- w - lr * Agg(u)",
       {{"beta", ParamType::Double, 0.9, "worker momentum coefficient", 0.0, 1.0}}},
      [](const Params& p, const Context&) { return std::make_unique<ByzSgdm>(p.get_double("beta")); });
}
