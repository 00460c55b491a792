#include "phalanx/core/engine/speed_trace.hpp"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "phalanx/error.hpp"

namespace phalanx::core {

std::vector<std::vector<double>> parse_speed_trace(std::istream& in, const std::string& name) {
  std::vector<std::vector<double>> trace;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<double> times;
    std::stringstream cells(line);
    for (std::string cell; cells >> cell;) {
      char* end = nullptr;
      double t = std::strtod(cell.c_str(), &end);
      if (*end != 0 || !(t > 0) || !std::isfinite(t))
        throw Error(name + ":" + std::to_string(line_no) + ": '" + cell + "' is not a positive compute time");
      times.push_back(t);
    }
    // A line of blanks (spaces, a stray '\r' or '\v') looks empty, so it is skipped like an empty line. It
    // used to become a worker with no times, and SpeedModel::next's `pos % size()` then died of SIGFPE
    // mid-run after `validate` had said OK (found by tests/fuzz/speed_trace_fuzz).
    if (times.empty()) continue;
    trace.push_back(std::move(times));
  }
  return trace;
}

std::vector<std::vector<double>> read_speed_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("engine.speed.file: cannot read trace '" + path + "'");
  return parse_speed_trace(in, path);
}

}  // namespace phalanx::core
