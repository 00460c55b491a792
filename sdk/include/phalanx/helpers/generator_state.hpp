// Saving and restoring a plugin's random generator (see Stateful), for plugins whose only state is their
// generator (the gaussian attack, the bucketing pre-aggregator): one implementation of the checkpoint
// format and of the error for a state written by another LibTorch build.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>

#include "phalanx/export.hpp"
#include "phalanx/stateful.hpp"

namespace phalanx {

/// The State of a plugin whose only state is its generator: {"generator": its state tensor}.
PHALANX_EXPORT State save_generator(const at::Generator& generator);

/// The inverse of save_generator: restores the generator from state["generator"], or, when the state has
/// none (nothing saved yet), restarts it from `seed`. A state tensor that does not fit this LibTorch build
/// is a phalanx::Error naming `owner` (e.g. "attack 'gaussian'").
PHALANX_EXPORT void load_generator(const State& state, at::Generator& generator, std::uint64_t seed,
                                   const std::string& owner);

}  // namespace phalanx
