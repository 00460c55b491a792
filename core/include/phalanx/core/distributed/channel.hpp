// The wire of the distributed mode: framed messages between ranks over LibTorch's c10d ProcessGroupGloo
// (rendezvous through a c10d TCPStore hosted by rank 0). No networking of our own: this file only frames
// tensors, bounds every wait, and gives the server one thread pair per worker so that a slow, dead or
// malicious worker can never block the server loop.
//
// A message is a header of kHeaderLength int64 (tag T) followed, when `numel` > 0, by a payload tensor
// (tag T + 1); T is 0 in a run. The header travels first so the receiver knows the payload's size and
// dtype before taking it: a worker announcing the wrong size is refused without ever writing past a
// buffer. A Gloo receive that was aborted stays posted, so a second conversation on the same process
// group (the benchmark's repeats) must use other tags.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ATen/core/Tensor.h>

#include <spdlog/logger.h>

#include "phalanx/core/distributed/auth.hpp"
#include "phalanx/error.hpp"

namespace c10d {
class ProcessGroup;
}  // namespace c10d

namespace phalanx::core {

/// Where this process sits in a distributed run (rank 0 is the parameter server).
struct ClusterSpec {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// Address Gloo binds its connections to; empty: 127.0.0.1 when the master is local, else this
  /// machine's hostname (GLOO_SOCKET_IFNAME, when set, picks an interface instead).
  std::string gloo_host;
  /// A restarted worker rejoining a running job (launch --rejoin): instead of the run's mesh, which was
  /// formed once at the start, it forms a two-rank group with the server through the same store.
  bool rejoin = false;
};

/// RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT, or SLURM_PROCID / SLURM_NTASKS (with MASTER_ADDR
/// defaulting to the first host of SLURM_JOB_NODELIST is not attempted: set MASTER_ADDR). Fields not in
/// the environment keep the values of `defaults`.
ClusterSpec cluster_from_environment(ClusterSpec defaults);

// Challenge, Response, Welcome and Refused are the authentication handshake (docs/distributed.md);
// SaveState (server: send me your state), State (worker: its state, bytes) and LoadState (server: continue
// from this state) are the distributed checkpoint (checkpoint.hpp).
enum class MessageKind : std::int64_t {
  Gradient = 1, Params = 2, Stop = 3, Challenge = 4, Response = 5, Welcome = 6, Refused = 7,
  SaveState = 8, State = 9, LoadState = 10
};

constexpr std::int64_t kMagic = 0x50484c5804;  // "PHLX", protocol version 4
constexpr std::size_t kHeaderLength = 14;      // 9 fields, the link sequence number, 4 words of MAC
constexpr std::size_t kMacCoveredWords = 10;   // the MAC covers the header up to the link sequence number

struct Header {
  std::int64_t magic = kMagic;
  MessageKind kind = MessageKind::Gradient;
  std::int64_t sender = 0;
  std::int64_t index = 0;  // worker: iteration index it computed at; server: index of the parameters sent
  std::int64_t seq = 0;    // message number from this sender
  std::int64_t numel = 0;  // payload elements (0: no payload)
  std::int64_t dtype = 0;  // c10::ScalarType of the payload
  std::int64_t flags = 0;  // kFlagHonestCopy: a Byzantine worker's true message for a server-side attack
  double loss = 0;         // worker: its mini-batch loss (for train_loss), sent as the double's bits
  std::int64_t link_seq = 0;               // set by MessageAuthenticator::seal: strictly increasing per link
  std::array<std::uint8_t, 32> mac{};      // HMAC-SHA256 over words [0, kMacCoveredWords) and the payload
};

/// The header as it travels (kHeaderLength int64), and back.
std::array<std::int64_t, kHeaderLength> header_words(const Header& h);
Header header_from_words(const std::array<std::int64_t, kHeaderLength>& words);
constexpr std::int64_t kFlagHonestCopy = 1;

struct Message {
  Header header;
  at::Tensor payload;  // undefined when numel == 0
};

/// Hands out tensors that nobody holds any more (no handle, no view), else fresh ones. The server takes
/// a payload buffer per message received and a parameter snapshot per reply: a fresh 4 MB tensor each time
/// costs a thousand page faults. Use from one thread.
class BufferPool {
 public:
  explicit BufferPool(std::size_t capacity = 8) : capacity_(capacity) {}
  /// A [numel] tensor of `dtype` with undefined contents.
  at::Tensor take(std::int64_t numel, at::ScalarType dtype);

 private:
  std::size_t capacity_;
  std::vector<at::Tensor> buffers_;
};

/// A message that arrived but failed authentication (bad MAC, replayed, out of order): the link is intact.
class RejectedMessage : public Error {
 public:
  using Error::Error;
};

/// The process group of one run: TCPStore rendezvous, then a Gloo mesh between all ranks.
class Cluster {
 public:
  /// Blocks until every rank joined or `connect_timeout` passed (then throws Error saying who is missing).
  /// With `auth` enabled, messages to and from a peer are sealed and verified once the handshake with that
  /// peer is done (authenticate_with_server on a worker, ServerLinks on the server).
  Cluster(const ClusterSpec& spec, std::chrono::milliseconds connect_timeout, AuthSettings auth = {});
  ~Cluster();
  int rank() const { return spec_.rank; }
  int size() const { return spec_.world_size; }
  c10d::ProcessGroup& group() { return *group_; }
  const AuthSettings& auth() const { return auth_; }
  /// Server: how many times rank `rank` asked to rejoin (a counter in the rendezvous store).
  std::int64_t rejoin_requests(int rank);
  /// Server: the two-rank group (server 0, worker 1) of rank `rank`'s `generation`-th rejoin, formed
  /// through the store; blocks until that worker connects or `timeout` passed (then throws Error). The
  /// group lives as long as this Cluster.
  c10d::ProcessGroup& accept_rejoin(int rank, std::int64_t generation, std::chrono::milliseconds timeout);
  /// Authentication for the handshakes that start after this call (the benchmark compares both settings).
  void set_auth(AuthSettings auth) { auth_ = std::move(auth); }

  /// Worker: the handshake with the server (answers its challenge, checks its proof, derives the link's
  /// key). Nothing when authentication is off. Throws Error naming the cause when the server refuses this
  /// process or cannot prove it holds the key.
  void authenticate_with_server(std::chrono::milliseconds timeout, int tag = 0);

  /// Blocking send, bounded by `timeout`; throws Error (peer gone, timeout). Sealed when the link is
  /// authenticated.
  void send(int to, const Message& m, std::chrono::milliseconds timeout, int tag = 0);
  /// `m` numbered and MACed for `to` (unchanged on an unauthenticated link), and its sending as is.
  Message seal(int to, Message m);
  void send_sealed(int to, const Message& m, std::chrono::milliseconds timeout, int tag = 0);
  /// Blocking receive from `from`, bounded by `timeout`; payloads larger than `max_numel` elements are
  /// refused (Error) without being read. Throws Error on timeout or a lost peer, RejectedMessage when the
  /// message fails authentication.
  Message receive(int from, std::chrono::milliseconds timeout, std::int64_t max_numel, int tag = 0);

  struct Impl;

 private:
  void join_again(std::chrono::milliseconds timeout);

  ClusterSpec spec_;
  AuthSettings auth_;
  std::unique_ptr<Impl> impl_;
  c10d::ProcessGroup* group_ = nullptr;
  std::vector<std::unique_ptr<MessageAuthenticator>> links_;  // by peer rank; set after its handshake
};

/// Server side: one receiver and one sender thread per worker, so the server loop only ever waits on a
/// queue with a deadline. Receivers push every message (or the worker's loss) as an Event; each sender
/// delivers the messages posted for its worker in order, except that newer parameters replace older ones
/// not yet started (a worker behind gets the latest parameters, not a backlog).
class ServerLinks {
 public:
  struct Event {
    int rank = 0;
    bool lost = false;     // the worker is gone (connection closed, silent too long, protocol broken)
    std::string reason;    // for `lost`
    std::string rejected;  // non-empty: `message` (or the handshake) failed authentication; count, never use
    bool rejoined = false; // a lost worker came back (a new process, fresh link): it waits for parameters
    Message message;
  };
  /// Payloads over `max_numel` elements are refused unread, except a worker's state (kind State, bytes),
  /// bounded by `max_state_bytes` instead.
  ServerLinks(Cluster& cluster, std::int64_t max_numel, std::chrono::milliseconds silence_limit,
              std::shared_ptr<spdlog::logger> logger, int tag = 0, std::int64_t max_state_bytes = 0);
  ~ServerLinks();
  /// Next event, or nothing after `wait`.
  std::optional<Event> next(std::chrono::milliseconds wait);
  /// Queues `m` for `rank`: Params replace a queued, not yet started Params; Stop replaces everything queued.
  void post(int rank, Message m);
  bool alive(int rank) const { return alive_[rank]->load(); }
  int alive_count() const;
  /// Sends Stop to every live worker, waits up to `grace` for them to leave, then aborts what is left.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Link;
  void receive_loop(int rank);
  void send_loop(int rank);
  /// Watches the store for rejoin requests of lost workers and gives each a fresh link (docs/distributed.md).
  void rejoin_loop();
  void rejoin(int rank, std::int64_t generation);
  void start_link(int rank);
  void mark_lost(int rank, const std::string& reason);
  void push_rejected(int rank, Message m, const std::string& why);
  /// The server's half of the handshake with `rank`; "" when it proved itself, else why it is refused.
  template <class Wait>
  std::string handshake(int rank, Wait& wait);

  Cluster& cluster_;
  std::int64_t max_numel_, max_state_bytes_;
  std::chrono::milliseconds silence_limit_;
  std::shared_ptr<spdlog::logger> logger_;
  int tag_;
  std::vector<std::unique_ptr<BufferPool>> pools_;  // per worker, used by its receiver thread
  std::vector<std::unique_ptr<std::atomic<bool>>> alive_;
  std::vector<std::unique_ptr<Link>> links_;
  std::vector<std::unique_ptr<MessageAuthenticator>> macs_;  // by rank; set by its receiver after the handshake
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Event> events_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> closing_{false};  // shutdown began: no more rejoins
  std::thread rejoiner_;
};

}  // namespace phalanx::core
