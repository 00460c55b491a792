// LibTorch failures as phalanx errors. A c10::Error or std::bad_alloc thrown anywhere in a run (a plugin
// handing LibTorch a tensor it refuses, an allocation the system cannot grant) ends the run with status
// "failed" and one line saying where it happened (engine phase, plugin and its library, step), what
// LibTorch said in its first line and what to try; the full text with LibTorch's frames goes to log.txt.
//
// The engines mark where they are with a PhaseScope (a thread-local stack costs nothing when nothing
// fails); the innermost scope an exception leaves is remembered as the failure site.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <spdlog/logger.h>

#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/engine.hpp"

namespace phalanx::core {

/// While alive, the run is in `phase` ("aggregation"), inside the plugin `kind`/`name` when given.
class PhaseScope {
 public:
  PhaseScope(const char* phase, Kind kind, const std::string& name);
  explicit PhaseScope(const char* phase);
  ~PhaseScope();
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  const char* phase_;
  bool has_plugin_;
  Kind kind_;
  const std::string* name_;
  int uncaught_;
};

/// The one way the engines call a plugin during a run: inside a PhaseScope naming `phase` and the plugin
/// (for a LibTorch failure's report) and through guard_plugin with the plugin's `label` (for any other
/// exception's message). Where a phase covers more than the call (building a plugin, crafting an attack
/// with its oracle), the engines keep the two apart.
template <class Call>
auto call_plugin(const char* phase, Kind kind, const std::string& name, const std::string& label, Call&& call)
    -> decltype(call()) {
  PhaseScope scope(phase, kind, name);
  return guard_plugin(label, std::forward<Call>(call));
}

/// The step the engine is at (read when a failure is reported).
void set_failure_step(std::int64_t step);

/// Runs `body`; a LibTorch error, std::bad_alloc or other std::exception (not a phalanx::Error) from it
/// becomes a RunResult with status "failed" and the one-line message described above (its frames are
/// written to `logger`'s file sinks only).
RunResult run_reporting_failures(const std::function<RunResult()>& body, const Registry& registry,
                                 spdlog::logger* logger);

/// The one-line message for `error` at the last recorded failure site (exposed for tests).
std::string describe_failure(const std::exception& error, const Registry& registry);

}  // namespace phalanx::core
