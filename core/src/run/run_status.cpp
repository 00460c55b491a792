#include "phalanx/core/run/run_status.hpp"

#include <fstream>
#include <sstream>

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

std::optional<RunStatus> read_summary_status(const std::string& dir) {
  std::ifstream in(dir + "/summary.json");
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  const std::string key = "\"status\": \"";
  const auto pos = text.str().find(key);
  if (pos == std::string::npos) return std::nullopt;
  const auto start = pos + key.size();
  return parse_run_status(text.str().substr(start, text.str().find('"', start) - start));
}

}  // namespace phalanx::core
