#include "phalanx/core/experiment/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "phalanx/core/experiment/compare.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/experiment/report_plots.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace fs = std::filesystem;

double RunRecord::column(std::size_t row, const std::string& name) const {
  for (std::size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == name && i < rows[row].size()) return rows[row][i];
  return std::nan("");
}

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void read_metrics(RunRecord& r) {
  std::ifstream in(r.dir + "/metrics.csv");
  std::string line;
  if (!std::getline(in, line)) return;
  std::stringstream header(line);
  for (std::string c; std::getline(header, c, ',');) r.columns.push_back(c);
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream cells(line);
    for (std::string c; std::getline(cells, c, ',');) row.push_back(std::strtod(c.c_str(), nullptr));
    if (row.size() == r.columns.size()) r.rows.push_back(std::move(row));
  }
}

// Leaves of a config tree as "a.b.c" -> flow text.
void flatten(const Value& v, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (v.type() == Value::Type::Map) {
    for (const auto& [k, item] : v.as_map()) flatten(item, prefix.empty() ? k : prefix + "." + k, out);
  } else if (v.type() == Value::Type::List && v.as_list().empty()) {
    out[prefix] = "none";
  } else if (v.type() == Value::Type::List && v.as_list().front().find("name")) {
    // A list of plugin sections (aggregator.pre) reads best as their names: "nnm+bucketing".
    std::string names;
    for (const auto& item : v.as_list())
      names += (names.empty() ? "" : "+") + (item.find("name") ? item.find("name")->to_string() : item.to_string());
    out[prefix] = names;
  } else {
    out[prefix] = v.to_string();
  }
}

struct Stats {
  double mean = std::nan(""), std = std::nan("");
  int count = 0;
};

Stats stats(const std::vector<double>& xs) {
  Stats s;
  std::vector<double> finite;
  for (double x : xs)
    if (std::isfinite(x)) finite.push_back(x);
  s.count = static_cast<int>(finite.size());
  if (finite.empty()) return s;
  double sum = 0;
  for (double x : finite) sum += x;
  s.mean = sum / finite.size();
  double sq = 0;
  for (double x : finite) sq += (x - s.mean) * (x - s.mean);
  s.std = finite.size() > 1 ? std::sqrt(sq / (finite.size() - 1)) : 0.0;
  return s;
}

std::string format_stats(const Stats& s, double scale, int decimals) {
  if (s.count == 0) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f ± %.*f", decimals, s.mean * scale, decimals, s.std * scale);
  return buf;
}

std::string final_value(const RunRecord& r, const std::string& column) {
  return r.rows.empty() ? "nan" : std::to_string(r.column(r.rows.size() - 1, column));
}

}  // namespace

std::vector<RunRecord> find_runs(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error("'" + dir + "' is not a folder of runs");
  std::vector<RunRecord> runs;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().filename() != "summary.json") continue;
    RunRecord r;
    r.dir = e.path().parent_path().string();
    if (!fs::exists(r.dir + "/config.yaml")) continue;
    r.config = load_yaml_file(r.dir + "/config.yaml");
    const std::optional<RunStatus> status = read_summary_status(r.dir);
    r.status = status ? to_string(*status) : "?";
    read_metrics(r);
    runs.push_back(std::move(r));
  }
  std::sort(runs.begin(), runs.end(), [](const RunRecord& a, const RunRecord& b) { return a.dir < b.dir; });
  return runs;
}

std::string write_report(const std::string& dir, const ReportOptions& options) {
  std::vector<RunRecord> runs = find_runs(dir);
  if (runs.empty()) throw Error("no finished runs (folders with summary.json) below '" + dir + "'");

  // Which keys differ between runs? Seeds are averaged over; the name and the evaluation schedule do not
  // change what is trained.
  std::vector<std::map<std::string, std::string>> flat(runs.size());
  std::set<std::string> all_keys;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    flatten(runs[i].config, "", flat[i]);
    for (const auto& [k, v] : flat[i]) all_keys.insert(k);
  }
  std::vector<std::string> varied;
  for (const auto& k : all_keys) {
    if (k == "seed" || k == "name" || k == "training.eval_every" || k == "training.eval_batch_size") continue;
    std::set<std::string> values;
    for (const auto& f : flat) values.insert(f.count(k) ? f.at(k) : "-");
    if (values.size() > 1) varied.push_back(k);
  }
  // Columns: a plugin section whose name varies (`optimizer`, `engine.speed`) is one column, labelled like
  // `compare` labels it; a key belongs to the deepest such section above it.
  std::set<std::string> sections_by_name;
  for (const auto& k : varied)
    if (k.size() > 5 && k.compare(k.size() - 5, 5, ".name") == 0) sections_by_name.insert(k.substr(0, k.size() - 5));
  auto section_of = [&](const std::string& k) {
    std::string best;
    for (const auto& s : sections_by_name)
      if (k.rfind(s + ".", 0) == 0 && s.size() > best.size()) best = s;
    return best;
  };
  std::vector<std::string> columns;
  for (const auto& k : varied) {
    const std::string section = section_of(k);
    const std::string column = section.empty() ? k : section;
    if (std::find(columns.begin(), columns.end(), column) == columns.end()) columns.push_back(column);
  }
  auto cell_value = [&](std::size_t run, const std::string& column) -> std::string {
    if (sections_by_name.count(column)) {
      const std::string name_key = column + ".name";
      // A section without a name (an edited config.yaml) reads "-", here and when comparing with other runs:
      // flat[run].at(name_key) used to throw std::out_of_range (found by tests/fuzz/report_fuzz).
      auto name_of = [&](const std::map<std::string, std::string>& f) {
        return f.count(name_key) ? f.at(name_key) : std::string("-");
      };
      std::string label = name_of(flat[run]);
      // Name the parameters that vary between runs of this same plugin only (not cm's missing tau).
      for (const auto& k : varied) {
        if (section_of(k) != column || k == name_key || !flat[run].count(k)) continue;
        std::set<std::string> values;
        for (const auto& f : flat)
          if (name_of(f) == name_of(flat[run])) values.insert(f.count(k) ? f.at(k) : "-");
        if (values.size() > 1) label += "-" + k.substr(column.size() + 1) + flat[run].at(k);
      }
      return label;
    }
    return flat[run].count(column) ? flat[run].at(column) : "-";
  };
  std::vector<std::string> best_over;
  for (const auto& b : options.best_over)
    if (std::find(columns.begin(), columns.end(), b) != columns.end()) best_over.push_back(b);
  std::vector<std::string> cell_columns;
  for (const auto& c : columns)
    if (std::find(best_over.begin(), best_over.end(), c) == best_over.end()) cell_columns.push_back(c);

  // cell key -> (best_over key -> runs)
  std::map<std::vector<std::string>, std::map<std::vector<std::string>, std::vector<std::size_t>>> cells;
  std::vector<std::vector<std::string>> cell_order;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    std::vector<std::string> key, inner;
    for (const auto& c : cell_columns) key.push_back(cell_value(i, c));
    for (const auto& c : best_over) inner.push_back(cell_value(i, c));
    if (!cells.count(key)) cell_order.push_back(key);
    cells[key][inner].push_back(i);
  }

  // Natural order: numbers by value (batch 8 before 32), text alphabetically.
  auto less_value = [](const std::string& a, const std::string& b) {
    char *end_a = nullptr, *end_b = nullptr;
    double x = std::strtod(a.c_str(), &end_a), y = std::strtod(b.c_str(), &end_b);
    if (!a.empty() && !b.empty() && *end_a == 0 && *end_b == 0) return x < y;
    return a < b;
  };
  std::sort(cell_order.begin(), cell_order.end(), [&](const auto& a, const auto& b) {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), less_value);
  });

  // Simulated time that says more than the step count (asynchronous runs, slow workers)? Then the table
  // shows it and the plots are also drawn against it.
  bool with_sim_time = false;
  for (const auto& r : runs) {
    if (r.rows.empty()) continue;
    const double sim_time = r.column(r.rows.size() - 1, "sim_time");
    if (std::isfinite(sim_time) && sim_time > 0 && sim_time != r.column(r.rows.size() - 1, "step")) with_sim_time = true;
  }

  std::ostringstream md;
  md << "# Report: " << dir << "\n\n" << runs.size() << " runs. Final test accuracy and final training loss, mean ± "
     << "sample std over seeds";
  if (!best_over.empty()) {
    md << "; for each cell the best value of";
    for (const auto& b : best_over) md << " `" << b << "`";
    md << " (highest mean final accuracy) is kept";
  }
  md << ".\n\n|";
  for (const auto& c : cell_columns) md << " " << c << " |";
  for (const auto& b : best_over) md << " best " << b << " |";
  md << " test accuracy (%) | train loss |" << (with_sim_time ? " sim time |" : "") << " seeds | steps |\n|";
  for (std::size_t i = 0; i < cell_columns.size() + best_over.size(); ++i) md << "---|";
  md << "---:|---:|" << (with_sim_time ? "---:|" : "") << "---:|---:|\n";

  // Plots: one curve per cell, grouped into one figure set per value of the report.plot_by columns.
  std::vector<std::size_t> facet_index;  // positions in cell_columns of the plot_by columns
  for (const auto& f : options.plot_by)
    for (std::size_t c = 0; c < cell_columns.size(); ++c)
      if (cell_columns[c] == f) facet_index.push_back(c);
  std::vector<PlotFacet> facets;
  for (const auto& key : cell_order) {
    const auto& groups = cells[key];
    const std::vector<std::string>* best_key = nullptr;
    Stats best_acc;
    for (const auto& [inner, members] : groups) {
      std::vector<double> acc;
      for (auto i : members) acc.push_back(std::strtod(final_value(runs[i], "test_accuracy").c_str(), nullptr));
      Stats s = stats(acc);
      if (!best_key || (s.count > 0 && (best_acc.count == 0 || s.mean > best_acc.mean))) best_key = &inner, best_acc = s;
    }
    const auto& members = groups.at(*best_key);
    std::vector<double> loss, sim_time;
    std::int64_t steps = 0;
    int failed = 0;
    PlotCurve curve;
    for (auto i : members) {
      loss.push_back(std::strtod(final_value(runs[i], "train_loss").c_str(), nullptr));
      sim_time.push_back(std::strtod(final_value(runs[i], "sim_time").c_str(), nullptr));
      // A metrics.csv without a step column (or an edited one) gives NaN or anything; converting that to an
      // integer is undefined behaviour (found by tests/fuzz/report_fuzz), so only plausible counts count.
      const double last_step = runs[i].rows.empty() ? 0.0 : runs[i].column(runs[i].rows.size() - 1, "step");
      if (last_step > static_cast<double>(steps) && last_step < 1e18) steps = static_cast<std::int64_t>(last_step);
      if (runs[i].status != to_string(RunStatus::ok)) ++failed;
      curve.runs.push_back(&runs[i]);
    }
    md << "|";
    std::string title, folder;
    for (std::size_t k = 0; k < key.size(); ++k) {
      md << " " << key[k] << " |";
      const std::string& column = cell_columns[k];
      const std::string part = column.substr(column.rfind('.') + 1) + "=" + key[k];
      if (std::find(facet_index.begin(), facet_index.end(), k) != facet_index.end()) {
        title += (title.empty() ? "" : ", ") + part;
        folder += (folder.empty() ? "" : "_") + value_label(Value(part));
      } else {
        curve.label += (curve.label.empty() ? "" : ", ") + part;
      }
    }
    for (const auto& v : *best_key) md << " " << v << " |";
    md << " " << format_stats(best_acc, 100.0, 2) << " | " << format_stats(stats(loss), 1.0, 4) << " | ";
    if (with_sim_time) md << format_stats(stats(sim_time), 1.0, 1) << " | ";
    md << members.size() << (failed ? " (" + std::to_string(failed) + " not ok)" : "") << " | " << steps << " |\n";
    if (curve.label.empty()) curve.label = "run";
    auto facet = std::find_if(facets.begin(), facets.end(), [&](const PlotFacet& f) { return f.title == title; });
    if (facet == facets.end()) facet = facets.insert(facets.end(), PlotFacet{title, folder, {}});
    facet->curves.push_back(std::move(curve));
  }
  if (options.plots) md << write_plots(dir, facets, with_sim_time);
  std::ofstream(dir + "/report.md") << md.str();
  return md.str();
}

}  // namespace phalanx::core
