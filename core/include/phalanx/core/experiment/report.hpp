// `phalanx report DIR`: finds every finished run below DIR, works out which config keys differ between
// them, and writes a markdown table (final test accuracy and training loss, mean +/- std over seeds,
// optionally keeping the best value of some keys per cell, e.g. the learning rate) and PNG plots.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "phalanx/value.hpp"

namespace phalanx::core {

struct ReportOptions {
  std::vector<std::string> best_over;  // keys whose best value (by mean final accuracy) is kept per cell
  std::vector<std::string> plot_by;    // table columns that split the plots into one set per value
  bool plots = true;
  // The pivot tables: rows are the columns named pivot_rows or below it (the aggregator with its
  // pre-aggregators), columns those of pivot_columns (the attack), one table per value of the other columns,
  // with the worst case over the columns and a rank by it. The curves have one panel per pivot column.
  std::string pivot_rows = "aggregator";
  std::string pivot_columns = "attack";
  // Pairs of keys drawn as heatmaps of the worst-case accuracy (e.g. workers.byzantine x data.partition.alpha);
  // empty: every pair of the columns that are neither rows nor columns of the pivot tables (at most 3).
  std::vector<std::pair<std::string, std::string>> heatmaps;
  // Test accuracy (%) a run must reach: the long table adds the gradients and the simulated time each cell's
  // seeds took to first reach it (0: no such columns).
  double target_accuracy = 0;
};

/// The options of a config's `report` section ({best_over: [keys], plot_by: [keys], heatmaps: [[x, y]],
/// pivot_rows: key, pivot_columns: key, target_accuracy: percent}), with errors naming the file and line.
ReportOptions report_options_from(const Value& report_section);

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

/// Builds the report; writes DIR/report.md (and DIR/plots/*.png when gnuplot is available), the SVG figures
/// DIR/plots/*.svg and DIR/report.html (tables and figures inline, readable offline); returns the markdown.
std::string write_report(const std::string& dir, const ReportOptions& options);

}  // namespace phalanx::core
