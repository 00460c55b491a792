// What `phalanx report` computes before it writes anything: the runs grouped into table cells (seeds
// averaged, the best value of the best_over keys kept), shared by the markdown table, the pivot tables,
// the SVG figures and report.html.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "phalanx/core/experiment/report.hpp"

namespace phalanx::core {

struct Stats {
  double mean = 0, std = 0;
  int count = 0;  // finite values; 0: mean and std mean nothing
};

/// Mean and sample standard deviation of the finite values of xs.
Stats stats_of(const std::vector<double>& xs);

/// "85.00 ± 7.07" (mean and std times scale), "-" without values.
std::string format_stats(const Stats& s, double scale, int decimals);

/// Natural order of config values: numbers by value (batch 8 before 32), text alphabetically.
bool less_value(const std::string& a, const std::string& b);

struct ReportCell {
  std::vector<std::string> key;        // one value per ReportCells::columns
  std::vector<std::string> best;       // the chosen value of each best_over key
  std::vector<bool> best_at_edge;      // that value is the smallest or largest one tried in this cell
  std::vector<const RunRecord*> runs;  // the seeds of the chosen values
  Stats accuracy, loss, sim_time;      // final values over those seeds (accuracy as a fraction)
  // Gradients and simulated time at the first evaluation reaching the target accuracy, over the seeds that
  // reached it (ReportOptions::target_accuracy); `reached` counts them.
  Stats gradients_to_target, sim_time_to_target;
  int reached = 0;
  std::int64_t steps = 0;
  int not_ok = 0;                      // runs whose status is not ok
};

struct ReportCells {
  std::vector<RunRecord> runs;
  std::vector<std::string> columns;    // config keys (or plugin sections) that vary, best_over excluded
  std::vector<std::string> best_over;  // the options' best_over keys that vary
  std::vector<ReportCell> cells;       // in natural order of their keys
  bool with_sim_time = false;          // simulated time says more than the step count
  double target_accuracy = 0;          // percent; 0: no time-to-target columns
  std::string dir;
};

/// Reads the runs below dir and groups them; throws when there are none.
ReportCells group_runs(const std::string& dir, const ReportOptions& options);

/// Index of `column` in cells.columns, or -1.
int column_index(const ReportCells& cells, const std::string& column);

}  // namespace phalanx::core
