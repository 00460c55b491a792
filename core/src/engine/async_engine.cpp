#include "phalanx/core/engine/async_engine.hpp"

#include <algorithm>
#include <cmath>
#include <queue>
#include <tuple>

#include <ATen/ATen.h>

#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/core/engine/round_parts.hpp"
#include "phalanx/core/engine/run_failure.hpp"
#include "phalanx/core/engine/run_checkpoint.hpp"
#include "phalanx/core/engine/simulated_run.hpp"
#include "phalanx/core/run/stop_signal.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/error.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx::core {

namespace {

// A gradient in flight: delivered at `time` by `worker`. Ordered by time, then worker id, so the
// simulation is deterministic even when two workers finish at the same instant.
struct Delivery {
  double time;
  std::int64_t worker;
  bool operator>(const Delivery& o) const { return std::tie(time, worker) > std::tie(o.time, o.worker); }
};

using EventQueue = std::priority_queue<Delivery, std::vector<Delivery>, std::greater<>>;

// Everything of the simulation between two arrivals besides what every engine shares (model, plugins,
// speed model, metrics: save_shared_state): the clock, the counters, the event queue, every worker's
// message in flight (computed at pull time, so it cannot be recomputed on resume) and the buffer. save()
// and restore() write and read the same entries, so a resumed run continues bit for bit.
struct AsyncState {
  AsyncState(std::int64_t K, std::int64_t d, std::int64_t buffer_size, bool has_byzantine)
      : pending(K), pending_loss(K, 0.0), pulled(K, 0), buffer(at::empty({buffer_size, d}, at::kFloat)),
        last_honest(at::zeros({1, has_byzantine ? d : 1})) {}

  double now = 0;
  std::int64_t updates = 0, arrivals = 0, honest_arrivals = 0;
  // Per worker: the message it will deliver (kept as computed, not copied: O(K d) memory at any time), its
  // mini-batch loss and the index of the parameters it was computed at.
  std::vector<at::Tensor> pending;
  std::vector<double> pending_loss;
  std::vector<std::int64_t> pulled;
  EventQueue events;
  // The buffer of arrivals waiting to be aggregated (engine.buffer > 1).
  at::Tensor buffer;
  std::vector<std::int64_t> buffer_workers;
  std::vector<std::int64_t> buffer_staleness;  // per buffered row, for the defence's round context
  at::Tensor previous_aggregate;               // what omniscient attacks see of the last buffered update
  // What an attack sees when its buffer holds no honest row; kept only when there are Byzantine workers.
  at::Tensor last_honest;

  void save(Checkpoint& checkpoint) const;
  /// Puts back what save() wrote, checking every size against this run.
  void restore(const Checkpoint& c, std::int64_t K, std::int64_t d, std::int64_t buffer_size);
};

void AsyncState::save(Checkpoint& checkpoint) const {
  checkpoint.put_double("async/now", now);
  checkpoint.put_int("async/updates", updates);
  checkpoint.put_int("async/arrivals", arrivals);
  checkpoint.put_int("async/honest_arrivals", honest_arrivals);
  checkpoint.put("async/pulled", at::tensor(pulled, at::kLong));
  checkpoint.put("async/pending_loss", at::tensor(pending_loss, at::kDouble));
  for (std::size_t w = 0; w < pending.size(); ++w) checkpoint.put("async/pending" + std::to_string(w), pending[w]);
  std::vector<double> times;
  std::vector<std::int64_t> workers;
  for (auto queue = events; !queue.empty(); queue.pop()) {
    times.push_back(queue.top().time);
    workers.push_back(queue.top().worker);
  }
  checkpoint.put("async/event_times", at::tensor(times, at::kDouble));
  checkpoint.put("async/event_workers", at::tensor(workers, at::kLong));
  const auto held = static_cast<std::int64_t>(buffer_workers.size());
  checkpoint.put("async/buffer", buffer.narrow(0, 0, held));
  checkpoint.put("async/buffer_workers", at::tensor(buffer_workers, at::kLong));
  checkpoint.put("async/buffer_staleness", at::tensor(buffer_staleness, at::kLong));
  if (previous_aggregate.defined()) checkpoint.put("async/previous_aggregate", previous_aggregate);
  checkpoint.put("async/last_honest", last_honest);
}

void AsyncState::restore(const Checkpoint& c, std::int64_t K, std::int64_t d, std::int64_t buffer_size) {
  now = c.get_double("async/now");
  updates = c.get_int("async/updates");
  arrivals = c.get_int("async/arrivals");
  honest_arrivals = c.get_int("async/honest_arrivals");
  auto values = [&](const std::string& name, at::ScalarType type, std::int64_t max_count) {
    const at::Tensor& t = c.get(name);
    if (t.scalar_type() != type || t.dim() != 1 || t.numel() > max_count)
      throw Error("checkpoint entry '" + name + "' does not fit this run (" + std::to_string(K) + " workers)");
    return t.contiguous();
  };
  at::Tensor p = values("async/pulled", at::kLong, K), l = values("async/pending_loss", at::kDouble, K);
  if (p.numel() != K || l.numel() != K) throw Error("the checkpoint is from a run with another number of workers");
  for (std::int64_t w = 0; w < K; ++w) {
    pulled[w] = p.data_ptr<std::int64_t>()[w];
    pending_loss[w] = l.data_ptr<double>()[w];
    const at::Tensor& message = c.get("async/pending" + std::to_string(w));
    require_shape(message, {d}, "checkpoint entry 'async/pending" + std::to_string(w) + "'");
    pending[w] = message;
  }
  at::Tensor times = values("async/event_times", at::kDouble, K), workers = values("async/event_workers", at::kLong, K);
  if (times.numel() != workers.numel()) throw Error("the checkpoint's event queue is inconsistent");
  for (std::int64_t i = 0; i < times.numel(); ++i) {
    const std::int64_t w = workers.data_ptr<std::int64_t>()[i];
    if (w < 0 || w >= K) throw Error("the checkpoint's event queue names worker " + std::to_string(w));
    events.push({times.data_ptr<double>()[i], w});
  }
  at::Tensor held = values("async/buffer_workers", at::kLong, buffer_size - 1);
  const at::Tensor& rows = c.get("async/buffer");
  require_shape(rows, {held.numel(), d}, "checkpoint entry 'async/buffer'");
  buffer.narrow(0, 0, held.numel()).copy_(rows);
  buffer_workers.assign(held.data_ptr<std::int64_t>(), held.data_ptr<std::int64_t>() + held.numel());
  const at::Tensor& honest = c.get("async/last_honest");
  require_shape(honest, last_honest.sizes(), "checkpoint entry 'async/last_honest'");
  last_honest.copy_(honest);
  buffer_staleness.assign(buffer_workers.size(), 0);  // a checkpoint written before staleness was kept
  if (c.has("async/buffer_staleness")) {
    at::Tensor kept = c.get("async/buffer_staleness").contiguous();
    if (kept.numel() == static_cast<std::int64_t>(buffer_workers.size()))
      buffer_staleness.assign(kept.data_ptr<std::int64_t>(), kept.data_ptr<std::int64_t>() + kept.numel());
  }
  if (c.has("async/previous_aggregate")) previous_aggregate = c.get("async/previous_aggregate").clone();
}

// The rows of `rows` that honest workers (engine index < h) sent.
at::Tensor honest_rows_of(const at::Tensor& rows, const std::vector<std::int64_t>& workers, std::int64_t h) {
  std::vector<std::int64_t> honest;
  for (std::size_t i = 0; i < workers.size(); ++i)
    if (workers[i] < h) honest.push_back(static_cast<std::int64_t>(i));
  return rows.index_select(0, at::tensor(honest, at::kLong));
}

// One arrival is one mini-batch gradient: a budget of epochs or gradients fixes the number of arrivals (the
// same for every method), and the number of server updates follows from the buffer size.
std::int64_t arrival_budget(const PipelineSpec& spec, const Dataset& data) {
  return spec.budget.unit == "steps" ? spec.budget.amount * spec.buffer
                                     : budget_steps(spec.budget, data.train_x.size(0), 1, 1, spec.batch_size);
}

// The asynchronous engine's event loop. Between two arrivals the simulation is the shared state
// (SimulatedRun) plus state_; pulls whose gradients are not computed yet (waiting_) are computed before a
// checkpoint, so save_checkpoint and the constructor's resume write and read exactly state_.
class AsyncLoop {
 public:
  explicit AsyncLoop(SimulatedRun& run);
  void run();

 private:
  enum class Arrived { applied, buffered, refused, ended };

  /// The index of the server's parameters: the optimizer's own count when it keeps one, else the updates.
  std::int64_t current_index() const;
  /// Computes the gradients of every pull not computed yet, side by side (they read the same parameters).
  void finish_waiting();
  /// Worker k pulls the parameters at simulated time `now`: draws its mini-batch and schedules its delivery.
  void start_work(std::int64_t k, double now);
  /// Byzantine rows of `rows` (flagged by `workers`) are rewritten by the attack, which sees the honest rows
  /// of the same batch (or the last honest message when there is none) and, when `context` is given (a
  /// buffered round), the defence as an oracle.
  void attack_rows(at::Tensor rows, const std::vector<std::int64_t>& workers, const RoundContext* context);
  /// Takes the next delivery off the queue and counts it; returns its worker.
  std::int64_t next_arrival();
  /// engine.buffer = 1: applies worker k's message alone.
  Arrived apply_alone(std::int64_t k, double lr);
  /// engine.buffer > 1: buffers worker k's message and applies the aggregate of a full buffer.
  Arrived add_to_buffer(std::int64_t k, double lr);
  /// Applies `update` (computed at parameter index arrival.computed_at) to the server's parameters.
  void apply(const at::Tensor& update, const Arrival& arrival, double lr);
  /// After an update: evaluation and divergence checks. False when they ended the run.
  bool after_update(double lr);
  void save_checkpoint();

  SimulatedRun& run_;
  const PipelineSpec& spec_;
  const std::int64_t K_, h_, d_, total_arrivals_;
  // The server's parameters are the model's own flat vector: a worker that pulls them computes its gradient
  // in place, without a copy. A look-ahead point (SMEGA2) is swapped in for the computation and back out.
  at::Tensor& server_;
  at::Tensor saved_server_;
  AsyncState state_;
  // A pull draws the worker's mini-batch at once (in pull order, so the draws never depend on threads) but
  // computes its gradient only when the result is needed or the parameters are about to change.
  std::vector<WorkerTask> waiting_;  // pulled, gradient not computed yet; in pull order
  std::vector<bool> is_waiting_;
  const RoundContextSource round_source_;
  // Defined when the Byzantine workers' gradients are not computed (skips_byzantine_gradients): the zero
  // row each of them delivers for the attack to overwrite.
  const at::Tensor uncomputed_row_;
};

AsyncLoop::AsyncLoop(SimulatedRun& run)
    : run_(run), spec_(run.spec), K_(run.spec.workers), h_(run.spec.honest()), d_(run.model().dimension()),
      total_arrivals_(arrival_budget(run.spec, run.data())), server_(run.model().params()),
      state_(K_, d_, run.spec.buffer, h_ < K_), is_waiting_(K_, false), round_source_(run.spec, run.data()),
      uncomputed_row_(skips_byzantine_gradients(run.spec, run.plugins, run.model()) ? at::zeros({d_}) : at::Tensor()) {
  std::optional<Checkpoint> resumed = run_.take_resume_point();
  if (!resumed) {
    for (std::int64_t k = 0; k < K_; ++k) start_work(k, 0.0);
    return;
  }
  state_.restore(*resumed, K_, d_, spec_.buffer);
  if (run_.logger)
    run_.logger->info("resumed from {} at update {} (simulated time {})", checkpoint_path(run_.out_dir),
                      state_.updates, state_.now);
}

std::int64_t AsyncLoop::current_index() const {
  const std::int64_t own = run_.plugins.optimizer->iteration();
  return own >= 0 ? own : state_.updates;
}

void AsyncLoop::finish_waiting() {
  if (waiting_.empty()) return;
  run_.compute(waiting_);
  for (WorkerTask& task : waiting_) {  // in pull order, as the losses were summed before
    if (task.worker < h_) run_.metrics.add_train_loss(task.loss);
    state_.pending[task.worker] = task.message;
    state_.pending_loss[task.worker] = task.loss;
    is_waiting_[task.worker] = false;
  }
  waiting_.clear();
}

void AsyncLoop::start_work(std::int64_t k, double now) {
  state_.pulled[k] = current_index();
  if (k >= h_ && uncomputed_row_.defined()) {  // no batch, no gradient: the attack reads only the shape
    state_.pending[k] = uncomputed_row_;
    state_.pending_loss[k] = 0.0;
    state_.events.push({now + run_.speed.next(k), k});
    return;
  }
  const at::Tensor point = run_.plugins.optimizer->params_for_worker(server_, k);
  {
    ScopedTimer timer(run_.result.time.batches);
    waiting_.push_back(draw_batch(spec_, run_.plugins, run_.data(), run_.run.streams[k], k, state_.pulled[k]));
    is_waiting_[k] = true;
  }
  if (!point.is_same(server_)) {
    // A look-ahead point is swapped into the model for this one gradient, so everything pulled before it
    // must be computed first, and this one right away.
    WorkerTask task = std::move(waiting_.back());
    waiting_.pop_back();
    finish_waiting();
    if (!saved_server_.defined()) saved_server_ = at::empty_like(server_);
    saved_server_.copy_(server_);
    server_.copy_(point);
    waiting_.push_back(std::move(task));
    finish_waiting();
    server_.copy_(saved_server_);
  }
  state_.events.push({now + run_.speed.next(k), k});
}

void AsyncLoop::attack_rows(at::Tensor rows, const std::vector<std::int64_t>& workers, const RoundContext* context) {
  std::vector<std::int64_t> honest_idx, byz_idx;
  for (std::size_t i = 0; i < workers.size(); ++i) (workers[i] >= h_ ? byz_idx : honest_idx).push_back(i);
  if (byz_idx.empty()) return;
  EnginePlugins& plugins = run_.plugins;
  ScopedTimer timer(run_.result.time.attack);
  at::Tensor hi = at::tensor(honest_idx, at::kLong), bi = at::tensor(byz_idx, at::kLong);
  AttackRound round{honest_idx.empty() ? state_.last_honest : rows.index_select(0, hi), rows.index_select(0, bi),
                    state_.updates};
  PhaseScope phase("the attack", Kind::Attack, spec_.attack.name);
  round.previous_aggregate = state_.previous_aggregate;
  std::optional<EngineDefenceOracle> oracle;
  if (context && !honest_idx.empty()) {
    oracle.emplace(spec_, plugins, *context, at::cat({hi, bi}));
    round.defence = &*oracle;
  }
  round.diagnostics = attack_diagnostics(plugins);
  at::Tensor crafted = guard_plugin(plugins.labels.attack, [&] { return plugins.attack->craft(round); });
  require_shape(crafted, {static_cast<std::int64_t>(byz_idx.size()), d_}, "attack '" + spec_.attack.name + "'");
  rows.index_copy_(0, bi, crafted);
}

void AsyncLoop::save_checkpoint() {
  finish_waiting();  // a checkpoint holds every message in flight
  Checkpoint checkpoint = run_.shared_checkpoint();
  state_.save(checkpoint);
  run_.write(checkpoint);
}

std::int64_t AsyncLoop::next_arrival() {
  const Delivery next = state_.events.top();
  state_.events.pop();
  state_.now = next.time;
  const std::int64_t k = next.worker;
  if (is_waiting_[k]) finish_waiting();
  ++state_.arrivals;
  if (k < h_) {
    ++state_.honest_arrivals;
    if (h_ < K_) state_.last_honest.copy_(state_.pending[k].unsqueeze(0));
  }
  return k;
}

void AsyncLoop::apply(const at::Tensor& update, const Arrival& arrival, double lr) {
  finish_waiting();  // their parameters are about to change
  EnginePlugins& plugins = run_.plugins;
  ScopedTimer timer(run_.result.time.update);
  call_plugin("the server update", Kind::Optimizer, spec_.optimizer.name, plugins.labels.optimizer,
              [&] { plugins.optimizer->apply(server_, update, arrival, lr); });
}

AsyncLoop::Arrived AsyncLoop::apply_alone(std::int64_t k, double lr) {
  at::Tensor message = state_.pending[k].unsqueeze(0);
  if (k >= h_) {
    message = message.clone();  // the attack rewrites it; the worker rule may own the original
    attack_rows(message, {k}, nullptr);
  }
  // No aggregator stands between a single arrival and the model: the server refuses non-finite Byzantine
  // messages itself (counted in nonfinite_messages) instead of letting one poison the parameters. An honest
  // worker's gradient is trusted in simulation; a non-finite loss means the model itself is diverging (and
  // a non-finite gradient with a finite loss shows up in the parameters at the next evaluation, and in the
  // next worker's loss).
  if (k < h_ && !std::isfinite(state_.pending_loss[k])) {
    run_.result.status = RunStatus::diverged;
    run_.result.message = "worker " + std::to_string(k) + "'s loss became non-finite at update " +
                          std::to_string(state_.updates) + "; lower optimizer.lr";
    return Arrived::ended;
  }
  if (k >= h_ && count_nonfinite_rows(message)) {
    run_.metrics.add_nonfinite(1);
    return Arrived::refused;
  }
  const Arrival arrival{k, state_.pulled[k], current_index(), state_.now};
  run_.metrics.add_staleness(arrival.staleness());
  apply(message[0], arrival, lr);
  return Arrived::applied;
}

AsyncLoop::Arrived AsyncLoop::add_to_buffer(std::int64_t k, double lr) {
  std::vector<std::int64_t>& workers = state_.buffer_workers;
  state_.buffer[static_cast<std::int64_t>(workers.size())].copy_(state_.pending[k]);
  workers.push_back(k);
  state_.buffer_staleness.push_back(current_index() - state_.pulled[k]);
  run_.metrics.add_staleness(current_index() - state_.pulled[k]);
  if (static_cast<std::int64_t>(workers.size()) < spec_.buffer) return Arrived::buffered;
  at::Tensor rows = state_.buffer.clone();
  const RoundContext context = round_source_.context(state_.updates, workers, state_.buffer_staleness, run_.model());
  if (diverged_on_honest_rows(run_.result, honest_rows_of(rows, workers, h_),
                              "at update " + std::to_string(state_.updates)))
    return Arrived::ended;
  attack_rows(rows, workers, &context);
  run_.metrics.add_nonfinite(count_nonfinite_rows(rows));
  at::Tensor update = [&] {
    ScopedTimer timer(run_.result.time.aggregation);
    return aggregate_rows(spec_, run_.plugins, rows, context);
  }();
  if (diverged_on_update(run_.result, update, spec_.aggregator.name, "at update " + std::to_string(state_.updates)))
    return Arrived::ended;
  run_.metrics.add_honest_comparison(update, honest_rows_of(rows, workers, h_));
  if (h_ < K_ && run_.plugins.attack->omniscient()) state_.previous_aggregate = update.clone();
  apply(update, Arrival{-1, current_index(), current_index(), state_.now}, lr);
  workers.clear();
  state_.buffer_staleness.clear();
  return Arrived::applied;
}

bool AsyncLoop::after_update(double lr) {
  const std::int64_t updates = ++state_.updates, total_steps = run_.total_steps;
  // Checked at every evaluation rather than every update (a pass over d per arrival is a large share of a
  // small model's step); a non-finite parameter shows up sooner anyway, as an honest worker's non-finite
  // gradient.
  const bool evaluate_now = updates % spec_.eval_every == 0 || updates == total_steps;
  if (evaluate_now && diverged_on_parameters(run_.result, server_, "by update " + std::to_string(updates)))
    return false;
  if (evaluate_now) {
    run_.metrics.evaluate(updates, state_.honest_arrivals * spec_.batch_size,
                          static_cast<double>(state_.arrivals * spec_.batch_size), lr, state_.now, run_.result);
    if (diverged_on_test_loss(run_.result, updates)) return false;
  }
  report_step(run_.control, updates, total_steps);
  return true;
}

void AsyncLoop::run() {
  while (state_.updates < run_.total_steps) {
    set_failure_step(state_.updates);
    const std::int64_t k = next_arrival();
    const double lr = learning_rate(spec_.schedule, spec_.lr, state_.updates, run_.total_steps);
    const Arrived arrived = spec_.buffer == 1 ? apply_alone(k, lr) : add_to_buffer(k, lr);
    if (arrived == Arrived::ended) break;
    if (arrived == Arrived::applied && !after_update(lr)) break;
    if (arrived == Arrived::refused && state_.arrivals >= 4 * total_arrivals_) {
      run_.result.status = RunStatus::failed;
      run_.result.message = "almost every message was refused as non-finite; the run cannot make progress";
      break;
    }
    if (state_.updates == run_.total_steps) break;
    start_work(k, state_.now);
    if (stop_requested()) {
      save_checkpoint();
      run_.interrupt(state_.updates);
      break;
    }
    if (arrived == Arrived::applied && run_.checkpoints.due(state_.updates, state_.now)) save_checkpoint();
  }
}

}  // namespace

RunResult run_async(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                    std::shared_ptr<spdlog::logger> logger, const RunControl& control) {
  SimulatedRun run(spec, registry, out_dir, logger, control, [&](const Dataset& data) {
    return std::max<std::int64_t>(1, arrival_budget(spec, data) / spec.buffer);
  });
  if (logger)
    logger->info("run '{}' (async): {} workers ({} Byzantine), model {} with d = {}, {} updates of {} arrival(s), "
                 "batch {}, speed model {}", spec.name, spec.workers, spec.byzantine, spec.model.name,
                 run.model().dimension(), run.total_steps, spec.buffer, spec.batch_size, spec.speed.name);
  AsyncLoop(run).run();
  return run.finish();
}

}  // namespace phalanx::core
