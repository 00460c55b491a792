#include "phalanx/core/experiment/report_tables.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "phalanx/core/run/run_status.hpp"

namespace phalanx::core {

namespace {

std::string join(const std::string& a, const std::string& sep, const std::string& b) {
  return a.empty() ? b : b.empty() ? a : a + sep + b;
}

std::string short_key(const std::string& key) { return key.substr(key.rfind('.') + 1); }

// "lr=0.1†": the chosen best_over values of a cell; † marks one at the edge of the values tried.
std::string chosen(const ReportCells& cells, const ReportCell& cell) {
  std::string out;
  for (std::size_t b = 0; b < cell.best.size(); ++b)
    out = join(out, ", ", short_key(cells.best_over[b]) + "=" + cell.best[b] + (cell.best_at_edge[b] ? "†" : ""));
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

const char* kEdgeNote =
    "† the best value is the smallest or largest one tried for this cell: a wider grid may do better.";

bool any_edge(const ReportCells& cells) {
  for (const auto& c : cells.cells)
    for (bool edge : c.best_at_edge)
      if (edge) return true;
  return false;
}


const char* kNotOkNote =
    "✗: a seed of this cell diverged or failed (its summary.json says why); such a cell ranks below every cell "
    "whose seeds all ended ok.";

bool any_not_ok(const std::vector<PivotTable>& tables) {
  for (const auto& t : tables)
    for (const auto& row : t.rows)
      for (const ReportCell* cell : row.cells)
        if (cell && cell->not_ok) return true;
  return false;
}

std::string pivot_text(const ReportCell& cell) {
  if (!cell.not_ok) return format_stats(cell.accuracy, 100.0, 2);
  std::string status;
  for (const RunRecord* r : cell.runs)
    if (r->status != to_string(RunStatus::ok)) status = status.empty() || status == r->status ? r->status : "not ok";
  const bool all = cell.not_ok == static_cast<int>(cell.runs.size());
  return "✗ " + (all ? "" : std::to_string(cell.not_ok) + "/" + std::to_string(cell.runs.size()) + " ") + status;
}

}  // namespace

bool in_column_group(const std::string& column, const std::string& group) {
  return !group.empty() && (column == group || column.rfind(group + ".", 0) == 0);
}

std::vector<PivotPlace> pivot_places(const ReportCells& cells, const ReportOptions& options) {
  std::vector<PivotPlace> places;
  for (const auto& cell : cells.cells) {
    PivotPlace p;
    std::string others;
    for (std::size_t k = 0; k < cells.columns.size(); ++k) {
      const std::string& column = cells.columns[k];
      const std::string& value = cell.key[k];
      if (in_column_group(column, options.pivot_rows)) {
        // Pre-aggregators (aggregator.pre) read "nnm ∘ cm", as they are applied; none is left out.
        if (column == options.pivot_rows) p.row = join(p.row, " ∘ ", value);
        else if (value != "none" && value != "-") p.row = join(value, " ∘ ", p.row);
      } else if (in_column_group(column, options.pivot_columns)) {
        p.column = join(p.column, ", ", value);
      } else {
        others = join(others, ", ", column + "=" + value);
      }
    }
    p.group_row = p.row;
    (p.row.empty() ? p.row : p.table) = others;
    if (p.column.empty()) p.column = "all";
    places.push_back(p);
  }
  return places;
}

double pivot_score(const ReportCell* x) { return x->not_ok || !x->accuracy.count ? -1.0 : x->accuracy.mean; }

std::vector<PivotTable> pivot_tables(const ReportCells& cells, const ReportOptions& options) {
  const std::vector<PivotPlace> places = pivot_places(cells, options);
  std::vector<PivotTable> tables;
  // Without rows, or without a pivot column (no attack varies), the long table says it all.
  if (std::none_of(places.begin(), places.end(), [](const PivotPlace& p) { return !p.row.empty(); }) ||
      std::all_of(places.begin(), places.end(), [](const PivotPlace& p) { return p.column == "all"; }))
    return tables;
  for (std::size_t i = 0; i < places.size(); ++i) {
    const PivotPlace& p = places[i];
    auto t = std::find_if(tables.begin(), tables.end(), [&](const PivotTable& x) { return x.title == p.table; });
    if (t == tables.end()) t = tables.insert(tables.end(), PivotTable{p.table, {}, {}});
    if (std::find(t->columns.begin(), t->columns.end(), p.column) == t->columns.end()) t->columns.push_back(p.column);
  }
  for (auto& t : tables) {
    std::map<std::string, std::map<std::string, const ReportCell*>> grid;
    for (std::size_t i = 0; i < places.size(); ++i)
      if (places[i].table == t.title) grid[places[i].row][places[i].column] = &cells.cells[i];
    for (const auto& [label, by_column] : grid) {
      PivotTable::Row row{label, {}, nullptr, 0};
      for (const auto& c : t.columns) {
        auto it = by_column.find(c);
        const ReportCell* cell = it == by_column.end() ? nullptr : it->second;
        row.cells.push_back(cell);
        // The worst case: the lowest mean; a cell that diverged or failed is the worst of all.
        if (cell && (!row.worst || pivot_score(cell) < pivot_score(row.worst))) row.worst = cell;
      }
      t.rows.push_back(row);
    }
    auto worst_of = [](const PivotTable::Row& r) { return r.worst ? pivot_score(r.worst) : -1.0; };
    std::stable_sort(t.rows.begin(), t.rows.end(),
                     [&](const PivotTable::Row& a, const PivotTable::Row& b) { return worst_of(a) > worst_of(b); });
    for (std::size_t r = 0; r < t.rows.size(); ++r)
      t.rows[r].rank = r > 0 && worst_of(t.rows[r]) == worst_of(t.rows[r - 1]) ? t.rows[r - 1].rank : static_cast<int>(r) + 1;
  }
  return tables;
}

// "12000 ± 800", "12000 ± 800 (2/3)" when some seeds never reached the target, "not reached" when none did.
std::string to_target_text(const ReportCell& cell, const Stats& s, int decimals) {
  if (cell.reached == 0) return "not reached";
  const int seeds = static_cast<int>(cell.runs.size());
  return format_stats(s, 1.0, decimals) +
         (cell.reached < seeds ? " (" + std::to_string(cell.reached) + "/" + std::to_string(seeds) + ")" : "");
}

std::string long_table_markdown(const ReportCells& cells) {
  std::ostringstream md;
  const bool to_target = cells.target_accuracy > 0;
  char target[32];
  std::snprintf(target, sizeof target, "%g", cells.target_accuracy);
  md << "|";
  for (const auto& c : cells.columns) md << " " << c << " |";
  for (const auto& b : cells.best_over) md << " best " << b << " |";
  md << " test accuracy (%) | train loss |" << (cells.with_sim_time ? " sim time |" : "");
  if (to_target) {
    md << " gradients to " << target << " % |";
    if (cells.with_sim_time) md << " sim time to " << target << " % |";
  }
  md << " seeds | steps |\n|";
  for (std::size_t i = 0; i < cells.columns.size() + cells.best_over.size(); ++i) md << "---|";
  md << "---:|---:|" << (cells.with_sim_time ? "---:|" : "");
  if (to_target) md << (cells.with_sim_time ? "---:|---:|" : "---:|");
  md << "---:|---:|\n";
  for (const auto& cell : cells.cells) {
    md << "|";
    for (const auto& v : cell.key) md << " " << v << " |";
    for (std::size_t b = 0; b < cell.best.size(); ++b) md << " " << cell.best[b] << (cell.best_at_edge[b] ? "†" : "") << " |";
    md << " " << format_stats(cell.accuracy, 100.0, 2) << " | " << format_stats(cell.loss, 1.0, 4) << " | ";
    if (cells.with_sim_time) md << format_stats(cell.sim_time, 1.0, 1) << " | ";
    if (to_target) {
      md << to_target_text(cell, cell.gradients_to_target, 0) << " | ";
      if (cells.with_sim_time) md << to_target_text(cell, cell.sim_time_to_target, 1) << " | ";
    }
    md << cell.runs.size() << (cell.not_ok ? " (" + std::to_string(cell.not_ok) + " not ok)" : "") << " | "
       << cell.steps << " |\n";
  }
  if (any_edge(cells)) md << "\n" << kEdgeNote << "\n";
  if (to_target)
    md << "\nTo " << target << " %: at the first evaluation whose test accuracy reached " << target
       << " %, mean ± std over the seeds that reached it; (k/n): only k of the n seeds did.\n";
  return md.str();
}

std::string pivot_markdown(const ReportCells& cells, const std::vector<PivotTable>& tables) {
  std::ostringstream md;
  for (const auto& t : tables) {
    md << "\n" << (t.title.empty() ? "" : "### " + t.title + "\n\n") << "| rank | |";
    for (const auto& c : t.columns) md << " " << c << " |";
    md << " worst case |\n|---:|---|";
    for (std::size_t c = 0; c <= t.columns.size(); ++c) md << "---:|";
    md << "\n";
    for (const auto& row : t.rows) {
      md << "| " << row.rank << " | " << row.label << " |";
      for (const ReportCell* cell : row.cells) {
        if (!cell) { md << " - |"; continue; }
        const std::string best = chosen(cells, *cell);
        md << " " << pivot_text(*cell) << (best.empty() ? "" : " (" + best + ")") << " |";
      }
      md << " **" << (row.worst ? pivot_text(*row.worst) : "-") << "** |\n";
    }
  }
  if (any_not_ok(tables)) md << "\n" << kNotOkNote << "\n";
  return md.str();
}

std::string pivot_html(const ReportCells& cells, const std::vector<PivotTable>& tables) {
  std::ostringstream html;
  for (const auto& t : tables) {
    if (!t.title.empty()) html << "<h3>" << html_escape(t.title) << "</h3>\n";
    html << "<table class=\"pivot\">\n<tr><th>rank</th><th></th>";
    for (const auto& c : t.columns) html << "<th>" << html_escape(c) << "</th>";
    html << "<th>worst case</th></tr>\n";
    for (const auto& row : t.rows) {
      html << "<tr><td>" << row.rank << "</td><th>" << html_escape(row.label) << "</th>";
      auto td = [&](const ReportCell* cell, bool worst) {
        if (!cell) return std::string("<td>-</td>");
        // Shade from red (0 %) to green (100 %), so the table reads at a glance.
        const double acc = std::clamp(pivot_score(cell), 0.0, 1.0);
        std::ostringstream s;
        s << "<td style=\"background:hsl(" << static_cast<int>(120 * acc) << ",60%,88%)\""
          << (worst ? " class=\"worst\"" : "") << ">" << html_escape(pivot_text(*cell));
        const std::string best = chosen(cells, *cell);
        if (!best.empty()) s << "<br><small>" << html_escape(best) << "</small>";
        s << "</td>";
        return s.str();
      };
      for (const ReportCell* cell : row.cells) html << td(cell, false);
      html << td(row.worst, true) << "</tr>\n";
    }
    html << "</table>\n";
  }
  if (any_not_ok(tables)) html << "<p class=\"note\">" << kNotOkNote << "</p>\n";
  if (any_edge(cells)) html << "<p class=\"note\">" << kEdgeNote << "</p>\n";
  return html.str();
}

}  // namespace phalanx::core
