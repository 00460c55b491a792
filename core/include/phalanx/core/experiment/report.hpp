// `phalanx report DIR`: finds every finished run below DIR, works out which config keys differ between
// them, and writes a markdown table (final test accuracy and training loss, mean +/- std over seeds,
// optionally keeping the best value of some keys per cell, e.g. the learning rate) and PNG plots.
#pragma once

#include <string>
#include <vector>

#include "phalanx/value.hpp"

namespace phalanx::core {

struct ReportOptions {
  std::vector<std::string> best_over;  // keys whose best value (by mean final accuracy) is kept per cell
  std::vector<std::string> plot_by;    // table columns that split the plots into one set per value
  bool plots = true;
};

struct RunRecord {
  std::string dir;
  Value config;                                // resolved config.yaml
  std::vector<std::vector<double>> rows;       // metrics.csv rows
  std::vector<std::string> columns;            // metrics.csv header
  std::string status;
  double column(std::size_t row, const std::string& name) const;
};

/// Every run folder below `dir` with a summary.json (and its config.yaml and metrics.csv).
std::vector<RunRecord> find_runs(const std::string& dir);

/// Builds the report; writes DIR/report.md (and DIR/plots/*.png when gnuplot is available) and returns
/// the markdown.
std::string write_report(const std::string& dir, const ReportOptions& options);

}  // namespace phalanx::core
