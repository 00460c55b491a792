// smega2: server momentum with a look-ahead estimate sent to the workers (Cohen, Hakimi, Schuster,
// "SMEGA2: Distributed Asynchronous Deep Neural Network Training With a Single Momentum Buffer", ICPP 2022;
// public code rafi-cohen/SMEGA2), a baseline of OrMo (docs/ormo.md).
//
// One momentum buffer m, an accumulator G and a position s in a cycle of N = K arrivals (K workers):
//
//   on the arrival of g from any worker:
//     s <- (s + 1) mod N;   G <- G + g;   w <- w - eta * (g + beta * m)
//     if s == 0:  m <- beta * m + G / N;   G <- 0
//   sent to a worker instead of w (the estimate of where w will be when its gradient lands):
//     w_hat = w - eta * beta * (N + s * (beta - 1)) * m - eta * beta * (s / N) * G
//
// m, G and s start at 0. params_for_worker() has no learning rate, so the look-ahead uses the eta of the
// last arrival (the engine asks right after apply(), so that is the step it just took); before any arrival
// m = G = 0 and w_hat = w. Under the synchronous engine each round's aggregate is one arrival.
//
// | parameter | default | meaning                              |
// |-----------|---------|--------------------------------------|
// | beta      | 0.9     | server momentum, in [0, 1]           |
//
// State: "momentum" (m) and "accumulator" (G), absent before the first arrival; "position" (s, int64) and
// "lr" (the last eta, float64), 0-dim.
#include <ATen/ATen.h>

#include "phalanx/helpers/state_checks.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class Smega2 : public Optimizer {
 public:
  Smega2(double beta, std::int64_t cycle) : beta_(beta), cycle_(cycle) {}

  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<IdentityWorkerRule>();
  }

  void apply(at::Tensor& params, const at::Tensor& gradient, const Arrival&, double lr) override {
    if (!momentum_.defined()) {
      momentum_ = at::zeros_like(params);
      accumulated_ = at::zeros_like(params);
    } else {
      require_state_like(momentum_, params, "optimizer 'smega2': the momentum");
    }
    lr_ = lr;
    position_ = (position_ + 1) % cycle_;
    accumulated_.add_(gradient);
    params.add_(gradient, -lr).add_(momentum_, -lr * beta_);
    if (position_ == 0) {
      momentum_.mul_(beta_).add_(accumulated_, 1.0 / static_cast<double>(cycle_));
      accumulated_.zero_();
    }
  }

  at::Tensor params_for_worker(const at::Tensor& params, std::int64_t) const override {
    if (!momentum_.defined()) return params;
    const double n = static_cast<double>(cycle_), s = static_cast<double>(position_);
    return params - momentum_ * (lr_ * beta_ * (n + s * (beta_ - 1.0))) - accumulated_ * (lr_ * beta_ * s / n);
  }

  State save_state() const override {
    State state{{"position", at::scalar_tensor(position_, at::kLong)}, {"lr", at::scalar_tensor(lr_, at::kDouble)}};
    if (momentum_.defined()) {
      state["momentum"] = momentum_.clone();
      state["accumulator"] = accumulated_.clone();
    }
    return state;
  }

  void load_state(const State& state) override {
    momentum_ = accumulated_ = at::Tensor();
    position_ = 0;
    lr_ = 0.0;
    if (state.empty()) return;
    auto need = [&](const char* name) -> const at::Tensor& {
      auto it = state.find(name);
      if (it == state.end() || !it->second.defined())
        throw Error(std::string("optimizer 'smega2': the saved state lacks '") + name +
                    "'; was the checkpoint written by another optimizer?");
      return it->second;
    };
    position_ = need("position").item<std::int64_t>();
    lr_ = need("lr").item<double>();
    if (position_ < 0 || position_ >= cycle_)
      throw Error("optimizer 'smega2': the saved cycle position " + std::to_string(position_) +
                  " does not fit a cycle of " + std::to_string(cycle_) +
                  " arrivals; was the checkpoint written for another number of workers?");
    if (state.count("momentum")) {
      momentum_ = need("momentum").clone();
      accumulated_ = need("accumulator").clone();
    }
  }

 private:
  double beta_;
  std::int64_t cycle_;         // N, the number of workers
  std::int64_t position_ = 0;  // s
  double lr_ = 0.0;            // eta of the last arrival, for the look-ahead
  at::Tensor momentum_;        // m; undefined (with G) until the first arrival
  at::Tensor accumulated_;     // G
};

}  // namespace

PHALANX_PLUGIN("smega2", "1.0") {
  registrar.add_optimizer(
      {"smega2",
       "SMEGA2: one server momentum updated every K arrivals; workers get a look-ahead of w",
       {{"beta", ParamType::Double, 0.9, "server momentum coefficient", 0.0, 1.0}}},
      [](const Params& p, const Context& c) {
        if (c.run().workers < 1)
          throw Error("optimizer 'smega2': the momentum cycle is N = number of workers, but the run has none");
        return std::make_unique<Smega2>(p.get_double("beta"), c.run().workers);
      });
}
