// Everything that remembers something between steps (momentum buffers, centered clipping's last output,
// RNG positions) exposes it as named tensors so checkpoints can hold it. Stateless plugins inherit the
// empty defaults.
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"

namespace phalanx {

using State = std::map<std::string, at::Tensor>;

class PHALANX_EXPORT Stateful {
 public:
  virtual ~Stateful();
  virtual State save_state() const { return {}; }
  /// Receives what save_state returned, possibly in a new process. Throw phalanx::Error on a mismatch.
  virtual void load_state(const State& state) { (void)state; }
};

}  // namespace phalanx
