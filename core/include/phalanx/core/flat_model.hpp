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

  /// The parameters, flat; writes to it change the network.
  at::Tensor& params() { return flat_; }
  std::int64_t dimension() const { return flat_.numel(); }
  /// State that is not trained but changes while training (BatchNorm's running statistics), for checkpoints.
  std::vector<at::Tensor> buffers() const;

  /// Mean cross-entropy on (x, y) and its gradient with respect to the flat parameters.
  std::pair<double, at::Tensor> loss_and_gradient(const at::Tensor& x, const at::Tensor& y);

  struct Evaluation {
    double loss = 0;
    double accuracy = 0;
  };
  Evaluation evaluate(const at::Tensor& x, const at::Tensor& y, std::int64_t batch_size);

 private:
  std::shared_ptr<Network> network_;
  std::vector<at::Tensor> parameters_;
  at::Tensor flat_;
};

}  // namespace phalanx::core
