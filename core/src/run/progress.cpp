#include "phalanx/core/run/progress.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace phalanx::core {

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A terminal redraw at most this often: fast enough to look live, rare enough to cost nothing.
constexpr double kTerminalRedrawSeconds = 0.2;

}  // namespace

std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char text[48];
  if (s < 60) std::snprintf(text, sizeof text, "%ld s", s);
  else if (s < 3600) std::snprintf(text, sizeof text, "%ld min %02ld s", s / 60, s % 60);
  else std::snprintf(text, sizeof text, "%ld h %02ld min", s / 3600, (s % 3600) / 60);
  return text;
}

std::string run_progress_text(std::int64_t done, std::int64_t total, double steps_per_second) {
  std::string text = "step " + std::to_string(done) + "/" + std::to_string(total);
  if (total > 0) text += " (" + std::to_string(100 * done / total) + " %)";
  if (steps_per_second > 0) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f", steps_per_second);
    text += std::string(", ") + rate + " steps/s, about " +
            format_duration(static_cast<double>(total - done) / steps_per_second) + " left";
  }
  return text;
}

std::string sweep_progress_text(int done, int running, int failed, int total, double seconds_left) {
  std::string text = std::to_string(done) + "/" + std::to_string(total) + " runs done, " + std::to_string(running) +
                     " running, " + std::to_string(failed) + " failed";
  if (seconds_left >= 0) text += ", about " + format_duration(seconds_left) + " left";
  return text;
}

RunProgress::RunProgress(std::ostream& out, bool terminal, double plain_interval_s, Clock clock)
    : out_(out), terminal_(terminal), interval_s_(plain_interval_s), clock_(clock ? clock : Clock(steady_seconds)) {}

void RunProgress::update(std::int64_t done, std::int64_t total) {
  const double now = clock_();
  if (start_s_ < 0) {  // the first step of this process (a resumed run starts past 0) starts the clock
    start_s_ = last_print_s_ = now;
    first_done_ = done;
  }
  const bool last = done >= total;
  if (!last && now - last_print_s_ < (terminal_ ? kTerminalRedrawSeconds : interval_s_)) return;
  last_print_s_ = now;
  const double elapsed = now - start_s_;
  const double rate = elapsed > 0 ? static_cast<double>(done - first_done_) / elapsed : 0;
  const std::string text = run_progress_text(done, total, rate);
  if (terminal_) {
    out_ << "\r\033[K" << text << std::flush;  // \033[K clears what a longer earlier line left
    line_open_ = !last;
    if (last) out_ << "\n";
  } else {
    out_ << "progress: " << text << "\n" << std::flush;
  }
}

void RunProgress::finish() {
  if (line_open_) out_ << "\n" << std::flush;
  line_open_ = false;
}

}  // namespace phalanx::core
