// What an interrupted distributed run leaves behind: the server's parameters and the named state tensors
// of its plugins, in the checkpoint file format of checkpoint.hpp (Checkpoint::read loads it). Resuming a
// distributed run from it is not implemented: the workers' own state (momentum, batch positions) lives in
// the worker processes. Simulated runs save and resume everything (run_checkpoint.hpp).
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

#include "phalanx/core/engine/engine_parts.hpp"

namespace phalanx::core {

/// Writes DIR/checkpoint.pt holding {"params": [d], "optimizer/<key>": ..., "aggregator/<key>": ...,
/// "preaggregator<i>/<key>": ..., "attack/<key>": ...}; returns the file's path.
std::string save_checkpoint(const std::string& dir, const at::Tensor& params, const EnginePlugins& plugins);

}  // namespace phalanx::core
