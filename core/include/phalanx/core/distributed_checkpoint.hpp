// What an interrupted distributed run leaves to resume from (until issue 6 brings checkpoints to every
// engine): the server's parameters and the named state tensors of its plugins, in one file that
// torch.load (Python) and torch::pickle_load (C++) read.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

#include "phalanx/core/engine_parts.hpp"

namespace phalanx::core {

/// Writes DIR/checkpoint.pt holding {"params": [d], "optimizer/<key>": ..., "aggregator/<key>": ...,
/// "preaggregator<i>/<key>": ..., "attack/<key>": ...}; returns the file's path.
std::string save_checkpoint(const std::string& dir, const at::Tensor& params, const EnginePlugins& plugins);

/// The tensors of a checkpoint written by save_checkpoint, by name.
State load_checkpoint(const std::string& file);

}  // namespace phalanx::core
