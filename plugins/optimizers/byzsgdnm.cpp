// byzsgdnm: Byzantine-robust SGD with normalized momentum (Yang, Shi, Li, "On the Effect of Batch Size in
// Byzantine-Robust Distributed Learning", ICLR 2024; experiments in docs/results/byzsgdnm.md).
//
//   worker k:  u_k = g_k at its first step, then u_k = beta * u_k + (1 - beta) * g_k; sends u_k
//   server:    u = Agg(u_1..u_m);  w <- w - eta_t * u / max(||u||, eps)
//
// The norm is the L2 norm of the whole flattened model, not per layer. The paper does not say what happens
// when ||u|| = 0; dividing by max(||u||, eps) makes that step a zero step instead of NaN.
//
// | parameter | default | meaning                                   |
// |-----------|---------|-------------------------------------------|
// | beta      | 0.9     | worker momentum                           |
// | eps       | 1e-12   | floor of the norm (guards a zero aggregate) |
#include <algorithm>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class ByzSgdnm : public Optimizer {
 public:
  ByzSgdnm(double beta, double eps) : beta_(beta), eps_(eps) {}
  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<MomentumWorkerRule>(beta_);
  }
  void apply(at::Tensor& params, const at::Tensor& update, const Arrival&, double lr) override {
    const double norm = update.norm().item<double>();
    params.add_(update, -lr / std::max(norm, eps_));
  }

 private:
  double beta_, eps_;
};

}  // namespace

PHALANX_PLUGIN("byzsgdnm", "1.0") {
  registrar.add_optimizer(
      {"byzsgdnm",
       "ByzSGDnm: worker momentum, server w <- w - lr * Agg(u) / ||Agg(u)||",
       {{"beta", ParamType::Double, 0.9, "worker momentum coefficient", 0.0, 1.0},
        {"eps", ParamType::Double, 1e-12, "floor of ||u|| so a zero aggregate gives a zero step", 0.0}}},
      [](const Params& p, const Context&) {
        return std::make_unique<ByzSgdnm>(p.get_double("beta"), p.get_double("eps"));
      });
}
