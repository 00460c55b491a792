// What the command line shows while runs go on: one line per run with the steps done, steps per second and
// the time left, redrawn in place on a terminal and written as plain lines, at most one per interval,
// otherwise (so a log file gets a few readable lines, not thousands of carriage returns).
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace phalanx::core {

/// "42 s", "3 min 05 s", "2 h 07 min".
std::string format_duration(double seconds);

/// "step 120/1000 (12 %), 35.2 steps/s, about 25 s left" (no rate or time left before a step is timed).
std::string run_progress_text(std::int64_t done, std::int64_t total, double steps_per_second);

/// "3/16 runs done, 2 running, 1 failed, about 4 min 10 s left" (no time left before a run ended).
std::string sweep_progress_text(int done, int running, int failed, int total, double seconds_left);

class RunProgress {
 public:
  using Clock = std::function<double()>;  // seconds since any fixed point

  /// `terminal`: redraw one line with '\r'; otherwise a plain line every `plain_interval_s` seconds.
  RunProgress(std::ostream& out, bool terminal, double plain_interval_s = 10, Clock clock = {});

  /// After a step; prints when due (always at the last step).
  void update(std::int64_t done, std::int64_t total);

  /// Ends a line left open on a terminal.
  void finish();

 private:
  std::ostream& out_;
  bool terminal_;
  double interval_s_;
  Clock clock_;
  double start_s_ = -1, last_print_s_ = -1;
  std::int64_t first_done_ = 0;
  bool line_open_ = false;
};

}  // namespace phalanx::core
