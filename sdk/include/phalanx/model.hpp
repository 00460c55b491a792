// Models. Only model plugins include this header: it pulls in torch::nn.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn/module.h>

#include "phalanx/export.hpp"

namespace phalanx {

/// A network maps a batch [B, ...sample_shape] to logits [B, classes].
class PHALANX_EXPORT Network : public torch::nn::Module {
 public:
  ~Network() override;
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};

class PHALANX_EXPORT Model {
 public:
  virtual ~Model();
  /// Builds a freshly initialised network (the host seeds LibTorch's generator first).
  virtual std::shared_ptr<Network> build(const std::vector<std::int64_t>& sample_shape,
                                         std::int64_t classes) = 0;
};

}  // namespace phalanx
