// The parameter server's pieces that its two protocols (sync_server.cpp, async_server.cpp) and run_server
// (server.cpp) share: the loop's bookkeeping and the distributed checkpoint's server half. Internal to
// core/src/distributed.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <spdlog/logger.h>

#include "phalanx/core/distributed/distributed.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/engine/run_checkpoint.hpp"
#include "phalanx/core/run/checkpoint.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx::core::distributed {

using Clock = std::chrono::steady_clock;

inline std::chrono::milliseconds seconds(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
}

/// The server loop's bookkeeping shared by both protocols.
struct Server {
  const PipelineSpec& spec;
  RunSetup& run;
  EnginePlugins& plugins;
  ServerLinks& links;
  MetricsTracker& metrics;
  std::shared_ptr<spdlog::logger> logger;
  RunCheckpointer& checkpoints;
  Faults faults;
  Clock::time_point started = Clock::now();
  BufferPool snapshots{static_cast<std::size_t>(2 * spec.workers + 4)};
  std::int64_t d = 0, h = 0, n = 0;
  std::vector<std::int64_t> rejected_by_worker;
  std::vector<std::pair<std::int64_t, double>> gone_since;  // by rank: (update or round, seconds) of its loss

  double elapsed() const { return std::chrono::duration<double>(Clock::now() - started).count(); }

  void reject(int rank, const Message& m, const std::string& why) {
    metrics.add_rejected(1);
    if (m.payload.defined() && m.payload.scalar_type() == at::kFloat && m.payload.dim() == 1 &&
        count_nonfinite_rows(m.payload.unsqueeze(0)) > 0)
      metrics.add_nonfinite(1);
    if (logger && rejected_by_worker[rank]++ < 5)
      logger->warn("server: rejected message {} of worker {} (rank {}): it {}", m.header.seq, rank - 1, rank, why);
  }

  // `at`: the update (async) or round (sync) in progress.
  void lost(const ServerLinks::Event& e, std::int64_t at) {
    gone_since[e.rank] = {at, elapsed()};
    if (logger)
      logger->warn("server: worker {} (rank {}) is gone ({}); {} worker(s) left", e.rank - 1, e.rank, e.reason,
                   links.alive_count());
  }

  // A restarted process took the rank back (ServerLinks::rejoin): the log states the gap.
  void rejoined(const ServerLinks::Event& e, std::int64_t at, const char* unit) {
    if (!logger) return;
    const auto [since, when] = gone_since[e.rank];
    logger->warn("server: worker {} (rank {}) rejoined at {} {}; it was gone since {} {} ({:.1f} s); it gets the "
                 "current parameters and starts from a fresh state", e.rank - 1, e.rank, unit, at, unit, since,
                 elapsed() - when);
  }

  void maybe_crash(std::int64_t update) {
    if (faults.for_message(update) == "crash") {
      if (logger) logger->warn("server: PHALANX_FAULT: crashing at update {}", update);
      std::raise(SIGKILL);
    }
  }
};

// The server's own part of a checkpoint, in the simulation's format (run_checkpoint.hpp), and back; the wall
// clock (sim_time) goes on from where the checkpoint left it.
void save_server_state(Checkpoint& checkpoint, Server& s, const RunResult& result);
void load_server_state(const Checkpoint& checkpoint, Server& s, RunResult& result);

/// Asks every live worker for its state (they are all between rounds, or drained in async mode: the server
/// sent them nothing since their last message) and puts what arrives within engine.timeout into
/// `checkpoint`, unread; a worker that answered waits for parameters again (`idle`). Every other event
/// (a worker lost or rejoined, a rejected message, a late gradient) goes to `on_other`, so the protocol
/// deals with it as in its own loop. Returns how many workers answered.
std::int64_t gather_worker_states(Server& s, Checkpoint& checkpoint, std::int64_t step, std::vector<char>& idle,
                                  const std::function<void(const ServerLinks::Event&)>& on_other);

/// Sends each worker the state saved for it, to load before the first parameters of the resumed run (a
/// worker whose state is not in the checkpoint keeps the fresh one it started with).
void restore_worker_states(Server& s, const Checkpoint& checkpoint);

/// The two protocols, continuing from `resumed` when it holds a checkpoint (released once restored: it holds
/// a copy of the model and of every plugin's state).
RunResult run_sync_server(Server& s, std::int64_t total_steps, std::optional<Checkpoint>& resumed);
RunResult run_async_server(Server& s, std::int64_t total_steps, std::int64_t total_arrivals,
                           std::optional<Checkpoint>& resumed);

}  // namespace phalanx::core::distributed
