#include "phalanx/core/distributed/channel.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

using Clock = std::chrono::steady_clock;
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != 0 || x < 0 || x > 1000000)
    throw Error(std::string("environment variable ") + name + "='" + v + "' is not a non-negative integer");
  return static_cast<int>(x);
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

at::Tensor header_tensor(const Header& h) {
  const auto words = header_words(h);
  at::Tensor t = at::empty({static_cast<std::int64_t>(kHeaderLength)}, at::kLong);
  std::memcpy(t.data_ptr<std::int64_t>(), words.data(), sizeof words);
  return t;
}

Header header_from(const at::Tensor& t) {
  std::array<std::int64_t, kHeaderLength> words{};
  std::memcpy(words.data(), t.data_ptr<std::int64_t>(), sizeof words);
  return header_from_words(words);
}

at::Tensor bytes_tensor(const std::uint8_t* data, std::size_t n) {
  at::Tensor t = at::empty({static_cast<std::int64_t>(n)}, at::kByte);
  std::memcpy(t.data_ptr<std::uint8_t>(), data, n);
  return t;
}

Message handshake_message(MessageKind kind, int sender, const std::vector<at::Tensor>& parts) {
  Message m;
  m.header.kind = kind;
  m.header.sender = sender;
  if (!parts.empty()) {
    m.payload = at::cat(parts);
    m.header.numel = m.payload.numel();
    m.header.dtype = static_cast<std::int64_t>(at::kByte);
  }
  return m;
}

// The `n`-th 32 bytes of a handshake payload, which must hold exactly `parts` of them.
std::optional<std::array<std::uint8_t, 32>> handshake_part(const Message& m, MessageKind kind, int parts, int n) {
  if (m.header.kind != kind || !m.payload.defined() || m.payload.scalar_type() != at::kByte ||
      m.payload.numel() != 32 * parts)
    return std::nullopt;
  std::array<std::uint8_t, 32> out{};
  std::memcpy(out.data(), m.payload.data_ptr<std::uint8_t>() + 32 * n, 32);
  return out;
}

// Only plain numeric dtypes may travel; anything else in a header is a protocol violation.
bool known_dtype(std::int64_t code) {
  switch (static_cast<at::ScalarType>(code)) {
    case at::kByte: case at::kChar: case at::kShort: case at::kInt: case at::kLong:
    case at::kHalf: case at::kFloat: case at::kDouble: case at::kBFloat16: case at::kBool:
      return code >= 0;
    default:
      return false;
  }
}

// `wait` returns false when the work was aborted (shutdown); exceptions (peer gone, timeout) pass through.
template <class Wait>
bool send_with(c10d::ProcessGroup& pg, int to, const Message& m, int tag, Wait&& wait) {
  std::vector<at::Tensor> head{header_tensor(m.header)};
  WorkPtr sending_head = pg.send(head, to, tag);
  if (m.header.numel == 0) return wait(sending_head);
  // Both sends in flight at once: the payload's handshake overlaps the header's.
  std::vector<at::Tensor> body{m.payload.contiguous()};
  WorkPtr sending_body = pg.send(body, to, tag + 1);
  return wait(sending_head) && wait(sending_body);
}

// `max_state_bytes` (when larger) bounds a worker's state message instead of `max_numel`: only a byte
// payload of kind State may be that large, so a gradient still cannot make the server allocate more.
template <class Wait>
std::optional<Message> receive_with(c10d::ProcessGroup& pg, int from, std::int64_t max_numel, int tag,
                                    BufferPool* pool, Wait&& wait, std::int64_t max_state_bytes = 0) {
  std::vector<at::Tensor> head{at::empty({static_cast<std::int64_t>(kHeaderLength)}, at::kLong)};
  if (!wait(pg.recv(head, from, tag))) return std::nullopt;
  Message m;
  m.header = header_from(head[0]);
  if (m.header.magic != kMagic)
    throw Error("rank " + std::to_string(from) + " sent a message that is not a phalanx message (bad magic " +
                std::to_string(m.header.magic) + "); is it running the same phalanx version?");
  if (m.header.kind == MessageKind::State && m.header.dtype == static_cast<std::int64_t>(at::kByte))
    max_numel = std::max(max_numel, max_state_bytes);
  if (m.header.numel < 0 || m.header.numel > max_numel || (m.header.numel > 0 && !known_dtype(m.header.dtype)))
    throw Error("rank " + std::to_string(from) + " announced a payload of " + std::to_string(m.header.numel) +
                " elements of dtype code " + std::to_string(m.header.dtype) + " (at most " +
                std::to_string(max_numel) + " plain numbers accepted); connection dropped");
  if (m.header.numel == 0) return m;
  const auto dtype = static_cast<at::ScalarType>(m.header.dtype);
  std::vector<at::Tensor> body{pool ? pool->take(m.header.numel, dtype)
                                    : at::empty({m.header.numel}, at::TensorOptions().dtype(dtype))};
  if (!wait(pg.recv(body, from, tag + 1))) return std::nullopt;
  m.payload = body[0];
  return m;
}

}  // namespace

std::array<std::int64_t, kHeaderLength> header_words(const Header& h) {
  std::array<std::int64_t, kHeaderLength> a{};
  a[0] = h.magic;
  a[1] = static_cast<std::int64_t>(h.kind);
  a[2] = h.sender;
  a[3] = h.index;
  a[4] = h.seq;
  a[5] = h.numel;
  a[6] = h.dtype;
  a[7] = h.flags;
  std::memcpy(&a[8], &h.loss, sizeof(double));
  a[9] = h.link_seq;
  std::memcpy(&a[10], h.mac.data(), h.mac.size());
  return a;
}

Header header_from_words(const std::array<std::int64_t, kHeaderLength>& a) {
  Header h;
  h.magic = a[0];
  h.kind = static_cast<MessageKind>(a[1]);
  h.sender = a[2];
  h.index = a[3];
  h.seq = a[4];
  h.numel = a[5];
  h.dtype = a[6];
  h.flags = a[7];
  std::memcpy(&h.loss, &a[8], sizeof(double));
  h.link_seq = a[9];
  std::memcpy(h.mac.data(), &a[10], h.mac.size());
  return h;
}

at::Tensor BufferPool::take(std::int64_t numel, at::ScalarType dtype) {
  for (const at::Tensor& t : buffers_)
    if (t.numel() == numel && t.scalar_type() == dtype && t.use_count() == 1 && t.storage().use_count() == 1)
      return t;
  at::Tensor fresh = at::empty({numel}, at::TensorOptions().dtype(dtype));
  if (buffers_.size() < capacity_) buffers_.push_back(fresh);
  return fresh;
}

ClusterSpec cluster_from_environment(ClusterSpec d) {
  d.rank = env_int("RANK", env_int("SLURM_PROCID", d.rank));
  d.world_size = env_int("WORLD_SIZE", env_int("SLURM_NTASKS", d.world_size));
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) d.master_addr = a;
  d.master_port = env_int("MASTER_PORT", d.master_port);
  if (const char* g = std::getenv("PHALANX_GLOO_HOST"); g && *g) d.gloo_host = g;
  return d;
}

struct Cluster::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::vector<c10::intrusive_ptr<c10d::ProcessGroupGloo>> rejoin_groups;  // server: kept while threads use them
  std::mutex rejoin_mutex;  // the store's client is used from the server's rejoin thread only, but be safe
};

namespace {

c10::intrusive_ptr<c10d::ProcessGroupGloo::Options> gloo_options(const ClusterSpec& spec,
                                                                  std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (!spec.gloo_host.empty())
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(spec.gloo_host));
  else if (is_loopback(spec.master_addr))
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  options->threads = 1;  // point-to-point messages run in the caller's thread; collectives are unused
  return options;
}

// The store keys of rank `rank`'s rejoins: a counter, and a prefix per generation for its group's rendezvous.
std::string rejoin_counter(int rank) { return "phalanx/rejoin/" + std::to_string(rank); }
std::string rejoin_prefix(int rank, std::int64_t generation) {
  return rejoin_counter(rank) + "/" + std::to_string(generation);
}

}  // namespace

Cluster::Cluster(const ClusterSpec& spec, std::chrono::milliseconds connect_timeout, AuthSettings auth)
    : spec_(spec), auth_(std::move(auth)), impl_(std::make_unique<Impl>()) {
  if (spec.world_size < 2) throw Error("a distributed run needs at least 2 processes (a server and a worker)");
  if (spec.rank < 0 || spec.rank >= spec.world_size)
    throw Error("RANK " + std::to_string(spec.rank) + " is outside 0.." + std::to_string(spec.world_size - 1));
  if (spec.master_port < 1 || spec.master_port > 65535)
    throw Error("MASTER_PORT " + std::to_string(spec.master_port) + " is not a TCP port");
  const std::string where = spec.master_addr + ":" + std::to_string(spec.master_port);
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(spec.master_port);
    opts.isServer = spec.rank == 0;
    opts.numWorkers = spec.world_size;
    opts.waitWorkers = false;  // the process group's own rendezvous waits, with the same timeout
    opts.timeout = connect_timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(spec.master_addr, opts);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(spec.rank) + ": cannot " +
                (spec.rank == 0 ? "host the rendezvous store on port " + std::to_string(spec.master_port) +
                                      " (is the port in use? choose another MASTER_PORT / --port)"
                                : "reach the rendezvous store at " + where +
                                      " within the timeout (is the server, rank 0, running there?)") +
                ": " + e.what());
  }
  if (spec.rejoin && spec.rank != 0) {
    join_again(connect_timeout);
  } else {
    try {
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, spec.rank, spec.world_size,
                                                                 gloo_options(spec, connect_timeout));
    } catch (const std::exception& e) {
      throw Error("rank " + std::to_string(spec.rank) + ": the " + std::to_string(spec.world_size) +
                  " processes did not all connect through " + where + " within " +
                  std::to_string(connect_timeout.count() / 1000) +
                  " s (start every rank with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT): " + e.what());
    }
  }
  group_ = impl_->group.get();
  links_.resize(spec.world_size);
}

Cluster::~Cluster() = default;

// A restarted worker: asks for a new generation of its rank's rejoin group and forms it with the server
// (rank 0 there too, so send(0)/receive(0) need no change; rank() and size() stay the run's, which the
// handshake binds).
void Cluster::join_again(std::chrono::milliseconds timeout) {
  const std::string me = "rank " + std::to_string(spec_.rank);
  try {
    const std::int64_t generation = impl_->store->add(rejoin_counter(spec_.rank), 1);
    auto store = c10::make_intrusive<c10d::PrefixStore>(rejoin_prefix(spec_.rank, generation), impl_->store);
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, 1, 2, gloo_options(spec_, timeout));
  } catch (const std::exception& e) {
    throw Error(me + ": the server did not take this process back (--rejoin) within " +
                std::to_string(timeout.count() / 1000) + " s: " + e.what() +
                ". A rank rejoins only once the server has noticed that its old process is gone, and only while the "
                "run is going on");
  }
}

std::int64_t Cluster::rejoin_requests(int rank) {
  std::lock_guard<std::mutex> lock(impl_->rejoin_mutex);
  return impl_->store->add(rejoin_counter(rank), 0);
}

c10d::ProcessGroup& Cluster::accept_rejoin(int rank, std::int64_t generation, std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> lock(impl_->rejoin_mutex);
  try {
    auto store = c10::make_intrusive<c10d::PrefixStore>(rejoin_prefix(rank, generation), impl_->store);
    impl_->rejoin_groups.push_back(c10::make_intrusive<c10d::ProcessGroupGloo>(store, 0, 2, gloo_options(spec_, timeout)));
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(rank) + " asked to rejoin but did not connect within " +
                std::to_string(timeout.count() / 1000) + " s: " + e.what());
  }
  return *impl_->rejoin_groups.back();
}

Message Cluster::seal(int to, Message m) {
  if (to >= 0 && to < size() && links_[to]) links_[to]->seal(m);
  return m;
}

void Cluster::send_sealed(int to, const Message& m, std::chrono::milliseconds timeout, int tag) {
  try {
    send_with(*group_, to, m, tag, [&](WorkPtr w) { return w->wait(timeout); });
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("sending to rank " + std::to_string(to) + " failed: " + e.what());
  }
}

void Cluster::send(int to, const Message& m, std::chrono::milliseconds timeout, int tag) {
  send_sealed(to, seal(to, m), timeout, tag);
}

Message Cluster::receive(int from, std::chrono::milliseconds timeout, std::int64_t max_numel, int tag) {
  std::optional<Message> m;
  try {
    m = receive_with(*group_, from, max_numel, tag, nullptr, [&](WorkPtr w) { return w->wait(timeout); });
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("receiving from rank " + std::to_string(from) + " failed: " + e.what());
  }
  if (!m) throw Error("receive from rank " + std::to_string(from) + " was aborted");
  if (from >= 0 && from < size() && links_[from]) {
    const std::string why = links_[from]->verify(*m);
    if (!why.empty()) throw RejectedMessage("a message from rank " + std::to_string(from) + " " + why);
  }
  return std::move(*m);
}

void Cluster::authenticate_with_server(std::chrono::milliseconds timeout, int tag) {
  links_[0].reset();  // a new conversation (the benchmark's repeats) starts unauthenticated
  if (!auth_.enabled) return;
  const std::string me = "rank " + std::to_string(rank());
  const Message challenge = receive(0, timeout, 64, tag);
  if (challenge.header.kind == MessageKind::Params)
    throw Error(me + ": the server runs without authentication (engine.authentication: off) but this process "
                     "has it on; start every process of the run with the same engine.authentication");
  const auto server_nonce = handshake_part(challenge, MessageKind::Challenge, 1, 0);
  if (!server_nonce) throw Error(me + ": the server's first message is not an authentication challenge");
  const Nonce worker_nonce = random_nonce();
  const Digest proof = worker_proof(auth_.key, rank(), size(), *server_nonce, worker_nonce);
  send(0, handshake_message(MessageKind::Response, rank(), {bytes_tensor(worker_nonce.data(), 32),
                                                            bytes_tensor(proof.data(), 32)}),
       timeout, tag);
  const Message answer = receive(0, timeout, 64, tag);
  if (answer.header.kind == MessageKind::Refused)
    throw Error(me + ": the server refused this process: its key (" + auth_.source +
                ") differs from the server's; give every process of the run the same key file");
  const auto server_says = handshake_part(answer, MessageKind::Welcome, 1, 0);
  if (!server_says || !same_digest(*server_says, server_proof(auth_.key, rank(), size(), *server_nonce, worker_nonce)))
    throw Error(me + ": the server could not prove that it holds this process's key (" + auth_.source +
                "); the keys differ, or something else answered on the server's address");
  links_[0] = std::make_unique<MessageAuthenticator>(
      session_key(auth_.key, rank(), size(), *server_nonce, worker_nonce), rank(), 0);
}

// ---------------------------------------------------------------------------------------------------------

struct ServerLinks::Link {
  std::mutex mutex;
  std::condition_variable posted;
  // Params replace a queued Params (a worker behind gets the latest); state messages and Stop queue up.
  std::deque<Message> outbox;
  WorkPtr receiving, sending;  // in flight, so shutdown can abort them
  std::thread receiver, sender;
  std::atomic<bool> sender_done{false}, receiver_done{false};
  bool ready = false;   // the worker passed the handshake (or authentication is off): the sender may start
  std::atomic<bool> closed{false};  // the worker is gone and a rejoin replaces this link: the sender leaves
  c10d::ProcessGroup* group = nullptr;  // the run's mesh, or the worker's rejoin group
  int peer = 0;                         // the worker's rank in `group`
};

namespace {

// Waits for `work`, parked in `slot` under `mutex` meanwhile so that shutdown() can abort it. False when it
// did not finish within `limit` or the links are stopping.
bool wait_abortable(std::mutex& mutex, WorkPtr& slot, const std::atomic<bool>& stopping,
                    std::chrono::milliseconds limit, const WorkPtr& work) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (stopping) {
      work->abort();
      return false;
    }
    slot = work;
  }
  const bool done = work->wait(limit);
  std::lock_guard<std::mutex> lock(mutex);
  slot.reset();
  return done;
}

}  // namespace

ServerLinks::ServerLinks(Cluster& cluster, std::int64_t max_numel, std::chrono::milliseconds silence_limit,
                         std::shared_ptr<spdlog::logger> logger, int tag, std::int64_t max_state_bytes)
    : cluster_(cluster), max_numel_(max_numel), max_state_bytes_(max_state_bytes), silence_limit_(silence_limit),
      logger_(std::move(logger)), tag_(tag) {
  for (int r = 0; r < cluster.size(); ++r) {
    alive_.push_back(std::make_unique<std::atomic<bool>>(r != 0));
    links_.push_back(std::make_unique<Link>());
    pools_.push_back(std::make_unique<BufferPool>());
  }
  macs_.resize(cluster.size());
  for (int r = 1; r < cluster.size(); ++r) {
    links_[r]->group = &cluster.group();
    links_[r]->peer = r;
    start_link(r);
  }
  rejoiner_ = std::thread([this] { rejoin_loop(); });
}

void ServerLinks::start_link(int rank) {
  links_[rank]->receiver = std::thread([this, rank] { receive_loop(rank); });
  links_[rank]->sender = std::thread([this, rank] { send_loop(rank); });
}

void ServerLinks::rejoin_loop() {
  std::vector<std::int64_t> handled(links_.size(), 0);
  while (!closing_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (int r = 1; r < static_cast<int>(links_.size()) && !closing_; ++r) {
      if (alive(r)) continue;  // a request for a live rank waits until its process is gone
      std::int64_t requests = 0;
      try {
        requests = cluster_.rejoin_requests(r);
      } catch (const std::exception& e) {
        if (logger_) logger_->warn("server: cannot read rejoin requests from the store: {}", e.what());
        return;
      }
      if (requests <= handled[r]) continue;
      handled[r] = requests;
      rejoin(r, requests);
    }
  }
}

// The old link's threads end (its worker is gone), then a fresh link on the rejoin group starts with the
// same handshake as the first join; the server loop hears of it as a `rejoined` event.
void ServerLinks::rejoin(int rank, std::int64_t generation) {
  c10d::ProcessGroup* group = nullptr;
  try {
    group = &cluster_.accept_rejoin(rank, generation, std::min(silence_limit_, std::chrono::milliseconds(10000)));
  } catch (const std::exception& e) {
    if (logger_) logger_->warn("server: {}", e.what());
    return;
  }
  Link& link = *links_[rank];
  {
    std::lock_guard<std::mutex> lock(link.mutex);
    link.closed = true;
    if (link.receiving) link.receiving->abort();
    if (link.sending) link.sending->abort();
    link.posted.notify_all();
  }
  for (std::thread* t : {&link.receiver, &link.sender})
    if (t->joinable()) t->join();
  {
    std::lock_guard<std::mutex> lock(link.mutex);
    link.outbox.clear();
    link.ready = false;
    link.closed = false;
    link.sender_done = link.receiver_done = false;
    link.group = group;
    link.peer = 1;
  }
  macs_[rank].reset();
  if (closing_) return;
  alive_[rank]->store(true);  // before the event, so that the server loop's first post reaches the outbox
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Event e;
    e.rank = rank;
    e.rejoined = true;
    events_.push_back(std::move(e));
    ready_.notify_all();
  }
  start_link(rank);
}

ServerLinks::~ServerLinks() { shutdown(std::chrono::milliseconds(0)); }

int ServerLinks::alive_count() const {
  int n = 0;
  for (const auto& a : alive_) n += a->load() ? 1 : 0;
  return n;
}

void ServerLinks::mark_lost(int rank, const std::string& reason) {
  if (!alive_[rank]->exchange(false)) return;
  std::lock_guard<std::mutex> lock(mutex_);
  Event e;
  e.rank = rank;
  e.lost = true;
  e.reason = reason;
  events_.push_back(std::move(e));
  ready_.notify_all();
}

void ServerLinks::push_rejected(int rank, Message m, const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  Event e;
  e.rank = rank;
  e.rejected = why;
  e.message = std::move(m);
  events_.push_back(std::move(e));
  ready_.notify_all();
}

template <class Wait>
std::string ServerLinks::handshake(int rank, Wait& wait) {
  const AuthSettings& auth = cluster_.auth();
  const int world = cluster_.size();
  const Nonce server_nonce = random_nonce();
  Link& link = *links_[rank];
  auto send = [&](MessageKind kind, const Digest& bytes) {
    if (!send_with(*link.group, link.peer, handshake_message(kind, 0, {bytes_tensor(bytes.data(), 32)}), tag_, wait))
      throw Error("aborted");
  };
  send(MessageKind::Challenge, server_nonce);
  std::optional<Message> answer = receive_with(*link.group, link.peer, 64, tag_, nullptr, wait);
  if (!answer) throw Error("aborted");
  const auto worker_nonce = handshake_part(*answer, MessageKind::Response, 2, 0);
  const auto proof = handshake_part(*answer, MessageKind::Response, 2, 1);
  if (!worker_nonce || !proof)
    return "did not answer the authentication challenge (it sent a message of kind " +
           std::to_string(static_cast<std::int64_t>(answer->header.kind)) + "; is it running without a key?)";
  if (!same_digest(*proof, worker_proof(auth.key, rank, world, server_nonce, *worker_nonce))) {
    try {
      send(MessageKind::Refused, Digest{});  // a courtesy, so the process stops at once with a clear message
    } catch (const std::exception&) {
    }
    return "failed authentication: its proof does not match the run's key (an uninvited process, or another key file)";
  }
  send(MessageKind::Welcome, server_proof(auth.key, rank, world, server_nonce, *worker_nonce));
  macs_[rank] = std::make_unique<MessageAuthenticator>(session_key(auth.key, rank, world, server_nonce, *worker_nonce),
                                                       0, rank);
  return "";
}

void ServerLinks::receive_loop(int rank) {
  Link& link = *links_[rank];
  auto wait = [&](WorkPtr w) { return wait_abortable(link.mutex, link.receiving, stopping_, silence_limit_, w); };
  if (cluster_.auth().enabled) {
    std::string refused;
    try {
      refused = handshake(rank, wait);
    } catch (const std::exception& e) {
      refused = std::string("failed the authentication handshake: ") + e.what();
    }
    if (!refused.empty()) {
      if (!stopping_) {
        push_rejected(rank, Message{}, refused);
        mark_lost(rank, "refused: it " + refused);
      }
      link.receiver_done = true;
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(link.mutex);
    link.ready = true;
    link.posted.notify_all();
  }
  while (!stopping_ && !link.closed) {
    try {
      std::optional<Message> m = receive_with(*link.group, link.peer, max_numel_, tag_, pools_[rank].get(), wait,
                                              max_state_bytes_);
      if (!m) break;
      if (macs_[rank]) {
        const std::string why = macs_[rank]->verify(*m);
        if (!why.empty()) {
          push_rejected(rank, std::move(*m), why);
          continue;
        }
      }
      std::lock_guard<std::mutex> lock(mutex_);
      Event e;
      e.rank = rank;
      e.message = std::move(*m);
      events_.push_back(std::move(e));
      ready_.notify_all();
    } catch (const std::exception& e) {
      if (!stopping_ && !link.closed) mark_lost(rank, e.what());
      break;
    }
  }
  link.receiver_done = true;
}

void ServerLinks::send_loop(int rank) {
  Link& link = *links_[rank];
  auto wait = [&](WorkPtr w) { return wait_abortable(link.mutex, link.sending, stopping_, silence_limit_, w); };
  for (;;) {
    Message m;
    {
      std::unique_lock<std::mutex> lock(link.mutex);
      link.posted.wait(lock, [&] { return stopping_ || link.closed || (link.ready && !link.outbox.empty()); });
      if (stopping_ || link.closed) break;
      m = std::move(link.outbox.front());
      link.outbox.pop_front();
    }
    if (macs_[rank]) macs_[rank]->seal(m);
    try {
      if (!send_with(*link.group, link.peer, m, tag_, wait)) break;
    } catch (const std::exception& e) {
      if (!stopping_ && !link.closed) mark_lost(rank, e.what());
      break;
    }
    if (m.header.kind == MessageKind::Stop) break;
  }
  link.sender_done = true;
}

std::optional<ServerLinks::Event> ServerLinks::next(std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!ready_.wait_for(lock, wait, [&] { return !events_.empty(); })) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

void ServerLinks::post(int rank, Message m) {
  if (stopping_ || rank < 1 || rank >= static_cast<int>(links_.size()) || !alive(rank)) return;
  Link& link = *links_[rank];
  std::lock_guard<std::mutex> lock(link.mutex);
  const MessageKind kind = m.header.kind;
  if (kind == MessageKind::Stop) link.outbox.clear();
  else if (kind == MessageKind::Params && !link.outbox.empty() && link.outbox.back().header.kind == MessageKind::Params)
    link.outbox.pop_back();
  link.outbox.push_back(std::move(m));
  link.posted.notify_all();
}

void ServerLinks::shutdown(std::chrono::milliseconds grace) {
  closing_ = true;
  if (rejoiner_.joinable()) rejoiner_.join();
  if (links_.empty()) return;
  if (!stopping_) {
    Message stop;
    stop.header.kind = MessageKind::Stop;
    for (int r = 1; r < static_cast<int>(links_.size()); ++r) post(r, stop);
    // Workers leave once they read Stop; give them `grace` to finish the gradient in progress.
    const auto deadline = Clock::now() + grace;
    auto all_sent = [&] {
      for (int r = 1; r < static_cast<int>(links_.size()); ++r)
        if (alive(r) && !links_[r]->sender_done) return false;
      return true;
    };
    while (Clock::now() < deadline && !all_sent()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stopping_ = true;
  for (int r = 1; r < static_cast<int>(links_.size()); ++r) {
    Link& link = *links_[r];
    std::lock_guard<std::mutex> lock(link.mutex);
    if (link.receiving) link.receiving->abort();
    if (link.sending) link.sending->abort();
    link.posted.notify_all();
  }
  // An aborted Gloo wait returns at once; should one not (a transport stuck in a system call), detach the
  // thread and keep its Link alive rather than block the server's exit.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  bool all_done = false;
  while (!all_done && Clock::now() < deadline) {
    all_done = true;
    for (int r = 1; r < static_cast<int>(links_.size()); ++r)
      all_done = all_done && links_[r]->sender_done && links_[r]->receiver_done;
    if (!all_done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (int r = 1; r < static_cast<int>(links_.size()); ++r) {
    Link& link = *links_[r];
    for (std::thread* t : {&link.receiver, &link.sender}) {
      if (!t->joinable()) continue;
      if (all_done) t->join();
      else t->detach();
    }
  }
  if (!all_done) {
    if (logger_) logger_->warn("distributed: some network threads did not stop; leaving them to process exit");
    for (auto& l : links_) l.release();  // deliberately leaked: detached threads still use them
    for (auto& p : pools_) p.release();
  }
  links_.clear();
}

}  // namespace phalanx::core
