// `phalanx launch`: a distributed run, all processes here (-n N) or one process of a run on many machines.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>

#include <boost/dll/runtime_symbol_info.hpp>

#include "cli.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/distributed/distributed.hpp"
#include "phalanx/core/engine.hpp"
#include "phalanx/core/engine/preflight.hpp"
#include "phalanx/core/engine/run_failure.hpp"
#include "phalanx/core/run/memory_guard.hpp"
#include "phalanx/core/run/stop_signal.hpp"

namespace phalanx::cli {

namespace fs = std::filesystem;
using namespace phalanx::core;

namespace {

// -n N: validates here once (a typo is reported by one process instead of N), then starts them all.
int launch_here(const Options& o, Value& root) {
  Registry registry;
  load_plugins(registry, o, &root);
  PipelineSpec spec = resolve_pipeline(root, registry);
  check_plugins(spec, registry);
  preflight(spec, registry, memory_limit(o.max_memory));
  if (spec.workers + 1 != o.processes)
    throw Error("launch -n " + std::to_string(o.processes) + " starts a server and " +
                std::to_string(o.processes - 1) + " workers, but " + o.config + " has workers.count = " +
                std::to_string(spec.workers) + "; use -n " + std::to_string(spec.workers + 1) +
                " or --set workers.count=" + std::to_string(o.processes - 1));
  std::vector<std::string> args{fs::absolute(o.config).string()};
  for (const auto& s : o.overrides) args.insert(args.end(), {"--set", s});
  args.insert(args.end(), {"--out", fs::absolute(o.out.empty() ? "runs/" + spec.name : o.out).string()});
  for (const auto& a : child_args(o)) args.push_back(a);
  if (!o.checkpoint_every.empty()) args.insert(args.end(), {"--checkpoint-every", o.checkpoint_every});
  if (!o.resume.empty()) args.insert(args.end(), {"--resume", fs::absolute(o.resume).string()});
  const auto grace = std::chrono::milliseconds(static_cast<std::int64_t>(1000 * std::max(10.0, 2 * spec.timeout)));
  return launch_local(o.processes, o.port, boost::dll::program_location().string(), args, grace);
}

ClusterSpec cluster_of(const Options& o) {
  ClusterSpec defaults;
  defaults.rank = -1;
  defaults.world_size = -1;
  ClusterSpec cluster = cluster_from_environment(defaults);
  if (o.rank >= 0) cluster.rank = o.rank;
  if (o.world_size >= 0) cluster.world_size = o.world_size;
  if (!o.master_addr.empty()) cluster.master_addr = o.master_addr;
  if (o.master_port >= 0) cluster.master_port = o.master_port;
  cluster.rejoin = o.rejoin;
  if (cluster.rank < 0 || cluster.world_size < 0)
    throw UsageError("launch without -n is one process of a distributed run: give it --rank and --world-size "
                     "(or RANK and WORLD_SIZE, or SLURM_PROCID and SLURM_NTASKS), or use -n N to start all N here");
  if (o.rejoin && cluster.rank == 0)
    throw UsageError("--rejoin is for a restarted worker (rank 1 or more); a server that stopped continues with "
                     "--resume DIR");
  return cluster;
}

int one_process(const Options& o, const Value& root, const RunControl& control) {
  const ClusterSpec cluster = cluster_of(o);
  Registry registry;
  load_plugins(registry, o, &root);
  PipelineSpec spec = resolve_pipeline(root, registry);
  const std::string out = o.out.empty() ? "runs/" + spec.name : o.out;
  const bool server = cluster.rank == 0;
  std::error_code ec;
  if (server) fs::create_directories(out, ec);
  auto logger = make_run_logger(server ? spec.name : spec.name + "/rank" + std::to_string(cluster.rank),
                                server && !ec ? out + "/log.txt" : "", control.resume);
  if (server) install_stop_handlers();
  RunResult r;
  try {
    r = run_reporting_failures([&] { return run_distributed(spec, registry, cluster, server ? out : "", logger, control); },
                               registry, logger.get());
    if (server && r.status == RunStatus::failed) write_failure_summary(out, r.message);
  } catch (const Error& e) {
    if (server) {
      write_failure_summary(out, e.what());
      throw;
    }
    // A worker that lost its server is a failed run, not a usage error.
    // One write: the workers of a launch share the terminal, and pieces of their lines must not interleave.
    std::cerr << "phalanx: error: " + std::string(e.what()) + "\n";
    return kExitRunFailed;
  }
  if (server && r.has_last)
    std::cout << "final: step " << r.last.step << ", test accuracy " << 100 * r.last.test_accuracy << " %, test loss "
              << r.last.test_loss << " (outputs in " << out << ")\n";
  if (r.status != RunStatus::ok) std::cout << r.status << ": " << r.message << "\n";
  if (r.status == RunStatus::interrupted) return 128 + stop_signal();
  return r.status == RunStatus::ok ? 0 : kExitRunFailed;
}

}  // namespace

int cmd_launch(const Options& given) {
  // --resume DIR continues a run from DIR's checkpoint with DIR's config.yaml (docs/distributed.md).
  Options o = given;
  RunControl control;
  if (!o.checkpoint_every.empty()) parse_checkpoint_every(o.checkpoint_every, control);
  if (o.rejoin && o.processes > 0)
    throw UsageError("--rejoin restarts one worker of a running job: give it --rank (or RANK), not -n");
  if (!o.resume.empty()) {
    o.config = o.resume + "/config.yaml";
    o.out = o.resume;
    control.resume = true;
  }
  Value root = load_config(o);
  // Recorded in the run's config.yaml, so `phalanx report` shows real and simulated runs apart.
  apply_override(root, "engine.distributed=true");
  for (const char* key : {"sweep", "seeds", "compare"})
    if (const Value* v = root.find(key))
      throw Error(v->location() + ": a distributed run is one run; remove the '" + key + "' section");
  return o.processes > 0 ? launch_here(o, root) : one_process(o, root, control);
}

}  // namespace phalanx::cli
