// What both simulation engines hold for one run, from the first line to the summary: the checkpointer and
// the checkpoint being resumed from, the run folder, data and model (RunSetup), the plugins, the speed
// model, the metrics, the outcome and the gradient threads. Each engine adds only its loop and the loop's
// own state (sync_engine.cpp, async_engine.cpp), so the two start and finish a run the same way.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "phalanx/core/engine.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/helpers/parallel.hpp"
#include "phalanx/core/engine/run_checkpoint.hpp"
#include "phalanx/core/engine/worker_pool.hpp"

namespace phalanx::core {

struct SimulatedRun {
  /// The number of server updates the budget allows for the loaded data (the engines count differently).
  using UpdateCount = std::function<std::int64_t(const Dataset&)>;

  /// Sets the run up in a fixed order (the run folder, data and model, then the plugins, then the speed
  /// model), so the same config draws the same random numbers in either engine.
  SimulatedRun(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
               std::shared_ptr<spdlog::logger> logger, const RunControl& control, const UpdateCount& updates);
  SimulatedRun(const SimulatedRun&) = delete;  // the metrics and the models hold references into it
  SimulatedRun& operator=(const SimulatedRun&) = delete;

  /// When resuming: loads the shared state (run_checkpoint.hpp) and hands the checkpoint over for the
  /// engine's own entries; nullopt otherwise. Called once, after the engine has built its loop state.
  std::optional<Checkpoint> take_resume_point();
  /// A checkpoint holding the shared state; the engine adds its own entries and passes it to write().
  Checkpoint shared_checkpoint();
  void write(Checkpoint& checkpoint) const { checkpoints.write(checkpoint); }
  /// Computes every task's message on the gradient threads (compute_messages in engine_parts.hpp).
  void compute(std::vector<WorkerTask>& tasks, at::Tensor rows = at::Tensor());
  /// Marks the run interrupted by the stop signal after `steps` updates.
  void interrupt(std::int64_t steps) { mark_interrupted(result, steps, checkpoints); }
  /// Removes the checkpoint of a run that ended, adds the wall time and writes summary.json.
  RunResult finish();

  FlatModel& model() { return *run.model; }
  const Dataset& data() const { return run.data; }

  // In the order they are built.
  const PipelineSpec& spec;
  std::shared_ptr<spdlog::logger> logger;
  const RunControl& control;
  std::string out_dir;
  RunCheckpointer checkpoints;
  std::optional<Checkpoint> resumed;  // dropped by take_resume_point once loaded (a copy of the model and more)
  RunSetup run;
  const std::int64_t total_steps;
  EnginePlugins plugins;
  SpeedModel speed;
  RunResult result;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  MetricsTracker metrics;
  WorkerPool pool;
  const std::vector<std::unique_ptr<FlatModel>> replicas;
  std::vector<FlatModel*> models;  // slot 0 is the model, then the replicas (build_replicas)
  // The gradient threads, idle while the server's plugins run, lent to the SDK's block kernels
  // (phalanx/helpers/parallel.hpp) for as long as the run lives.
  LentThreads lent_threads;
};

}  // namespace phalanx::core
