#include "phalanx/core/engine/async_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <queue>
#include <tuple>

#include <ATen/ATen.h>

#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/core/engine/round_parts.hpp"
#include "phalanx/core/engine/run_failure.hpp"
#include "phalanx/core/engine/run_checkpoint.hpp"
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

}  // namespace

RunResult run_async(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                    std::shared_ptr<spdlog::logger> logger, const RunControl& control) {
  RunCheckpointer checkpoints(control, spec, out_dir);
  std::optional<Checkpoint> resumed = checkpoints.resume_point();
  RunSetup run = prepare_run(spec, registry, out_dir, logger, resumed ? resumed->get_int("metrics/rows") : -1);
  RunInfo& info = run.info;
  const Dataset& data = run.data;
  std::vector<BatchStream>& streams = run.streams;
  std::unique_ptr<FlatModel>& model = run.model;
  std::unique_ptr<RunOutput>& output = run.output;
  const std::int64_t d = model->dimension(), K = spec.workers, h = spec.honest();
  // One arrival is one mini-batch gradient: a budget of epochs or gradients fixes the number of arrivals
  // (the same for every method), and the number of server updates follows from the buffer size.
  const std::int64_t total_arrivals = spec.budget.unit == "steps"
                                          ? spec.budget.amount * spec.buffer
                                          : budget_steps(spec.budget, data.train_x.size(0), 1, 1, spec.batch_size);
  const std::int64_t total_steps = std::max<std::int64_t>(1, total_arrivals / spec.buffer);
  info.total_steps = total_steps;
  EnginePlugins plugins = make_plugins(spec, registry, info, logger);
  SpeedModel speed(spec.speed, K, derive_seed(spec.seed, "speed"));
  if (logger)
    logger->info("run '{}' (async): {} workers ({} Byzantine), model {} with d = {}, {} updates of {} arrival(s), "
                 "batch {}, speed model {}", spec.name, K, spec.byzantine, spec.model.name, d, total_steps, spec.buffer,
                 spec.batch_size, spec.speed.name);

  RunResult result;
  result.total_steps = total_steps;
  const auto started = std::chrono::steady_clock::now();
  MetricsTracker metrics(spec, data, *model, output.get(), logger, total_steps);
  metrics.record_diagnostics(plugins.diagnostics);

  // The server's parameters are the model's own flat vector: a worker that pulls them computes its gradient
  // in place, without a copy. A look-ahead point (SMEGA2) is swapped in for the computation and back out.
  at::Tensor& server = model->params();
  at::Tensor saved_server;
  AsyncState state(K, d, spec.buffer, h < K);
  // The loop below names the state's parts directly.
  double& now = state.now;
  std::int64_t &updates = state.updates, &arrivals = state.arrivals, &honest_arrivals = state.honest_arrivals;
  std::vector<at::Tensor>& pending = state.pending;
  std::vector<double>& pending_loss = state.pending_loss;
  std::vector<std::int64_t>& pulled = state.pulled;
  EventQueue& events = state.events;
  at::Tensor& buffer = state.buffer;
  std::vector<std::int64_t> &buffer_workers = state.buffer_workers, &buffer_staleness = state.buffer_staleness;
  at::Tensor &previous_aggregate = state.previous_aggregate, &last_honest = state.last_honest;
  auto current_index = [&] {
    const std::int64_t own = plugins.optimizer->iteration();
    return own >= 0 ? own : updates;
  };
  double lr = learning_rate(spec.schedule, spec.lr, 0, total_steps);

  // A pull draws the worker's mini-batch at once (in pull order, so the draws never depend on threads) but
  // computes its gradient only when the result is needed or the parameters are about to change: every pull
  // made since the last update reads the same parameters, so those gradients are computed side by side.
  const int threads = gradient_threads(spec.threads, K);
  WorkerPool pool(threads);
  const std::vector<std::unique_ptr<FlatModel>> replicas =
      build_replicas(spec, registry, info, data, *model, threads, logger);
  std::vector<FlatModel*> models{model.get()};
  for (const auto& r : replicas) models.push_back(r.get());
  std::vector<WorkerTask> waiting;  // pulled, gradient not computed yet; in pull order
  std::vector<bool> is_waiting(K, false);
  auto finish_waiting = [&] {
    if (waiting.empty()) return;
    compute_messages(spec, plugins, pool, models, waiting, result.time);
    for (WorkerTask& task : waiting) {  // in pull order, as the losses were summed before
      if (task.worker < h) metrics.add_train_loss(task.loss);
      pending[task.worker] = task.message;
      pending_loss[task.worker] = task.loss;
      is_waiting[task.worker] = false;
    }
    waiting.clear();
  };
  auto start_work = [&](std::int64_t k, double now) {
    pulled[k] = current_index();
    const at::Tensor point = plugins.optimizer->params_for_worker(server, k);
    {
      ScopedTimer timer(result.time.batches);
      waiting.push_back(draw_batch(spec, plugins, data, streams[k], k, pulled[k]));
      is_waiting[k] = true;
    }
    if (!point.is_same(server)) {
      // A look-ahead point is swapped into the model for this one gradient, so everything pulled before it
      // must be computed first, and this one right away.
      WorkerTask task = std::move(waiting.back());
      waiting.pop_back();
      finish_waiting();
      if (!saved_server.defined()) saved_server = at::empty_like(server);
      saved_server.copy_(server);
      server.copy_(point);
      waiting.push_back(std::move(task));
      finish_waiting();
      server.copy_(saved_server);
    }
    events.push({now + speed.next(k), k});
  };
  if (!resumed)
    for (std::int64_t k = 0; k < K; ++k) start_work(k, 0.0);

  const RoundContextSource round_source(spec, data);

  // Between two arrivals the simulation is the shared state plus AsyncState.
  auto save_checkpoint = [&] {
    finish_waiting();  // a checkpoint holds every message in flight
    Checkpoint checkpoint;
    save_shared_state(checkpoint, run, plugins, speed, metrics, result);
    state.save(checkpoint);
    checkpoints.write(checkpoint);
  };
  if (resumed) {
    const Checkpoint& c = *resumed;
    load_shared_state(c, run, plugins, speed, metrics, result);
    state.restore(c, K, d, spec.buffer);
    if (logger) logger->info("resumed from {} at update {} (simulated time {})", checkpoint_path(out_dir), updates, now);
    resumed.reset();
  }

  // Byzantine rows of `rows` (flagged by `byzantine`) are rewritten by the attack, which sees the honest
  // rows of the same batch (or the last honest message when there is none) and, when `context` is given
  // (a buffered round), the defence as an oracle.
  auto attack_rows = [&](at::Tensor rows, const std::vector<std::int64_t>& workers, const RoundContext* context) {
    std::vector<std::int64_t> honest_idx, byz_idx;
    for (std::size_t i = 0; i < workers.size(); ++i) (workers[i] >= h ? byz_idx : honest_idx).push_back(i);
    if (byz_idx.empty()) return;
    ScopedTimer timer(result.time.attack);
    at::Tensor hi = at::tensor(honest_idx, at::kLong), bi = at::tensor(byz_idx, at::kLong);
    AttackRound round{honest_idx.empty() ? last_honest : rows.index_select(0, hi), rows.index_select(0, bi),
                      updates};
    PhaseScope phase("the attack", Kind::Attack, spec.attack.name);
    round.previous_aggregate = previous_aggregate;
    round.diagnostics = attack_diagnostics(plugins);
    std::optional<EngineDefenceOracle> oracle;
    if (context && !honest_idx.empty()) {
      oracle.emplace(spec, plugins, *context, at::cat({hi, bi}));
      round.defence = &*oracle;
    }
    at::Tensor crafted = guard_plugin(plugins.labels.attack, [&] { return plugins.attack->craft(round); });
    require_shape(crafted, {static_cast<std::int64_t>(byz_idx.size()), d}, "attack '" + spec.attack.name + "'");
    rows.index_copy_(0, bi, crafted);
  };

  while (updates < total_steps) {
    set_failure_step(updates);
    Delivery next = events.top();
    events.pop();
    now = next.time;
    const std::int64_t k = next.worker;
    if (is_waiting[k]) finish_waiting();
    ++arrivals;
    if (k < h) {
      ++honest_arrivals;
      if (h < K) last_honest.copy_(pending[k].unsqueeze(0));
    }
    lr = learning_rate(spec.schedule, spec.lr, updates, total_steps);
    bool applied = false;
    if (spec.buffer == 1) {
      at::Tensor message = pending[k].unsqueeze(0);
      if (k >= h) {
        message = message.clone();  // the attack rewrites it; the worker rule may own the original
        attack_rows(message, {k}, nullptr);
      }
      // No aggregator stands between a single arrival and the model: the server refuses non-finite
      // Byzantine messages itself (counted in nonfinite_messages) instead of letting one poison the
      // parameters. An honest worker's gradient is trusted in simulation; a non-finite loss means the model
      // itself is diverging (and a non-finite gradient with a finite loss shows up in the parameters at the
      // next evaluation, and in the next worker's loss).
      if (k < h && !std::isfinite(pending_loss[k])) {
        result.status = RunStatus::diverged;
        result.message = "worker " + std::to_string(k) + "'s loss became non-finite at update " +
                         std::to_string(updates) + "; lower optimizer.lr";
        break;
      }
      if (k >= h && count_nonfinite_rows(message)) {
        metrics.add_nonfinite(1);
      } else {
        Arrival arrival{k, pulled[k], current_index(), now};
        metrics.add_staleness(arrival.staleness());
        finish_waiting();  // their parameters are about to change
        ScopedTimer timer(result.time.update);
        call_plugin("the server update", Kind::Optimizer, spec.optimizer.name, plugins.labels.optimizer,
                    [&] { plugins.optimizer->apply(server, message[0], arrival, lr); });
        applied = true;
      }
    } else {
      buffer[static_cast<std::int64_t>(buffer_workers.size())].copy_(pending[k]);
      buffer_workers.push_back(k);
      buffer_staleness.push_back(current_index() - pulled[k]);
      metrics.add_staleness(current_index() - pulled[k]);
      if (static_cast<std::int64_t>(buffer_workers.size()) == spec.buffer) {
        at::Tensor rows = buffer.clone();
        const RoundContext context = round_source.context(updates, buffer_workers, buffer_staleness, *model);
        if (diverged_on_honest_rows(result, *plugins.attack, honest_rows_of(rows, buffer_workers, h),
                                    "at update " + std::to_string(updates)))
          break;
        attack_rows(rows, buffer_workers, &context);
        metrics.add_nonfinite(count_nonfinite_rows(rows));
        at::Tensor update = [&] {
          ScopedTimer timer(result.time.aggregation);
          return aggregate_rows(spec, plugins, rows, context);
        }();
        if (diverged_on_update(result, update, spec.aggregator.name, "at update " + std::to_string(updates))) break;
        metrics.add_honest_comparison(update, honest_rows_of(rows, buffer_workers, h));
        if (h < K && plugins.attack->omniscient()) previous_aggregate = update.clone();
        Arrival arrival{-1, current_index(), current_index(), now};
        finish_waiting();  // their parameters are about to change
        ScopedTimer timer(result.time.update);
        call_plugin("the server update", Kind::Optimizer, spec.optimizer.name, plugins.labels.optimizer,
                    [&] { plugins.optimizer->apply(server, update, arrival, lr); });
        buffer_workers.clear();
        buffer_staleness.clear();
        applied = true;
      }
    }
    if (applied) {
      ++updates;
      // Checked at every evaluation rather than every update (a pass over d per arrival is a large share
      // of a small model's step); a non-finite parameter shows up sooner anyway, as an honest worker's
      // non-finite gradient.
      const bool evaluate_now = updates % spec.eval_every == 0 || updates == total_steps;
      if (evaluate_now && diverged_on_parameters(result, server, "by update " + std::to_string(updates))) break;
      if (evaluate_now) {
        metrics.evaluate(updates, honest_arrivals * spec.batch_size,
                         static_cast<double>(arrivals * spec.batch_size), lr, now, result);
        if (diverged_on_test_loss(result, updates)) break;
      }
      report_step(control, updates, total_steps);
    } else if (spec.buffer == 1 && arrivals >= 4 * total_arrivals) {
      result.status = RunStatus::failed;
      result.message = "almost every message was refused as non-finite; the run cannot make progress";
      break;
    }
    if (updates == total_steps) break;
    start_work(k, now);
    if (stop_requested()) {
      save_checkpoint();
      mark_interrupted(result, updates, checkpoints);
      break;
    }
    if (applied && checkpoints.due(updates, now)) save_checkpoint();
  }
  if (result.status != RunStatus::interrupted) checkpoints.remove();
  result.time.total += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (result.status != RunStatus::ok && logger) logger->warn("{}", result.message);
  if (output) output->write_summary(result.status, result.message, result.has_last ? &result.last : nullptr,
                                    total_steps, &result.time);
  return result;
}

}  // namespace phalanx::core
