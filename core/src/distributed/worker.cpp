// A worker process of the distributed mode (rank k + 1 is worker k): it waits for parameters, computes a
// gradient on its own partition exactly as the simulation's worker k does (same partition, batch order,
// worker rule), runs the attack when it is Byzantine, and sends the message with the iteration index of
// the parameters it used. It leaves on the server's Stop, and with a clear error when the server is gone.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <thread>

#include <ATen/ATen.h>

#include "phalanx/core/distributed/checkpoint.hpp"
#include "phalanx/core/distributed/distributed.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

// The planned misbehaviour of PHALANX_FAULT applied to an outgoing message.
void apply_fault(const std::string& fault, Message& m, double timeout, std::shared_ptr<spdlog::logger> logger) {
  if (fault.empty()) return;
  if (logger) logger->warn("worker: PHALANX_FAULT: '{}' at message {}", fault, m.header.seq);
  if (fault == "nan") {
    m.payload = m.payload.clone();
    m.payload[0] = std::nanf("");
  } else if (fault == "wrong_size") {
    m.payload = at::cat({m.payload, at::zeros({7}, at::kFloat)});
    m.header.numel = m.payload.numel();
  } else if (fault == "wrong_dtype") {
    m.payload = m.payload.to(at::kDouble);
    m.header.dtype = static_cast<std::int64_t>(at::kDouble);
  } else if (fault == "wrong_index") {
    m.header.index += 1000;
  } else if (fault == "stall") {
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<std::int64_t>(3000 * timeout)));
  } else if (fault == "crash") {
    std::raise(SIGKILL);
  } else {
    throw Error("PHALANX_FAULT: unknown fault '" + fault + "' (nan, wrong_size, wrong_dtype, wrong_index, stall, "
                "crash, forge, replay, alter)");
  }
}

bool is_wire_fault(const std::string& fault) { return fault == "forge" || fault == "replay" || fault == "alter"; }

// The faults of a hostile party on the wire, sent just before (forge, alter) or after (replay) the worker's
// true message `sealed`, so the round still gets that message: forge, a message sealed with a key that is
// not the run's; alter, `sealed` with one payload number changed after sealing; replay, the worker's
// previous sealed message again, verbatim.
void send_wire_fault(const std::string& fault, Cluster& cluster, const Message& sealed, const Message& previous,
                     bool after, std::chrono::milliseconds patience) {
  if (!is_wire_fault(fault) || (fault == "replay") != after) return;
  Message extra;
  if (fault == "forge") {
    extra = sealed;
    MessageAuthenticator(Digest{}, cluster.rank(), 0).seal(extra);
  } else if (fault == "alter") {
    extra = sealed;
    extra.payload = sealed.payload.clone();
    extra.payload[0] += 1;
  } else if (fault == "replay") {
    if (!previous.payload.defined()) return;
    extra = previous;
  }
  cluster.send_sealed(0, extra, patience);
}

// The server's checkpoint requests: send this worker's state (SaveState), or continue from a saved one
// (LoadState, before the first parameters of a resumed run). True when `p` was one of them.
bool serve_state_request(const Message& p, Cluster& cluster, RunSetup& run, EnginePlugins& plugins, std::int64_t w,
                         std::chrono::milliseconds patience, const std::shared_ptr<spdlog::logger>& logger) {
  const std::string who = "worker " + std::to_string(w);
  if (p.header.kind == MessageKind::LoadState) {
    restore_worker_state(unpack_state(p.payload, who), run, plugins, w);
    if (logger) logger->info("{}: resumed from the state the server saved", who);
    return true;
  }
  if (p.header.kind != MessageKind::SaveState) return false;
  Message m;
  m.header.kind = MessageKind::State;
  m.header.sender = cluster.rank();
  m.header.index = p.header.index;
  m.payload = pack_state(worker_state(run, plugins, w));
  m.header.numel = m.payload.numel();
  m.header.dtype = static_cast<std::int64_t>(at::kByte);
  try {
    cluster.send(0, m, patience);
  } catch (const Error& e) {
    throw Error(who + ": lost the server (rank 0) while sending its state for a checkpoint: " + e.what());
  }
  return true;
}

}  // namespace

RunResult run_worker(const PipelineSpec& spec, const Registry& registry, Cluster& cluster,
                     std::shared_ptr<spdlog::logger> logger) {
  const std::int64_t w = cluster.rank() - 1;
  RunSetup run = prepare_run(spec, registry, "", logger);
  const std::int64_t d = run.model->dimension();
  run.info.total_steps = distributed_total_steps(spec, run.data.train_x.size(0));
  EnginePlugins plugins = make_plugins(spec, registry, run.info, logger);
  const bool byzantine = w >= spec.honest();
  const bool server_attacks = byzantine && plugins.attack->omniscient();
  const Faults faults = Faults::from_environment(cluster.rank());
  // The server may take a whole round (engine.timeout) plus an evaluation before it answers.
  const auto patience = std::chrono::milliseconds(static_cast<std::int64_t>(4000 * spec.timeout));
  if (logger)
    logger->info("worker {} (rank {}){}: d = {}, waiting for parameters", w, cluster.rank(),
                 byzantine ? (server_attacks ? " Byzantine (omniscient attack run by the server)" : " Byzantine") : "",
                 d);

  try {
    cluster.authenticate_with_server(patience);
  } catch (const RejectedMessage& e) {
    throw Error("worker " + std::to_string(w) + ": the authentication handshake failed: " + e.what());
  }

  RunResult result;
  std::int64_t seq = 0;
  double compute_seconds = 0;
  Message previous;  // the last message sent, sealed (for the replay fault of the tests)
  const std::int64_t max_numel = std::max(d, worker_state_limit(d, run.data.train_x.size(0)));
  for (;;) {
    Message p;
    try {
      p = cluster.receive(0, patience, max_numel);
    } catch (const RejectedMessage& e) {
      // Not from the server, or not as it sent it: never used. Keep waiting for the authentic one.
      if (logger) logger->warn("worker {}: rejected {}", w, e.what());
      continue;
    } catch (const Error& e) {
      throw Error("worker " + std::to_string(w) + " (rank " + std::to_string(cluster.rank()) +
                  "): lost the server (rank 0): " + e.what() +
                  ". The server crashed, was killed, or is unreachable; this worker stops.");
    }
    if (p.header.kind == MessageKind::Stop) {
      if (logger) logger->info("worker {}: the server ended the run after {} messages", w, seq);
      return result;
    }
    if (serve_state_request(p, cluster, run, plugins, w, patience, logger)) continue;
    if (p.header.kind == MessageKind::Challenge)
      throw Error("worker " + std::to_string(w) + ": the server requires authentication and this process has it "
                  "off; give it the run's key (PHALANX_KEY_FILE or engine.key_file) and engine.authentication: hmac");
    if (p.header.magic != kMagic || p.header.kind != MessageKind::Params || p.header.numel != d ||
        !p.payload.defined() || p.payload.scalar_type() != at::kFloat)
      throw Error("worker " + std::to_string(w) + ": the server sent a malformed parameter message (" +
                  std::to_string(p.header.numel) + " elements, expected " + std::to_string(d) +
                  "); are both running the same config?");
    run.model->params().copy_(p.payload);
    auto [loss, gradient] = worker_gradient(spec, plugins, run.data, *run.model, run.streams[w], byzantine,
                                            /*metrics=*/nullptr, compute_seconds);
    at::Tensor message = plugins.worker_rules[w]->message(gradient, p.header.index);
    require_shape(message, {d}, "optimizer '" + spec.optimizer.name + "' worker rule");

    Message m;
    m.header.kind = MessageKind::Gradient;
    m.header.sender = cluster.rank();
    m.header.index = p.header.index;
    m.header.seq = ++seq;
    m.header.numel = d;
    m.header.dtype = static_cast<std::int64_t>(at::kFloat);
    m.header.loss = loss;
    if (server_attacks) {
      m.header.flags = kFlagHonestCopy;
      m.payload = message;
    } else if (byzantine) {
      // A non-omniscient attack needs only this worker's own true message.
      AttackRound round{at::empty({0, d}, at::kFloat), message.unsqueeze(0), p.header.index};
      at::Tensor crafted = guard_plugin(plugins.labels.attack, [&] { return plugins.attack->craft(round); });
      require_shape(crafted, {1, d}, "attack '" + spec.attack.name + "'");
      m.payload = crafted[0].contiguous();
    } else {
      m.payload = message.contiguous();
    }
    const std::string fault = faults.for_message(seq);
    if (!is_wire_fault(fault)) apply_fault(fault, m, spec.timeout, logger);
    else if (logger) logger->warn("worker: PHALANX_FAULT: '{}' at message {}", fault, seq);
    try {
      const Message sealed = cluster.seal(0, std::move(m));
      send_wire_fault(fault, cluster, sealed, previous, false, patience);
      cluster.send_sealed(0, sealed, patience);
      send_wire_fault(fault, cluster, sealed, previous, true, patience);
      if (!faults.at.empty()) previous = Message{sealed.header, sealed.payload.clone()};
    } catch (const Error& e) {
      throw Error("worker " + std::to_string(w) + " (rank " + std::to_string(cluster.rank()) +
                  "): lost the server (rank 0) while sending: " + e.what() + ". This worker stops.");
    }
  }
}

}  // namespace phalanx::core
