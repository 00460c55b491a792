// Optimizers come in two halves. The worker half turns a fresh gradient into the message a worker sends
// (identity for SGD, a momentum buffer per worker for ByzSGDm/ByzSGDnm). The server half applies an
// aggregated message, or one asynchronous arrival, to the parameters; the Arrival record carries the
// iteration indices so ordered-momentum and delay-adaptive rules fit the same interface.
#pragma once

#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"
#include "phalanx/stateful.hpp"

namespace phalanx {

struct PHALANX_EXPORT Arrival {
  std::int64_t worker = -1;      // -1 for an aggregate of a synchronous round
  std::int64_t computed_at = 0;  // iteration index of the parameters the gradient was computed at
  std::int64_t current = 0;      // server iteration index when it is applied
  double sim_time = 0.0;         // simulated time (asynchronous engine), else 0
  std::int64_t staleness() const { return current - computed_at; }
};

class PHALANX_EXPORT WorkerRule : public Stateful {
 public:
  ~WorkerRule() override;
  /// The message a worker sends for `gradient` (flat [d]) computed at iteration `step`.
  virtual at::Tensor message(const at::Tensor& gradient, std::int64_t step) = 0;
};

/// The worker half of plain SGD: the message is the gradient.
class PHALANX_EXPORT IdentityWorkerRule : public WorkerRule {
 public:
  ~IdentityWorkerRule() override;
  at::Tensor message(const at::Tensor& gradient, std::int64_t step) override;
};

/// Worker-side momentum of ByzSGDm / ByzSGDnm (Karimireddy et al. 2021; Yang et al. 2024):
/// u = g on the first message, then u = beta * u + (1 - beta) * g. One buffer per worker.
class PHALANX_EXPORT MomentumWorkerRule : public WorkerRule {
 public:
  explicit MomentumWorkerRule(double beta);
  ~MomentumWorkerRule() override;
  at::Tensor message(const at::Tensor& gradient, std::int64_t step) override;
  State save_state() const override;
  void load_state(const State& state) override;
  /// Moves the momentum into `storage` (contiguous, of the buffer's shape and type: the worker's row of a
  /// host's message matrix) and keeps it there, so each later message updates `storage` in place and is
  /// returned as it, with no copy for the host to make. The host must not write to `storage` in between.
  /// False, and nothing changes, before the first message or when `storage` does not fit.
  bool keep_momentum_in(const at::Tensor& storage);

 private:
  double beta_;
  at::Tensor buffer_;  // undefined until the first message
};

class PHALANX_EXPORT Optimizer : public Stateful {
 public:
  ~Optimizer() override;
  /// A fresh worker half for worker `worker`. The object is owned by the host and destroyed before
  /// this optimizer.
  virtual std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t worker) const = 0;
  /// Server half: updates `params` (flat [d], in place) with `update` at learning rate `lr`.
  virtual void apply(at::Tensor& params, const at::Tensor& update, const Arrival& arrival, double lr) = 0;
  /// The parameters sent to `worker` (look-ahead methods send something else than `params`).
  virtual at::Tensor params_for_worker(const at::Tensor& params, std::int64_t worker) const;
  /// The server's iteration index, sent to workers with the parameters and returned in
  /// Arrival::computed_at. -1 (the default) lets the engine count every apply() as one iteration;
  /// rules with their own notion (OrMo closes an iteration every K arrivals) return it here.
  virtual std::int64_t iteration() const { return -1; }
};

}  // namespace phalanx
