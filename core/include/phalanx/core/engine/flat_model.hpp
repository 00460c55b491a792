// A network whose parameters live in one flat [d] tensor. Messages, aggregates and optimizer updates are
// flat vectors, so the model's parameters are made views into that vector: an in-place update of the
// vector is an update of the network, with no copies per step.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include <ATen/core/Tensor.h>

#include "phalanx/model.hpp"

namespace phalanx::core {

class FlatModel {
 public:
  explicit FlatModel(std::shared_ptr<Network> network);
  /// A replica: another instance of the same network whose parameters are views of `shared`'s flat vector
  /// (no copy; updates of `shared` are seen at once). Gradients of replicas can be computed on several threads
  /// at the same time, as long as nothing writes the parameters meanwhile. Throws unless the architectures match.
  FlatModel(std::shared_ptr<Network> network, FlatModel& shared);

  /// The parameters, flat; writes to it change the network.
  at::Tensor& params() { return flat_; }
  std::int64_t dimension() const { return flat_.numel(); }
  /// State that is not trained but changes while training (BatchNorm's running statistics), for checkpoints.
  std::vector<at::Tensor> buffers() const;
  /// True when a forward pass changes nothing but its output (no buffers such as BatchNorm's running
  /// statistics), so replicas can run side by side with the same result as one model run after another.
  bool stateless_forward() const { return buffers().empty(); }

  /// Mean cross-entropy on (x, y) and its gradient with respect to the flat parameters.
  std::pair<double, at::Tensor> loss_and_gradient(const at::Tensor& x, const at::Tensor& y);

  struct Evaluation {
    double loss = 0;
    double accuracy = 0;
  };

  /// One evaluation batch: the summed cross-entropy and the number of correct predictions
  /// (evaluate_on_threads in engine_parts.hpp adds them over the test set in batch order).
  struct BatchScore {
    double loss_sum = 0;
    std::int64_t correct = 0;
  };
  BatchScore score_batch(const at::Tensor& x, const at::Tensor& y);

 private:
  std::shared_ptr<Network> network_;
  std::vector<at::Tensor> parameters_;
  at::Tensor flat_;
};

}  // namespace phalanx::core
