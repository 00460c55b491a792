#include "phalanx/core/engine/engine_parts.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "phalanx/core/engine/data_cache.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/core/engine/run_failure.hpp"
#include "phalanx/core/engine/speed_trace.hpp"
#include "phalanx/core/engine.hpp"
#include "phalanx/core/engine/threads.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/helpers/parallel.hpp"
#include "phalanx/error.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx::core {

namespace {
const RunContext& context_for(EnginePlugins& p, const PluginChoice& choice, const RunInfo& info,
                              std::shared_ptr<spdlog::logger> logger) {
  p.contexts.push_back(std::make_unique<RunContext>(info, derive_seed(info.seed, choice.path),
                                                    choice.path + "(" + choice.name + ")", std::move(logger)));
  return *p.contexts.back();
}
}  // namespace

// dst = src, bit for bit, for n float32 values in one pass that also says whether every value is finite: a float
// is NaN or infinite exactly when its exponent bits are all ones, and adding one exponent step then carries into
// the sign bit. (A copy and then count_nonfinite_rows would read the message twice.) Clones for wider vectors
// than the baseline's SSE2; outside the anonymous namespace because GCC's ifunc wants external linkage.
__attribute__((target_clones("avx512f", "avx2", "default"))) bool copy_and_check_finite(float* dst, const float* src,
                                                                                      std::int64_t n) {
  auto* to = reinterpret_cast<std::uint32_t*>(dst);
  const auto* from = reinterpret_cast<const std::uint32_t*>(src);
  std::uint32_t any = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    to[j] = from[j];
    any |= (from[j] & 0x7f800000u) + 0x00800000u;
  }
  return (any & 0x80000000u) == 0;
}

namespace {
bool is_plain_float_vector(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat && t.dim() == 1 && t.is_contiguous();
}

// Puts a worker's message in its row of the round's matrix (or keeps it, without a matrix) and returns
// whether all of it is finite. Checked here, on the gradient threads, so the server's serial part does not
// pass over the rows again.
bool store_message(const at::Tensor& message, at::Tensor row, WorkerTask& task) {
  if (!row.defined()) {
    task.message = message;
    return count_nonfinite_rows(message.reshape({1, -1})) == 0;
  }
  // A worker rule that keeps its state in the row (keep_state_in_row) has written the message there already.
  if (message.data_ptr() == row.data_ptr() && message.sizes() == row.sizes() && message.strides() == row.strides())
    return count_nonfinite_rows(row.reshape({1, -1})) == 0;
  if (is_plain_float_vector(message) && is_plain_float_vector(row))
    return copy_and_check_finite(row.data_ptr<float>(), message.data_ptr<float>(), message.numel());
  row.copy_(message);
  return count_nonfinite_rows(row.reshape({1, -1})) == 0;
}

// Worker momentum is most of a round's memory traffic outside forward/backward: kept in its own buffer, each
// message is read and written there and then copied into the round's matrix. Moved into the worker's row, the
// momentum update is the message, and the copy goes (docs/BENCHMARKS.md, "Engine overhead on the quick start").
void keep_state_in_row(WorkerRule& rule, const at::Tensor& row) {
  if (auto* momentum = dynamic_cast<MomentumWorkerRule*>(&rule)) momentum->keep_momentum_in(row);
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
  p.labels.optimizer = plugin_label(registry, Kind::Optimizer, spec.optimizer.name);
  p.labels.aggregator = plugin_label(registry, Kind::Aggregator, spec.aggregator.name);
  p.labels.attack = plugin_label(registry, Kind::Attack, spec.attack.name);
  p.byzantine_shape_only = registry.find(Kind::Attack, spec.attack.name).declares(Need::ByzantineShapeOnly);
  for (const auto& pre : spec.preaggregators)
    p.labels.preaggregators.push_back(plugin_label(registry, Kind::PreAggregator, pre.name));
  p.diagnostics = std::make_shared<DiagnosticsRecorder>(spec, registry);
  for (std::int64_t w = 0; w < spec.workers; ++w) {
    p.worker_rules.push_back(p.optimizer->make_worker_rule(w));
    if (!p.worker_rules.back()) throw Error("optimizer '" + spec.optimizer.name + "' returned no worker rule");
  }
  return p;
}

namespace {
// data.limit: the first N samples of any source, cut after loading so every data plugin gets it alike
// (a plugin's own statistics, such as its standardisation, come from what it loaded).
void apply_limits(const PipelineSpec& spec, Dataset& data) {
  auto cut = [](at::Tensor& x, at::Tensor& y, std::int64_t limit) {
    if (limit <= 0 || limit >= x.size(0)) return;
    x = x.narrow(0, 0, limit).clone();
    y = y.narrow(0, 0, limit).clone();
  };
  cut(data.train_x, data.train_y, spec.train_limit);
  cut(data.test_x, data.test_y, spec.test_limit);
}
}  // namespace

Dataset load_data(const PipelineSpec& spec, const Registry& registry, const RunInfo& info,
                  std::shared_ptr<spdlog::logger> logger) {
  const std::string key = data_cache_key(spec);
  Dataset data;
  if (std::optional<Dataset> cached = data_cache().find(key)) {
    data = *cached;
  } else {
    RunContext ctx(info, data_seed(spec, "data"), "data(" + spec.data.name + ")", logger);
    PhaseScope phase("loading the data", Kind::Data, spec.data.name);
    std::shared_ptr<DataSource> source = registry.make_data(spec.data.name, spec.data.params, ctx);
    // The run's gradient threads are not built yet: threads of the same number are lent to the source's block
    // kernels (phalanx/helpers/parallel.hpp) while it loads, so a two-thread run converts its data, and first
    // touches its memory, on two cores (docs/BENCHMARKS.md, "The data load on the gradient threads").
    WorkerPool loaders(gradient_threads(spec.threads, spec.workers));
    const LentThreads lent([&](std::int64_t count, const std::function<void(std::int64_t)>& block) {
      loaders.run(count, [&](std::int64_t i, int /*slot*/) { block(i); });
    });
    data = guard_plugin(plugin_label(registry, Kind::Data, spec.data.name), [&] { return source->load(); });
    if (!data.train_x.defined() || !data.train_y.defined() || !data.test_x.defined() || !data.test_y.defined() ||
        data.classes < 2 || data.train_x.size(0) != data.train_y.size(0) || data.test_x.size(0) != data.test_y.size(0))
      throw Error("data '" + spec.data.name + "' returned an inconsistent data set (tensors missing, classes < 2, "
                  "or sample and label counts differ)");
    data_cache().keep(key, data);
  }
  apply_limits(spec, data);
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
  std::shared_ptr<Model> model = registry.make_model(spec.model.name, spec.model.params, ctx);
  return std::make_unique<FlatModel>(guard_plugin(plugin_label(registry, Kind::Model, spec.model.name),
                                                  [&] { return model->build(data.sample_shape, data.classes); }));
}

RunSetup prepare_run(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                     std::shared_ptr<spdlog::logger> logger, std::int64_t resume_rows) {
  // One intra-op thread: training.threads is the number of gradient threads (worker_pool.hpp), and a
  // reduction split over several intra-op threads would make the results depend on the thread count.
  set_compute_threads(1);
  RunSetup run;
  if (!out_dir.empty()) {
    run.output = std::make_unique<RunOutput>(out_dir, resume_rows, diagnostic_columns(spec, registry));
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

DiagnosticSink* attack_diagnostics(const EnginePlugins& plugins) {
  return plugins.diagnostics ? plugins.diagnostics->attack() : nullptr;
}

at::Tensor aggregate_rows(const PipelineSpec& spec, EnginePlugins& plugins, at::Tensor rows, RoundContext round,
                          RoundKind kind) {
  const std::int64_t d = rows.size(1);
  const DiagnosticsRecorder* recorder =
      kind == RoundKind::Real && round.round >= 0 ? plugins.diagnostics.get() : nullptr;
  for (std::size_t i = 0; i < plugins.preaggregators.size(); ++i) {
    PreAggregator& pre = *plugins.preaggregators[i];
    const std::int64_t n = rows.size(0);
    round.diagnostics = recorder ? recorder->preaggregator(i) : nullptr;
    rows = call_plugin("pre-aggregation", Kind::PreAggregator, spec.preaggregators[i].name,
                       plugins.labels.preaggregators[i], [&] { return pre.transform_with_context(rows, round); });
    if (!rows.defined() || rows.dim() != 2 || rows.size(1) != d || rows.size(0) < 1)
      throw Error("pre-aggregator '" + spec.preaggregators[i].name + "' must return [n', " + std::to_string(d) +
                  "] rows");
    // Rows that no longer belong to one worker each lose their worker ids and staleness.
    if (rows.size(0) != n || !pre.keeps_row_order()) {
      round.worker_ids.clear();
      round.staleness.clear();
    }
  }
  round.diagnostics = recorder ? recorder->aggregator() : nullptr;
  at::Tensor update = call_plugin("aggregation", Kind::Aggregator, spec.aggregator.name, plugins.labels.aggregator,
                                  [&] { return plugins.aggregator->aggregate_with_context(rows, round); });
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
  std::vector<at::Tensor> partitions = partition_of(spec, data.train_y, data.classes);
  std::vector<BatchStream> streams;
  for (std::int64_t w = 0; w < spec.workers; ++w)
    streams.emplace_back(partitions[w], data_seed(spec, "worker/" + std::to_string(w) + "/batches"));
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

double SpeedModel::next(std::int64_t k) { return compute_time(k) + spec_.comm; }

double SpeedModel::compute_time(std::int64_t k) {
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

bool skips_byzantine_gradients(const PipelineSpec& spec, const EnginePlugins& plugins, const FlatModel& model) {
  return spec.byzantine > 0 && plugins.byzantine_shape_only && model.stateless_forward();
}

WorkerTask draw_batch(const PipelineSpec& spec, EnginePlugins& plugins, const Dataset& data, BatchStream& stream,
                      std::int64_t worker, std::int64_t iteration) {
  WorkerTask task;
  task.worker = worker;
  task.iteration = iteration;
  task.indices = stream.next(spec.batch_size);
  task.images = data.train_x;  // gathered on the gradient thread (compute_messages)
  task.y = data.train_y.index_select(0, task.indices);
  if (worker >= spec.honest()) task.y = plugins.attack->poison_labels(task.y, data.classes);
  return task;
}

std::vector<std::unique_ptr<FlatModel>> build_replicas(const PipelineSpec& spec, const Registry& registry,
                                                        const RunInfo& info, const Dataset& data, FlatModel& model,
                                                        int threads, std::shared_ptr<spdlog::logger> logger) {
  std::vector<std::unique_ptr<FlatModel>> replicas;
  if (threads <= 1) return replicas;
  if (!model.stateless_forward()) {
    if (logger)
      logger->info("model {} keeps state between forward passes (buffers): its workers run on one thread",
                   spec.model.name);
    return replicas;
  }
  // Building a network draws its initial weights from LibTorch's global generator; the replicas' weights are
  // replaced by views of the model's, and the generator is put back so nothing later sees a different stream.
  at::Generator global = at::detail::getDefaultCPUGenerator();
  const at::Tensor saved = global.get_state();
  RunContext ctx(info, derive_seed(spec.seed, "model"), "model(" + spec.model.name + ")", logger);
  const auto factory = registry.make_model(spec.model.name, spec.model.params, ctx);
  for (int slot = 1; slot < threads; ++slot)
    replicas.push_back(std::make_unique<FlatModel>(factory->build(data.sample_shape, data.classes), model));
  global.set_state(saved);
  return replicas;
}

FlatModel::Evaluation evaluate_on_threads(WorkerPool& pool, const std::vector<FlatModel*>& models,
                                          const at::Tensor& x, const at::Tensor& y, std::int64_t batch_size) {
  const std::int64_t n = x.size(0);
  const std::int64_t batches = (n + batch_size - 1) / batch_size;
  std::vector<FlatModel::BatchScore> scores(static_cast<std::size_t>(batches));
  pool.run(batches, [&](std::int64_t i, int slot) {
    const std::int64_t start = i * batch_size, len = std::min(batch_size, n - start);
    scores[i] = models[slot]->score_batch(x.narrow(0, start, len), y.narrow(0, start, len));
  });
  double loss_sum = 0;
  std::int64_t correct = 0;
  for (const FlatModel::BatchScore& score : scores) {  // in batch order, whichever thread scored them
    loss_sum += score.loss_sum;
    correct += score.correct;
  }
  return {loss_sum / static_cast<double>(n), static_cast<double>(correct) / static_cast<double>(n)};
}

void compute_messages(const PipelineSpec& spec, EnginePlugins& plugins, WorkerPool& pool,
                      const std::vector<FlatModel*>& models, std::vector<WorkerTask>& tasks, TimeBreakdown& time,
                      at::Tensor rows) {
  const std::int64_t d = models.front()->dimension();
  const auto started = std::chrono::steady_clock::now();
  WorkerPool one_at_a_time(1);
  WorkerPool& runner = models.size() >= static_cast<std::size_t>(pool.slots()) ? pool : one_at_a_time;
  runner.run(static_cast<std::int64_t>(tasks.size()), [&](std::int64_t i, int slot) {
    WorkerTask& task = tasks[i];
    FlatModel& model = *models[slot];
    const auto gather_start = std::chrono::steady_clock::now();
    if (!task.x.defined()) task.x = task.images.index_select(0, task.indices);
    const auto t0 = std::chrono::steady_clock::now();
    auto [loss, gradient] = model.loss_and_gradient(task.x, task.y);
    const auto t1 = std::chrono::steady_clock::now();
    if (spec.weight_decay > 0) gradient.add_(model.params(), spec.weight_decay);
    at::Tensor message = plugins.worker_rules[task.worker]->message(gradient, task.iteration);
    require_shape(message, {d}, "optimizer '" + spec.optimizer.name + "' worker rule");
    task.loss = loss;
    const at::Tensor row = rows.defined() ? rows[i] : at::Tensor();
    task.finite = store_message(message, row, task);
    if (row.defined() && task.worker < spec.honest() && message.data_ptr() != row.data_ptr())
      keep_state_in_row(*plugins.worker_rules[task.worker], row);
    task.gather_seconds = std::chrono::duration<double>(t0 - gather_start).count();
    task.gradient_seconds = std::chrono::duration<double>(t1 - t0).count();
    task.rule_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  });
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // The threads' time split the round's wall time: gathering images counts as drawing batches.
  double gather = 0, gradient = 0, rule = 0;
  for (const WorkerTask& task : tasks) {
    gather += task.gather_seconds;
    gradient += task.gradient_seconds;
    rule += task.rule_seconds;
  }
  const double busy = gather + gradient + rule;
  time.batches += busy > 0 ? wall * gather / busy : 0.0;
  time.compute += busy > 0 ? wall * gradient / busy : wall;
  time.worker_rules += busy > 0 ? wall * rule / busy : 0.0;
}

bool diverged_on_test_loss(RunResult& result, std::int64_t step) {
  if (!result.has_last || std::isfinite(result.last.test_loss)) return false;
  result.status = RunStatus::diverged;
  result.message = "the test loss became non-finite at step " + std::to_string(step) +
                   "; lower optimizer.lr or use a robust aggregator";
  return true;
}

namespace {
// One streaming pass (at::isfinite(x).all() builds a bool tensor through several temporaries first).
bool all_finite(const at::Tensor& x) { return count_nonfinite_rows(x.reshape({1, -1})) == 0; }
}  // namespace

bool diverged_on_update(RunResult& result, const at::Tensor& update, const std::string& aggregator,
                        const std::string& when) {
  if (all_finite(update)) return false;
  result.status = RunStatus::diverged;
  result.message = "aggregator '" + aggregator + "' produced a non-finite update " + when +
                   "; the run stopped (the model would be poisoned)";
  return true;
}

namespace {
bool mark_honest_nonfinite(RunResult& result, const std::string& when) {
  result.status = RunStatus::diverged;
  result.message = "an honest worker's gradient became non-finite " + when +
                   " (the parameters grew too large); lower optimizer.lr or use a robust aggregator";
  return true;
}
}  // namespace

bool diverged_on_honest_rows(RunResult& result, const at::Tensor& honest, const std::string& when) {
  if (!honest.defined() || honest.dim() != 2 || honest.size(0) == 0 || count_nonfinite_rows(honest) == 0)
    return false;
  return mark_honest_nonfinite(result, when);
}

bool diverged_on_honest_messages(RunResult& result, const std::vector<WorkerTask>& tasks, std::int64_t honest,
                                 const std::string& when) {
  for (const WorkerTask& task : tasks)
    if (task.worker < honest && !task.finite) return mark_honest_nonfinite(result, when);
  return false;
}

bool diverged_on_parameters(RunResult& result, const at::Tensor& params, const std::string& when) {
  if (all_finite(params)) return false;
  result.status = RunStatus::diverged;
  result.message = "parameters became non-finite " + when + "; lower optimizer.lr or use a robust aggregator";
  return true;
}

void MetricsTracker::add_train_loss(double loss) {
  loss_sum_ += loss;
  ++loss_count_;
}

namespace {

// The honest-deviation metric works on fixed blocks of columns: each block's sums come out the same whichever
// thread computes it, and the blocks' sums are added in block order, so the metric is the same for any thread
// count.
constexpr std::int64_t kHonestBlock = 2048;
constexpr int kLanes = 4;  // independent partial sums per block, added in lane order (they vectorise)

struct HonestBlockSums {
  double sum_sq = 0, update_sq = 0, difference_sq = 0, dot = 0;
};

// One block [start, start + width) of the honest rows against the aggregate, without dividing by h: the rows'
// sums S (in float64 from 0 in row order) and the aggregate scaled by h, U = h * aggregate (exact: a float times
// an integer below 2^29 fits in float64's 53 bits). The block's sums of S^2, aggregate^2, (U - S)^2 and
// aggregate * S are h^2, 1, h^2 and h times the sums for the mean S / h, and those factors cancel in both
// metrics, so no column needs a division. The clones must not enable FMA: a contracted multiply-add would round
// differently on CPUs without it.
__attribute__((target_clones("avx2", "default"))) HonestBlockSums honest_block_sums(
    const float* rows, std::int64_t h, std::int64_t d, const float* aggregate, std::int64_t start,
    std::int64_t width) {
  const double count = static_cast<double>(h);
  double sum_sq[kLanes] = {}, update_sq[kLanes] = {}, difference_sq[kLanes] = {}, dot[kLanes] = {};
  const auto add = [&](double sum, std::int64_t j, int lane) {  // column j goes to lane j mod kLanes
    const double update = static_cast<double>(aggregate[start + j]);
    const double difference = update * count - sum;
    sum_sq[lane] += sum * sum;
    update_sq[lane] += update * update;
    difference_sq[lane] += difference * difference;
    dot[lane] += update * sum;
  };
  // A chunk of kChunk columns is summed over the rows in registers, then added to the lanes in column order
  // (a block-wide array of sums, loaded and stored once per row, made the pass about 1.6x slower:
  // parts/honest_comparison in docs/BENCHMARKS.md).
  constexpr std::int64_t kChunk = 2 * kLanes;
  std::int64_t j = 0;
  for (; j + kChunk <= width; j += kChunk) {
    double sum[kChunk] = {};
    for (std::int64_t r = 0; r < h; ++r) {
      const float* row = rows + r * d + start + j;
      for (std::int64_t k = 0; k < kChunk; ++k) sum[k] += static_cast<double>(row[k]);
    }
    for (std::int64_t k = 0; k < kChunk; ++k) add(sum[k], j + k, static_cast<int>(k % kLanes));
  }
  for (; j < width; ++j) {
    double sum = 0.0;
    for (std::int64_t r = 0; r < h; ++r) sum += static_cast<double>(rows[r * d + start + j]);
    add(sum, j, static_cast<int>(j % kLanes));
  }
  HonestBlockSums out;
  for (int lane = 0; lane < kLanes; ++lane) {
    out.sum_sq += sum_sq[lane];
    out.update_sq += update_sq[lane];
    out.difference_sq += difference_sq[lane];
    out.dot += dot[lane];
  }
  return out;
}

}  // namespace

HonestComparison compare_with_honest_mean(const at::Tensor& aggregate, const at::Tensor& honest_rows,
                                          WorkerPool* pool) {
  const at::Tensor rows = honest_rows.to(at::kFloat).contiguous();
  const at::Tensor aggregate_row = aggregate.to(at::kFloat).contiguous();
  const std::int64_t h = rows.size(0), d = rows.size(1);
  const std::int64_t blocks = (d + kHonestBlock - 1) / kHonestBlock;
  std::vector<HonestBlockSums> sums(static_cast<std::size_t>(blocks));
  const auto block = [&](std::int64_t i, int /*slot*/) {
    const std::int64_t start = i * kHonestBlock;
    sums[i] = honest_block_sums(rows.data_ptr<float>(), h, d, aggregate_row.data_ptr<float>(), start,
                                std::min(kHonestBlock, d - start));
  };
  if (pool)
    pool->run(blocks, block);
  else
    for (std::int64_t i = 0; i < blocks; ++i) block(i, 0);
  HonestBlockSums total;
  for (const HonestBlockSums& s : sums) {  // in block order
    total.sum_sq += s.sum_sq;
    total.update_sq += s.update_sq;
    total.difference_sq += s.difference_sq;
    total.dot += s.dot;
  }
  // ||U - S|| / ||S|| = ||aggregate - mean|| / ||mean|| and dot / (||S|| ||aggregate||) = cos(aggregate, mean):
  // the factors of h cancel. Both follow METHODS.md's conventions: cos is 0 when either norm is 0; the relative
  // deviation of an honest mean of 0 is taken as the absolute one, ||U - S|| / h.
  const double sum_norm = std::sqrt(total.sum_sq), update_norm = std::sqrt(total.update_sq);
  const double difference_norm = std::sqrt(total.difference_sq);
  return {sum_norm > 0 ? difference_norm / sum_norm : difference_norm / static_cast<double>(h),
          sum_norm > 0 && update_norm > 0 ? total.dot / (sum_norm * update_norm) : 0.0};
}

void MetricsTracker::add_honest_comparison(const at::Tensor& aggregate, const at::Tensor& honest_rows) {
  if (honest_rows.size(0) == 0) return;
  const HonestComparison c = compare_with_honest_mean(aggregate, honest_rows, pool_);
  deviation_sum_ += c.deviation;
  cosine_sum_ += c.cosine;
  ++comparisons_;
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
  // Without lent threads (the distributed server), or with a slot that has no replica: on this thread.
  WorkerPool here(1);
  const bool shared = pool_ && models_.size() >= static_cast<std::size_t>(pool_->slots());
  const FlatModel::Evaluation e = evaluate_on_threads(shared ? *pool_ : here, shared ? models_ : std::vector{&model_},
                                                      data_.test_x, data_.test_y, spec_.eval_batch_size);
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
  if (comparisons_ > 0) {
    row.honest_deviation = deviation_sum_ / static_cast<double>(comparisons_);
    row.honest_cosine = cosine_sum_ / static_cast<double>(comparisons_);
  }
  if (diagnostics_) {
    const std::vector<double> values = diagnostics_->take_row();
    for (std::size_t i = 0; i < values.size(); ++i) row.diagnostics.emplace_back(diagnostics_->columns()[i], values[i]);
  }
  deviation_sum_ = cosine_sum_ = 0;
  comparisons_ = 0;
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
