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
#include "phalanx/core/config/core_params.hpp"
#include "phalanx/core/experiment/report_cells.hpp"
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

// Leaves of a config tree as "a.b.c" -> flow text; `lists` collects the keys that hold a list of plugin
// sections (aggregator.pre), which are columns of their own.
void flatten(const Value& v, const std::string& prefix, std::map<std::string, std::string>& out,
             std::set<std::string>& lists) {
  if (v.type() == Value::Type::Map) {
    for (const auto& [k, item] : v.as_map()) flatten(item, prefix.empty() ? k : prefix + "." + k, out, lists);
  } else if (v.type() == Value::Type::List && v.as_list().empty()) {
    out[prefix] = "none";
  } else if (v.type() == Value::Type::List && v.as_list().front().find("name")) {
    lists.insert(prefix);
    // A list of plugin sections (aggregator.pre) reads best as their names: "nnm+bucketing".
    std::string names;
    for (const auto& item : v.as_list())
      names += (names.empty() ? "" : "+") + (item.find("name") ? item.find("name")->to_string() : item.to_string());
    out[prefix] = names;
  } else {
    out[prefix] = v.to_string();
  }
}

double final_value(const RunRecord& r, const std::string& column) {
  return r.rows.empty() ? std::nan("") : r.column(r.rows.size() - 1, column);
}

// The default of a core config key ("engine.speed.comm"), or null when `key` is not one or has none.
const Value* core_default(const std::string& key) {
  const std::size_t dot = key.rfind('.');
  const ParamSpec* p =
      dot == std::string::npos ? core_param("", key) : core_param(key.substr(0, dot), key.substr(dot + 1));
  return p && !p->default_value.is_null() ? &p->default_value : nullptr;
}

// A run recorded before a core key existed ran as that key's default says (engine.speed.comm came after the
// first studies): its resolved config.yaml lacks the key, which must not read as a difference from the runs
// that list the default.
void fill_core_defaults(std::vector<std::map<std::string, std::string>>& flat) {
  std::set<std::string> all_keys;
  for (const auto& f : flat)
    for (const auto& [k, v] : f) all_keys.insert(k);
  for (const auto& k : all_keys) {
    const Value* fallback = core_default(k);
    if (!fallback) continue;
    for (auto& f : flat)
      if (!f.count(k)) f[k] = fallback->to_string();
  }
}

// The config keys that differ between runs. Seeds are averaged over; the name and the evaluation schedule
// do not change what is trained.
std::vector<std::string> varied_keys(const std::vector<std::map<std::string, std::string>>& flat) {
  std::set<std::string> all_keys;
  for (const auto& f : flat)
    for (const auto& [k, v] : f) all_keys.insert(k);
  std::vector<std::string> varied;
  for (const auto& k : all_keys) {
    if (k == "seed" || k == "name" || k == "training.eval_every" || k == "training.eval_batch_size") continue;
    std::set<std::string> values;
    for (const auto& f : flat) values.insert(f.count(k) ? f.at(k) : "-");
    if (values.size() > 1) varied.push_back(k);
  }
  return varied;
}

// Columns: a plugin section whose name varies (`optimizer`, `engine.speed`) is one column, labelled like
// `compare` labels it; a key belongs to the deepest such section above it, unless it is kept apart (a
// best_over key such as optimizer.lr, searched per cell: in the section's label it would split the cells).
class ColumnLabels {
 public:
  ColumnLabels(const std::vector<std::map<std::string, std::string>>& flat, std::vector<std::string> varied,
               std::set<std::string> lists, std::set<std::string> apart)
      : flat_(flat), varied_(std::move(varied)), lists_(std::move(lists)), apart_(std::move(apart)) {
    for (const auto& k : varied_)
      if (k.size() > 5 && k.compare(k.size() - 5, 5, ".name") == 0) sections_.insert(k.substr(0, k.size() - 5));
    for (const auto& k : varied_) {
      const std::string section = section_of(k);
      const std::string column = section.empty() ? k : section;
      if (std::find(columns_.begin(), columns_.end(), column) == columns_.end()) columns_.push_back(column);
    }
  }
  const std::vector<std::string>& columns() const { return columns_; }

  std::string value(std::size_t run, const std::string& column) const {
    const auto& f = flat_[run];
    if (!sections_.count(column)) return f.count(column) ? f.at(column) : "-";
    const std::string name_key = column + ".name";
    // A section without a name (an edited config.yaml) reads "-", here and when comparing with other runs:
    // flat.at(name_key) used to throw std::out_of_range (found by tests/fuzz/report_fuzz).
    auto name_of = [&](const std::map<std::string, std::string>& m) {
      return m.count(name_key) ? m.at(name_key) : std::string("-");
    };
    std::string label = name_of(f);
    // Name the parameters that vary between runs of this same plugin only (not cm's missing tau).
    for (const auto& k : varied_) {
      if (section_of(k) != column || k == name_key || !f.count(k)) continue;
      std::set<std::string> values;
      for (const auto& other : flat_)
        if (name_of(other) == name_of(f)) values.insert(other.count(k) ? other.at(k) : "-");
      if (values.size() > 1) label += "-" + k.substr(column.size() + 1) + f.at(k);
    }
    return label;
  }

 private:
  std::string section_of(const std::string& k) const {
    std::string best;
    if (lists_.count(k) || apart_.count(k)) return best;  // "nnm" reads better apart than as "cm-prennm"
    for (const auto& s : sections_)
      if (k.rfind(s + ".", 0) == 0 && s.size() > best.size()) best = s;
    return best;
  }
  const std::vector<std::map<std::string, std::string>>& flat_;
  std::vector<std::string> varied_;
  std::set<std::string> lists_, apart_;
  std::set<std::string> sections_;
  std::vector<std::string> columns_;
};

// The first evaluation row whose test accuracy reaches `target` (a fraction), or -1.
std::ptrdiff_t first_row_reaching(const RunRecord& r, double target) {
  for (std::size_t i = 0; i < r.rows.size(); ++i)
    if (r.column(i, "test_accuracy") >= target) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

// Fills a cell from the seeds of its chosen best_over values.
void summarize(ReportCell& cell, double target_accuracy) {
  std::vector<double> acc, loss, sim_time, gradients_to_target, sim_time_to_target;
  for (const RunRecord* r : cell.runs) {
    if (target_accuracy > 0) {
      const std::ptrdiff_t row = first_row_reaching(*r, target_accuracy / 100.0);
      if (row >= 0) {
        gradients_to_target.push_back(r->column(static_cast<std::size_t>(row), "gradients"));
        sim_time_to_target.push_back(r->column(static_cast<std::size_t>(row), "sim_time"));
        ++cell.reached;
      }
    }
    acc.push_back(final_value(*r, "test_accuracy"));
    loss.push_back(final_value(*r, "train_loss"));
    sim_time.push_back(final_value(*r, "sim_time"));
    // A metrics.csv without a step column (or an edited one) gives NaN or anything; converting that to an
    // integer is undefined behaviour (found by tests/fuzz/report_fuzz), so only plausible counts count.
    const double last_step = final_value(*r, "step");
    if (last_step > static_cast<double>(cell.steps) && last_step < 1e18) cell.steps = static_cast<std::int64_t>(last_step);
    if (r->status != to_string(RunStatus::ok)) ++cell.not_ok;
  }
  cell.accuracy = stats_of(acc);
  cell.loss = stats_of(loss);
  cell.sim_time = stats_of(sim_time);
  cell.gradients_to_target = stats_of(gradients_to_target);
  cell.sim_time_to_target = stats_of(sim_time_to_target);
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


Stats stats_of(const std::vector<double>& xs) {
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

bool less_value(const std::string& a, const std::string& b) {
  // Numbers come before text, so a column mixing both (an edited config) still sorts consistently: std::sort
  // needs a strict weak order.
  auto number = [](const std::string& s, double& x) {
    char* end = nullptr;
    x = std::strtod(s.c_str(), &end);
    return !s.empty() && *end == 0 && std::isfinite(x);
  };
  double x = 0, y = 0;
  const bool a_number = number(a, x), b_number = number(b, y);
  if (a_number != b_number) return a_number;
  if (a_number && x != y) return x < y;
  return a < b;
}

int column_index(const ReportCells& cells, const std::string& column) {
  for (std::size_t i = 0; i < cells.columns.size(); ++i)
    if (cells.columns[i] == column) return static_cast<int>(i);
  return -1;
}

ReportCells group_runs(const std::string& dir, const ReportOptions& options) {
  ReportCells out;
  out.dir = dir;
  out.target_accuracy = options.target_accuracy;
  out.runs = find_runs(dir);
  const auto& runs = out.runs;
  if (runs.empty()) throw Error("no finished runs (folders with summary.json) below '" + dir + "'");
  std::vector<std::map<std::string, std::string>> flat(runs.size());
  std::set<std::string> lists;
  for (std::size_t i = 0; i < runs.size(); ++i) flatten(runs[i].config, "", flat[i], lists);
  fill_core_defaults(flat);
  const ColumnLabels labels(flat, varied_keys(flat), lists,
                            std::set<std::string>(options.best_over.begin(), options.best_over.end()));
  for (const auto& b : options.best_over)
    if (std::find(labels.columns().begin(), labels.columns().end(), b) != labels.columns().end()) out.best_over.push_back(b);
  for (const auto& c : labels.columns())
    if (std::find(out.best_over.begin(), out.best_over.end(), c) == out.best_over.end()) out.columns.push_back(c);

  // cell key -> (best_over values -> runs)
  std::map<std::vector<std::string>, std::map<std::vector<std::string>, std::vector<std::size_t>>> groups;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    std::vector<std::string> key, inner;
    for (const auto& c : out.columns) key.push_back(labels.value(i, c));
    for (const auto& c : out.best_over) inner.push_back(labels.value(i, c));
    groups[key][inner].push_back(i);
  }
  for (const auto& [key, by_value] : groups) {
    const std::vector<std::string>* best_key = nullptr;
    Stats best_acc;
    for (const auto& [inner, members] : by_value) {
      std::vector<double> acc;
      for (auto i : members) acc.push_back(final_value(runs[i], "test_accuracy"));
      const Stats s = stats_of(acc);
      if (!best_key || (s.count > 0 && (best_acc.count == 0 || s.mean > best_acc.mean))) best_key = &inner, best_acc = s;
    }
    ReportCell cell;
    cell.key = key;
    cell.best = *best_key;
    // A best value at the edge of the values tried may not be the best there is: the table flags it.
    for (std::size_t b = 0; b < cell.best.size(); ++b) {
      std::vector<std::string> tried;
      for (const auto& [inner, members] : by_value) tried.push_back(inner[b]);
      std::sort(tried.begin(), tried.end(), less_value);
      tried.erase(std::unique(tried.begin(), tried.end()), tried.end());
      cell.best_at_edge.push_back(tried.size() > 1 && (cell.best[b] == tried.front() || cell.best[b] == tried.back()));
    }
    for (auto i : by_value.at(*best_key)) cell.runs.push_back(&runs[i]);
    summarize(cell, options.target_accuracy);
    out.cells.push_back(std::move(cell));
  }
  std::sort(out.cells.begin(), out.cells.end(), [](const ReportCell& a, const ReportCell& b) {
    return std::lexicographical_compare(a.key.begin(), a.key.end(), b.key.begin(), b.key.end(), less_value);
  });
  for (const auto& r : runs) {
    const double sim_time = final_value(r, "sim_time");
    if (std::isfinite(sim_time) && sim_time > 0 && sim_time != final_value(r, "step")) out.with_sim_time = true;
  }
  return out;
}

}  // namespace phalanx::core
