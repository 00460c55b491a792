// The host side of per-round plugin diagnostics (phalanx/diagnostics.hpp): one sink per plugin of a run,
// each accepting only the names its plugin declared, and the sums behind the `<plugin>.<name>` columns of
// every evaluation row (docs/plugins.md, "Per-round diagnostics").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/run/checkpoint.hpp"
#include "phalanx/diagnostics.hpp"

namespace phalanx::core {

/// The diagnostic columns of a run: the pre-aggregators' in config order, then the aggregator's, then the
/// attack's, each `<plugin>.<name>`; a plugin listed twice (two clip pre-aggregators) gets `<plugin>#2.<name>`
/// for its second instance. Empty when no configured plugin declares a diagnostic.
std::vector<std::string> diagnostic_columns(const PipelineSpec& spec, const Registry& registry);

class DiagnosticsRecorder {
 public:
  DiagnosticsRecorder(const PipelineSpec& spec, const Registry& registry);
  ~DiagnosticsRecorder();
  DiagnosticsRecorder(const DiagnosticsRecorder&) = delete;
  DiagnosticsRecorder& operator=(const DiagnosticsRecorder&) = delete;

  const std::vector<std::string>& columns() const { return names_; }
  /// The sinks handed to each plugin in real rounds (never to defence-oracle queries).
  DiagnosticSink* preaggregator(std::size_t i) const;
  DiagnosticSink* aggregator() const;
  DiagnosticSink* attack() const;
  /// The values of the row being written, in columns() order (Mean: the mean of the reports since the last
  /// row; Last: the last report; NaN without a report since the last row), and starts the next row.
  std::vector<double> take_row();
  /// The reports since the last row, for checkpoints: a resumed run writes the same rows.
  void save(Checkpoint& checkpoint, const std::string& prefix) const;
  void load(const Checkpoint& checkpoint, const std::string& prefix);

  struct Column;
  class Sink;

 private:
  std::vector<std::string> names_;
  std::shared_ptr<std::vector<Column>> values_;
  std::vector<std::unique_ptr<Sink>> sinks_;  // pre-aggregators in order, the aggregator, the attack
};

}  // namespace phalanx::core
