// `phalanx sweep CFG [--jobs N] [--shard i/N]`: the grid times the seeds, one forked process per run, then the report.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "cli.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/engine.hpp"
#include "phalanx/core/engine/preflight.hpp"
#include "phalanx/core/engine/threads.hpp"
#include "phalanx/core/experiment/sweep.hpp"
#include "phalanx/core/run/memory_guard.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/core/run/stop_signal.hpp"

namespace phalanx::cli {

namespace fs = std::filesystem;
using namespace phalanx::core;

namespace {

// --shard i/N, else a SLURM job array's task (docs/sweeps.md), else the whole sweep.
std::optional<Shard> shard_of(const Options& o) {
  if (!o.shard.empty()) return parse_shard(o.shard);
  return shard_from_slurm(std::getenv("SLURM_ARRAY_TASK_ID"), std::getenv("SLURM_ARRAY_TASK_COUNT"),
                          std::getenv("SLURM_ARRAY_TASK_MIN"));
}

// The preflight of each run by its label, made before any starts; the forked runs take theirs from here.
using Preflights = std::map<std::string, std::shared_ptr<const MemoryEstimate>>;

// Validates every run before starting any; returns the sweep's name. Runs share the machine: --jobs N of
// them at a time must fit together.
std::string check_runs(const std::vector<SweepRun>& runs, const Registry& registry, const Options& o,
                       Preflights& preflights) {
  std::string name = "sweep";
  const MemoryLimit limit = memory_limit(o.max_memory);
  for (const auto& r : runs) {
    try {
      PipelineSpec spec = resolve_pipeline(r.config, registry);
      refuse_distributed(spec);
      check_plugins(spec, registry);
      preflights[r.label] = std::make_shared<const MemoryEstimate>(preflight(
          spec, registry, {limit.bytes / o.jobs, limit.source + ", shared by --jobs " + std::to_string(o.jobs)}));
      name = spec.name;
    } catch (const Error& e) {
      throw Error("in sweep run '" + r.label + "': " + e.what());
    }
  }
  return name;
}

// sweep.yaml, which `phalanx report` reads; the shards of one sweep write the same text, each through a file
// of its own renamed in place, so none reads half of another's.
void write_sweep_yaml(const std::string& out, const Value& root) {
  const std::string path = out + "/sweep.yaml", tmp = path + ".tmp" + std::to_string(::getpid());
  std::ofstream(tmp) << "# The sweep as run (overrides applied); `phalanx sweep` on it resumes.\n" << to_yaml(root);
  fs::rename(tmp, path);
}

// `phalanx run` of one run, forked from this process: the child has the plugins loaded and the data sets
// the checks above loaded (data_cache.hpp), and its preflight, so a run costs its training and not a process
// start or a second measurement.
RunStarter forked_runs(const Options& o, const std::string& out, std::shared_ptr<const Preflights> preflights) {
  if (!o.checkpoint_every.empty()) {
    RunControl check;
    parse_checkpoint_every(o.checkpoint_every, check);  // refuse a typo before starting runs
  }
  const std::string prefix = out + "/";  // a run's folder is out/<label> (run_sweep)
  return [o, prefix, preflights](const std::string& input, const std::string& dir, bool resume) {
    Options run = o;  // plugin paths, log level, quiet, --checkpoint-every, --max-memory
    if (dir.compare(0, prefix.size(), prefix) == 0) {
      const auto measured = preflights->find(dir.substr(prefix.size()));
      if (measured != preflights->end()) run.preflight_done = measured->second;
    }
    run.command = "run";
    run.overrides.clear();  // applied already: input.yaml is the run's whole config
    run.config = resume ? "" : input;
    run.out = resume ? "" : dir;
    run.resume = resume ? dir : "";
    return fork_run(dir + "/console.txt", [run] { return execute(run); });
  };
}

}  // namespace

int cmd_sweep(const Options& o) {
  // One intra-op thread before any LibTorch work: the runs are forked from this process (fork_run).
  set_compute_threads(1);
  Value root = load_config(o);
  Registry registry;
  load_plugins(registry, o, &root);
  ReportOptions report = report_options_of(root);
  const std::vector<SweepRun> all = expand_sweep(root);
  std::vector<std::string> warnings;
  for (const auto& r : all) warnings.insert(warnings.end(), r.warnings.begin(), r.warnings.end());
  print_config_warnings(warnings);
  const std::optional<Shard> shard = shard_of(o);
  const std::vector<SweepRun> runs = shard ? runs_of_shard(all, *shard) : all;
  auto preflights = std::make_shared<Preflights>();
  const std::string name = check_runs(runs, registry, o, *preflights);
  const std::string out = o.out.empty() ? "runs/" + name : o.out;
  fs::create_directories(out);
  write_sweep_yaml(out, root);
  const std::string slice = shard ? "shard " + std::to_string(shard->index) + "/" + std::to_string(shard->count) : "";
  std::cerr << "sweep: " << runs.size() << " runs" << (shard ? " (" + slice + " of " + std::to_string(all.size()) + ")" : "")
            << " into " << out << ", " << o.jobs << " at a time\n";
  install_stop_handlers();
  const SweepOutcome outcome = run_sweep(runs, out, o.jobs, forked_runs(o, out, preflights), o.quiet);
  if (stop_requested()) {
    std::cerr << "sweep: interrupted; " << outcome.interrupted << " runs were stopped. Run the same command "
              << "again to resume.\n";
    return 128 + stop_signal();
  }
  const std::string counts = std::to_string(outcome.finished) + " finished" +
                             (outcome.diverged ? " (" + std::to_string(outcome.diverged) + " diverged)" : "") + ", " +
                             std::to_string(outcome.skipped) +
                             " already done, " + std::to_string(outcome.failed) + " failed";
  if (shard) {  // the other shards may still run: the report is for when all have ended
    std::cout << "sweep " << slice << ": " << counts << "; when every shard has ended, `phalanx report " << out
              << "` writes the sweep's report\n";
  } else {
    report.plots = o.plots;
    std::cout << write_report(out, report) << "\n";
    std::cout << "sweep: " << counts << "; report in " << out << "/report.html and report.md\n";
  }
  return outcome.failed == 0 ? 0 : kExitRunFailed;
}

}  // namespace phalanx::cli
