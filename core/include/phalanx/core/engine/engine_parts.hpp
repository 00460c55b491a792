// Pieces both simulation engines are built from: the plugins of a run with their contexts, each worker's
// stream of mini-batches, worker speed models, shape checks and the metrics bookkeeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include "phalanx/core/engine/diagnostics_recorder.hpp"
#include "phalanx/core/run/checkpoint.hpp"
#include "phalanx/core/engine/flat_model.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/run/run_output.hpp"
#include "phalanx/core/engine/worker_pool.hpp"
#include "phalanx/data.hpp"
#include "phalanx/round.hpp"

namespace phalanx::core {

struct RunResult;

/// How errors name each plugin of a run (plugin_label: kind, name and library).
struct PluginLabels {
  std::string optimizer, aggregator, attack;
  std::vector<std::string> preaggregators;
};

/// The plugins of one run, each with its own Context. Objects created by a plugin are destroyed before
/// the plugin that created them (worker rules before the optimizer).
struct EnginePlugins {
  std::vector<std::unique_ptr<RunContext>> contexts;
  std::shared_ptr<Optimizer> optimizer;
  std::vector<std::unique_ptr<WorkerRule>> worker_rules;
  std::shared_ptr<Aggregator> aggregator;
  std::vector<std::shared_ptr<PreAggregator>> preaggregators;
  std::shared_ptr<Attack> attack;
  PluginLabels labels;
  /// The plugins' per-round diagnostics (null when built by hand, as some tests do).
  std::shared_ptr<DiagnosticsRecorder> diagnostics;
  /// The attack declared Need::ByzantineShapeOnly: its craft() never reads the Byzantine messages' values.
  bool byzantine_shape_only = false;

  EnginePlugins() = default;
  EnginePlugins(EnginePlugins&&) = default;
  ~EnginePlugins() { worker_rules.clear(); }
};

RunInfo run_info(const PipelineSpec& spec, const std::string& out_dir);
EnginePlugins make_plugins(const PipelineSpec& spec, const Registry& registry, const RunInfo& info,
                           std::shared_ptr<spdlog::logger> logger);
/// Loads and checks the data set.
Dataset load_data(const PipelineSpec& spec, const Registry& registry, const RunInfo& info,
                  std::shared_ptr<spdlog::logger> logger);
/// Builds the model after seeding LibTorch's generator from the run seed.
std::unique_ptr<FlatModel> build_model(const PipelineSpec& spec, const Registry& registry, const RunInfo& info,
                                       const Dataset& data, std::shared_ptr<spdlog::logger> logger);

/// Throws an Error naming `who` unless `t` is a float32 tensor of exactly `shape`.
void require_shape(const at::Tensor& t, at::IntArrayRef shape, const std::string& who);

/// Whether an aggregation is a real round, whose plugins' diagnostics go into the metrics, or a query (the
/// defence oracle's candidates), whose diagnostics are dropped.
enum class RoundKind { Real, Query };

/// Aggregates `rows` with the pre-aggregators and the aggregator, checking every shape. `round` is what the
/// server knows of the round (phalanx/round.hpp; round_parts.hpp builds it). The plugins report their
/// diagnostics to `plugins.diagnostics` when `kind` is Real and `round.round` >= 0 (a round of a run).
at::Tensor aggregate_rows(const PipelineSpec& spec, EnginePlugins& plugins, at::Tensor rows,
                          RoundContext round = RoundContext(), RoundKind kind = RoundKind::Real);

/// The sink an engine puts into AttackRound::diagnostics (null when the plugins record none).
DiagnosticSink* attack_diagnostics(const EnginePlugins& plugins);

/// One worker's view of its partition: an endless sequence of mini-batches, reshuffled every pass.
class BatchStream {
 public:
  BatchStream(at::Tensor indices, std::uint64_t seed);
  at::Tensor next(std::int64_t batch);
  /// Its position (shuffle order, cursor, generator) under `prefix`, for checkpoints (run_checkpoint.cpp).
  void save(Checkpoint& checkpoint, const std::string& prefix) const;
  void load(const Checkpoint& checkpoint, const std::string& prefix);

 private:
  void reshuffle();
  at::Tensor indices_;
  std::mt19937_64 rng_;
  std::vector<std::int64_t> order_;
  std::size_t cursor_ = 0;
};

std::vector<BatchStream> make_streams(const PipelineSpec& spec, const Dataset& data);

/// What every engine sets up before its first step: thread count, the run folder (config.yaml written),
/// the data, each worker's batch stream and the model.
struct RunSetup {
  std::unique_ptr<RunOutput> output;  // null when not writing
  RunInfo info;                       // dimension filled in
  Dataset data;
  std::vector<BatchStream> streams;
  std::unique_ptr<FlatModel> model;
};
/// `resume_rows` >= 0 continues an existing run folder instead: its metrics files are cut back to that many
/// rows (those a checkpoint knows of) and config.yaml is left as it is.
RunSetup prepare_run(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                     std::shared_ptr<spdlog::logger> logger, std::int64_t resume_rows = -1);


/// Simulated compute time of each worker's next gradient (engine.speed).
class SpeedModel {
 public:
  SpeedModel(const SpeedSpec& spec, std::int64_t workers, std::uint64_t seed);
  /// Time worker `k` needs for its next gradient (> 0): its compute time plus the round trip's `comm`.
  double next(std::int64_t k);
  void save(Checkpoint& checkpoint, const std::string& prefix) const;
  void load(const Checkpoint& checkpoint, const std::string& prefix);

 private:
  double compute_time(std::int64_t k);
  SpeedSpec spec_;
  std::vector<double> base_;                // per-worker mean time
  std::vector<std::vector<double>> trace_;  // per-worker times from the trace file, cycled
  std::vector<std::size_t> trace_pos_;
  std::mt19937_64 rng_;
};

/// Training-loss and staleness accumulators between evaluations, and the evaluation itself.
/// Adds the wall time of its scope to `seconds` (for RunResult::time).
class ScopedTimer {
 public:
  explicit ScopedTimer(double& seconds) : seconds_(seconds) {}
  ~ScopedTimer() { seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  double& seconds_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// How far an aggregate is from the mean of the honest rows it was computed from: |aggregate - mean| / |mean|
/// (|aggregate - mean| when the mean is 0) and cos(aggregate, mean) (0 when either is 0), in float64. Summed
/// over fixed blocks of columns, shared between `pool`'s threads when given and added in block order: the
/// same numbers for any thread count, and without a pool.
struct HonestComparison {
  double deviation = 0, cosine = 0;
};
HonestComparison compare_with_honest_mean(const at::Tensor& aggregate, const at::Tensor& honest_rows,
                                          WorkerPool* pool);

class MetricsTracker {
 public:
  MetricsTracker(const PipelineSpec& spec, const Dataset& data, FlatModel& model, RunOutput* output,
                 std::shared_ptr<spdlog::logger> logger, std::int64_t total_steps);
  void add_train_loss(double loss);
  void add_staleness(std::int64_t staleness);
  void add_nonfinite(std::int64_t count) { nonfinite_ += count; }
  void add_rejected(std::int64_t count) { rejected_ += count; }
  void add_missing(std::int64_t count) { missing_ += count; }
  /// Compares an aggregate with the mean of the honest rows it was computed from (simulation only).
  void add_honest_comparison(const at::Tensor& aggregate, const at::Tensor& honest_rows);
  /// Adds the plugins' diagnostic columns to every row from now on (engines call it once, before the first
  /// round).
  void record_diagnostics(std::shared_ptr<DiagnosticsRecorder> diagnostics) { diagnostics_ = std::move(diagnostics); }
  /// Shares the honest comparison and the scoring of the test batches between the gradient threads from now
  /// on (`models` as for compute_messages; slot 0 is the tracker's own model); both give the same numbers for
  /// any thread count. Without it, or with a slot that has no replica, the test batches are scored on the
  /// calling thread.
  void use_threads(WorkerPool& pool, std::vector<FlatModel*> models) {
    pool_ = &pool;
    models_ = std::move(models);
  }
  /// Evaluates the model's current parameters and writes one row.
  void evaluate(std::int64_t step, std::int64_t gradients, double samples, double lr, double sim_time,
                RunResult& result);
  /// The sums between evaluations and the wall time so far, for checkpoints.
  void save(Checkpoint& checkpoint, const std::string& prefix) const;
  void load(const Checkpoint& checkpoint, const std::string& prefix);

 private:
  const PipelineSpec& spec_;
  const Dataset& data_;
  FlatModel& model_;
  RunOutput* output_;
  std::shared_ptr<spdlog::logger> logger_;
  std::int64_t total_steps_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  double loss_sum_ = 0;
  std::int64_t loss_count_ = 0;
  double staleness_sum_ = 0;
  std::int64_t staleness_count_ = 0, staleness_max_ = 0;
  std::int64_t nonfinite_ = 0;
  std::int64_t rejected_ = 0, missing_ = 0;
  double deviation_sum_ = 0, cosine_sum_ = 0;
  std::int64_t comparisons_ = 0;
  std::shared_ptr<DiagnosticsRecorder> diagnostics_;
  WorkerPool* pool_ = nullptr;
  std::vector<FlatModel*> models_;
};

// The divergence checks of the engines, each with one wording: every one marks `result` "diverged" with its
// message and returns true when it fires. `when` places the run in the engine's own unit ("at step 3",
// "by update 3").

/// After an evaluation: finite but huge parameters (a 1e38 bit-flip through the mean) overflow the test loss
/// without ever becoming Inf themselves; such a run had ended "ok" with test_loss inf (docs/reliability.md).
/// True when the last evaluation's test loss is not finite.
bool diverged_on_test_loss(RunResult& result, std::int64_t step);

/// True when the aggregate `update` holds NaN or Inf: applying it would poison the model.
bool diverged_on_update(RunResult& result, const at::Tensor& update, const std::string& aggregator,
                        const std::string& when);

/// Before the attack and the aggregator see the honest messages: true when one holds NaN or Inf, which
/// happens when the model has diverged to parameters still finite but so large that the honest gradients
/// overflow. Without it an attack or an aggregator that refuses such rows (mean does) would end the run
/// "failed", naming itself, where "diverged" is what happened.
bool diverged_on_honest_rows(RunResult& result, const at::Tensor& honest, const std::string& when);
struct WorkerTask;
/// The same check from the flags compute_messages set on the gradient threads: tasks of workers below `honest`.
bool diverged_on_honest_messages(RunResult& result, const std::vector<WorkerTask>& tasks, std::int64_t honest,
                                 const std::string& when);

/// True when the parameters hold NaN or Inf.
bool diverged_on_parameters(RunResult& result, const at::Tensor& params, const std::string& when);

/// One worker's share of a round: its mini-batch (drawn in worker order before any gradient is computed,
/// so the draws never depend on which thread computes what) and what its gradient task produces.
struct WorkerTask {
  std::int64_t worker = 0;
  std::int64_t iteration = 0;  // the index the worker rule is told (the step, or the parameters' index)
  at::Tensor indices;  // the mini-batch's samples
  at::Tensor images;   // the training images they index; x is gathered from them on the gradient thread
  at::Tensor x, y;     // y drawn (and poisoned) with the batch; x gathered when the gradient is computed
  double loss = 0;
  at::Tensor message;
  double gather_seconds = 0, gradient_seconds = 0, rule_seconds = 0;  // thread time: images, forward/backward, rest
  bool finite = true;  // the message holds no NaN or Inf (checked on the gradient thread that computed it)
};

/// Whether the Byzantine workers' gradients may be left uncomputed (by both simulations and by the distributed
/// mode's Byzantine processes): the attack reads nothing of their messages but the shape
/// (Need::ByzantineShapeOnly), and the network keeps no state that a Byzantine forward pass would change
/// (buffers such as batch-norm statistics). The honest gradients do not depend on them either way.
bool skips_byzantine_gradients(const PipelineSpec& spec, const EnginePlugins& plugins, const FlatModel& model);

/// Draws worker `worker`'s next mini-batch from `stream` and poisons a Byzantine worker's labels.
WorkerTask draw_batch(const PipelineSpec& spec, EnginePlugins& plugins, const Dataset& data, BatchStream& stream,
                      std::int64_t worker, std::int64_t iteration);

/// The models the gradient threads compute with: slot 0 is `model`, the others are replicas sharing its
/// parameters (built by the model plugin, with LibTorch's global generator left as it was). A model whose
/// forward pass changes state (BatchNorm's running statistics) gets no replica: its workers then run one
/// after another, because the order in which they update that state changes the result.
std::vector<std::unique_ptr<FlatModel>> build_replicas(const PipelineSpec& spec, const Registry& registry,
                                                        const RunInfo& info, const Dataset& data, FlatModel& model,
                                                        int threads, std::shared_ptr<spdlog::logger> logger);

/// `model`'s test loss and accuracy on (x, y) in batches of `batch_size`, the batches scored side by side on
/// `pool` with one model per slot (`models[slot]`, all sharing one flat parameter vector) and added in batch
/// order: the same result for any number of threads.
FlatModel::Evaluation evaluate_on_threads(WorkerPool& pool, const std::vector<FlatModel*>& models,
                                          const at::Tensor& x, const at::Tensor& y, std::int64_t batch_size);

/// Computes every task's gradient, weight decay and worker-rule message on `pool` (slot s uses models[s], or
/// models[0] when there are fewer models than slots: then one at a time) and checks each message's shape.
/// With `rows` ([tasks, d]) each message is copied into rows[i] by the thread that computed it; without, it
/// is left in tasks[i].message. Row i of an honest worker (task i's worker, below spec.honest()) may keep
/// that worker's momentum from one call to the next (MomentumWorkerRule::keep_momentum_in), so the caller
/// passes the same `rows` every round, with task i for worker i, and never writes to its honest rows.
/// Each thread also gathers its task's images and checks the message's finiteness (WorkerTask::finite).
/// Each task's result depends only on its own inputs, so the messages are the same for any thread count.
/// The phase's wall time is split into `time.batches`, `time.compute` and `time.worker_rules` in proportion
/// to the threads' time gathering images, in forward/backward and in the rest.
void compute_messages(const PipelineSpec& spec, EnginePlugins& plugins, WorkerPool& pool,
                      const std::vector<FlatModel*>& models, std::vector<WorkerTask>& tasks, TimeBreakdown& time,
                      at::Tensor rows = at::Tensor());

/// dst = src, bit for bit, for n float32 values; true when every value is finite. One pass, how compute_messages
/// stores a message in its row.
bool copy_and_check_finite(float* dst, const float* src, std::int64_t n);

}  // namespace phalanx::core
