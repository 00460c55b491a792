// The distributed mode (docs/distributed.md): the same pipeline as the simulations, across real processes on
// LibTorch's c10d with the Gloo backend. Rank 0 is the parameter server and writes the run folder; ranks
// 1..n are the workers (worker k = rank k + 1, so worker ids, data partitions and seeds match the
// simulation). engine.name picks the protocol: `sync` (rounds: every live worker sends one message, the
// server aggregates after all arrived or engine.timeout passed, then sends the new parameters) or `async`
// (the server takes messages from any worker as they come, applies each with its true iteration index and
// staleness, and replies to that worker). See docs/distributed.md.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "phalanx/core/distributed/channel.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/core/run/stop_signal.hpp"
#include "phalanx/core/engine.hpp"

namespace phalanx::core {

/// Runs this process's part of a distributed run: the server on rank 0 (writing `out_dir`), a worker on
/// every other rank (writing nothing). The world size must be workers.count + 1. `control` (server only):
/// --checkpoint-every N (server updates: rounds in sync mode) and --resume (docs/distributed.md, "Checkpoint
/// and resume").
RunResult run_distributed(const PipelineSpec& spec, const Registry& registry, const ClusterSpec& cluster,
                          const std::string& out_dir, std::shared_ptr<spdlog::logger> logger,
                          const RunControl& control = {});

/// Why gradient message `m` received from `rank` cannot be used when the server sent that worker the
/// parameters of index `expected` and is now at `current`; "" when it can. Checks kind, sender, dtype,
/// size, the claimed index, flags and finiteness (a Byzantine worker's true message for a server-side
/// omniscient attack, `may_carry_honest_copy`, is exempt from the last).
std::string check_gradient_message(const Message& m, int rank, std::int64_t d, std::int64_t expected,
                                   std::int64_t current, bool may_carry_honest_copy);

/// The server's message carrying a snapshot of `params` at iteration `index` (in a buffer from `pool`
/// when given).
Message params_message(std::int64_t index, std::int64_t seq, const at::Tensor& params, BufferPool* pool = nullptr);

/// Steps (server updates) a distributed run of `spec` makes: the same count as the simulation.
std::int64_t distributed_total_steps(const PipelineSpec& spec, std::int64_t train_size);

/// Faults injected on purpose, for the tests of the server's defences. PHALANX_FAULT holds items
/// "RANK:KIND@N" separated by commas, e.g. "2:nan@3,2:wrong_size@5,0:crash@20": rank RANK does KIND at its
/// N-th message (a worker) or N-th update (the server). Kinds: nan, wrong_size, wrong_dtype, wrong_index,
/// stall (sleeps 3 x engine.timeout before sending), crash (SIGKILL itself).
struct Faults {
  std::vector<std::pair<std::int64_t, std::string>> at;  // (N, kind)
  static Faults from_environment(int rank);
  /// The fault planned for message/update `n`, or "".
  std::string for_message(std::int64_t n) const;
};

/// Starts `processes` local processes of `executable` with `args` (rank 0 first), each with RANK,
/// WORLD_SIZE, MASTER_ADDR=127.0.0.1 and MASTER_PORT=`port` (0: a free port) in its environment, and
/// supervises them: SIGINT/SIGTERM are forwarded to the server (which checkpoints and stops the workers);
/// whatever is still running `grace` after the server ended is terminated. A second Ctrl-C kills
/// everything at once. Returns the server's exit code (130 when interrupted).
int launch_local(int processes, int port, const std::string& executable, const std::vector<std::string>& args,
                 std::chrono::milliseconds grace);

}  // namespace phalanx::core
