// The checkpoint of a distributed run: the server's state in the simulation's format (run_checkpoint.hpp:
// model, plugins, metrics so far, the loop's counters) plus each worker's own state (its optimizer rule's
// state such as momentum, its batch stream position, its attack's state, its random generator), which the
// server asks for at a round boundary (MessageKind::SaveState) and stores as the bytes the worker sent,
// unread: only the worker that wrote them decodes them again, when the run resumes (MessageKind::LoadState).
// A hostile worker can so spoil only its own state. Both protocols resume; an async server first drains
// the messages in flight, so the saved states agree (docs/distributed.md, "Checkpoint and resume").
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/stateful.hpp"

namespace phalanx::core {

/// The checkpoint entry holding worker `w`'s state bytes.
std::string worker_state_entry(std::int64_t w);

/// A worker's state as it travels: a pickled dict of named tensors in a [bytes] uint8 tensor.
at::Tensor pack_state(const State& state);
/// The inverse of pack_state; throws Error naming `who` when the bytes are not such a dict.
State unpack_state(const at::Tensor& bytes, const std::string& who);

/// Worker `w`'s own state in this process (rule, batch stream, attack, LibTorch's generator), and back.
State worker_state(RunSetup& run, const EnginePlugins& plugins, std::int64_t w);
void restore_worker_state(const State& state, RunSetup& run, EnginePlugins& plugins, std::int64_t w);

/// The most elements a state message may hold (bytes): generous for the rule's buffers and the batch order.
std::int64_t worker_state_limit(std::int64_t d, std::int64_t train_size);

}  // namespace phalanx::core
