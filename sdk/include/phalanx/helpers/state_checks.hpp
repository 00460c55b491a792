// Checks for the tensors an optimizer keeps between calls (momentum, per-worker buffers). Such a tensor is
// created on the first call, when the model's size is first known, and may come back from a checkpoint: a
// checkpoint of another model must be refused with one clear message rather than broadcast or crash.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"

namespace phalanx {

/// Throws Error("<owner> holds N values but the model has M; was the checkpoint written for another
/// model?") unless `state` has the sizes of `params`. `owner` names the plugin and the tensor, e.g.
/// "optimizer 'ssgdm': the momentum".
PHALANX_EXPORT void require_state_like(const at::Tensor& state, const at::Tensor& params, const std::string& owner);

/// The usual first-use rule: `state` becomes zeros like `params` when undefined, and is checked with
/// require_state_like otherwise.
PHALANX_EXPORT void zeros_or_require_like(at::Tensor& state, const at::Tensor& params, const std::string& owner);

}  // namespace phalanx
