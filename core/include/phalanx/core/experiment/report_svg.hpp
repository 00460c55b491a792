// The SVG figures of `phalanx report`, drawn by hand so report.html needs nothing but a browser: curves as
// small multiples (one panel per pivot column, e.g. per attack; one line per pivot row with a band of ± one
// standard deviation over seeds) and heatmaps of the worst-case accuracy over two config keys.
#pragma once

#include <string>
#include <vector>

#include "phalanx/core/experiment/report_tables.hpp"

namespace phalanx::core {

/// Test accuracy (%) against steps for the cells of pivot table `table`: one panel per pivot column.
std::string curves_svg(const ReportCells& cells, const std::vector<PivotPlace>& places, const std::string& table);

/// Worst-case final accuracy (%) over everything but x, y and the pivot row, one panel per pivot row.
/// Empty when x or y is not a column of the report.
std::string heatmap_svg(const ReportCells& cells, const std::vector<PivotPlace>& places, const std::string& x,
                        const std::string& y);

}  // namespace phalanx::core
