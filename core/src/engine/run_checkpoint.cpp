#include "phalanx/core/engine/run_checkpoint.hpp"

#include <cmath>
#include <filesystem>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/engine.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace fs = std::filesystem;

namespace {

// std::mt19937_64's state as text: the standard guarantees it reads back into an identical engine.
std::string engine_text(const std::mt19937_64& rng) {
  std::ostringstream out;
  out << rng;
  return out.str();
}

void load_engine(const Checkpoint& checkpoint, const std::string& name, std::mt19937_64& rng) {
  std::istringstream in(checkpoint.get_text(name));
  in >> rng;
  if (!in) throw Error("checkpoint entry '" + name + "' is not a random-engine state");
}

at::Tensor long_tensor(const std::vector<std::int64_t>& values) { return at::tensor(values, at::kLong); }

std::vector<std::int64_t> long_values(const at::Tensor& t, std::size_t expected, const std::string& name) {
  if (t.scalar_type() != at::kLong || t.dim() != 1 || static_cast<std::size_t>(t.numel()) != expected)
    throw Error("checkpoint entry '" + name + "' does not fit this run (expected " + std::to_string(expected) +
                " integers)");
  at::Tensor c = t.contiguous();
  return std::vector<std::int64_t>(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + expected);
}

// Copies a saved tensor into live state of the same shape, refusing one that does not fit.
void restore_into(at::Tensor target, const at::Tensor& saved, const std::string& name) {
  if (saved.sizes() != target.sizes() || saved.scalar_type() != target.scalar_type())
    throw Error("checkpoint entry '" + name + "' has shape " + std::to_string(saved.numel()) + " " +
                std::string(at::toString(saved.scalar_type())) + ", this run needs " + std::to_string(target.numel()) +
                " " + std::string(at::toString(target.scalar_type())) + "; the checkpoint is from another model");
  at::NoGradGuard no_grad;
  target.copy_(saved);
}

void load_plugin_state(Stateful& plugin, const Checkpoint& checkpoint, const std::string& prefix,
                       const std::string& who) {
  try {
    plugin.load_state(checkpoint.get_state(prefix));
  } catch (const Error& e) {
    throw Error("resuming " + who + ": " + e.what());
  }
}

}  // namespace

RunCheckpointer::RunCheckpointer(RunControl control, const PipelineSpec& spec, std::string out_dir)
    : control_(control), spec_(spec), out_dir_(std::move(out_dir)) {
  if (control_.resume && out_dir_.empty()) throw Error("resuming needs the run folder");
  next_sim_mark_ = control_.checkpoint_every_sim_time;
}

std::optional<Checkpoint> RunCheckpointer::resume_point() {
  if (!control_.resume) return std::nullopt;
  const std::string file = checkpoint_path(out_dir_);
  if (!fs::exists(file))
    throw Error("cannot resume '" + out_dir_ + "': it holds no checkpoint.pt (the run was started without "
                "--checkpoint-every and not stopped with Ctrl-C, or it finished)");
  Checkpoint checkpoint = Checkpoint::read(file);
  if (checkpoint.get_text("run/engine") != spec_.engine)
    throw Error("checkpoint '" + file + "' is from a run of engine '" + checkpoint.get_text("run/engine") +
                "', this config runs '" + spec_.engine + "'");
  if (checkpoint.get_text("run/config") != to_yaml(spec_.resolved))
    throw Error("checkpoint '" + file + "' was written for another config: " + out_dir_ +
                "/config.yaml was changed since; restore it or start a new run");
  // Keep the schedule the run was started with unless a new one is given.
  if (control_.checkpoint_every_steps == 0 && control_.checkpoint_every_sim_time == 0) {
    control_.checkpoint_every_steps = checkpoint.get_int("run/checkpoint_every_steps");
    control_.checkpoint_every_sim_time = checkpoint.get_double("run/checkpoint_every_sim_time");
  }
  return checkpoint;
}

bool RunCheckpointer::due(std::int64_t steps_done, double sim_time) {
  if (out_dir_.empty()) return false;
  bool due = control_.checkpoint_every_steps > 0 && steps_done % control_.checkpoint_every_steps == 0;
  const double every = control_.checkpoint_every_sim_time;
  if (every > 0 && sim_time >= next_sim_mark_) {
    due = true;
    next_sim_mark_ = (std::floor(sim_time / every) + 1) * every;
  }
  return due;
}

void RunCheckpointer::write(Checkpoint& checkpoint) const {
  if (out_dir_.empty()) return;
  checkpoint.put_text("run/engine", spec_.engine);
  checkpoint.put_text("run/config", to_yaml(spec_.resolved));
  checkpoint.put_int("run/checkpoint_every_steps", control_.checkpoint_every_steps);
  checkpoint.put_double("run/checkpoint_every_sim_time", control_.checkpoint_every_sim_time);
  checkpoint.write(checkpoint_path(out_dir_));
}

void RunCheckpointer::remove() const {
  if (out_dir_.empty()) return;
  std::error_code ec;
  fs::remove(checkpoint_path(out_dir_), ec);
}

void mark_interrupted(RunResult& result, std::int64_t step, const RunCheckpointer& checkpoints) {
  result.status = RunStatus::interrupted;
  result.message = "stopped by a signal after step " + std::to_string(step);
  if (checkpoints.writes()) result.message += "; continue with `phalanx run --resume <run folder>`";
}

void save_shared_state(Checkpoint& checkpoint, RunSetup& run, const EnginePlugins& plugins, const SpeedModel& speed,
                       const MetricsTracker& metrics, const RunResult& result) {
  checkpoint.put("model/params", run.model->params());
  const std::vector<at::Tensor> buffers = run.model->buffers();
  for (std::size_t i = 0; i < buffers.size(); ++i) checkpoint.put("model/buffer" + std::to_string(i), buffers[i]);
  checkpoint.put("torch/generator", at::detail::getDefaultCPUGenerator().get_state());

  checkpoint.put_state("optimizer", plugins.optimizer->save_state());
  for (std::size_t w = 0; w < plugins.worker_rules.size(); ++w)
    checkpoint.put_state("worker" + std::to_string(w) + "/rule", plugins.worker_rules[w]->save_state());
  checkpoint.put_state("aggregator", plugins.aggregator->save_state());
  for (std::size_t i = 0; i < plugins.preaggregators.size(); ++i)
    checkpoint.put_state("preaggregator" + std::to_string(i), plugins.preaggregators[i]->save_state());
  checkpoint.put_state("attack", plugins.attack->save_state());

  for (std::size_t w = 0; w < run.streams.size(); ++w)
    run.streams[w].save(checkpoint, "worker" + std::to_string(w) + "/batches");
  speed.save(checkpoint, "speed");
  metrics.save(checkpoint, "metrics");
  checkpoint.put_int("metrics/rows", run.output ? run.output->rows() : 0);
  checkpoint.put_int("result/has_last", result.has_last ? 1 : 0);
  std::vector<double> last;
  for (const auto& field : metrics_fields(result.last)) last.push_back(field.second);
  checkpoint.put("result/last", at::tensor(last, at::kDouble));
  // The plugins' diagnostics since the last row, and the last row's (summary.json of a resumed run).
  if (plugins.diagnostics) plugins.diagnostics->save(checkpoint, "diagnostics");
  if (!result.last.diagnostics.empty()) {
    std::vector<double> last_diagnostics;
    for (const auto& field : result.last.diagnostics) last_diagnostics.push_back(field.second);
    checkpoint.put("result/last_diagnostics", at::tensor(last_diagnostics, at::kDouble));
  }
  checkpoint.put("result/time", at::tensor(std::vector<double>{result.time.compute, result.time.aggregation,
                                                               result.time.update, result.time.evaluation,
                                                               result.time.total, result.time.batches,
                                                               result.time.worker_rules, result.time.attack},
                                           at::kDouble));
}

void load_shared_state(const Checkpoint& checkpoint, RunSetup& run, EnginePlugins& plugins, SpeedModel& speed,
                       MetricsTracker& metrics, RunResult& result) {
  restore_into(run.model->params(), checkpoint.get("model/params"), "model/params");
  const std::vector<at::Tensor> buffers = run.model->buffers();
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    const std::string name = "model/buffer" + std::to_string(i);
    restore_into(buffers[i], checkpoint.get(name), name);
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(checkpoint.get("torch/generator"));

  load_plugin_state(*plugins.optimizer, checkpoint, "optimizer", "the optimizer");
  for (std::size_t w = 0; w < plugins.worker_rules.size(); ++w)
    load_plugin_state(*plugins.worker_rules[w], checkpoint, "worker" + std::to_string(w) + "/rule",
                      "worker " + std::to_string(w) + "'s optimizer rule");
  load_plugin_state(*plugins.aggregator, checkpoint, "aggregator", "the aggregator");
  for (std::size_t i = 0; i < plugins.preaggregators.size(); ++i)
    load_plugin_state(*plugins.preaggregators[i], checkpoint, "preaggregator" + std::to_string(i),
                      "pre-aggregator " + std::to_string(i));
  load_plugin_state(*plugins.attack, checkpoint, "attack", "the attack");

  for (std::size_t w = 0; w < run.streams.size(); ++w)
    run.streams[w].load(checkpoint, "worker" + std::to_string(w) + "/batches");
  speed.load(checkpoint, "speed");
  metrics.load(checkpoint, "metrics");
  result.has_last = checkpoint.get_int("result/has_last") != 0;
  const at::Tensor last = checkpoint.get("result/last").contiguous();
  const auto& columns = metrics_columns();
  if (last.scalar_type() != at::kDouble || last.numel() != static_cast<std::int64_t>(columns.size()))
    throw Error("checkpoint entry 'result/last' does not have the " + std::to_string(columns.size()) +
                " metric columns of this version");
  const double* v = last.data_ptr<double>();
  result.last = metrics_row_from_values(std::vector<double>(v, v + columns.size()));
  if (plugins.diagnostics && checkpoint.has("diagnostics/sums")) plugins.diagnostics->load(checkpoint, "diagnostics");
  if (plugins.diagnostics && checkpoint.has("result/last_diagnostics")) {
    const at::Tensor saved = checkpoint.get("result/last_diagnostics").contiguous();
    const auto& names = plugins.diagnostics->columns();
    if (saved.scalar_type() != at::kDouble || saved.numel() != static_cast<std::int64_t>(names.size()))
      throw Error("checkpoint entry 'result/last_diagnostics' does not hold the " + std::to_string(names.size()) +
                  " diagnostic columns of this config");
    for (std::size_t i = 0; i < names.size(); ++i)
      result.last.diagnostics.emplace_back(names[i], saved.data_ptr<double>()[i]);
  }
  const at::Tensor time = checkpoint.get("result/time").contiguous();
  if (time.scalar_type() == at::kDouble && (time.numel() == 5 || time.numel() == 8)) {
    const double* t = time.data_ptr<double>();
    result.time = TimeBreakdown{t[0], t[1], t[2], t[3], t[4]};
    if (time.numel() == 8) {  // checkpoints written before the engine's parts were timed have 5
      result.time.batches = t[5];
      result.time.worker_rules = t[6];
      result.time.attack = t[7];
    }
  }
}

// The owners' save/load, kept here with the rest of the checkpoint format.

void BatchStream::save(Checkpoint& checkpoint, const std::string& prefix) const {
  checkpoint.put(prefix + "/order", long_tensor(order_));
  checkpoint.put_int(prefix + "/cursor", static_cast<std::int64_t>(cursor_));
  checkpoint.put_text(prefix + "/rng", engine_text(rng_));
}

void BatchStream::load(const Checkpoint& checkpoint, const std::string& prefix) {
  order_ = long_values(checkpoint.get(prefix + "/order"), order_.size(), prefix + "/order");
  const std::int64_t cursor = checkpoint.get_int(prefix + "/cursor");
  if (cursor < 0 || static_cast<std::size_t>(cursor) > order_.size())
    throw Error("checkpoint entry '" + prefix + "/cursor' is out of range");
  cursor_ = static_cast<std::size_t>(cursor);
  load_engine(checkpoint, prefix + "/rng", rng_);
}

void SpeedModel::save(Checkpoint& checkpoint, const std::string& prefix) const {
  std::vector<std::int64_t> positions(trace_pos_.begin(), trace_pos_.end());
  checkpoint.put(prefix + "/trace_positions", long_tensor(positions));
  checkpoint.put_text(prefix + "/rng", engine_text(rng_));
}

void SpeedModel::load(const Checkpoint& checkpoint, const std::string& prefix) {
  const auto positions =
      long_values(checkpoint.get(prefix + "/trace_positions"), trace_pos_.size(), prefix + "/trace_positions");
  for (std::size_t k = 0; k < positions.size(); ++k) trace_pos_[k] = static_cast<std::size_t>(positions[k]);
  load_engine(checkpoint, prefix + "/rng", rng_);
}

void MetricsTracker::save(Checkpoint& checkpoint, const std::string& prefix) const {
  checkpoint.put_double(prefix + "/wall_time", std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  checkpoint.put_double(prefix + "/loss_sum", loss_sum_);
  checkpoint.put_int(prefix + "/loss_count", loss_count_);
  checkpoint.put_double(prefix + "/staleness_sum", staleness_sum_);
  checkpoint.put_int(prefix + "/staleness_count", staleness_count_);
  checkpoint.put_int(prefix + "/staleness_max", staleness_max_);
  checkpoint.put_int(prefix + "/nonfinite", nonfinite_);
  checkpoint.put_int(prefix + "/rejected", rejected_);
  checkpoint.put_int(prefix + "/missing", missing_);
  checkpoint.put_double(prefix + "/deviation_sum", deviation_sum_);
  checkpoint.put_double(prefix + "/cosine_sum", cosine_sum_);
  checkpoint.put_int(prefix + "/comparisons", comparisons_);
}

void MetricsTracker::load(const Checkpoint& checkpoint, const std::string& prefix) {
  // Wall time goes on from where the killed run saved (the time between that save and the kill is lost).
  started_ = std::chrono::steady_clock::now() -
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                 std::chrono::duration<double>(checkpoint.get_double(prefix + "/wall_time")));
  loss_sum_ = checkpoint.get_double(prefix + "/loss_sum");
  loss_count_ = checkpoint.get_int(prefix + "/loss_count");
  staleness_sum_ = checkpoint.get_double(prefix + "/staleness_sum");
  staleness_count_ = checkpoint.get_int(prefix + "/staleness_count");
  staleness_max_ = checkpoint.get_int(prefix + "/staleness_max");
  nonfinite_ = checkpoint.get_int(prefix + "/nonfinite");
  rejected_ = checkpoint.get_int(prefix + "/rejected");
  missing_ = checkpoint.get_int(prefix + "/missing");
  if (checkpoint.has(prefix + "/comparisons")) {  // absent from checkpoints written before these columns
    deviation_sum_ = checkpoint.get_double(prefix + "/deviation_sum");
    cosine_sum_ = checkpoint.get_double(prefix + "/cosine_sum");
    comparisons_ = checkpoint.get_int(prefix + "/comparisons");
  }
}

}  // namespace phalanx::core
