#include "phalanx/helpers/state_checks.hpp"

#include <ATen/ATen.h>

#include "phalanx/error.hpp"

namespace phalanx {

void require_state_like(const at::Tensor& state, const at::Tensor& params, const std::string& owner) {
  if (state.sizes().equals(params.sizes())) return;
  throw Error(owner + " holds " + std::to_string(state.numel()) + " values but the model has " +
              std::to_string(params.numel()) + "; was the checkpoint written for another model?");
}

void zeros_or_require_like(at::Tensor& state, const at::Tensor& params, const std::string& owner) {
  if (!state.defined())
    state = at::zeros_like(params);
  else
    require_state_like(state, params, owner);
}

}  // namespace phalanx
