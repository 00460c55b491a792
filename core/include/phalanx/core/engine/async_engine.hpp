// The asynchronous simulation engine: a deterministic discrete-event simulation of K workers and one
// server. Each worker pulls the parameters and the server's iteration index, computes its gradient at
// exactly those parameters, and delivers it after a compute time from the speed model; the server applies
// arrivals in simulated-time order (ties: lower worker id first). With engine.buffer = k > 1 the server
// collects k arrivals and applies the robust aggregate of them (asynchronous + Byzantine).
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/core/engine.hpp"

namespace phalanx::core {

RunResult run_async(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                    std::shared_ptr<spdlog::logger> logger, const RunControl& control = {});

}  // namespace phalanx::core
