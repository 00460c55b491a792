// Asynchronous update throughput of the distributed server beside raw Gloo send/recv, measured in the same
// run on 127.0.0.1: one server and W workers exchanging messages of d float32.
//
//   raw:    the server takes a bare [d] tensor with recvAnysource and sends a [d] tensor back to its sender,
//           nothing else: the most a Gloo point-to-point loop can do.
//   server: what AsyncServer does per arrival: ServerLinks (receiver/sender threads per worker, framed
//           header + payload), check_gradient_message (size, dtype, index, finiteness), the optimizer
//           plugin's apply, and a reply carrying a snapshot of the parameters; engine.authentication off.
//   mac:    the same with authentication on: the handshake, then an HMAC-SHA256 sealed by the sender and
//           verified by the receiver on every message, both ways (docs/distributed.md, "Authentication").
// Workers send a precomputed gradient, so only the server and the wire are measured. The phases alternate
// `--repeats` times; the median of each is reported. Not run by ctest (see docs/BENCHMARKS.md).
//
//   phalanx_bench_distributed [--d 1000000] [--workers 4] [--updates 2000] [--repeats 3] [--optimizer sgd]
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <boost/dll/runtime_symbol_info.hpp>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/distributed/distributed.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/error.hpp"
#include "../free_port.hpp"

using namespace phalanx;
using namespace phalanx::core;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::int64_t d = 1000000;
  int workers = 4;
  std::int64_t updates = 2000;
  int repeats = 3;
  std::string optimizer = "sgd";
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--d") a.d = std::stoll(v);
    else if (k == "--workers") a.workers = std::stoi(v);
    else if (k == "--updates") a.updates = std::stoll(v);
    else if (k == "--repeats") a.repeats = std::stoi(v);
    else if (k == "--optimizer") a.optimizer = v;
    else throw Error("unknown option " + k);
  }
  return a;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Phase 1: bare Gloo. Returns the server's exchanges per second (0 on workers).
double raw_phase(Cluster& cluster, const Args& a) {
  c10d::ProcessGroup& pg = cluster.group();
  const std::int64_t per_worker = a.updates / a.workers;
  std::vector<at::Tensor> buf{at::randn({a.d})};
  const auto t0 = Clock::now();
  if (cluster.rank() == 0) {
    for (std::int64_t i = 0; i < per_worker * a.workers; ++i) {
      auto w = pg.recvAnysource(buf, 2);
      w->wait();
      const int src = w->sourceRank();
      pg.send(buf, src, 3)->wait();
    }
    return static_cast<double>(per_worker * a.workers) / seconds_since(t0);
  }
  for (std::int64_t i = 0; i < per_worker; ++i) {
    pg.send(buf, 0, 2)->wait();
    pg.recv(buf, 0, 3)->wait();
  }
  return 0;
}

// Phase 2: the distributed server's per-arrival work. Returns updates per second (0 on workers).
double server_phase(Cluster& cluster, const Args& a, EnginePlugins& plugins, int tag) {
  const std::int64_t total = (a.updates / a.workers) * a.workers;
  if (cluster.rank() != 0) {
    cluster.authenticate_with_server(std::chrono::seconds(60), tag);
    Message g;
    g.header.kind = MessageKind::Gradient;
    g.header.sender = cluster.rank();
    g.header.numel = a.d;
    g.header.dtype = static_cast<std::int64_t>(at::kFloat);
    g.payload = at::randn({a.d}).mul_(1e-3);
    for (;;) {
      Message p = cluster.receive(0, std::chrono::seconds(60), a.d, tag);
      if (p.header.kind == MessageKind::Challenge) throw Error("handshake expected before the first message");
      if (p.header.kind == MessageKind::Stop) return 0;
      g.header.index = p.header.index;
      ++g.header.seq;
      cluster.send(0, g, std::chrono::seconds(60), tag);
    }
  }
  ServerLinks links(cluster, 2 * a.d + 1024, std::chrono::seconds(60), nullptr, tag);
  at::Tensor params = at::zeros({a.d});
  std::vector<std::int64_t> pulled(a.workers + 1, 0);
  BufferPool snapshots(2 * a.workers + 4);
  std::int64_t updates = 0, seq = 0;
  auto current = [&] {
    const std::int64_t own = plugins.optimizer->iteration();
    return own >= 0 ? own : updates;
  };
  const auto t0 = Clock::now();
  for (int r = 1; r <= a.workers; ++r) links.post(r, params_message(0, seq++, params, &snapshots));
  while (updates < total) {
    auto e = links.next(std::chrono::seconds(1));
    if (!e) continue;
    if (e->lost) throw Error("worker rank " + std::to_string(e->rank) + " lost: " + e->reason);
    const int rank = e->rank;
    const std::string why = check_gradient_message(e->message, rank, a.d, pulled[rank], current(), false);
    if (!why.empty()) throw Error("message refused: " + why);
    Arrival arrival{rank - 1, pulled[rank], current(), 0.0};
    plugins.optimizer->apply(params, e->message.payload, arrival, 0.01);
    ++updates;
    pulled[rank] = current();
    links.post(rank, params_message(pulled[rank], seq++, plugins.optimizer->params_for_worker(params, rank - 1),
                                    &snapshots));
  }
  const double rate = static_cast<double>(updates) / seconds_since(t0);
  links.shutdown(std::chrono::seconds(10));
  return rate;
}

int role(const Args& a) {
  ClusterSpec spec = cluster_from_environment({});
  Cluster cluster(spec, std::chrono::seconds(60));
  Registry registry;
  for (const auto& dir : plugin_search_path({PHALANX_BUILTIN_PLUGIN_DIR})) registry.load_directory(dir);
  Value root = parse_yaml("name: bench\ndata: synthetic\nmodel: logreg\nworkers: {count: " +
                              std::to_string(a.workers) + "}\nengine: async\noptimizer: " + a.optimizer + "\n",
                          "bench.yaml");
  PipelineSpec pipeline = resolve_pipeline(root, registry);
  RunInfo info = run_info(pipeline, "");
  info.dimension = a.d;
  info.total_steps = a.updates;
  AuthSettings with_mac;
  with_mac.enabled = true;
  with_mac.key = "the benchmark's shared key, 32 b";
  with_mac.source = "(benchmark)";
  std::vector<double> raw, server, mac;
  for (int i = 0; i < a.repeats; ++i) {
    cluster.group().barrier()->wait();
    raw.push_back(raw_phase(cluster, a));
    for (bool authenticated : {false, true}) {
      cluster.group().barrier()->wait();
      cluster.set_auth(authenticated ? with_mac : AuthSettings{});
      EnginePlugins plugins = make_plugins(pipeline, registry, info, nullptr);
      // Each phase talks on its own tags: the receives the previous one aborted are still posted.
      (authenticated ? mac : server).push_back(server_phase(cluster, a, plugins, 10 + 4 * i + (authenticated ? 2 : 0)));
    }
  }
  if (cluster.rank() != 0) return 0;
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double r = median(raw), s = median(server), m = median(mac);
  const double mb = 4.0 * static_cast<double>(a.d) / 1e6;
  std::cout << "d = " << a.d << " float32 (" << mb << " MB per message), " << a.workers
            << " workers, 127.0.0.1, optimizer " << a.optimizer << ", " << a.updates << " updates x " << a.repeats
            << " repeats (median)\n";
  std::cout << "raw Gloo recvAnysource + reply: " << r << " exchanges/s (" << 2 * r * mb / 1000 << " GB/s)   runs:";
  for (double x : raw) std::cout << " " << x;
  std::cout << "\nserver loop (async):            " << s << " updates/s   (" << 2 * s * mb / 1000 << " GB/s)   runs:";
  for (double x : server) std::cout << " " << x;
  std::cout << "\nserver loop, MACs on:           " << m << " updates/s   (" << 2 * m * mb / 1000 << " GB/s)   runs:";
  for (double x : mac) std::cout << " " << x;
  std::cout << "\nserver loop / raw:              " << 100 * s / r << " %\n";
  std::cout << "MACs on / off:                  " << 100 * m / s << " %\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (std::getenv("RANK")) return role(a);
    const int port = test::free_port();
    std::vector<pid_t> pids;
    for (int r = 0; r <= a.workers; ++r) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::setenv("RANK", std::to_string(r).c_str(), 1);
        ::setenv("WORLD_SIZE", std::to_string(a.workers + 1).c_str(), 1);
        ::setenv("MASTER_ADDR", "127.0.0.1", 1);
        ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
        ::execv(boost::dll::program_location().string().c_str(), argv);
        std::_Exit(127);
      }
      pids.push_back(pid);
    }
    int failed = 0;
    for (pid_t pid : pids) {
      int st = 0;
      ::waitpid(pid, &st, 0);
      failed += (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : 1;
    }
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "phalanx_bench_distributed: " << e.what() << "\n";
    return 1;
  }
}
