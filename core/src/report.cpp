#include "phalanx/core/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "phalanx/core/compare.hpp"
#include "phalanx/core/config.hpp"
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
    const std::string summary = slurp(e.path());
    auto pos = summary.find("\"status\": \"");
    r.status = pos == std::string::npos ? "?" : summary.substr(pos + 11, summary.find('"', pos + 11) - pos - 11);
    read_metrics(r);
    runs.push_back(std::move(r));
  }
  std::sort(runs.begin(), runs.end(), [](const RunRecord& a, const RunRecord& b) { return a.dir < b.dir; });
  return runs;
}

std::string write_report(const std::string& dir, const ReportOptions& options) {
  std::vector<RunRecord> runs = find_runs(dir);
  if (runs.empty()) throw Error("no finished runs (folders with summary.json) below '" + dir + "'");

  // Which keys differ between runs? Seeds are averaged over; name is cosmetic.
  std::vector<std::map<std::string, std::string>> flat(runs.size());
  std::set<std::string> all_keys;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    flatten(runs[i].config, "", flat[i]);
    for (const auto& [k, v] : flat[i]) all_keys.insert(k);
  }
  std::vector<std::string> varied;
  for (const auto& k : all_keys) {
    if (k == "seed" || k == "name") continue;
    std::set<std::string> values;
    for (const auto& f : flat) values.insert(f.count(k) ? f.at(k) : "-");
    if (values.size() > 1) varied.push_back(k);
  }
  // Columns: a section whose plugin name varies is one column labelled like `compare` labels it.
  std::vector<std::string> columns;
  std::set<std::string> sections_by_name;
  for (const auto& k : varied) {
    auto dot = k.find('.');
    if (dot != std::string::npos && k.substr(dot + 1) == "name") sections_by_name.insert(k.substr(0, dot));
  }
  for (const auto& k : varied) {
    auto dot = k.find('.');
    std::string section = dot == std::string::npos ? k : k.substr(0, dot);
    if (sections_by_name.count(section)) {
      if (std::find(columns.begin(), columns.end(), section) == columns.end()) columns.push_back(section);
    } else {
      columns.push_back(k);
    }
  }
  auto cell_value = [&](std::size_t run, const std::string& column) -> std::string {
    if (sections_by_name.count(column)) {
      const Value* section = get_path(runs[run].config, column);
      std::string label = section ? get_path(runs[run].config, column + ".name")->to_string() : "-";
      // Name the parameters that vary between runs of this same plugin only (not cm's missing tau).
      const std::string name_key = column + ".name";
      for (const auto& k : varied) {
        if (k.rfind(column + ".", 0) != 0 || k == name_key || !flat[run].count(k)) continue;
        std::set<std::string> values;
        for (const auto& f : flat)
          if (f.count(name_key) && f.at(name_key) == flat[run].at(name_key)) values.insert(f.count(k) ? f.at(k) : "-");
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
  md << " test accuracy (%) | train loss | seeds | steps |\n|";
  for (std::size_t i = 0; i < cell_columns.size() + best_over.size(); ++i) md << "---|";
  md << "---:|---:|---:|---:|\n";

  struct Curve {
    std::string label;
    std::vector<std::size_t> runs;
  };
  std::vector<Curve> curves;
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
    std::vector<double> loss;
    std::int64_t steps = 0;
    int failed = 0;
    for (auto i : members) {
      loss.push_back(std::strtod(final_value(runs[i], "train_loss").c_str(), nullptr));
      if (!runs[i].rows.empty()) steps = std::max<std::int64_t>(steps, runs[i].column(runs[i].rows.size() - 1, "step"));
      if (runs[i].status != "ok") ++failed;
    }
    md << "|";
    std::string label;
    for (std::size_t k = 0; k < key.size(); ++k) {
      md << " " << key[k] << " |";
      const std::string& column = cell_columns[k];
      label += (label.empty() ? "" : ", ") + column.substr(column.rfind('.') + 1) + "=" + key[k];
    }
    for (const auto& v : *best_key) md << " " << v << " |";
    md << " " << format_stats(best_acc, 100.0, 2) << " | " << format_stats(stats(loss), 1.0, 4) << " | "
       << members.size() << (failed ? " (" + std::to_string(failed) + " not ok)" : "") << " | " << steps << " |\n";
    curves.push_back({label.empty() ? "run" : label, members});
  }

  // Plots: mean curve over the seeds of each cell, against steps and against gradients.
  std::string gnuplot_note;
  if (options.plots) {
    const std::string plot_dir = dir + "/plots";
    fs::create_directories(plot_dir);
    for (std::size_t c = 0; c < curves.size(); ++c) {
      std::ofstream dat(plot_dir + "/curve" + std::to_string(c) + ".dat");
      dat << "# step gradients test_accuracy train_loss (mean over seeds)\n";
      std::size_t length = SIZE_MAX;
      for (auto i : curves[c].runs) length = std::min(length, runs[i].rows.size());
      for (std::size_t row = 0; row < length; ++row) {
        double step = 0, grads = 0, acc = 0, loss = 0;
        for (auto i : curves[c].runs) {
          step += runs[i].column(row, "step");
          grads += runs[i].column(row, "gradients");
          acc += runs[i].column(row, "test_accuracy");
          loss += runs[i].column(row, "train_loss");
        }
        const double n = static_cast<double>(curves[c].runs.size());
        dat << step / n << " " << grads / n << " " << 100 * acc / n << " " << loss / n << "\n";
      }
    }
    std::ofstream script(plot_dir + "/plots.gp");
    script << "set terminal pngcairo size 1000,"
           << 600 + 16 * ((curves.size() + 1) / 2) << " noenhanced\nset grid\nset key below left Left reverse maxrows "
           << (curves.size() + 1) / 2 << "\nset format x '%.1s%c'\n";
    struct Plot {
      const char* file;
      int x, y;
      const char *xlabel, *ylabel;
    };
    for (const Plot& p : {Plot{"accuracy_vs_steps", 1, 3, "step", "test accuracy (%)"},
                          Plot{"accuracy_vs_gradients", 2, 3, "honest gradients", "test accuracy (%)"},
                          Plot{"loss_vs_steps", 1, 4, "step", "training loss"},
                          Plot{"loss_vs_gradients", 2, 4, "honest gradients", "training loss"}}) {
      script << "set output '" << plot_dir << "/" << p.file << ".png'\nset xlabel '" << p.xlabel << "'\nset ylabel '"
             << p.ylabel << "'\n" << (p.y == 4 ? "set logscale y\n" : "unset logscale y\n") << "plot ";
      for (std::size_t c = 0; c < curves.size(); ++c)
        script << (c ? ", " : "") << "'" << plot_dir << "/curve" << c << ".dat' using " << p.x << ":" << p.y
               << " with lines lw 2 dt " << 1 + c / 8 << " title '" << curves[c].label << "'";
      script << "\n";
    }
    script.close();
    if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
      gnuplot_note = "\nPlots not drawn: gnuplot is not installed (`sudo apt-get install gnuplot-nox`); the data and "
                     "script are in plots/.\n";
    } else if (std::system(("gnuplot '" + plot_dir + "/plots.gp' 2> '" + plot_dir + "/gnuplot.log'").c_str()) != 0) {
      gnuplot_note = "\nPlots failed: see plots/gnuplot.log.\n";
    } else {
      md << "\n![accuracy vs steps](plots/accuracy_vs_steps.png)\n![accuracy vs gradients](plots/accuracy_vs_gradients.png)\n"
         << "![loss vs steps](plots/loss_vs_steps.png)\n![loss vs gradients](plots/loss_vs_gradients.png)\n";
    }
  }
  md << gnuplot_note;
  std::ofstream(dir + "/report.md") << md.str();
  return md.str();
}

}  // namespace phalanx::core
