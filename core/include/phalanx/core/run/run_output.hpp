// What a run leaves behind: metrics.jsonl and metrics.csv (one row per evaluation), config.yaml (fully
// resolved), summary.json (final metrics) and log.txt.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include "phalanx/context.hpp"
#include "phalanx/core/run/run_status.hpp"
#include "phalanx/value.hpp"

namespace phalanx::core {

/// One evaluation row. Columns are fixed so every engine writes the same files.
struct MetricsRow {
  std::int64_t step = 0;
  double epoch = 0;
  std::int64_t gradients = 0;  // honest per-sample gradients computed so far
  double wall_time = 0;        // seconds since the run started
  double lr = 0;
  double train_loss = 0;       // mean honest mini-batch loss since the previous row
  double test_loss = 0;
  double test_accuracy = 0;
  std::int64_t nonfinite_messages = 0;  // messages holding NaN/Inf received so far
  double sim_time = 0;                  // simulated time (speed model)
  double staleness_mean = 0;            // of the updates since the previous row (0 when synchronous)
  std::int64_t staleness_max = 0;
  std::int64_t rejected_messages = 0;  // distributed: messages the server refused (size, dtype, index, NaN)
  std::int64_t missing_messages = 0;   // distributed: messages a sync round went without; workers lost
  /// Simulation only (where honesty is known), mean over the aggregations since the previous row:
  /// |aggregate - mean of honest rows| / |mean of honest rows|, and the cosine between the two (NaN when no
  /// aggregation with an honest row happened: async without a buffer, distributed runs).
  double honest_deviation = std::nan("");
  double honest_cosine = std::nan("");
  /// The plugins' declared diagnostics (`<plugin>.<name>`, docs/plugins.md), after the columns above.
  std::vector<std::pair<std::string, double>> diagnostics;
};

/// Where a run's wall time went (summary.json "time"): forward/backward, the server's aggregation of several
/// messages (pre-aggregators + aggregator) and optimizer update, evaluation, and the rest, which is the
/// engine's own overhead (batching, copies, checks, the event queue).
struct TimeBreakdown {
  double compute = 0, aggregation = 0, update = 0, evaluation = 0, total = 0;
  // Parts of the engine's own time, each also counted in engine(): drawing and poisoning mini-batches, the
  // worker rules (momentum, weight decay) with the message copies, and the attack crafting its messages.
  double batches = 0, worker_rules = 0, attack = 0;
  double engine() const { return total - compute - aggregation - update - evaluation; }
};

/// The fixed columns every run writes; the plugins' diagnostic columns follow them.
const std::vector<std::string>& metrics_columns();
/// The fixed columns' values (not the diagnostics).
std::vector<std::pair<std::string, double>> metrics_fields(const MetricsRow& row);
/// The inverse of metrics_fields: a row from its values in metrics_columns() order (checkpoints).
MetricsRow metrics_row_from_values(const std::vector<double>& values);

/// Creates the run folder (refusing an unwritable one with a clear error) and writes the rows.
class RunOutput {
 public:
  /// `keep_rows` >= 0 continues a run folder (a resumed run): the metrics files keep their first
  /// `keep_rows` rows (rows written after the checkpoint by the run that was killed are dropped) and grow
  /// from there. Throws when the folder holds fewer rows. `diagnostic_columns` follow the fixed columns
  /// (a resumed folder keeps the ones its header has).
  explicit RunOutput(std::string dir, std::int64_t keep_rows = -1, std::vector<std::string> diagnostic_columns = {});
  const std::string& dir() const { return dir_; }
  std::int64_t rows() const { return rows_; }
  void write_config(const Value& resolved);
  void append(const MetricsRow& row);
  void write_summary(RunStatus status, const std::string& message, const MetricsRow* last,
                     std::int64_t total_steps, const TimeBreakdown* time = nullptr);

 private:
  std::string dir_;
  std::vector<std::string> diagnostic_columns_;
  std::int64_t rows_ = 0;
  std::ofstream jsonl_;
  std::ofstream csv_;
};

/// Writes summary.json with status "failed" and `message` into `dir` (if it exists), so a failed run is
/// visible in reports and not retried by a resumed sweep. Never throws.
void write_failure_summary(const std::string& dir, const std::string& message);


/// Formats a double so that it reads back bit for bit (for determinism checks) yet stays short.
std::string format_number(double x);

/// A logger writing to the console and, when `file` is non-empty, to that file (continued when `append`:
/// a resumed run keeps the log of the run it continues).
std::shared_ptr<spdlog::logger> make_run_logger(const std::string& name, const std::string& file,
                                                bool append = false);

/// The level of every run logger made from now on (`phalanx --log-level`; plugins' debug() shows at debug),
/// and with `quiet` only warnings and errors on the console (log.txt keeps the level's lines).
void set_log_options(spdlog::level::level_enum level, bool quiet);

/// The Context handed to each plugin: run facts, a seed private to the plugin, logging with its name.
class RunContext : public Context {
 public:
  RunContext(RunInfo info, std::uint64_t seed, std::string who, std::shared_ptr<spdlog::logger> logger);
  const RunInfo& run() const override { return info_; }
  std::uint64_t seed() const override { return seed_; }
  void log(LogLevel level, const std::string& message) const override;
  RunInfo& mutable_run() { return info_; }

 private:
  RunInfo info_;
  std::uint64_t seed_;
  std::string who_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace phalanx::core
