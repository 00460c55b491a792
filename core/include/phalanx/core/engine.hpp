// The engine API: what a caller (the CLI, compare, sweep, the distributed server) needs to run one
// pipeline and read its outcome. The engines themselves live in engine/ (simulation) and distributed/.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/core/run/run_output.hpp"
#include "phalanx/core/run/run_status.hpp"

namespace phalanx::core {

struct RunResult {
  RunStatus status = RunStatus::ok;
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

}  // namespace phalanx::core
