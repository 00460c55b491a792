#include "phalanx/core/run/run_output.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace fs = std::filesystem;

const std::vector<std::string>& metrics_columns() {
  static const std::vector<std::string> columns{"step",      "epoch",     "gradients",     "wall_time",
                                                "lr",        "train_loss", "test_loss",    "test_accuracy",
                                                "nonfinite_messages", "sim_time", "staleness_mean",
                                                "staleness_max", "rejected_messages", "missing_messages",
                                                "honest_deviation", "honest_cosine"};
  return columns;
}

std::vector<std::pair<std::string, double>> metrics_fields(const MetricsRow& r) {
  return {{"step", static_cast<double>(r.step)},
          {"epoch", r.epoch},
          {"gradients", static_cast<double>(r.gradients)},
          {"wall_time", r.wall_time},
          {"lr", r.lr},
          {"train_loss", r.train_loss},
          {"test_loss", r.test_loss},
          {"test_accuracy", r.test_accuracy},
          {"nonfinite_messages", static_cast<double>(r.nonfinite_messages)},
          {"sim_time", r.sim_time},
          {"staleness_mean", r.staleness_mean},
          {"staleness_max", static_cast<double>(r.staleness_max)},
          {"rejected_messages", static_cast<double>(r.rejected_messages)},
          {"missing_messages", static_cast<double>(r.missing_messages)},
          {"honest_deviation", r.honest_deviation},
          {"honest_cosine", r.honest_cosine}};
}

MetricsRow metrics_row_from_values(const std::vector<double>& v) {
  auto i64 = [](double x) { return static_cast<std::int64_t>(x); };
  MetricsRow r;
  r.step = i64(v.at(0));
  r.epoch = v.at(1);
  r.gradients = i64(v.at(2));
  r.wall_time = v.at(3);
  r.lr = v.at(4);
  r.train_loss = v.at(5);
  r.test_loss = v.at(6);
  r.test_accuracy = v.at(7);
  r.nonfinite_messages = i64(v.at(8));
  r.sim_time = v.at(9);
  r.staleness_mean = v.at(10);
  r.staleness_max = i64(v.at(11));
  r.rejected_messages = i64(v.at(12));
  r.missing_messages = i64(v.at(13));
  if (v.size() > 15) {  // rows written before these columns existed leave them NaN
    r.honest_deviation = v.at(14);
    r.honest_cosine = v.at(15);
  }
  return r;
}

std::string format_number(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  for (int precision = 6; precision <= 17; ++precision) {  // shortest form that round-trips
    std::snprintf(buf, sizeof buf, "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

namespace {
void check_stream(const std::ofstream& f, const std::string& path) {
  if (!f) throw Error("cannot write '" + path + "': " + std::strerror(errno) + "; choose another --out folder");
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
    else out += c;
  }
  return out + "\"";
}

// JSON has no NaN/Infinity; write null so every JSON reader accepts the file.
std::string json_number(double x) { return std::isfinite(x) ? format_number(x) : "null"; }
}  // namespace

namespace {
// The first `count` lines of `path` (after `skip` header lines, which are kept too), or an Error when it has
// fewer.
std::string first_lines(const std::string& path, std::int64_t skip, std::int64_t count) {
  std::ifstream in(path);
  if (!in) throw Error("cannot resume: '" + path + "' is missing; the run folder was changed since the checkpoint");
  std::string kept, line;
  std::int64_t have = 0;
  while (have < skip + count && std::getline(in, line)) {
    kept += line + "\n";
    ++have;
  }
  if (have < skip + count)
    throw Error("cannot resume: '" + path + "' has " + std::to_string(std::max<std::int64_t>(0, have - skip)) +
                " metric rows, the checkpoint expects " + std::to_string(count) +
                "; the run folder was changed since the checkpoint");
  return kept;
}

void rewrite(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    check_stream(out, tmp);
  }
  fs::rename(tmp, path);
}
}  // namespace

namespace {
// The diagnostic columns a metrics.csv header holds: those after the fixed ones.
std::vector<std::string> diagnostic_columns_of(const std::string& csv_text) {
  std::stringstream header(csv_text.substr(0, csv_text.find('\n')));
  std::vector<std::string> columns;
  for (std::string c; std::getline(header, c, ',');) columns.push_back(c);
  const std::size_t fixed = metrics_columns().size();
  if (columns.size() <= fixed) return {};
  return std::vector<std::string>(columns.begin() + static_cast<std::ptrdiff_t>(fixed), columns.end());
}

double diagnostic_value(const MetricsRow& row, const std::string& column) {
  for (const auto& [name, value] : row.diagnostics)
    if (name == column) return value;
  return std::nan("");  // an engine that records no diagnostics (the distributed server)
}
}  // namespace

RunOutput::RunOutput(std::string dir, std::int64_t keep_rows, std::vector<std::string> diagnostic_columns)
    : dir_(std::move(dir)), diagnostic_columns_(std::move(diagnostic_columns)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error("cannot create output folder '" + dir_ + "': " + ec.message() + "; choose another --out folder");
  const std::string jsonl = dir_ + "/metrics.jsonl", csv = dir_ + "/metrics.csv";
  if (keep_rows >= 0) {
    // Rows the killed run wrote after its last checkpoint are written again, identically, by the resumed run.
    const std::string jsonl_text = first_lines(jsonl, 0, keep_rows), csv_text = first_lines(csv, 1, keep_rows);
    rewrite(jsonl, jsonl_text);
    rewrite(csv, csv_text);
    diagnostic_columns_ = diagnostic_columns_of(csv_text);  // a folder written before a column existed lacks it
    rows_ = keep_rows;
    jsonl_.open(jsonl, std::ios::app);
    check_stream(jsonl_, jsonl);
    csv_.open(csv, std::ios::app);
    check_stream(csv_, csv);
    return;
  }
  jsonl_.open(jsonl, std::ios::trunc);
  check_stream(jsonl_, jsonl);
  csv_.open(csv, std::ios::trunc);
  check_stream(csv_, csv);
  const auto& cols = metrics_columns();
  for (std::size_t i = 0; i < cols.size(); ++i) csv_ << (i ? "," : "") << cols[i];
  for (const auto& column : diagnostic_columns_) csv_ << "," << column;
  csv_ << "\n";
  csv_.flush();
}

void RunOutput::write_config(const Value& resolved) {
  const std::string path = dir_ + "/config.yaml";
  std::ofstream out(path, std::ios::trunc);
  check_stream(out, path);
  out << "# Fully resolved configuration of this run (defaults included); `phalanx run` accepts it as is.\n"
      << to_yaml(resolved);
}

void RunOutput::append(const MetricsRow& row) {
  auto fields = metrics_fields(row);
  for (const auto& column : diagnostic_columns_) fields.emplace_back(column, diagnostic_value(row, column));
  jsonl_ << "{";
  for (std::size_t i = 0; i < fields.size(); ++i)
    jsonl_ << (i ? ", " : "") << json_string(fields[i].first) << ": " << json_number(fields[i].second);
  jsonl_ << "}\n";
  for (std::size_t i = 0; i < fields.size(); ++i) csv_ << (i ? "," : "") << format_number(fields[i].second);
  csv_ << "\n";
  // Flushed per row: a killed run keeps every evaluation it finished.
  ++rows_;
  jsonl_.flush();
  csv_.flush();
  if (!jsonl_ || !csv_) throw Error("writing metrics in '" + dir_ + "' failed (disk full?)");
}

void RunOutput::write_summary(RunStatus status, const std::string& message, const MetricsRow* last,
                              std::int64_t total_steps, const TimeBreakdown* time) {
  const std::string path = dir_ + "/summary.json", tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    check_stream(out, tmp);
    out << "{\n  \"status\": " << json_string(to_string(status)) << ",\n  \"message\": " << json_string(message)
        << ",\n  \"total_steps\": " << total_steps;
    if (last) {
      for (const auto& [k, v] : metrics_fields(*last)) out << ",\n  " << json_string(k) << ": " << json_number(v);
      for (const auto& column : diagnostic_columns_)
        out << ",\n  " << json_string(column) << ": " << json_number(diagnostic_value(*last, column));
    }
    if (time)
      out << ",\n  \"time\": {\"compute_s\": " << json_number(time->compute) << ", \"aggregation_s\": "
          << json_number(time->aggregation) << ", \"update_s\": "
          << json_number(time->update) << ", \"evaluation_s\": " << json_number(time->evaluation)
          << ", \"engine_s\": " << json_number(time->engine()) << ", \"total_s\": " << json_number(time->total)
          << ", \"engine_parts\": {\"batches_s\": " << json_number(time->batches) << ", \"worker_rules_s\": "
          << json_number(time->worker_rules) << ", \"attack_s\": " << json_number(time->attack) << "}}";
    out << "\n}\n";
  }
  fs::rename(tmp, path);
}

void write_failure_summary(const std::string& dir, const std::string& message) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  const std::string path = dir + "/summary.json", tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return;
    out << "{\n  \"status\": " << json_string(to_string(RunStatus::failed)) << ",\n  \"message\": " << json_string(message) << "\n}\n";
  }
  fs::rename(tmp, path, ec);
}

namespace {
struct LogOptions {
  spdlog::level::level_enum level = spdlog::level::info;
  bool quiet = false;
};
LogOptions& log_options() {
  static LogOptions options;
  return options;
}
}  // namespace

void set_log_options(spdlog::level::level_enum level, bool quiet) { log_options() = {level, quiet}; }

std::shared_ptr<spdlog::logger> make_run_logger(const std::string& name, const std::string& file, bool append) {
  static auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  std::vector<spdlog::sink_ptr> sinks{console};
  if (!file.empty()) sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, !append));
  auto logger = std::make_shared<spdlog::logger>(name, sinks.begin(), sinks.end());
  const std::string pattern = "[%H:%M:%S] [%^%l%$] %v";
  logger->set_pattern(pattern);
  // On a terminal a log line first clears the progress line it would otherwise continue (core/run/progress.hpp).
  if (::isatty(STDERR_FILENO)) console->set_pattern("\r\033[K" + pattern);
  logger->set_level(log_options().level);
  console->set_level(log_options().quiet ? spdlog::level::warn : spdlog::level::trace);
  logger->flush_on(spdlog::level::info);
  return logger;
}

RunContext::RunContext(RunInfo info, std::uint64_t seed, std::string who, std::shared_ptr<spdlog::logger> logger)
    : info_(std::move(info)), seed_(seed), who_(std::move(who)), logger_(std::move(logger)) {}

void RunContext::log(LogLevel level, const std::string& message) const {
  if (!logger_) return;
  const std::string text = who_ + ": " + message;
  switch (level) {
    case LogLevel::Debug: logger_->debug(text); break;
    case LogLevel::Info: logger_->info(text); break;
    case LogLevel::Warn: logger_->warn(text); break;
    case LogLevel::Error: logger_->error(text); break;
  }
}

}  // namespace phalanx::core
