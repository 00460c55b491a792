// The parameter server of the distributed mode (rank 0): its setup, the checks and pieces both protocols
// share, and the entry point of every process. The protocols are in sync_server.cpp and async_server.cpp.
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <optional>
#include <sstream>

#include <ATen/ATen.h>

#include "server_parts.hpp"
#include "phalanx/core/distributed/checkpoint.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

RunResult run_worker(const PipelineSpec& spec, const Registry& registry, Cluster& cluster,
                     std::shared_ptr<spdlog::logger> logger);

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

namespace distributed {

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

// See server_parts.hpp.
std::int64_t gather_worker_states(Server& s, Checkpoint& checkpoint, std::int64_t step, std::vector<char>& idle,
                                  const std::function<void(const ServerLinks::Event&)>& on_other) {
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
    const Message& m = e->message;
    if (e->lost || e->rejoined || !e->rejected.empty() || m.header.kind != MessageKind::State || !waiting[e->rank]) {
      on_other(*e);
      continue;
    }
    idle[e->rank - 1] = 1;
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

}  // namespace distributed

namespace {

using distributed::seconds;
using distributed::Server;

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
  metrics.record_diagnostics(plugins.diagnostics);
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
      result = distributed::run_async_server(s, total_steps, total_arrivals, resumed);
    } else {
      result = distributed::run_sync_server(s, total_steps, resumed);
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
