// The tables of `phalanx report`: the long table (one row per cell) and the pivot tables (aggregators x
// attacks with the worst case over attacks and a rank by it, as in the ByzFL benchmark of Allouah et al.
// 2024), in markdown and HTML.
#pragma once

#include <string>
#include <vector>

#include "phalanx/core/experiment/report_cells.hpp"

namespace phalanx::core {

/// Where a cell sits in the pivot tables: its table (the values of the other columns), row and column.
/// Without a pivot_rows column (one aggregator) the other columns make the rows, in one table.
struct PivotPlace {
  std::string table, row, column;
  std::string group_row;  // the pivot_rows columns' label alone (empty without them)
};

/// Whether `column` is `group` or one of its keys ("aggregator" holds "aggregator.f"); never for an empty group.
bool in_column_group(const std::string& column, const std::string& group);

/// The place of every cell of `cells` (same order).
std::vector<PivotPlace> pivot_places(const ReportCells& cells, const ReportOptions& options);

struct PivotTable {
  struct Row {
    std::string label;
    std::vector<const ReportCell*> cells;  // one per column; null where no run has it
    const ReportCell* worst = nullptr;     // the column with the lowest mean final accuracy
    int rank = 0;                          // 1: the highest worst case
  };
  std::string title;  // empty: the only table
  std::vector<std::string> columns;
  std::vector<Row> rows;  // by rank
};

/// A cell's score in the ranking: its mean final accuracy, or -1 when a seed diverged or failed (the defence
/// lost that cell whatever its other seeds reached, and the table shows why instead of the other seeds'
/// mean) or no accuracy is finite.
double pivot_score(const ReportCell* cell);

/// The pivot tables; none when no pivot_columns column varies (nothing to take the worst case over).
std::vector<PivotTable> pivot_tables(const ReportCells& cells, const ReportOptions& options);

/// The long table, one row per cell, in markdown.
std::string long_table_markdown(const ReportCells& cells);

/// The pivot tables with their legend, in markdown and in HTML.
std::string pivot_markdown(const ReportCells& cells, const std::vector<PivotTable>& tables);
std::string pivot_html(const ReportCells& cells, const std::vector<PivotTable>& tables);

}  // namespace phalanx::core
