// How a simulated run saves and resumes (`phalanx run --checkpoint-every ... / --resume DIR`); the
// checkpoints themselves are in run_checkpoint.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace phalanx::core {

struct RunControl {
  std::int64_t checkpoint_every_steps = 0;  // 0: never on a schedule (a stop signal still saves)
  double checkpoint_every_sim_time = 0;     // 0: never
  bool resume = false;                      // continue from <out_dir>/checkpoint.pt
  // Called by the engines after every step (server update) with the steps done and the run's total, for the
  // command line's progress line. It only observes: the run's metrics are the same with or without it.
  std::function<void(std::int64_t steps_done, std::int64_t total_steps)> on_step;
};

/// Calls control.on_step when set.
inline void report_step(const RunControl& control, std::int64_t steps_done, std::int64_t total_steps) {
  if (control.on_step) control.on_step(steps_done, total_steps);
}

/// Parses --checkpoint-every: "N" (steps, i.e. server updates) or "sim:T" (simulated time); throws an
/// Error on anything else.
void parse_checkpoint_every(const std::string& text, RunControl& control);

/// Where a run folder keeps its checkpoint.
std::string checkpoint_path(const std::string& out_dir);

}  // namespace phalanx::core
