// write_report: the markdown report, the SVG figures and report.html, and the options of a `report` section.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "phalanx/core/experiment/compare.hpp"
#include "phalanx/core/experiment/report.hpp"
#include "phalanx/core/experiment/report_cells.hpp"
#include "phalanx/core/experiment/report_plots.hpp"
#include "phalanx/core/experiment/report_svg.hpp"
#include "phalanx/core/experiment/report_tables.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace fs = std::filesystem;

namespace {

// The heatmaps asked for, or every pair of the columns outside the pivot (at most 3 pairs).
std::vector<std::pair<std::string, std::string>> heatmap_pairs(const ReportCells& cells, const ReportOptions& options) {
  if (!options.heatmaps.empty()) return options.heatmaps;
  std::vector<std::string> others;
  for (const auto& c : cells.columns)
    if (!in_column_group(c, options.pivot_rows) && !in_column_group(c, options.pivot_columns)) others.push_back(c);
  std::vector<std::pair<std::string, std::string>> pairs;
  for (std::size_t a = 0; a < others.size(); ++a)
    for (std::size_t b = a + 1; b < others.size() && pairs.size() < 3; ++b) pairs.push_back({others[a], others[b]});
  return pairs;
}

// The gnuplot figures (PNG): one curve per cell, one set per value of the plot_by columns.
std::vector<PlotFacet> gnuplot_facets(const ReportCells& cells, const ReportOptions& options) {
  std::vector<PlotFacet> facets;
  for (const auto& cell : cells.cells) {
    PlotCurve curve;
    curve.runs = cell.runs;
    std::string title, folder;
    for (std::size_t k = 0; k < cell.key.size(); ++k) {
      const std::string& column = cells.columns[k];
      const std::string part = column.substr(column.rfind('.') + 1) + "=" + cell.key[k];
      if (std::find(options.plot_by.begin(), options.plot_by.end(), column) != options.plot_by.end()) {
        title += (title.empty() ? "" : ", ") + part;
        folder += (folder.empty() ? "" : "_") + value_label(Value(part));
      } else {
        curve.label += (curve.label.empty() ? "" : ", ") + part;
      }
    }
    if (curve.label.empty()) curve.label = "run";
    auto facet = std::find_if(facets.begin(), facets.end(), [&](const PlotFacet& f) { return f.title == title; });
    if (facet == facets.end()) facet = facets.insert(facets.end(), PlotFacet{title, folder, {}});
    facet->curves.push_back(std::move(curve));
  }
  return facets;
}

struct Figure {
  std::string title, file, svg;  // file below DIR/plots
};

std::vector<Figure> svg_figures(const ReportCells& cells, const ReportOptions& options) {
  const std::vector<PivotPlace> places = pivot_places(cells, options);
  std::vector<std::string> tables;
  for (const auto& p : places)
    if (std::find(tables.begin(), tables.end(), p.table) == tables.end()) tables.push_back(p.table);
  std::vector<Figure> figures;
  for (std::size_t t = 0; t < tables.size(); ++t)
    figures.push_back({"Test accuracy, mean ± std over seeds" + (tables[t].empty() ? "" : ": " + tables[t]),
                       "curves" + (tables.size() > 1 ? std::to_string(t + 1) : "") + ".svg",
                       curves_svg(cells, places, tables[t])});
  for (const auto& [x, y] : heatmap_pairs(cells, options)) {
    std::string svg = heatmap_svg(cells, places, x, y);
    if (svg.empty()) continue;  // a key that did not vary
    figures.push_back({"Worst-case final accuracy (%): " + y + " against " + x,
                       "heatmap_" + value_label(Value(x + "_" + y)) + ".svg", std::move(svg)});
  }
  return figures;
}

// Config values come from files a user may have edited: '<' or '&' must not end up as markup.
std::string escape_html(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return out;
}

// Rows of a markdown table as HTML (the long table is written once, in markdown).
std::string markdown_table_html(const std::string& md) {
  std::ostringstream html;
  std::istringstream in(md);
  bool header = true;
  html << "<table class=\"cells\">\n";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("|---", 0) == 0) continue;
    if (line.rfind("|", 0) != 0) {
      if (!line.empty()) html << "</table>\n<p class=\"note\">" << escape_html(line) << "</p>\n<table>\n";
      continue;
    }
    html << "<tr>";
    std::istringstream cells(line.substr(1));
    for (std::string cell; std::getline(cells, cell, '|');)
      html << (header ? "<th>" : "<td>") << escape_html(cell) << (header ? "</th>" : "</td>");
    html << "</tr>\n";
    header = false;
  }
  html << "</table>\n";
  return html.str();
}

const char* kStyle =
    "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 16px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
    "td.worst{font-weight:bold}.note{color:#555;font-size:90%}figure{margin:12px 0}";

// `key` in the markdown intro reads as <code>key</code>.
std::string code_spans(const std::string& text) {
  std::string out;
  bool open = false;
  for (char c : text) out += c == '`' ? ((open = !open) ? "<code>" : "</code>") : std::string(1, c);
  return out;
}

std::string html_page(const std::string& dir, const std::string& intro, const std::string& pivots,
                      const std::vector<Figure>& figures, const std::string& long_table) {
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Report: " << escape_html(dir)
       << "</title>\n<style>" << kStyle << "</style></head>\n<body>\n<h1>Report: " << escape_html(dir) << "</h1>\n<p>"
       << code_spans(escape_html(intro)) << "</p>\n";
  if (!pivots.empty()) html << "<h2>Ranking by worst case over attacks</h2>\n" << pivots;
  for (const auto& f : figures)
    html << "<figure>\n<figcaption>" << escape_html(f.title) << "</figcaption>\n" << f.svg << "</figure>\n";
  html << "<h2>Every cell</h2>\n" << markdown_table_html(long_table) << "</body></html>\n";
  return html.str();
}

}  // namespace

std::string write_report(const std::string& dir, const ReportOptions& options) {
  const ReportCells cells = group_runs(dir, options);
  std::ostringstream intro;
  intro << cells.runs.size() << " runs. Final test accuracy and final training loss, mean ± sample std over seeds";
  if (!cells.best_over.empty()) {
    intro << "; for each cell the best value of";
    for (const auto& b : cells.best_over) intro << " `" << b << "`";
    intro << " (highest mean final accuracy) is kept";
  }
  intro << ".";
  const std::string long_table = long_table_markdown(cells);
  const std::vector<PivotTable> tables = pivot_tables(cells, options);
  std::ostringstream md;
  md << "# Report: " << dir << "\n\n" << intro.str() << "\n\n" << long_table;
  if (!tables.empty())
    md << "\n## Ranking by worst case over attacks\n\nTest accuracy (%) per " << options.pivot_rows << " and "
       << options.pivot_columns << "; the worst case is the lowest mean over the columns, the rank orders by it.\n"
       << pivot_markdown(cells, tables);
  const std::vector<Figure> figures = svg_figures(cells, options);
  fs::create_directories(dir + "/plots");
  md << "\n## Figures\n\n";
  for (const auto& f : figures) {
    std::ofstream(dir + "/plots/" + f.file) << f.svg;
    md << "![" << f.title << "](plots/" << f.file << ")\n\n";
  }
  if (options.plots) md << write_plots(dir, gnuplot_facets(cells, options), cells.with_sim_time);
  std::ofstream(dir + "/report.md") << md.str();
  std::ofstream(dir + "/report.html") << html_page(dir, intro.str(), pivot_html(cells, tables), figures, long_table);
  return md.str();
}

ReportOptions report_options_from(const Value& report) {
  ReportOptions out;
  if (report.is_null()) return out;
  if (report.type() != Value::Type::Map)
    throw Error(report.location() + ": 'report' must be a map, e.g. {best_over: [optimizer.lr], plot_by: [workers.count]}");
  auto key_of = [](const Value& item, const std::string& k) {
    if (item.type() != Value::Type::String) throw Error(item.location() + ": report." + k + " entries are config keys");
    return item.as_string();
  };
  for (const auto& [k, v] : report.as_map()) {
    const Value::List items = v.type() == Value::Type::List ? v.as_list() : Value::List{v};
    if (k == "best_over" || k == "plot_by") {
      for (const auto& item : items) (k == "best_over" ? out.best_over : out.plot_by).push_back(key_of(item, k));
    } else if (k == "pivot_rows" || k == "pivot_columns") {
      (k == "pivot_rows" ? out.pivot_rows : out.pivot_columns) = key_of(v, k);
    } else if (k == "heatmaps") {
      for (const auto& pair : items) {
        if (pair.type() != Value::Type::List || pair.as_list().size() != 2)
          throw Error(pair.location() + ": report.heatmaps entries are pairs of keys, e.g. [workers.byzantine, data.partition.alpha]");
        out.heatmaps.push_back({key_of(pair.as_list()[0], k), key_of(pair.as_list()[1], k)});
      }
    } else if (k == "target_accuracy") {
      const double target = v.is_number() ? v.as_double() : -1;
      if (!(target > 0 && target <= 100))
        throw Error(v.location() + ": report.target_accuracy is a test accuracy in percent, above 0 and at most 100 (e.g. 80)");
      out.target_accuracy = target;
    } else {
      throw Error(v.location() + ": report." + k +
                  ": unknown key (allowed: best_over, plot_by, heatmaps, pivot_rows, pivot_columns, target_accuracy)");
    }
  }
  return out;
}

}  // namespace phalanx::core
