// The distributed server's synchronous protocol (docs/distributed.md, "Protocols"): rounds in which every
// live worker sends one message.
#include <algorithm>
#include <optional>

#include <ATen/ATen.h>

#include "server_parts.hpp"
#include "phalanx/core/distributed/checkpoint.hpp"
#include "phalanx/core/engine/round_parts.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/core/run/stop_signal.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core::distributed {

namespace {

/// Everything the synchronous loop carries from one round to the next besides the plugins, the model and
/// the metrics: a checkpoint saves and restores exactly this.
struct SyncProgress {
  std::int64_t step = 0;             // rounds done
  std::int64_t honest_messages = 0;  // honest gradients used so far
  std::int64_t messages_total = 0;   // every message used so far

  void save(Checkpoint& c) const {
    c.put_int("sync/step", step);
    c.put_int("distributed/honest_messages", honest_messages);
    c.put_int("distributed/messages_total", messages_total);
  }
  void load(const Checkpoint& c) {
    step = c.get_int("sync/step");
    honest_messages = c.get_int("distributed/honest_messages");
    messages_total = c.get_int("distributed/messages_total");
  }
};

/// The synchronous protocol: rounds in which every live worker sends one message, aggregated once all
/// arrived or engine.timeout passed. A round, once started, is completed even after a stop signal (it is
/// bounded by the timeout), so a checkpoint always falls between rounds, where the workers' state and the
/// server's agree.
class SyncServer {
 public:
  SyncServer(Server& s, std::int64_t total_steps)
      : s_(s), spec_(s.spec), total_steps_(total_steps), round_source_(s.spec, s.run.data), idle_(s.n, 1),
        have_(s.n, 0), honest_copy_(s.n, 0), rows_(at::empty({s.n, s.d}, at::kFloat)) {
    result_.total_steps = total_steps;
    omniscient_ = spec_.byzantine > 0 && s.plugins.attack->omniscient();
  }

  /// Continues from `checkpoint`: the server's state here, each worker's sent to it.
  void restore(const Checkpoint& checkpoint) {
    load_server_state(checkpoint, s_, result_);
    progress_.load(checkpoint);
    restore_worker_states(s_, checkpoint);
    if (s_.logger) s_.logger->info("server: resumed at round {} of {}", progress_.step, total_steps_);
  }

  RunResult run() {
    while (progress_.step < total_steps_) {
      if (!play_round()) break;
      ++progress_.step;
      if (evaluate_if_due()) break;
      if (progress_.step == total_steps_) break;
      if (stop_requested()) {
        interrupt();
        break;
      }
      if (s_.checkpoints.due(progress_.step, 0)) checkpoint();
    }
    if (result_.status == RunStatus::ok && progress_.step == total_steps_) s_.checkpoints.remove();
    return result_;
  }

 private:
  // One round: parameters out, messages in, the update applied. False when the run cannot go on.
  bool play_round() {
    const std::int64_t step = progress_.step;
    lr_ = learning_rate(spec_.schedule, spec_.lr, step, total_steps_);
    s_.maybe_crash(step);
    const Message params = params_message(step, step, s_.run.model->params(), &s_.snapshots);
    // A worker is sent the parameters of a round only once it has answered the previous one, and at once
    // when a late answer arrives: a worker that fell behind joins the current round instead of computing
    // on parameters that are a round old again and again.
    for (int r = 1; r <= s_.n; ++r)
      if (idle_[r - 1]) {
        s_.links.post(r, params);
        idle_[r - 1] = 0;
      }
    collect(params);
    report_missing();
    if (s_.links.alive_count() == 0 && got_ == 0) {
      result_.status = RunStatus::failed;
      result_.message = "every worker is gone at round " + std::to_string(step) + "; see the workers' logs";
      return false;
    }
    return got_ == 0 || apply();
  }

  void collect(const Message& params) {
    std::fill(have_.begin(), have_.end(), 0);
    std::fill(honest_copy_.begin(), honest_copy_.end(), 0);
    got_ = 0;
    const auto deadline = Clock::now() + seconds(spec_.timeout);
    for (;;) {
      std::int64_t waiting = 0;
      for (int r = 1; r <= s_.n; ++r) waiting += (!have_[r - 1] && s_.links.alive(r)) ? 1 : 0;
      if (waiting == 0 || Clock::now() >= deadline) break;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (auto e = s_.links.next(std::min(left, std::chrono::milliseconds(100)))) take(*e, params);
    }
  }

  void take(const ServerLinks::Event& e, const Message& params) {
    const std::int64_t step = progress_.step, w = e.rank - 1;
    if (e.lost) {
      s_.lost(e, step);
      return;
    }
    if (e.rejoined) {
      s_.rejoined(e, step, "round");
      s_.links.post(e.rank, params);  // it joins the round in progress
      idle_[w] = 0;
      return;
    }
    const Message& m = e.message;
    if (!e.rejected.empty()) {
      // Possibly the worker's own message, altered on the way: it then waits, so send it the next round.
      idle_[w] = 1;
      s_.reject(e.rank, m, e.rejected);
      return;
    }
    if (m.header.kind == MessageKind::Gradient && m.header.index < step && m.header.index >= 0) {
      if (s_.logger) s_.logger->info("server: late message of worker {} for round {} dropped", w, m.header.index);
      s_.links.post(e.rank, params);  // counted as missing in its own round already; join this one
      return;
    }
    idle_[w] = 1;
    const std::string why = have_[w] ? "is a second message in round " + std::to_string(step)
                                     : check_gradient_message(m, e.rank, s_.d, step, step, omniscient_ && w >= s_.h);
    if (!why.empty()) {
      s_.reject(e.rank, m, why);
      return;
    }
    rows_[w].copy_(m.payload);
    if (w < s_.h) s_.metrics.add_train_loss(m.header.loss);
    have_[w] = 1;
    honest_copy_[w] = (m.header.flags & kFlagHonestCopy) ? 1 : 0;
    ++got_;
  }

  void report_missing() {
    const std::int64_t missing = s_.n - got_;
    if (missing <= 0) return;
    s_.metrics.add_missing(missing);
    if (!s_.logger) return;
    std::string who;
    for (std::int64_t w = 0; w < s_.n; ++w)
      if (!have_[w]) who += (who.empty() ? "" : ", ") + std::to_string(w);
    s_.logger->warn("server: round {} proceeds with {} of {} messages (missing worker(s) {})", progress_.step, got_,
                    s_.n, who);
  }

  // Aggregates the round's messages (after the server-side attack) and applies the update.
  bool apply() {
    const std::int64_t step = progress_.step;
    std::vector<std::int64_t> honest_idx, byz_idx, used;  // positions among the used rows; the workers used
    for (std::int64_t w = 0; w < s_.n; ++w) {
      if (!have_[w]) continue;
      (w >= s_.h && honest_copy_[w] ? byz_idx : honest_idx).push_back(static_cast<std::int64_t>(used.size()));
      used.push_back(w);
      if (w < s_.h) ++progress_.honest_messages;
      ++progress_.messages_total;
    }
    at::Tensor batch = rows_.index_select(0, at::tensor(used, at::kLong));
    const RoundContext context =
        round_source_.context(step, used, std::vector<std::int64_t>(used.size(), 0), *s_.run.model);
    if (!byz_idx.empty()) play_attack(batch, honest_idx, byz_idx, context);
    at::Tensor update;
    try {
      ScopedTimer timer(result_.time.aggregation);
      update = aggregate_rows(spec_, s_.plugins, batch, context);
    } catch (const Error& e) {
      return stop(RunStatus::failed, "round " + std::to_string(step) + " with " + std::to_string(got_) + " of " +
                                         std::to_string(s_.n) + " messages: " + e.what());
    }
    if (diverged_on_update(result_, update, spec_.aggregator.name, "at step " + std::to_string(step))) return false;
    Arrival arrival;
    arrival.computed_at = step;
    arrival.current = step;
    arrival.sim_time = s_.elapsed();
    at::Tensor& params = s_.run.model->params();
    {
      ScopedTimer timer(result_.time.update);
      guard_plugin(s_.plugins.labels.optimizer, [&] { s_.plugins.optimizer->apply(params, update, arrival, lr_); });
    }
    s_.metrics.add_staleness(0);
    return !diverged_on_parameters(result_, params, "at step " + std::to_string(step));
  }

  // An omniscient attack needs the honest messages of the round: the server, which has them, plays the
  // colluding adversary for the Byzantine ranks (docs/distributed.md).
  void play_attack(at::Tensor& batch, const std::vector<std::int64_t>& honest_idx,
                   const std::vector<std::int64_t>& byz_idx, const RoundContext& context) {
    at::Tensor hi = at::tensor(honest_idx, at::kLong), bi = at::tensor(byz_idx, at::kLong);
    AttackRound round{batch.index_select(0, hi), batch.index_select(0, bi), progress_.step};
    round.diagnostics = attack_diagnostics(s_.plugins);
    std::optional<EngineDefenceOracle> oracle;
    if (!honest_idx.empty()) {
      oracle.emplace(spec_, s_.plugins, context, at::cat({hi, bi}));
      round.defence = &*oracle;
    }
    at::Tensor crafted = guard_plugin(s_.plugins.labels.attack, [&] { return s_.plugins.attack->craft(round); });
    require_shape(crafted, {static_cast<std::int64_t>(byz_idx.size()), s_.d}, "attack '" + spec_.attack.name + "'");
    batch.index_copy_(0, bi, crafted);
    s_.metrics.add_nonfinite(count_nonfinite_rows(crafted));
  }

  bool stop(RunStatus status, std::string message) {
    result_.status = status;
    result_.message = std::move(message);
    return false;
  }

  // A metrics row every engine.eval_every rounds and at the end; true when the test loss diverged.
  bool evaluate_if_due() {
    const std::int64_t done = progress_.step;
    if (done % spec_.eval_every != 0 && done != total_steps_) return false;
    evaluate(done);
    return diverged_on_test_loss(result_, done);
  }

  void evaluate(std::int64_t done) {
    s_.metrics.evaluate(done, progress_.honest_messages * spec_.batch_size,
                        static_cast<double>(progress_.messages_total * spec_.batch_size), lr_, s_.elapsed(), result_);
  }

  void checkpoint() {
    if (!s_.checkpoints.writes()) return;
    Checkpoint c;
    const std::int64_t gathered = gather_worker_states(s_, c, progress_.step, idle_, [&](const ServerLinks::Event& e) {
      if (e.lost) return s_.lost(e, progress_.step);
      if (e.rejoined) s_.rejoined(e, progress_.step, "round");
      else if (!e.rejected.empty()) s_.reject(e.rank, e.message, e.rejected);
      // Back, or a late gradient (already missing in its round): the worker waits for the next round.
      idle_[e.rank - 1] = 1;
    });
    save_server_state(c, s_, result_);
    progress_.save(c);
    s_.checkpoints.write(c);
    if (s_.logger)
      s_.logger->info("server: checkpoint after round {} (server and {} of {} workers) in {}", progress_.step,
                      gathered, s_.n, checkpoint_path(s_.run.output->dir()));
  }

  // Ctrl-C or SIGTERM: a checkpoint, then a metrics row for the rounds done (after the checkpoint, so a
  // resumed run does not keep it: the uninterrupted run has no row there).
  void interrupt() {
    checkpoint();
    result_.status = RunStatus::interrupted;
    result_.message = "stopped by a signal after round " + std::to_string(progress_.step) + " of " +
                      std::to_string(total_steps_);
    if (s_.checkpoints.writes())
      result_.message += "; continue with `phalanx launch -n " + std::to_string(s_.n + 1) + " --resume " +
                         s_.run.output->dir() + "`";
    evaluate(progress_.step);
  }

  Server& s_;
  const PipelineSpec& spec_;
  const std::int64_t total_steps_;
  const RoundContextSource round_source_;  // worker ids, parameters, server_data's gradient
  bool omniscient_ = false;
  SyncProgress progress_;
  RunResult result_;
  double lr_ = 0;
  std::vector<char> idle_;                 // by worker: waiting for parameters
  std::vector<char> have_, honest_copy_;   // by worker, this round
  std::int64_t got_ = 0;                   // messages this round
  at::Tensor rows_;                        // [n, d]: this round's messages by worker
};

}  // namespace

RunResult run_sync_server(Server& s, std::int64_t total_steps, std::optional<Checkpoint>& resumed) {
  SyncServer sync(s, total_steps);
  if (resumed) sync.restore(*resumed);
  resumed.reset();
  return sync.run();
}

}  // namespace phalanx::core::distributed
