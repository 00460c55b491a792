#include "phalanx/core/engine_parts.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>

#include "phalanx/core/run_failure.hpp"
#include "phalanx/core/speed_trace.hpp"
#include "phalanx/core/sync_engine.hpp"
#include "phalanx/core/threads.hpp"
#include "phalanx/core/training_parts.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {
const RunContext& context_for(EnginePlugins& p, const PluginChoice& choice, const RunInfo& info,
                              std::shared_ptr<spdlog::logger> logger) {
  p.contexts.push_back(std::make_unique<RunContext>(info, derive_seed(info.seed, choice.path),
                                                    choice.path + "(" + choice.name + ")", std::move(logger)));
  return *p.contexts.back();
}
}  // namespace

RunInfo run_info(const PipelineSpec& spec, const std::string& out_dir) {
  RunInfo info;
  info.workers = spec.workers;
  info.byzantine = spec.byzantine;
  info.seed = spec.seed;
  info.run_dir = out_dir;
  return info;
}

EnginePlugins make_plugins(const PipelineSpec& spec, const Registry& registry, const RunInfo& info,
                           std::shared_ptr<spdlog::logger> logger) {
  EnginePlugins p;
  p.optimizer = registry.make_optimizer(spec.optimizer.name, spec.optimizer.params,
                                        context_for(p, spec.optimizer, info, logger));
  for (const auto& pre : spec.preaggregators)
    p.preaggregators.push_back(registry.make_preaggregator(pre.name, pre.params, context_for(p, pre, info, logger)));
  p.aggregator = registry.make_aggregator(spec.aggregator.name, spec.aggregator.params,
                                          context_for(p, spec.aggregator, info, logger));
  p.attack = registry.make_attack(spec.attack.name, spec.attack.params, context_for(p, spec.attack, info, logger));
  for (std::int64_t w = 0; w < spec.workers; ++w) {
    p.worker_rules.push_back(p.optimizer->make_worker_rule(w));
    if (!p.worker_rules.back()) throw Error("optimizer '" + spec.optimizer.name + "' returned no worker rule");
  }
  return p;
}

Dataset load_data(const PipelineSpec& spec, const Registry& registry, const RunInfo& info,
                  std::shared_ptr<spdlog::logger> logger) {
  RunContext ctx(info, derive_seed(spec.seed, "data"), "data(" + spec.data.name + ")", logger);
  PhaseScope phase("loading the data", Kind::Data, spec.data.name);
  Dataset data = registry.make_data(spec.data.name, spec.data.params, ctx)->load();
  if (!data.train_x.defined() || !data.train_y.defined() || !data.test_x.defined() || !data.test_y.defined() ||
      data.classes < 2 || data.train_x.size(0) != data.train_y.size(0) || data.test_x.size(0) != data.test_y.size(0))
    throw Error("data '" + spec.data.name + "' returned an inconsistent data set (tensors missing, classes < 2, or "
                "sample and label counts differ)");
  if (logger)
    logger->info("data: {} ({} train, {} test, {} classes)", data.description, data.train_x.size(0),
                 data.test_x.size(0), data.classes);
  return data;
}

std::unique_ptr<FlatModel> build_model(const PipelineSpec& spec, const Registry& registry, const RunInfo& info,
                                       const Dataset& data, std::shared_ptr<spdlog::logger> logger) {
  // LibTorch initialises layers from its global generator: seed it right before building.
  at::manual_seed(derive_seed(spec.seed, "model"));
  RunContext ctx(info, derive_seed(spec.seed, "model"), "model(" + spec.model.name + ")", std::move(logger));
  PhaseScope phase("building the model", Kind::Model, spec.model.name);
  return std::make_unique<FlatModel>(
      registry.make_model(spec.model.name, spec.model.params, ctx)->build(data.sample_shape, data.classes));
}

RunSetup prepare_run(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                     std::shared_ptr<spdlog::logger> logger, std::int64_t resume_rows) {
  set_compute_threads(static_cast<int>(spec.threads));
  RunSetup run;
  if (!out_dir.empty()) {
    run.output = std::make_unique<RunOutput>(out_dir, resume_rows);
    if (resume_rows < 0) run.output->write_config(spec.resolved);
  }
  run.info = run_info(spec, out_dir);
  run.data = load_data(spec, registry, run.info, logger);
  run.streams = make_streams(spec, run.data);
  run.model = build_model(spec, registry, run.info, run.data, logger);
  run.info.dimension = run.model->dimension();
  return run;
}

void require_shape(const at::Tensor& t, at::IntArrayRef shape, const std::string& who) {
  if (t.defined() && t.sizes() == shape && t.scalar_type() == at::kFloat) return;
  auto dims = [](at::IntArrayRef s) {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  };
  const std::string got =
      t.defined() ? dims(t.sizes()) + " " + std::string(at::toString(t.scalar_type())) : "an undefined tensor";
  throw Error(who + " returned " + got + ", expected " + dims(shape) + " Float");
}

at::Tensor aggregate_rows(const PipelineSpec& spec, EnginePlugins& plugins, at::Tensor rows) {
  const std::int64_t d = rows.size(1);
  for (std::size_t i = 0; i < plugins.preaggregators.size(); ++i) {
    PhaseScope phase("pre-aggregation", Kind::PreAggregator, spec.preaggregators[i].name);
    rows = plugins.preaggregators[i]->transform(rows);
    if (!rows.defined() || rows.dim() != 2 || rows.size(1) != d || rows.size(0) < 1)
      throw Error("pre-aggregator '" + spec.preaggregators[i].name + "' must return [n', " + std::to_string(d) +
                  "] rows");
  }
  PhaseScope phase("aggregation", Kind::Aggregator, spec.aggregator.name);
  at::Tensor update = plugins.aggregator->aggregate(rows);
  require_shape(update, {d}, "aggregator '" + spec.aggregator.name + "'");
  return update;
}

BatchStream::BatchStream(at::Tensor indices, std::uint64_t seed) : indices_(std::move(indices)), rng_(seed) {
  order_.resize(indices_.size(0));
  reshuffle();
}

at::Tensor BatchStream::next(std::int64_t batch) {
  std::vector<std::int64_t> picked;
  picked.reserve(batch);
  auto idx = indices_.accessor<std::int64_t, 1>();
  while (static_cast<std::int64_t>(picked.size()) < batch) {
    if (cursor_ == order_.size()) reshuffle();
    picked.push_back(idx[order_[cursor_++]]);
  }
  return at::tensor(picked, at::kLong);
}

void BatchStream::reshuffle() {
  for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<std::int64_t>(i);
  std::shuffle(order_.begin(), order_.end(), rng_);
  cursor_ = 0;
}

std::vector<BatchStream> make_streams(const PipelineSpec& spec, const Dataset& data) {
  std::vector<at::Tensor> partitions = partition_indices(data.train_y, data.classes, spec.workers, spec.partition,
                                                         spec.dirichlet_alpha, derive_seed(spec.seed, "partition"));
  std::vector<BatchStream> streams;
  for (std::int64_t w = 0; w < spec.workers; ++w)
    streams.emplace_back(partitions[w], derive_seed(spec.seed, "worker/" + std::to_string(w) + "/batches"));
  return streams;
}

SpeedModel::SpeedModel(const SpeedSpec& spec, std::int64_t workers, std::uint64_t seed)
    : spec_(spec), base_(workers), trace_pos_(workers, 0), rng_(seed) {
  const auto slow = static_cast<std::int64_t>(std::llround(spec.slow_fraction * static_cast<double>(workers)));
  for (std::int64_t k = 0; k < workers; ++k) {
    double t = spec.time;
    if (spec.name != "homogeneous") t *= (1.0 + static_cast<double>(k) * spec.spread) * (k < slow ? spec.slow_factor : 1.0);
    base_[k] = t;
  }
  if (spec.name == "trace") {
    trace_ = read_speed_trace(spec.file);
    if (static_cast<std::int64_t>(trace_.size()) < workers)
      throw Error(spec.file + ": has times for " + std::to_string(trace_.size()) + " workers, the run has " +
                  std::to_string(workers) + " (one line per worker)");
  }
}

double SpeedModel::next(std::int64_t k) {
  if (spec_.name == "trace") {
    const auto& times = trace_[k];
    const double t = times[trace_pos_[k] % times.size()];
    ++trace_pos_[k];
    return t;
  }
  if (spec_.name == "gamma") {
    std::gamma_distribution<double> gamma(spec_.shape, 1.0 / spec_.shape);
    return base_[k] * std::max(gamma(rng_), 1e-9);
  }
  return base_[k];
}

MetricsTracker::MetricsTracker(const PipelineSpec& spec, const Dataset& data, FlatModel& model, RunOutput* output,
                               std::shared_ptr<spdlog::logger> logger, std::int64_t total_steps)
    : spec_(spec), data_(data), model_(model), output_(output), logger_(std::move(logger)), total_steps_(total_steps) {}

std::pair<double, at::Tensor> worker_gradient(const PipelineSpec& spec, EnginePlugins& plugins, const Dataset& data,
                                              FlatModel& model, BatchStream& stream, bool byzantine,
                                              MetricsTracker* metrics, double& compute_seconds) {
  PhaseScope phase("a worker's forward and backward pass", Kind::Model, spec.model.name);
  at::Tensor batch = stream.next(spec.batch_size);
  at::Tensor x = data.train_x.index_select(0, batch);
  at::Tensor y = data.train_y.index_select(0, batch);
  if (byzantine) y = plugins.attack->poison_labels(y, data.classes);
  auto [loss, gradient] = [&] {
    ScopedTimer timer(compute_seconds);
    return model.loss_and_gradient(x, y);
  }();
  if (!byzantine && metrics) metrics->add_train_loss(loss);
  if (spec.weight_decay > 0) gradient.add_(model.params(), spec.weight_decay);
  return {loss, gradient};
}

bool diverged_on_test_loss(RunResult& result, std::int64_t step) {
  if (!result.has_last || std::isfinite(result.last.test_loss)) return false;
  result.status = "diverged";
  result.message = "the test loss became non-finite at step " + std::to_string(step) +
                   "; lower optimizer.lr or use a robust aggregator";
  return true;
}

void MetricsTracker::add_train_loss(double loss) {
  loss_sum_ += loss;
  ++loss_count_;
}

void MetricsTracker::add_staleness(std::int64_t staleness) {
  staleness_sum_ += static_cast<double>(staleness);
  ++staleness_count_;
  staleness_max_ = std::max(staleness_max_, staleness);
}

void MetricsTracker::evaluate(std::int64_t step, std::int64_t gradients, double samples, double lr, double sim_time,
                              RunResult& result) {
  ScopedTimer timer(result.time.evaluation);
  PhaseScope phase("evaluation", Kind::Model, spec_.model.name);
  FlatModel::Evaluation e = model_.evaluate(data_.test_x, data_.test_y, spec_.eval_batch_size);
  MetricsRow row;
  row.step = step;
  row.gradients = gradients;
  row.epoch = samples / static_cast<double>(data_.train_x.size(0));
  row.wall_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  row.lr = lr;
  row.train_loss = loss_count_ ? loss_sum_ / static_cast<double>(loss_count_) : std::nan("");
  row.test_loss = e.loss;
  row.test_accuracy = e.accuracy;
  row.nonfinite_messages = nonfinite_;
  row.rejected_messages = rejected_;
  row.missing_messages = missing_;
  row.sim_time = sim_time;
  row.staleness_mean = staleness_count_ ? staleness_sum_ / static_cast<double>(staleness_count_) : 0.0;
  row.staleness_max = staleness_max_;
  loss_sum_ = 0;
  loss_count_ = 0;
  staleness_sum_ = 0;
  staleness_count_ = 0;
  staleness_max_ = 0;
  if (output_) output_->append(row);
  result.last = row;
  result.has_last = true;
  if (logger_)
    logger_->info("step {:>6}/{} epoch {:.2f} lr {:.4g} train_loss {:.4f} test_loss {:.4f} test_acc {:.2f}%{}", row.step,
                  total_steps_, row.epoch, row.lr, row.train_loss, row.test_loss, 100 * row.test_accuracy,
                  spec_.engine == "async" ? fmt::format(" sim_time {:.1f} staleness {:.1f}/{}", row.sim_time,
                                                        row.staleness_mean, row.staleness_max)
                                          : std::string());
}

}  // namespace phalanx::core
