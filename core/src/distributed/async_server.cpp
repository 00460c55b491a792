// The distributed server's asynchronous protocol (docs/distributed.md, "Protocols"): messages taken from any
// worker as they come, each applied with its true staleness.
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

/// Copies checkpoint entry `name` into `target`, which it must match in shape and dtype.
void restore_entry(at::Tensor target, const Checkpoint& checkpoint, const std::string& name) {
  const at::Tensor& saved = checkpoint.get(name);
  if (saved.sizes() != target.sizes() || saved.scalar_type() != target.scalar_type())
    throw Error("checkpoint entry '" + name + "' does not fit this run (saved with another model or engine.buffer?)");
  target.copy_(saved);
}

/// Everything the asynchronous loop carries from one message to the next besides the plugins, the model
/// and the metrics: a checkpoint saves and restores exactly this (with the buffered rows).
struct AsyncProgress {
  std::int64_t updates = 0;          // server updates applied
  std::int64_t arrivals = 0;         // messages accepted
  std::int64_t honest_arrivals = 0;  // ... of honest workers
  std::int64_t received = 0;         // messages received, accepted or not
  std::int64_t seq = 0;              // parameter messages sent
  std::vector<std::int64_t> pulled;          // by worker: the index of the parameters it was last sent
  std::vector<std::int64_t> buffer_workers;  // engine.buffer > 1: the workers of the messages buffered
  std::vector<std::int64_t> buffer_staleness;  // ... the staleness each had when it arrived
  std::vector<char> buffer_copy;             // ... and whether each is a Byzantine worker's true message

  void save(Checkpoint& c) const {
    c.put_int("async/updates", updates);
    c.put_int("distributed/arrivals", arrivals);
    c.put_int("distributed/honest_arrivals", honest_arrivals);
    c.put_int("distributed/received", received);
    c.put_int("distributed/params_sent", seq);
    c.put("distributed/pulled", at::tensor(pulled, at::kLong));
    c.put("distributed/buffer_workers", at::tensor(buffer_workers, at::kLong));
    c.put("distributed/buffer_staleness", at::tensor(buffer_staleness, at::kLong));
    c.put("distributed/buffer_copy", at::tensor(std::vector<std::int64_t>(buffer_copy.begin(), buffer_copy.end()), at::kLong));
  }
  void load(const Checkpoint& c) {
    updates = c.get_int("async/updates");
    arrivals = c.get_int("distributed/arrivals");
    honest_arrivals = c.get_int("distributed/honest_arrivals");
    received = c.get_int("distributed/received");
    seq = c.get_int("distributed/params_sent");
    pulled = int_list(c, "distributed/pulled");
    buffer_workers = int_list(c, "distributed/buffer_workers");
    buffer_staleness = int_list(c, "distributed/buffer_staleness");
    const std::vector<std::int64_t> copy = int_list(c, "distributed/buffer_copy");
    buffer_copy.assign(copy.begin(), copy.end());
    if (copy.size() != buffer_workers.size() || buffer_staleness.size() != buffer_workers.size())
      throw Error("checkpoint: distributed/buffer_copy, buffer_staleness and buffer_workers differ in length");
  }

 private:
  static std::vector<std::int64_t> int_list(const Checkpoint& c, const std::string& name) {
    const at::Tensor t = c.get(name).to(at::kLong).contiguous();
    return std::vector<std::int64_t>(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel());
  }
};

/// The asynchronous protocol: the server takes messages from any worker as they come, applies each (or
/// every engine.buffer of them, aggregated) with its true iteration index and staleness, and replies to
/// that worker with the newest parameters. A checkpoint first drains the messages in flight (each worker
/// holds one request: its answer is applied, not replied to), so no update is in flight when the server's
/// and the workers' states are saved, and each accepted message is counted exactly once across a resume.
class AsyncServer {
 public:
  AsyncServer(Server& s, std::int64_t total_steps, std::int64_t total_arrivals)
      : s_(s), spec_(s.spec), total_steps_(total_steps), total_arrivals_(total_arrivals),
        round_source_(s.spec, s.run.data),
        server_(s.run.model->params().clone()), buffer_(at::empty({s.spec.buffer, s.d}, at::kFloat)),
        last_honest_(at::zeros({1, s.d})), awaiting_(s.n, 0) {
    result_.total_steps = total_steps;
    omniscient_ = spec_.byzantine > 0 && s.plugins.attack->omniscient();
    progress_.pulled.assign(s.n, 0);
    lr_ = learning_rate(spec_.schedule, spec_.lr, 0, total_steps);
  }

  /// Continues from `checkpoint`: the server's state here, each worker's sent to it.
  void restore(const Checkpoint& checkpoint) {
    load_server_state(checkpoint, s_, result_);
    progress_.load(checkpoint);
    if (static_cast<std::int64_t>(progress_.pulled.size()) != s_.n ||
        static_cast<std::int64_t>(progress_.buffer_workers.size()) >= spec_.buffer)
      throw Error("checkpoint: the async server's state does not fit " + std::to_string(s_.n) + " workers and "
                  "engine.buffer = " + std::to_string(spec_.buffer));
    server_.copy_(s_.run.model->params());
    restore_entry(buffer_, checkpoint, "distributed/buffer");
    restore_entry(last_honest_, checkpoint, "distributed/last_honest");
    restore_worker_states(s_, checkpoint);
    if (s_.logger) s_.logger->info("server: resumed at update {} of {}", progress_.updates, total_steps_);
  }

  RunResult run() {
    for (int r = 1; r <= s_.n; ++r) reply(r);
    while (progress_.updates < total_steps_ && !stop_requested() && can_go_on()) {
      auto e = s_.links.next(std::chrono::milliseconds(100));
      if (!e) continue;
      const Handled handled = handle(*e, /*answer=*/true);
      if (handled == Handled::stop) break;
      if (handled == Handled::applied && progress_.updates < total_steps_ &&
          s_.checkpoints.due(progress_.updates, 0) && !checkpoint())
        break;
    }
    if (stop_requested() && result_.status == RunStatus::ok && progress_.updates < total_steps_) interrupt();
    s_.run.model->params().copy_(server_);
    if (result_.status == RunStatus::ok && progress_.updates == total_steps_) s_.checkpoints.remove();
    return result_;
  }

 private:
  enum class Taken { rejected, kept, applied, stop };
  enum class Handled { go_on, applied, stop };

  // One event of the links: a lost worker, a rejected message, or a worker's message checked and used.
  // `answer`: reply to the worker with fresh parameters (not while draining for a checkpoint).
  Handled handle(const ServerLinks::Event& e, bool answer) {
    const std::int64_t k = e.rank - 1;
    if (e.lost) {
      awaiting_[k] = 0;
      s_.metrics.add_missing(1);
      s_.lost(e, progress_.updates);
      return Handled::go_on;
    }
    if (e.rejoined) {
      awaiting_[k] = 0;
      s_.rejoined(e, progress_.updates, "update");
      if (answer && progress_.updates < total_steps_) reply(e.rank);
      return Handled::go_on;
    }
    ++progress_.received;
    if (!e.rejected.empty()) {
      // No reply: a forged message must not make the server hand out extra work (docs/distributed.md).
      s_.reject(e.rank, e.message, e.rejected);
      return Handled::go_on;
    }
    awaiting_[k] = 0;
    const Taken taken = take(e.message, e.rank);
    if (taken == Taken::stop || (taken == Taken::applied && !after_update())) return Handled::stop;
    // A rejected message's worker is still there: give it fresh parameters to go on with.
    if (answer && (taken == Taken::rejected || progress_.updates < total_steps_)) reply(e.rank);
    return taken == Taken::applied ? Handled::applied : Handled::go_on;
  }

  // Takes the answers to the requests in flight (applied as usual, not replied to) until every live worker
  // waits for parameters, or engine.timeout passed (a worker whose answer was lost stays out of the
  // checkpoint). False when the run must stop (divergence).
  bool drain() {
    const auto deadline = Clock::now() + seconds(spec_.timeout);
    auto in_flight = [&] {
      for (int r = 1; r <= s_.n; ++r)
        if (awaiting_[r - 1] && s_.links.alive(r)) return true;
      return false;
    };
    while (in_flight() && Clock::now() < deadline)
      if (auto e = s_.links.next(std::chrono::milliseconds(100)))
        if (handle(*e, /*answer=*/false) == Handled::stop) return false;
    return true;
  }

  // Drains, gathers the workers' states, writes the checkpoint and sends every waiting worker fresh
  // parameters. False when the run must stop.
  bool checkpoint(bool then_go_on = true) {
    if (!s_.checkpoints.writes()) return true;
    if (!drain()) return false;
    Checkpoint c;
    std::vector<char> idle(s_.n, 0);
    const std::int64_t gathered =
        gather_worker_states(s_, c, progress_.updates, idle, [&](const ServerLinks::Event& e) { handle(e, false); });
    // An answer that came after the drain was applied above; it may have ended the run.
    if (result_.status != RunStatus::ok) return false;
    s_.run.model->params().copy_(server_);
    save_server_state(c, s_, result_);
    progress_.save(c);
    c.put("distributed/buffer", buffer_);
    c.put("distributed/last_honest", last_honest_);
    s_.checkpoints.write(c);
    if (s_.logger)
      s_.logger->info("server: checkpoint after update {} (server and {} of {} workers) in {}", progress_.updates,
                      gathered, s_.n, checkpoint_path(s_.run.output->dir()));
    if (then_go_on && progress_.updates < total_steps_)
      for (int r = 1; r <= s_.n; ++r)
        if (s_.links.alive(r) && !awaiting_[r - 1]) reply(r);
    return true;
  }

  // Ctrl-C or SIGTERM: a checkpoint, then a metrics row for the updates done (after the checkpoint, so a
  // resumed run does not keep it: the uninterrupted run has no row there).
  void interrupt() {
    checkpoint(/*then_go_on=*/false);
    if (result_.status != RunStatus::ok || progress_.updates >= total_steps_) return;  // diverged, or done draining
    result_.status = RunStatus::interrupted;
    result_.message = "stopped by a signal at update " + std::to_string(progress_.updates) + " of " +
                      std::to_string(total_steps_);
    if (s_.checkpoints.writes())
      result_.message += "; checkpoint in " + checkpoint_path(s_.run.output->dir()) + "; continue with `phalanx "
                         "launch -n " + std::to_string(s_.n + 1) + " --resume " + s_.run.output->dir() + "`";
    s_.run.model->params().copy_(server_);
    evaluate();
  }

  std::int64_t current_index() const {
    const std::int64_t own = s_.plugins.optimizer->iteration();
    return own >= 0 ? own : progress_.updates;
  }

  void reply(int rank) {
    awaiting_[rank - 1] = 1;
    std::int64_t& pulled = progress_.pulled[rank - 1];
    pulled = current_index();
    s_.links.post(rank, params_message(pulled, progress_.seq++,
                                       s_.plugins.optimizer->params_for_worker(server_, rank - 1), &s_.snapshots));
  }

  bool can_go_on() {
    if (s_.links.alive_count() == 0) {
      result_.status = RunStatus::failed;
      result_.message = "every worker is gone after " + std::to_string(progress_.updates) +
                        " updates; see the workers' logs";
      return false;
    }
    if (progress_.received > 4 * total_arrivals_ + 100) {
      result_.status = RunStatus::failed;
      result_.message = "almost every message was refused; the run cannot make progress";
      return false;
    }
    return true;
  }

  // Checks worker message `m` and applies it (or adds it to the buffer).
  Taken take(const Message& m, int rank) {
    const std::int64_t k = rank - 1;
    const std::string why =
        check_gradient_message(m, rank, s_.d, progress_.pulled[k], current_index(), omniscient_ && k >= s_.h);
    if (!why.empty()) {
      s_.reject(rank, m, why);
      return Taken::rejected;
    }
    ++progress_.arrivals;
    if (k < s_.h) {
      ++progress_.honest_arrivals;
      s_.metrics.add_train_loss(m.header.loss);
      last_honest_.copy_(m.payload.unsqueeze(0));
    }
    lr_ = learning_rate(spec_.schedule, spec_.lr, progress_.updates, total_steps_);
    const bool copy = (m.header.flags & kFlagHonestCopy) != 0;
    return spec_.buffer == 1 ? apply_one(m, k, copy) : add_to_buffer(m, k, copy);
  }

  Taken apply_one(const Message& m, std::int64_t k, bool copy) {
    at::Tensor message = m.payload.unsqueeze(0);
    if (copy) {
      message = message.clone();
      attack_rows(message, {k}, {1}, nullptr);
    }
    if (count_nonfinite_rows(message)) {  // only an attack crafted by the server can get here
      s_.metrics.add_nonfinite(1);
      return Taken::kept;
    }
    Arrival arrival{k, progress_.pulled[k], current_index(), s_.elapsed()};
    s_.metrics.add_staleness(arrival.staleness());
    ScopedTimer timer(result_.time.update);
    guard_plugin(s_.plugins.labels.optimizer, [&] { s_.plugins.optimizer->apply(server_, message[0], arrival, lr_); });
    return Taken::applied;
  }

  Taken add_to_buffer(const Message& m, std::int64_t k, bool copy) {
    std::vector<std::int64_t>& workers = progress_.buffer_workers;
    buffer_[static_cast<std::int64_t>(workers.size())].copy_(m.payload);
    workers.push_back(k);
    progress_.buffer_copy.push_back(copy ? 1 : 0);
    progress_.buffer_staleness.push_back(current_index() - progress_.pulled[k]);
    s_.metrics.add_staleness(current_index() - progress_.pulled[k]);
    if (static_cast<std::int64_t>(workers.size()) < spec_.buffer) return Taken::kept;
    at::Tensor rows = buffer_.clone();
    // The context reads the parameters (and computes the server's gradient) from the model, which holds
    // the server's parameters only after an evaluation: bring it up to date first.
    s_.run.model->params().copy_(server_);
    const RoundContext context =
        round_source_.context(progress_.updates, workers, progress_.buffer_staleness, *s_.run.model);
    attack_rows(rows, workers, progress_.buffer_copy, &context);
    s_.metrics.add_nonfinite(count_nonfinite_rows(rows));
    at::Tensor update = [&] {
      ScopedTimer timer(result_.time.aggregation);
      return aggregate_rows(spec_, s_.plugins, rows, context);
    }();
    if (diverged_on_update(result_, update, spec_.aggregator.name, "at update " + std::to_string(progress_.updates)))
      return Taken::stop;
    Arrival arrival{-1, current_index(), current_index(), s_.elapsed()};
    {
      ScopedTimer timer(result_.time.update);
      guard_plugin(s_.plugins.labels.optimizer, [&] { s_.plugins.optimizer->apply(server_, update, arrival, lr_); });
    }
    workers.clear();
    progress_.buffer_copy.clear();
    progress_.buffer_staleness.clear();
    return Taken::applied;
  }

  // The server-side omniscient attack on the Byzantine workers' true messages among `rows`; with a round's
  // `context` (buffered rounds) it may query the defence, as in the simulation.
  void attack_rows(at::Tensor rows, const std::vector<std::int64_t>& workers, const std::vector<char>& copy,
                   const RoundContext* context) {
    std::vector<std::int64_t> honest_idx, byz_idx;
    for (std::size_t i = 0; i < workers.size(); ++i) (copy[i] ? byz_idx : honest_idx).push_back(i);
    if (byz_idx.empty()) return;
    at::Tensor hi = at::tensor(honest_idx, at::kLong), bi = at::tensor(byz_idx, at::kLong);
    AttackRound round{honest_idx.empty() ? last_honest_ : rows.index_select(0, hi), rows.index_select(0, bi),
                      progress_.updates};
    round.diagnostics = attack_diagnostics(s_.plugins);
    std::optional<EngineDefenceOracle> oracle;
    if (context && !honest_idx.empty()) {
      oracle.emplace(spec_, s_.plugins, *context, at::cat({hi, bi}));
      round.defence = &*oracle;
    }
    at::Tensor crafted = guard_plugin(s_.plugins.labels.attack, [&] { return s_.plugins.attack->craft(round); });
    require_shape(crafted, {static_cast<std::int64_t>(byz_idx.size()), s_.d}, "attack '" + spec_.attack.name + "'");
    rows.index_copy_(0, bi, crafted);
  }

  // After an update: the fault hook, the finiteness check, an evaluation when due. False: the run stops.
  bool after_update() {
    const std::int64_t updates = ++progress_.updates;
    s_.maybe_crash(updates);
    if (diverged_on_parameters(result_, server_, "at update " + std::to_string(updates))) return false;
    if (updates % spec_.eval_every != 0 && updates != total_steps_) return true;
    s_.run.model->params().copy_(server_);
    evaluate();
    return !diverged_on_test_loss(result_, updates);
  }

  void evaluate() {
    s_.metrics.evaluate(progress_.updates, progress_.honest_arrivals * spec_.batch_size,
                        static_cast<double>(progress_.arrivals * spec_.batch_size), lr_, s_.elapsed(), result_);
  }

  Server& s_;
  const PipelineSpec& spec_;
  const std::int64_t total_steps_, total_arrivals_;
  const RoundContextSource round_source_;  // worker ids, staleness, parameters, server_data's gradient
  bool omniscient_ = false;
  AsyncProgress progress_;
  RunResult result_;
  double lr_ = 0;
  at::Tensor server_;       // the server's parameters; model.params() is where evaluations happen
  at::Tensor buffer_;       // [engine.buffer, d]
  at::Tensor last_honest_;  // [1, d]: what an attack sees when a buffer holds no honest message
  std::vector<char> awaiting_;  // by worker: sent parameters, its answer not yet taken
};

}  // namespace

RunResult run_async_server(Server& s, std::int64_t total_steps, std::int64_t total_arrivals,
                           std::optional<Checkpoint>& resumed) {
  AsyncServer async(s, total_steps, total_arrivals);
  if (resumed) async.restore(*resumed);
  resumed.reset();
  return async.run();
}

}  // namespace phalanx::core::distributed
