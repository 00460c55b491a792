// The synchronous simulation engine: n simulated workers in one process, b of them Byzantine. Each round
// every worker computes a gradient on its own partition at the same parameters and passes it through its
// worker-side optimizer half; the attack rewrites the Byzantine messages; pre-aggregators and the
// aggregator combine the n rows; the server half updates the parameters.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "phalanx/core/pipeline.hpp"
#include "phalanx/core/registry.hpp"
#include "phalanx/core/run_control.hpp"
#include "phalanx/core/run_output.hpp"

namespace phalanx::core {

struct RunResult {
  std::string status = "ok";  // ok | diverged | failed | interrupted (a stop signal; a checkpoint was left)
  std::string message;
  MetricsRow last;  // final evaluation
  bool has_last = false;
  std::int64_t total_steps = 0;
  TimeBreakdown time;  // wall-clock seconds by activity (not part of the deterministic metrics)
};

/// Creates every non-data plugin of `spec` with the right Context so plugin-level checks (e.g. an
/// aggregator that cannot tolerate b of n) fail before anything runs. Used by `phalanx validate`.
void check_plugins(const PipelineSpec& spec, const Registry& registry);

/// Runs `spec` with the engine it names (engine.name: sync or async).
RunResult run_pipeline(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                       std::shared_ptr<spdlog::logger> logger, const RunControl& control = {});

/// Runs `spec` in synchronous rounds; writes into `out_dir` when it is non-empty. Errors in plugins or data end the run with
/// a phalanx::Error; divergence (non-finite parameters) ends it with status "diverged".
RunResult run_sync(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                   std::shared_ptr<spdlog::logger> logger, const RunControl& control = {});

}  // namespace phalanx::core
