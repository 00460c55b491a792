// How a run ended, and the one place that turns it into the text summary.json, the CLI and the report use.
#pragma once

#include <optional>
#include <ostream>
#include <string>

namespace phalanx::core {

/// How a run ended. summary.json, the CLI and the report use the text form (`to_string`).
enum class RunStatus {
  ok,
  diverged,     // non-finite parameters or test loss
  failed,       // an error inside the run (run_failure.hpp)
  interrupted,  // a stop signal; a checkpoint was left
};

/// "ok", "diverged", "failed" or "interrupted": the one place the status becomes text.
const char* to_string(RunStatus status);
/// The inverse of to_string; nullopt for any other text (a summary.json written by hand, say).
std::optional<RunStatus> parse_run_status(const std::string& text);
std::ostream& operator<<(std::ostream& out, RunStatus status);

/// The status recorded in `dir`/summary.json; nullopt when there is no summary or no known status in it.
std::optional<RunStatus> read_summary_status(const std::string& dir);

}  // namespace phalanx::core
