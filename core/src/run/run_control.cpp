// Kept apart from run_checkpoint.cpp so tools that only need the flag and the file name (the sweep, the
// fuzz build of the config code) do not pull in LibTorch serialisation.
#include "phalanx/core/run/run_control.hpp"

#include <cmath>
#include <cstdlib>

#include "phalanx/error.hpp"

namespace phalanx::core {

void parse_checkpoint_every(const std::string& text, RunControl& control) {
  const bool sim = text.rfind("sim:", 0) == 0;
  const std::string number = sim ? text.substr(4) : text;
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end);
  const bool whole = !number.empty() && *end == 0 && std::isfinite(value) && value > 0;
  if (!whole || (!sim && value != std::floor(value)))
    throw Error("--checkpoint-every expects a number of steps (e.g. 500) or of simulated time units (e.g. sim:25), "
                "got '" + text + "'");
  if (sim) control.checkpoint_every_sim_time = value;
  else control.checkpoint_every_steps = static_cast<std::int64_t>(value);
}

std::string checkpoint_path(const std::string& out_dir) { return out_dir + "/checkpoint.pt"; }

}  // namespace phalanx::core
