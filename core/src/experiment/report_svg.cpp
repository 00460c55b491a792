#include "phalanx/core/experiment/report_svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

namespace phalanx::core {

namespace {

constexpr int kPanelW = 320, kPanelH = 230, kMargin = 44, kPerLine = 3;
// A legend entry: the colour swatch and a label such as "nnm ∘ clippedclustering" at 11 px.
constexpr int kLegendW = 170;

// Legend entries per row: as many as the figure is wide (one panel holds one; a legend wider than the figure
// was cut off).
int legend_per_row(int panels) { return std::max(1, kPanelW * std::min(panels, kPerLine) / kLegendW); }
const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string escape_svg(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : std::string(1, c);
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// Mean and standard deviation over seeds of test accuracy (%) at each evaluation, against the mean step.
struct Series {
  std::vector<double> x, mean, std;
};

Series series_of(const ReportCell& cell) {
  Series s;
  std::size_t length = cell.runs.empty() ? 0 : SIZE_MAX;
  for (const RunRecord* r : cell.runs) length = std::min(length, r->rows.size());
  for (std::size_t row = 0; row < length; ++row) {
    std::vector<double> acc, step;
    for (const RunRecord* r : cell.runs) acc.push_back(100 * r->column(row, "test_accuracy")), step.push_back(r->column(row, "step"));
    const Stats a = stats_of(acc), x = stats_of(step);
    if (a.count == 0 || x.count == 0) continue;  // rows without an evaluation
    s.x.push_back(x.mean), s.mean.push_back(a.mean), s.std.push_back(a.std);
  }
  return s;
}

struct Frame {  // one panel: data coordinates to pixels
  double x0, y0, xmin, xmax, ymin, ymax;
  double px(double x) const { return x0 + kMargin + (x - xmin) / (xmax - xmin) * (kPanelW - kMargin - 10); }
  double py(double y) const { return y0 + kPanelH - kMargin + (ymin - y) / (ymax - ymin) * (kPanelH - kMargin - 24); }
};

void axes(std::ostringstream& svg, const Frame& f, const std::string& title, const char* xlabel, const char* ylabel) {
  svg << "<g font-size=\"10\"><text x=\"" << f.x0 + kPanelW / 2 << "\" y=\"" << f.y0 + 14
      << "\" text-anchor=\"middle\" font-size=\"12\" font-weight=\"bold\">" << escape_svg(title) << "</text>\n"
      << "<rect x=\"" << f.px(f.xmin) << "\" y=\"" << f.py(f.ymax) << "\" width=\"" << f.px(f.xmax) - f.px(f.xmin)
      << "\" height=\"" << f.py(f.ymin) - f.py(f.ymax) << "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double x = f.xmin + (f.xmax - f.xmin) * t / 4, y = f.ymin + (f.ymax - f.ymin) * t / 4;
    svg << "<text x=\"" << f.px(x) << "\" y=\"" << f.py(f.ymin) + 12 << "\" text-anchor=\"middle\">" << num(x) << "</text>"
        << "<text x=\"" << f.px(f.xmin) - 3 << "\" y=\"" << f.py(y) + 3 << "\" text-anchor=\"end\">" << num(y) << "</text>"
        << "<line x1=\"" << f.px(f.xmin) << "\" x2=\"" << f.px(f.xmax) << "\" y1=\"" << f.py(y) << "\" y2=\"" << f.py(y)
        << "\" stroke=\"#eee\"/>\n";
  }
  svg << "<text x=\"" << f.x0 + kPanelW / 2 << "\" y=\"" << f.y0 + kPanelH - 16 << "\" text-anchor=\"middle\">" << xlabel
      << "</text><text transform=\"translate(" << f.x0 + 10 << "," << f.y0 + kPanelH / 2 << ") rotate(-90)\" "
      << "text-anchor=\"middle\">" << ylabel << "</text></g>\n";
}

std::string open_svg(int panels, int legend_rows) {
  const int lines = (panels + kPerLine - 1) / kPerLine;
  const int w = kPanelW * std::min(panels, kPerLine), h = kPanelH * lines + 16 * legend_rows + 8;
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(w) + "\" height=\"" + std::to_string(h) +
         "\" viewBox=\"0 0 " + std::to_string(w) + " " + std::to_string(h) + "\" font-family=\"sans-serif\">\n" +
         "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
}

}  // namespace

std::string curves_svg(const ReportCells& cells, const std::vector<PivotPlace>& places, const std::string& table) {
  std::vector<std::string> panels, lines;
  std::map<std::pair<std::string, std::string>, Series> data;
  double xmax = 0;
  for (std::size_t i = 0; i < places.size(); ++i) {
    if (places[i].table != table) continue;
    const std::string line = places[i].row.empty() ? "run" : places[i].row;
    if (std::find(panels.begin(), panels.end(), places[i].column) == panels.end()) panels.push_back(places[i].column);
    if (std::find(lines.begin(), lines.end(), line) == lines.end()) lines.push_back(line);
    Series s = series_of(cells.cells[i]);
    for (double x : s.x) xmax = std::max(xmax, x);
    data[{places[i].column, line}] = std::move(s);
  }
  if (panels.empty()) return "";
  const int per_row = legend_per_row(static_cast<int>(panels.size()));
  const int legend_rows = (static_cast<int>(lines.size()) + per_row - 1) / per_row;
  std::ostringstream svg;
  svg << open_svg(static_cast<int>(panels.size()), legend_rows);
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const Frame f{static_cast<double>(kPanelW * (p % kPerLine)), static_cast<double>(kPanelH * (p / kPerLine)), 0,
                  xmax > 0 ? xmax : 1, 0, 100};
    axes(svg, f, panels[p], "step", "test accuracy (%)");
    for (std::size_t l = 0; l < lines.size(); ++l) {
      auto it = data.find({panels[p], lines[l]});
      if (it == data.end() || it->second.x.empty()) continue;
      const Series& s = it->second;
      const char* color = kColors[l % 10];
      auto clamp = [](double v) { return std::clamp(v, 0.0, 100.0); };
      svg << "<polygon fill=\"" << color << "\" fill-opacity=\"0.25\" stroke=\"none\" points=\"";
      for (std::size_t k = 0; k < s.x.size(); ++k) svg << f.px(s.x[k]) << "," << f.py(clamp(s.mean[k] + s.std[k])) << " ";
      for (std::size_t k = s.x.size(); k-- > 0;) svg << f.px(s.x[k]) << "," << f.py(clamp(s.mean[k] - s.std[k])) << " ";
      svg << "\"/>\n<polyline fill=\"none\" stroke-width=\"1.8\" stroke=\"" << color << "\" points=\"";
      for (std::size_t k = 0; k < s.x.size(); ++k) svg << f.px(s.x[k]) << "," << f.py(clamp(s.mean[k])) << " ";
      svg << "\"><title>" << escape_svg(lines[l]) << "</title></polyline>\n";
    }
  }
  const int top = kPanelH * static_cast<int>((panels.size() + kPerLine - 1) / kPerLine);
  for (std::size_t l = 0; l < lines.size(); ++l) {
    const int column = static_cast<int>(l) % per_row, row = static_cast<int>(l) / per_row;
    const int x = 10 + kLegendW * column, y = top + 12 + 16 * row;
    svg << "<rect x=\"" << x << "\" y=\"" << y - 8 << "\" width=\"14\" height=\"8\" fill=\"" << kColors[l % 10]
        << "\"/><text x=\"" << x + 18 << "\" y=\"" << y << "\" font-size=\"11\">" << escape_svg(lines[l])
        << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string heatmap_svg(const ReportCells& cells, const std::vector<PivotPlace>& places, const std::string& x,
                        const std::string& y) {
  const int xi = column_index(cells, x), yi = column_index(cells, y);
  if (xi < 0 || yi < 0 || xi == yi) return "";
  std::vector<std::string> panels, xs, ys;
  std::map<std::vector<std::string>, double> worst;  // (panel, x, y) -> lowest mean accuracy (%)
  for (std::size_t i = 0; i < places.size(); ++i) {
    const ReportCell& cell = cells.cells[i];
    const std::string panel = places[i].group_row.empty() ? "worst case" : places[i].group_row;
    for (auto [list, value] : {std::pair{&panels, panel}, {&xs, cell.key[xi]}, {&ys, cell.key[yi]}})
      if (std::find(list->begin(), list->end(), value) == list->end()) list->push_back(value);
    const double acc = 100 * std::max(pivot_score(&cell), 0.0);  // a ✗ cell counts 0, as it ranks last
    auto [it, fresh] = worst.insert({{panel, cell.key[xi], cell.key[yi]}, acc});
    if (!fresh) it->second = std::min(it->second, acc);
  }
  std::sort(xs.begin(), xs.end(), less_value);
  std::sort(ys.begin(), ys.end(), less_value);
  std::ostringstream svg;
  svg << open_svg(static_cast<int>(panels.size()), 0);
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const double x0 = kPanelW * (p % kPerLine) + kMargin, y0 = kPanelH * (p / kPerLine) + 22.0;
    const double w = (kPanelW - kMargin - 10.0) / xs.size(), h = (kPanelH - kMargin - 24.0) / ys.size();
    svg << "<g font-size=\"10\"><text x=\"" << x0 - kMargin + kPanelW / 2 << "\" y=\"" << y0 - 8
        << "\" text-anchor=\"middle\" font-size=\"12\" font-weight=\"bold\">" << escape_svg(panels[p]) << "</text>\n";
    for (std::size_t a = 0; a < xs.size(); ++a)
      for (std::size_t b = 0; b < ys.size(); ++b) {
        auto it = worst.find({panels[p], xs[a], ys[b]});
        const double cx = x0 + a * w, cy = y0 + (ys.size() - 1 - b) * h;
        if (it == worst.end()) continue;
        svg << "<rect x=\"" << cx << "\" y=\"" << cy << "\" width=\"" << w << "\" height=\"" << h << "\" fill=\"hsl("
            << static_cast<int>(1.2 * std::clamp(it->second, 0.0, 100.0)) << ",65%,60%)\" stroke=\"white\"/>"
            << "<text x=\"" << cx + w / 2 << "\" y=\"" << cy + h / 2 + 4 << "\" text-anchor=\"middle\">"
            << num(std::round(it->second * 10) / 10) << "</text>\n";
      }
    for (std::size_t a = 0; a < xs.size(); ++a)
      svg << "<text x=\"" << x0 + (a + 0.5) * w << "\" y=\"" << y0 + ys.size() * h + 12 << "\" text-anchor=\"middle\">"
          << escape_svg(xs[a]) << "</text>";
    for (std::size_t b = 0; b < ys.size(); ++b)
      svg << "<text x=\"" << x0 - 3 << "\" y=\"" << y0 + (ys.size() - 1 - b + 0.5) * h + 3 << "\" text-anchor=\"end\">"
          << escape_svg(ys[b]) << "</text>";
    svg << "<text x=\"" << x0 + (kPanelW - kMargin) / 2 << "\" y=\"" << y0 + ys.size() * h + 26
        << "\" text-anchor=\"middle\">" << escape_svg(x) << "</text><text transform=\"translate(" << x0 - 34 << ","
        << y0 + ys.size() * h / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << escape_svg(y) << "</text></g>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace phalanx::core
