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
#include "phalanx/core/engine/worker_pool.hpp"
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

// One worker process: its share of the pipeline (same partition, batch stream and worker rule as the
// simulation's worker w) and its link to the server.
class WorkerProcess {
 public:
  WorkerProcess(const PipelineSpec& spec, const Registry& registry, Cluster& cluster,
                std::shared_ptr<spdlog::logger> logger)
      : spec_(spec), cluster_(cluster), logger_(std::move(logger)), w_(cluster.rank() - 1),
        run_(prepare_worker_run(spec, registry, logger_)), d_(run_.model->dimension()),
        plugins_(make_plugins(spec, registry, run_.info, logger_)), faults_(Faults::from_environment(cluster.rank())),
        // The server may take a whole round (engine.timeout) plus an evaluation before it answers.
        patience_(static_cast<std::int64_t>(4000 * spec.timeout)), one_thread_(1) {
    byzantine_ = w_ >= spec.honest();
    server_attacks_ = byzantine_ && plugins_.attack->omniscient();
    // As in the simulation (skips_byzantine_gradients): an attack that reads only the shape of this worker's
    // message gets zeros, and the process spends no forward/backward on a message nobody reads.
    if (byzantine_ && skips_byzantine_gradients(spec, plugins_, *run_.model)) unread_message_ = at::zeros({d_});
    max_numel_ = std::max(d_, worker_state_limit(d_, run_.data.train_x.size(0)));
  }

  RunResult run() {
    if (logger_)
      logger_->info("worker {} (rank {}){}{}: d = {}, waiting for parameters", w_, cluster_.rank(),
                    byzantine_ ? (server_attacks_ ? " Byzantine (omniscient attack run by the server)" : " Byzantine") : "",
                    unread_message_.defined() ? ", no gradients (the attack reads only its messages' shape)" : "", d_);
    try {
      cluster_.authenticate_with_server(patience_);
    } catch (const RejectedMessage& e) {
      throw Error(who() + ": the authentication handshake failed: " + e.what());
    }
    for (;;) {
      const Message p = receive_from_server();
      if (p.header.kind == MessageKind::Stop) {
        if (logger_) logger_->info("{}: the server ended the run after {} messages", who(), seq_);
        return RunResult{};
      }
      if (serve_state_request(p, cluster_, run_, plugins_, w_, patience_, logger_)) continue;
      check_parameters(p);
      send(answer_to(p));
    }
  }

 private:
  static RunSetup prepare_worker_run(const PipelineSpec& spec, const Registry& registry,
                                     const std::shared_ptr<spdlog::logger>& logger) {
    RunSetup run = prepare_run(spec, registry, "", logger);
    run.info.total_steps = distributed_total_steps(spec, run.data.train_x.size(0));
    return run;
  }

  std::string who() const { return "worker " + std::to_string(w_); }

  Message receive_from_server() {
    for (;;) {
      try {
        return cluster_.receive(0, patience_, max_numel_);
      } catch (const RejectedMessage& e) {
        // Not from the server, or not as it sent it: never used. Keep waiting for the authentic one.
        if (logger_) logger_->warn("{}: rejected {}", who(), e.what());
      } catch (const Error& e) {
        throw Error(who() + " (rank " + std::to_string(cluster_.rank()) + "): lost the server (rank 0): " + e.what() +
                    ". The server crashed, was killed, or is unreachable; this worker stops.");
      }
    }
  }

  void check_parameters(const Message& p) const {
    if (p.header.kind == MessageKind::Challenge)
      throw Error(who() + ": the server requires authentication and this process has it off; give it the run's "
                  "key (PHALANX_KEY_FILE or engine.key_file) and engine.authentication: hmac");
    if (p.header.magic != kMagic || p.header.kind != MessageKind::Params || p.header.numel != d_ ||
        !p.payload.defined() || p.payload.scalar_type() != at::kFloat)
      throw Error(who() + ": the server sent a malformed parameter message (" + std::to_string(p.header.numel) +
                  " elements, expected " + std::to_string(d_) + "); are both running the same config?");
  }

  // This worker's true message at the parameters of `p`, with the training loss of its batch: the engines' own
  // batch draw and gradient + worker rule (draw_batch, compute_messages), or zeros and no batch where nobody
  // reads it.
  std::pair<at::Tensor, double> true_message(const Message& p) {
    if (unread_message_.defined()) return {unread_message_, 0.0};
    run_.model->params().copy_(p.payload);
    std::vector<WorkerTask> tasks{draw_batch(spec_, plugins_, run_.data, run_.streams[w_], w_, p.header.index)};
    compute_messages(spec_, plugins_, one_thread_, {run_.model.get()}, tasks, time_);
    return {tasks[0].message, tasks[0].loss};
  }

  // The worker's message at the parameters of `p`: its true message, then this worker's attack when it is
  // Byzantine and runs it itself.
  Message answer_to(const Message& p) {
    const auto [own, loss] = true_message(p);
    Message m;
    m.header.kind = MessageKind::Gradient;
    m.header.sender = cluster_.rank();
    m.header.index = p.header.index;
    m.header.seq = ++seq_;
    m.header.numel = d_;
    m.header.dtype = static_cast<std::int64_t>(at::kFloat);
    m.header.loss = loss;
    if (server_attacks_) {
      m.header.flags = kFlagHonestCopy;
      m.payload = own;
    } else if (byzantine_) {
      // A non-omniscient attack needs only this worker's own true message.
      AttackRound round{at::empty({0, d_}, at::kFloat), own.unsqueeze(0), p.header.index};
      at::Tensor crafted = guard_plugin(plugins_.labels.attack, [&] { return plugins_.attack->craft(round); });
      require_shape(crafted, {1, d_}, "attack '" + spec_.attack.name + "'");
      m.payload = crafted[0].contiguous();
    } else {
      m.payload = own.contiguous();
    }
    return m;
  }

  // Sends `m` with the fault planned for it (PHALANX_FAULT), if any.
  void send(Message m) {
    const std::string fault = faults_.for_message(seq_);
    if (!is_wire_fault(fault)) apply_fault(fault, m, spec_.timeout, logger_);
    else if (logger_) logger_->warn("worker: PHALANX_FAULT: '{}' at message {}", fault, seq_);
    try {
      const Message sealed = cluster_.seal(0, std::move(m));
      send_wire_fault(fault, cluster_, sealed, previous_, false, patience_);
      cluster_.send_sealed(0, sealed, patience_);
      send_wire_fault(fault, cluster_, sealed, previous_, true, patience_);
      if (!faults_.at.empty()) previous_ = Message{sealed.header, sealed.payload.clone()};
    } catch (const Error& e) {
      throw Error(who() + " (rank " + std::to_string(cluster_.rank()) + "): lost the server (rank 0) while sending: " +
                  e.what() + ". This worker stops.");
    }
  }

  const PipelineSpec& spec_;
  Cluster& cluster_;
  std::shared_ptr<spdlog::logger> logger_;
  const std::int64_t w_;
  RunSetup run_;
  const std::int64_t d_;
  EnginePlugins plugins_;
  bool byzantine_ = false, server_attacks_ = false;
  const Faults faults_;
  const std::chrono::milliseconds patience_;
  std::int64_t max_numel_ = 0, seq_ = 0;
  WorkerPool one_thread_;
  TimeBreakdown time_;
  at::Tensor unread_message_;  // zeros when this Byzantine worker's messages are never read (defined = skip)
  Message previous_;  // the last message sent, sealed (for the replay fault of the tests)
};

}  // namespace

RunResult run_worker(const PipelineSpec& spec, const Registry& registry, Cluster& cluster,
                     std::shared_ptr<spdlog::logger> logger) {
  return WorkerProcess(spec, registry, cluster, std::move(logger)).run();
}

}  // namespace phalanx::core
