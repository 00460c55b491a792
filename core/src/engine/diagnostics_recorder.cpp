#include "phalanx/core/engine/diagnostics_recorder.hpp"

#include <cmath>
#include <map>

#include <ATen/ATen.h>

#include "phalanx/error.hpp"

namespace phalanx::core {

struct DiagnosticsRecorder::Column {
  DiagnosticSummary summary = DiagnosticSummary::Mean;
  double sum = 0;  // Mean: the reports' sum; Last: the last report
  std::int64_t count = 0;
};

/// One plugin's sink: its declared names map to columns of the shared table.
class DiagnosticsRecorder::Sink : public DiagnosticSink {
 public:
  Sink(std::string who, std::shared_ptr<std::vector<Column>> values)
      : who_(std::move(who)), values_(std::move(values)) {}
  void declare(const std::string& name, std::size_t column) { columns_[name] = column; }
  void report(const char* name, double value) override {
    auto it = columns_.find(name ? name : "");
    if (it == columns_.end()) {
      std::string declared;
      for (const auto& [n, c] : columns_) declared += (declared.empty() ? "" : ", ") + n;
      throw Error(who_ + " reported the diagnostic '" + std::string(name ? name : "") +
                  "', which its PluginInfo::diagnostics does not declare (declared: " +
                  (declared.empty() ? "none" : declared) + ")");
    }
    Column& c = (*values_)[it->second];
    c.sum = c.summary == DiagnosticSummary::Mean ? c.sum + value : value;
    ++c.count;
  }

 private:
  std::string who_;
  std::shared_ptr<std::vector<Column>> values_;
  std::map<std::string, std::size_t> columns_;
};

namespace {

struct PluginDiagnostics {
  std::string who;     // for errors: "aggregator 'krum'"
  std::string prefix;  // the column prefix: "krum", or "clip#2" for a second instance
  std::vector<DiagnosticSpec> specs;
};

// Pre-aggregators in config order, the aggregator, the attack: the order of the sinks and of the columns.
std::vector<PluginDiagnostics> plugins_of(const PipelineSpec& spec, const Registry& registry) {
  std::vector<std::pair<Kind, std::string>> chosen;
  for (const auto& pre : spec.preaggregators) chosen.emplace_back(Kind::PreAggregator, pre.name);
  chosen.emplace_back(Kind::Aggregator, spec.aggregator.name);
  chosen.emplace_back(Kind::Attack, spec.attack.name);
  std::map<std::string, int> seen;
  std::vector<PluginDiagnostics> out;
  for (const auto& [kind, name] : chosen) {
    const int instance = ++seen[name];
    out.push_back({std::string(kind_name(kind)) + " '" + name + "'",
                   instance == 1 ? name : name + "#" + std::to_string(instance),
                   registry.find(kind, name).info.diagnostics});
  }
  return out;
}

}  // namespace

std::vector<std::string> diagnostic_columns(const PipelineSpec& spec, const Registry& registry) {
  std::vector<std::string> columns;
  for (const auto& plugin : plugins_of(spec, registry))
    for (const auto& d : plugin.specs) columns.push_back(plugin.prefix + "." + d.name);
  return columns;
}

DiagnosticsRecorder::DiagnosticsRecorder(const PipelineSpec& spec, const Registry& registry)
    : values_(std::make_shared<std::vector<Column>>()) {
  for (const auto& plugin : plugins_of(spec, registry)) {
    sinks_.push_back(std::make_unique<Sink>(plugin.who, values_));
    for (const auto& d : plugin.specs) {
      sinks_.back()->declare(d.name, names_.size());
      names_.push_back(plugin.prefix + "." + d.name);
      values_->push_back(Column{d.summary});
    }
  }
}

DiagnosticsRecorder::~DiagnosticsRecorder() = default;

DiagnosticSink* DiagnosticsRecorder::preaggregator(std::size_t i) const { return sinks_.at(i).get(); }
DiagnosticSink* DiagnosticsRecorder::aggregator() const { return sinks_.at(sinks_.size() - 2).get(); }
DiagnosticSink* DiagnosticsRecorder::attack() const { return sinks_.back().get(); }

std::vector<double> DiagnosticsRecorder::take_row() {
  std::vector<double> row;
  for (Column& c : *values_) {
    if (c.count == 0) row.push_back(std::nan(""));
    else row.push_back(c.summary == DiagnosticSummary::Mean ? c.sum / static_cast<double>(c.count) : c.sum);
    c.sum = 0;
    c.count = 0;
  }
  return row;
}

void DiagnosticsRecorder::save(Checkpoint& checkpoint, const std::string& prefix) const {
  if (values_->empty()) return;
  std::vector<double> sums;
  std::vector<std::int64_t> counts;
  for (const Column& c : *values_) {
    sums.push_back(c.sum);
    counts.push_back(c.count);
  }
  checkpoint.put(prefix + "/sums", at::tensor(sums, at::kDouble));
  checkpoint.put(prefix + "/counts", at::tensor(counts, at::kLong));
}

void DiagnosticsRecorder::load(const Checkpoint& checkpoint, const std::string& prefix) {
  if (values_->empty()) return;
  const auto n = static_cast<std::int64_t>(values_->size());
  const at::Tensor sums = checkpoint.get(prefix + "/sums").contiguous();
  const at::Tensor counts = checkpoint.get(prefix + "/counts").contiguous();
  if (sums.scalar_type() != at::kDouble || sums.numel() != n || counts.scalar_type() != at::kLong ||
      counts.numel() != n)
    throw Error("checkpoint entries '" + prefix + "/sums' and '" + prefix + "/counts' do not hold the " +
                std::to_string(n) + " diagnostic columns of this config");
  for (std::int64_t i = 0; i < n; ++i) {
    (*values_)[i].sum = sums.data_ptr<double>()[i];
    (*values_)[i].count = counts.data_ptr<std::int64_t>()[i];
  }
}

}  // namespace phalanx::core
