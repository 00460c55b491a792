// The parameter server of the distributed mode (rank 0) and the pieces both roles share.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <optional>
#include <sstream>

#include <ATen/ATen.h>

#include "phalanx/core/distributed/distributed.hpp"
#include "phalanx/core/distributed/checkpoint.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/engine/run_checkpoint.hpp"
#include "phalanx/core/run/checkpoint.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/core/engine/round_parts.hpp"
#include "phalanx/core/run/stop_signal.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/error.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx::core {

RunResult run_worker(const PipelineSpec& spec, const Registry& registry, Cluster& cluster,
                     std::shared_ptr<spdlog::logger> logger);

namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds seconds(double s) { return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000)); }

/// Copies checkpoint entry `name` into `target`, which it must match in shape and dtype.
void restore_entry(at::Tensor target, const Checkpoint& checkpoint, const std::string& name) {
  const at::Tensor& saved = checkpoint.get(name);
  if (saved.sizes() != target.sizes() || saved.scalar_type() != target.scalar_type())
    throw Error("checkpoint entry '" + name + "' does not fit this run (saved with another model or engine.buffer?)");
  target.copy_(saved);
}

}  // namespace

std::string check_gradient_message(const Message& m, int rank, std::int64_t d, std::int64_t expected,
                                   std::int64_t current, bool may_carry_honest_copy) {
  const Header& h = m.header;
  if (h.kind != MessageKind::Gradient) return "is not a gradient message (kind " + std::to_string(static_cast<std::int64_t>(h.kind)) + ")";
  if (h.sender != rank) return "claims to come from rank " + std::to_string(h.sender);
  if (h.dtype != static_cast<std::int64_t>(at::kFloat) || !m.payload.defined() ||
      m.payload.scalar_type() != at::kFloat)
    return "has dtype code " + std::to_string(h.dtype) + ", expected float32";
  if (h.numel != d || m.payload.numel() != d)
    return "has " + std::to_string(h.numel) + " elements, expected d = " + std::to_string(d);
  if (h.index < 0 || h.index > current)
    return "claims iteration index " + std::to_string(h.index) + ", outside [0, " + std::to_string(current) + "]";
  if (h.index != expected)
    return "claims iteration index " + std::to_string(h.index) + " but was sent the parameters of index " +
           std::to_string(expected);
  if ((h.flags & ~kFlagHonestCopy) != 0 || ((h.flags & kFlagHonestCopy) && !may_carry_honest_copy))
    return "has unknown flags " + std::to_string(h.flags);
  // A Byzantine worker's true message, sent for the server-side attack, is the attack's input, not an update.
  if (!(h.flags & kFlagHonestCopy) && count_nonfinite_rows(m.payload.unsqueeze(0)) > 0) return "holds NaN or Inf";
  return "";
}

Message params_message(std::int64_t index, std::int64_t seq, const at::Tensor& params, BufferPool* pool) {
  Message m;
  m.header.kind = MessageKind::Params;
  m.header.sender = 0;
  m.header.index = index;
  m.header.seq = seq;
  m.header.numel = params.numel();
  m.header.dtype = static_cast<std::int64_t>(at::kFloat);
  // A snapshot: the server keeps updating its own copy in place.
  m.payload = pool ? pool->take(params.numel(), at::kFloat).copy_(params) : params.clone();
  return m;
}

namespace {

/// The server loop's bookkeeping shared by both protocols.
struct Server {
  const PipelineSpec& spec;
  RunSetup& run;
  EnginePlugins& plugins;
  ServerLinks& links;
  MetricsTracker& metrics;
  std::shared_ptr<spdlog::logger> logger;
  RunCheckpointer& checkpoints;
  Faults faults;
  Clock::time_point started = Clock::now();
  BufferPool snapshots{static_cast<std::size_t>(2 * spec.workers + 4)};
  std::int64_t d = 0, h = 0, n = 0;
  std::vector<std::int64_t> rejected_by_worker;
  std::vector<std::pair<std::int64_t, double>> gone_since;  // by rank: (update or round, seconds) of its loss

  double elapsed() const { return std::chrono::duration<double>(Clock::now() - started).count(); }

  void reject(int rank, const Message& m, const std::string& why) {
    metrics.add_rejected(1);
    if (m.payload.defined() && m.payload.scalar_type() == at::kFloat && m.payload.dim() == 1 &&
        count_nonfinite_rows(m.payload.unsqueeze(0)) > 0)
      metrics.add_nonfinite(1);
    if (logger && rejected_by_worker[rank]++ < 5)
      logger->warn("server: rejected message {} of worker {} (rank {}): it {}", m.header.seq, rank - 1, rank, why);
  }

  // `at`: the update (async) or round (sync) in progress.
  void lost(const ServerLinks::Event& e, std::int64_t at) {
    gone_since[e.rank] = {at, elapsed()};
    if (logger)
      logger->warn("server: worker {} (rank {}) is gone ({}); {} worker(s) left", e.rank - 1, e.rank, e.reason,
                   links.alive_count());
  }

  // A restarted process took the rank back (ServerLinks::rejoin): the log states the gap.
  void rejoined(const ServerLinks::Event& e, std::int64_t at, const char* unit) {
    if (!logger) return;
    const auto [since, when] = gone_since[e.rank];
    logger->warn("server: worker {} (rank {}) rejoined at {} {}; it was gone since {} {} ({:.1f} s); it gets the "
                 "current parameters and starts from a fresh state", e.rank - 1, e.rank, unit, at, unit, since,
                 elapsed() - when);
  }

  void maybe_crash(std::int64_t update) {
    if (faults.for_message(update) == "crash") {
      if (logger) logger->warn("server: PHALANX_FAULT: crashing at update {}", update);
      std::raise(SIGKILL);
    }
  }
};

// The server's own part of a checkpoint, in the simulation's format (run_checkpoint.hpp). Real processes
// have no simulated speeds; the format holds a speed model all the same, so an unused one is saved.
// The wall clock (sim_time) goes on from where the checkpoint left it.
void save_server_state(Checkpoint& checkpoint, Server& s, const RunResult& result) {
  const SpeedModel unused(s.spec.speed, s.spec.workers, derive_seed(s.spec.seed, "speed"));
  save_shared_state(checkpoint, s.run, s.plugins, unused, s.metrics, result);
  checkpoint.put_double("distributed/elapsed", s.elapsed());
}

void load_server_state(const Checkpoint& checkpoint, Server& s, RunResult& result) {
  SpeedModel unused(s.spec.speed, s.spec.workers, derive_seed(s.spec.seed, "speed"));
  load_shared_state(checkpoint, s.run, s.plugins, unused, s.metrics, result);
  if (checkpoint.has("distributed/elapsed"))
    s.started -= std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(checkpoint.get_double("distributed/elapsed")));
}

/// Asks every live worker for its state (they are all between rounds, or drained in async mode: the server
/// sent them nothing since their last message) and puts what arrives within engine.timeout into
/// `checkpoint`, unread. Any message of a worker means it waits for parameters again (`idle`); a worker lost
/// or rejoined meanwhile is handed to `on_link` (a rejoined one is not in this checkpoint). Returns how many
/// workers answered.
std::int64_t gather_worker_states(Server& s, Checkpoint& checkpoint, std::int64_t step, std::vector<char>& idle,
                                  const std::function<void(const ServerLinks::Event&)>& on_link = {}) {
  Message ask;
  ask.header.kind = MessageKind::SaveState;
  ask.header.index = step;
  std::vector<char> waiting(s.n + 1, 0);
  for (int r = 1; r <= s.n; ++r)
    if (s.links.alive(r)) {
      s.links.post(r, ask);
      waiting[r] = 1;
    }
  std::int64_t gathered = 0;
  const auto deadline = Clock::now() + seconds(s.spec.timeout);
  auto still_waiting = [&] {
    for (int r = 1; r <= s.n; ++r)
      if (waiting[r] && s.links.alive(r)) return true;
    return false;
  };
  while (still_waiting() && Clock::now() < deadline) {
    auto e = s.links.next(std::chrono::milliseconds(100));
    if (!e) continue;
    if (e->lost || e->rejoined) {
      if (on_link) on_link(*e);
      continue;
    }
    if (!e->rejected.empty()) {
      s.reject(e->rank, e->message, e->rejected);
      continue;
    }
    idle[e->rank - 1] = 1;
    const Message& m = e->message;
    if (m.header.kind != MessageKind::State || !waiting[e->rank]) continue;  // a late gradient: already missing
    waiting[e->rank] = 0;
    if (m.header.dtype != static_cast<std::int64_t>(at::kByte) || !m.payload.defined() ||
        m.payload.scalar_type() != at::kByte || m.header.sender != e->rank) {
      s.reject(e->rank, m, "is not a well-formed state message");
      continue;
    }
    checkpoint.put(worker_state_entry(e->rank - 1), m.payload.clone());  // the payload's buffer is reused
    ++gathered;
  }
  if (s.logger && gathered < s.n)
    s.logger->warn("server: checkpoint after {} {} holds the state of {} of {} workers; the others start "
                   "afresh when the run resumes", s.spec.engine == "async" ? "update" : "round", step, gathered, s.n);
  return gathered;
}

/// Sends each worker the state saved for it, to load before the first parameters of the resumed run (a
/// worker whose state is not in the checkpoint keeps the fresh one it started with).
void restore_worker_states(Server& s, const Checkpoint& checkpoint) {
  for (int r = 1; r <= s.n; ++r) {
    const std::string entry = worker_state_entry(r - 1);
    if (!checkpoint.has(entry)) {
      if (s.logger) s.logger->warn("server: the checkpoint has no state for worker {}; it starts afresh", r - 1);
      continue;
    }
    Message m;
    m.header.kind = MessageKind::LoadState;
    m.payload = checkpoint.get(entry);
    m.header.numel = m.payload.numel();
    m.header.dtype = static_cast<std::int64_t>(at::kByte);
    s.links.post(r, m);
  }
}

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
      if (e.lost) s_.lost(e, progress_.step);
      else s_.rejoined(e, progress_.step, "round");  // idle_: it gets the next round's parameters
      idle_[e.rank - 1] = e.rejoined ? 1 : 0;
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
  const RoundContextSource round_source_;  // server_data is refused in this mode
  bool omniscient_ = false;
  SyncProgress progress_;
  RunResult result_;
  double lr_ = 0;
  std::vector<char> idle_;                 // by worker: waiting for parameters
  std::vector<char> have_, honest_copy_;   // by worker, this round
  std::int64_t got_ = 0;                   // messages this round
  at::Tensor rows_;                        // [n, d]: this round's messages by worker
};

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
  std::vector<char> buffer_copy;             // ... and whether each is a Byzantine worker's true message

  void save(Checkpoint& c) const {
    c.put_int("async/updates", updates);
    c.put_int("distributed/arrivals", arrivals);
    c.put_int("distributed/honest_arrivals", honest_arrivals);
    c.put_int("distributed/received", received);
    c.put_int("distributed/params_sent", seq);
    c.put("distributed/pulled", at::tensor(pulled, at::kLong));
    c.put("distributed/buffer_workers", at::tensor(buffer_workers, at::kLong));
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
    const std::vector<std::int64_t> copy = int_list(c, "distributed/buffer_copy");
    buffer_copy.assign(copy.begin(), copy.end());
    if (copy.size() != buffer_workers.size())
      throw Error("checkpoint: distributed/buffer_copy and distributed/buffer_workers differ in length");
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
      attack_rows(message, {k}, {1});
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
    s_.metrics.add_staleness(current_index() - progress_.pulled[k]);
    if (static_cast<std::int64_t>(workers.size()) < spec_.buffer) return Taken::kept;
    at::Tensor rows = buffer_.clone();
    attack_rows(rows, workers, progress_.buffer_copy);
    s_.metrics.add_nonfinite(count_nonfinite_rows(rows));
    at::Tensor update = [&] {
      ScopedTimer timer(result_.time.aggregation);
      return aggregate_rows(spec_, s_.plugins, rows);
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
    return Taken::applied;
  }

  // The server-side omniscient attack on the Byzantine workers' true messages among `rows`.
  void attack_rows(at::Tensor rows, const std::vector<std::int64_t>& workers, const std::vector<char>& copy) {
    std::vector<std::int64_t> honest_idx, byz_idx;
    for (std::size_t i = 0; i < workers.size(); ++i) (copy[i] ? byz_idx : honest_idx).push_back(i);
    if (byz_idx.empty()) return;
    at::Tensor hi = at::tensor(honest_idx, at::kLong), bi = at::tensor(byz_idx, at::kLong);
    AttackRound round{honest_idx.empty() ? last_honest_ : rows.index_select(0, hi), rows.index_select(0, bi),
                      progress_.updates};
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
  bool omniscient_ = false;
  AsyncProgress progress_;
  RunResult result_;
  double lr_ = 0;
  at::Tensor server_;       // the server's parameters; model.params() is where evaluations happen
  at::Tensor buffer_;       // [engine.buffer, d]
  at::Tensor last_honest_;  // [1, d]: what an attack sees when a buffer holds no honest message
  std::vector<char> awaiting_;  // by worker: sent parameters, its answer not yet taken
};

RunResult run_server(const PipelineSpec& spec, const Registry& registry, Cluster& cluster, const std::string& out_dir,
                     std::shared_ptr<spdlog::logger> logger, const RunControl& control) {
  RunCheckpointer checkpoints(control, spec, out_dir);
  std::optional<Checkpoint> resumed = checkpoints.resume_point();
  RunSetup run = prepare_run(spec, registry, out_dir, logger, resumed ? resumed->get_int("metrics/rows") : -1);
  const std::int64_t d = run.model->dimension();
  const std::int64_t total_steps = distributed_total_steps(spec, run.data.train_x.size(0));
  run.info.total_steps = total_steps;
  EnginePlugins plugins = make_plugins(spec, registry, run.info, logger);
  if (logger)
    logger->info("run '{}' (distributed {}): server on rank 0, {} worker processes ({} Byzantine), model {} with "
                 "d = {}, {} steps of batch {}, timeout {} s", spec.name, spec.engine, spec.workers, spec.byzantine,
                 spec.model.name, d, total_steps, spec.batch_size, spec.timeout);
  RunResult result;
  result.total_steps = total_steps;
  MetricsTracker metrics(spec, run.data, *run.model, run.output.get(), logger, total_steps);
  // Payloads larger than this are refused unread: 2d lets a wrong-size gradient be read and rejected; a
  // worker's state (checkpoint.hpp) has a bound of its own.
  ServerLinks links(cluster, 2 * d + 1024, seconds(4 * spec.timeout), logger, /*tag=*/0,
                    worker_state_limit(d, run.data.train_x.size(0)));
  Server s{spec, run, plugins, links, metrics, logger, checkpoints, Faults::from_environment(0)};
  s.d = d;
  s.n = spec.workers;
  s.h = spec.honest();
  s.rejected_by_worker.assign(spec.workers + 1, 0);
  s.gone_since.assign(spec.workers + 1, {0, 0.0});
  try {
    if (spec.engine == "async") {
      const std::int64_t total_arrivals = spec.budget.unit == "steps"
                                              ? spec.budget.amount * spec.buffer
                                              : budget_steps(spec.budget, run.data.train_x.size(0), 1, 1, spec.batch_size);
      AsyncServer async(s, total_steps, total_arrivals);
      if (resumed) async.restore(*resumed);
      resumed.reset();
      result = async.run();
    } else {
      SyncServer sync(s, total_steps);
      if (resumed) sync.restore(*resumed);
      resumed.reset();  // a copy of the model and every plugin's state, not needed any more
      result = sync.run();
    }
  } catch (const Error& e) {
    result.status = RunStatus::failed;
    result.message = e.what();
  }
  links.shutdown(seconds(std::min(spec.timeout, 10.0)));
  if (result.status != RunStatus::ok && logger) logger->warn("{}", result.message);
  // compute_s stays 0: the gradients are computed in the worker processes; engine_s is the server's
  // waiting for and exchanging messages.
  result.time.total = s.elapsed();
  if (run.output)
    run.output->write_summary(result.status, result.message, result.has_last ? &result.last : nullptr, total_steps,
                              &result.time);
  return result;
}

}  // namespace

std::int64_t distributed_total_steps(const PipelineSpec& spec, std::int64_t train_size) {
  if (spec.engine != "async")
    return budget_steps(spec.budget, train_size, spec.workers, spec.honest(), spec.batch_size);
  const std::int64_t total_arrivals = spec.budget.unit == "steps"
                                          ? static_cast<std::int64_t>(spec.budget.amount) * spec.buffer
                                          : budget_steps(spec.budget, train_size, 1, 1, spec.batch_size);
  return std::max<std::int64_t>(1, total_arrivals / spec.buffer);
}

Faults Faults::from_environment(int rank) {
  Faults f;
  const char* v = std::getenv("PHALANX_FAULT");
  if (!v) return f;
  std::stringstream items(v);
  for (std::string item; std::getline(items, item, ',');) {
    const auto colon = item.find(':'), at_sign = item.find('@');
    if (colon == std::string::npos || at_sign == std::string::npos || at_sign < colon)
      throw Error("PHALANX_FAULT: '" + item + "' is not RANK:KIND@N");
    if (std::stoi(item.substr(0, colon)) != rank) continue;
    f.at.emplace_back(std::stoll(item.substr(at_sign + 1)), item.substr(colon + 1, at_sign - colon - 1));
  }
  return f;
}

std::string Faults::for_message(std::int64_t n) const {
  for (const auto& [when, kind] : at)
    if (when == n) return kind;
  return "";
}

RunResult run_distributed(const PipelineSpec& spec, const Registry& registry, const ClusterSpec& cluster_spec,
                          const std::string& out_dir, std::shared_ptr<spdlog::logger> logger,
                          const RunControl& control) {
  if (cluster_spec.world_size != spec.workers + 1)
    throw Error("the config has workers.count = " + std::to_string(spec.workers) + " but WORLD_SIZE is " +
                std::to_string(cluster_spec.world_size) + ": a distributed run needs workers.count + 1 processes "
                "(one server, rank 0, and one per worker); use `phalanx launch -n " +
                std::to_string(spec.workers + 1) + "` or --set workers.count=" +
                std::to_string(cluster_spec.world_size - 1));
  // Every process refuses, so none waits for the others in vain.
  if (control.checkpoint_every_sim_time > 0)
    throw Error("--checkpoint-every sim:T counts simulated time, which a distributed run does not have; give a "
                "number of server updates (--checkpoint-every N)");
  std::signal(SIGPIPE, SIG_IGN);  // a peer that died must surface as an error, not kill this process
  Cluster cluster(cluster_spec, seconds(std::max(60.0, 4 * spec.timeout)), authentication_from(spec));
  if (logger) logger->info("rank {} of {}: connected through {}:{}", cluster.rank(), cluster.size(),
                           cluster_spec.master_addr, cluster_spec.master_port);
  if (cluster.rank() == 0) return run_server(spec, registry, cluster, out_dir, logger, control);
  return run_worker(spec, registry, cluster, logger);
}

}  // namespace phalanx::core
