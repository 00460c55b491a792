#include "phalanx/core/run/run_status.hpp"

namespace phalanx::core {

const char* to_string(RunStatus status) {
  switch (status) {
    case RunStatus::ok: return "ok";
    case RunStatus::diverged: return "diverged";
    case RunStatus::failed: return "failed";
    case RunStatus::interrupted: return "interrupted";
  }
  return "?";
}

std::optional<RunStatus> parse_run_status(const std::string& text) {
  for (RunStatus s : {RunStatus::ok, RunStatus::diverged, RunStatus::failed, RunStatus::interrupted})
    if (text == to_string(s)) return s;
  return std::nullopt;
}

std::ostream& operator<<(std::ostream& out, RunStatus status) { return out << to_string(status); }

}  // namespace phalanx::core
