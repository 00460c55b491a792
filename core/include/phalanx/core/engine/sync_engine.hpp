// The synchronous simulation engine: n simulated workers in one process, b of them Byzantine. Each round
// every worker computes a gradient on its own partition at the same parameters and passes it through its
// worker-side optimizer half; the attack rewrites the Byzantine messages; pre-aggregators and the
// aggregator combine the n rows; the server half updates the parameters.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "phalanx/core/engine.hpp"

namespace phalanx::core {

/// Runs `spec` in synchronous rounds; writes into `out_dir` when it is non-empty. Errors in plugins or data end the run with
/// a phalanx::Error; divergence (non-finite parameters) ends it with status "diverged".
RunResult run_sync(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                   std::shared_ptr<spdlog::logger> logger, const RunControl& control = {});

}  // namespace phalanx::core
