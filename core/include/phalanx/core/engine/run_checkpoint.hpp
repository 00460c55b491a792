// Checkpoints of simulated runs: when to write one, and the state every engine shares (model, plugins,
// batch streams, speed model, metrics so far, LibTorch's generator). Each engine adds its own loop state
// (the step, the simulated clock, the asynchronous engine's event queue and messages in flight).
//
// A resumed run continues bit for bit: saving reads state without changing it, and everything a later
// step depends on is in the file. tests/core/checkpoint_test.cpp kills runs with SIGKILL to hold us to that.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "phalanx/core/run/checkpoint.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/run/run_control.hpp"

namespace phalanx::core {

class RunCheckpointer {
 public:
  RunCheckpointer(RunControl control, const PipelineSpec& spec, std::string out_dir);

  /// The checkpoint to resume from, checked against this run's config; nullopt when not resuming.
  /// Throws an Error naming the file when it is missing, damaged or belongs to another config.
  std::optional<Checkpoint> resume_point();
  /// Whether a checkpoint is due after `steps_done` updates at simulated time `sim_time`.
  bool due(std::int64_t steps_done, double sim_time);
  /// Adds what identifies the run (config, engine, schedule) and writes the file atomically.
  void write(Checkpoint& checkpoint) const;
  /// A finished run needs no checkpoint: removes it (a large file per run of a sweep).
  void remove() const;
  bool writes() const { return !out_dir_.empty(); }

 private:
  RunControl control_;
  const PipelineSpec& spec_;
  std::string out_dir_;
  double next_sim_mark_ = 0;
};

void save_shared_state(Checkpoint& checkpoint, RunSetup& run, const EnginePlugins& plugins, const SpeedModel& speed,
                       const MetricsTracker& metrics, const RunResult& result);
void load_shared_state(const Checkpoint& checkpoint, RunSetup& run, EnginePlugins& plugins, SpeedModel& speed,
                       MetricsTracker& metrics, RunResult& result);

/// Marks `result` "interrupted" by the stop signal after `step` steps, pointing at the checkpoint.
void mark_interrupted(RunResult& result, std::int64_t step, const RunCheckpointer& checkpoints);

}  // namespace phalanx::core
