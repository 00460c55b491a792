// shifted_momentum: one momentum buffer per worker, fed only by that worker's gradients (Giladi, Nacson,
// Hoffer, Soudry, "At Stability's Edge: How to Adjust Hyperparameters to Preserve Minima Selection in
// Asynchronous Training of Neural Networks?", ICLR 2020), a baseline of OrMo (docs/ormo.md).
//
//   on the arrival of g from worker k:
//     v_k <- g                                     at worker k's first arrival
//     v_k <- beta * v_k + (1 - dampening) * g      afterwards
//     w   <- w - eta * v_k
//
// This is torch.optim.SGD's momentum (the first step copies the gradient, undamped) with one buffer per
// worker. The authors' public code keeps these buffers on the server, and so do we: workers send raw
// gradients. Under the synchronous engine (Arrival::worker == -1) the round's aggregate has a buffer of its
// own, which makes the rule torch's SGD with momentum on the aggregate.
//
// | parameter | default | meaning                                                |
// |-----------|---------|--------------------------------------------------------|
// | beta      | 0.9     | momentum of each worker's buffer, in [0, 1]            |
// | dampening | 0       | the new gradient enters with weight 1 - dampening      |
//
// State: "momentum.worker<k>" for every worker seen so far, "momentum.aggregate" for the synchronous buffer.
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "phalanx/helpers/state_checks.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

constexpr const char* kPrefix = "momentum.";

std::string key_of(std::int64_t worker) {
  return std::string(kPrefix) + (worker < 0 ? std::string("aggregate") : "worker" + std::to_string(worker));
}

class ShiftedMomentum : public Optimizer {
 public:
  ShiftedMomentum(double beta, double dampening) : beta_(beta), dampening_(dampening) {}

  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<IdentityWorkerRule>();
  }

  void apply(at::Tensor& params, const at::Tensor& gradient, const Arrival& arrival, double lr) override {
    at::Tensor& buffer = buffers_[arrival.worker < 0 ? -1 : arrival.worker];
    if (!buffer.defined()) {
      buffer = gradient.clone();
    } else {
      require_state_like(buffer, params, "optimizer 'shifted_momentum': the buffer of " + key_of(arrival.worker));
      buffer.mul_(beta_).add_(gradient, 1.0 - dampening_);
    }
    params.add_(buffer, -lr);
  }

  State save_state() const override {
    State state;
    for (const auto& [worker, buffer] : buffers_) state[key_of(worker)] = buffer.clone();
    return state;
  }

  void load_state(const State& state) override {
    std::map<std::int64_t, at::Tensor> buffers;
    for (const auto& [key, tensor] : state) {
      const std::string name = key.rfind(kPrefix, 0) == 0 ? key.substr(std::string(kPrefix).size()) : "";
      std::int64_t worker = -2;
      if (name == "aggregate") {
        worker = -1;
      } else if (name.rfind("worker", 0) == 0 && name.size() > 6 &&
                 name.find_first_not_of("0123456789", 6) == std::string::npos) {
        worker = std::stoll(name.substr(6));
      }
      if (worker < -1)
        throw Error("optimizer 'shifted_momentum': unexpected state entry '" + key +
                    "' (expected momentum.worker<k> or momentum.aggregate); was the checkpoint written by another "
                    "optimizer?");
      buffers[worker] = tensor.clone();
    }
    buffers_ = std::move(buffers);
  }

 private:
  double beta_, dampening_;
  std::map<std::int64_t, at::Tensor> buffers_;  // worker -> v_k; -1 is the synchronous aggregate
};

}  // namespace

PHALANX_PLUGIN("shifted_momentum", "1.0") {
  registrar.add_optimizer(
      {"shifted_momentum",
       "shifted momentum: one torch-SGD momentum buffer per worker on the server, w <- w - lr * v_k",
       {{"beta", ParamType::Double, 0.9, "momentum coefficient of each worker's buffer", 0.0, 1.0},
        {"dampening", ParamType::Double, 0.0, "the new gradient enters the buffer with weight 1 - dampening", 0.0,
         1.0}}},
      [](const Params& p, const Context&) {
        return std::make_unique<ShiftedMomentum>(p.get_double("beta"), p.get_double("dampening"));
      });
}
