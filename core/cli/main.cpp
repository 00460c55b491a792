// phalanx: the command line. Each command is a small function; errors become one clear message and a
// non-zero exit code, the same for run, sweep and launch (docs/reliability.md, "Exit codes"): 0 every run
// ended ok, 2 bad input (usage, config, data, plugins, a run that does not fit in memory), 3 a run that
// failed or diverged, 128 + n a run stopped by signal n.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "phalanx/abi.hpp"
#include "phalanx/core/experiment/compare.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/core_params.hpp"
#include "phalanx/core/distributed/distributed.hpp"
#include "phalanx/core/run/memory_guard.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine/preflight.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/config/check_plugin_command.hpp"
#include "phalanx/core/engine/run_failure.hpp"
#include "phalanx/core/experiment/report.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/core/run/stop_signal.hpp"
#include "phalanx/core/experiment/sweep.hpp"
#include "phalanx/core/engine.hpp"

#include <boost/dll/runtime_symbol_info.hpp>
#include "phalanx/error.hpp"

namespace fs = std::filesystem;
using namespace phalanx;
using namespace phalanx::core;

namespace {

constexpr const char* kUsage = R"(phalanx: distributed learning that stays correct with slow or Byzantine workers

Usage:
  phalanx run CFG [--set key=value]... [--out DIR] [--plugin-path DIR] [--checkpoint-every N|sim:T]
      Run the pipeline in CFG (every variant of its `compare` section, side by side).
      Outputs go to DIR (default runs/<name>): metrics.jsonl, metrics.csv, config.yaml, summary.json, log.txt.
      --checkpoint-every saves DIR/checkpoint.pt every N steps (or T units of simulated time); Ctrl-C or
      SIGTERM finishes the step, saves one and exits with 130 or 143.
  phalanx run --resume DIR [--checkpoint-every N|sim:T] [--plugin-path DIR]
      Continue the run in DIR from its checkpoint; its metrics are bit for bit those of an uninterrupted run.
  phalanx sweep CFG [--jobs N] [--set key=value]... [--out DIR] [--plugin-path DIR] [--checkpoint-every ...]
      Run the grid in CFG's `sweep` section times its `seeds`, N runs at a time, one folder and one
      process per run; finished runs are skipped and interrupted ones resume from their checkpoints, so
      an interrupted sweep resumes. Then writes the report.
  phalanx report DIR [--best KEY]... [--no-plots]
      Tables (mean +/- std over seeds; best value of KEY per cell; aggregators x attacks ranked by worst
      case) and plots of the runs below DIR: DIR/report.md and the self-contained DIR/report.html.
  phalanx validate CFG [--set key=value]... [--plugin-path DIR] [--max-memory SIZE]
      Check CFG and every plugin parameter without training, and print what each run will hold in memory
      (the preflight: it loads the data, builds the model and measures one step of every plugin).
  phalanx launch -n N CFG [--port P] [--set key=value]... [--out DIR] [--plugin-path DIR]
      Run CFG as a distributed run on this machine: a parameter server and N-1 worker processes on
      LibTorch c10d/Gloo (N = workers.count + 1). Ctrl-C stops every process and leaves a checkpoint.
  phalanx launch -n N --resume DIR [--checkpoint-every N]
      Continue the sync run in DIR from its checkpoint (written on Ctrl-C/SIGTERM or every N rounds).
  phalanx launch CFG [--rank R --world-size N --master-addr HOST --master-port P] [--set ...] [--out DIR]
      Be one process of a distributed run on many machines (rank 0: the server). Without flags, RANK,
      WORLD_SIZE, MASTER_ADDR, MASTER_PORT (or SLURM_PROCID, SLURM_NTASKS) are read. See docs/distributed.md.
  phalanx plugins [KIND]
      List plugins (data, model, optimizer, aggregator, preaggregator, attack) with their parameters;
      `phalanx plugins core` lists the core's own config keys the same way.
  phalanx check-plugin LIB [--expect NAME=PROMISE[,PROMISE]]... [--params NAME={key: value}]...
      Run the conformance properties on every plugin in the library LIB (docs/plugins.md); exit 0 when all pass.
  phalanx --version

run, sweep, launch and validate refuse a run that would not fit in the memory available, or in
--max-memory SIZE (512M, 8G, 1.5GiB). Exit codes: 0 ok, 2 bad input (usage, config, data, plugins, memory),
3 a run failed or diverged, 128 + n stopped by signal n.

Plugins are loaded from <prefix>/lib/phalanx/plugins, then PHALANX_PLUGIN_PATH (colon-separated folders),
then --plugin-path and the config's plugins.paths.
)";

struct Options {
  std::string command;
  std::string config;
  std::string kind;
  std::string out;
  std::vector<std::string> overrides;
  std::vector<std::string> plugin_paths;
  std::vector<std::string> best;
  int jobs = 1;
  bool plots = true;
  // launch
  int processes = 0;
  int port = 0;
  int rank = -1, world_size = -1, master_port = -1;
  std::string master_addr;
  // run / sweep checkpoints
  std::string resume;
  std::string checkpoint_every;
  std::string max_memory;  // --max-memory: the preflight's limit instead of the memory available
};

struct UsageError : Error {
  using Error::Error;
};

constexpr int kExitBadInput = 2;
constexpr int kExitRunFailed = 3;

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) throw UsageError("no command given");
  o.command = args[0];
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= args.size()) throw UsageError(flag + " needs a value");
      return args[++i];
    };
    if (a == "--set") o.overrides.push_back(value(a));
    else if (a.rfind("--set=", 0) == 0) o.overrides.push_back(a.substr(6));
    else if (a == "--out") o.out = value(a);
    else if (a.rfind("--out=", 0) == 0) o.out = a.substr(6);
    else if (a == "--plugin-path") o.plugin_paths.push_back(value(a));
    else if (a == "--best") o.best.push_back(value(a));
    else if (a == "--no-plots") o.plots = false;
    else if (a == "-n" || a == "--port" || a == "--rank" || a == "--world-size" || a == "--master-port") {
      const std::string v = value(a);
      int x = -1;
      try {
        x = std::stoi(v);
      } catch (const std::exception&) {
      }
      if (x < 0 || x > 65535) throw UsageError(a + " expects a number, got '" + v + "'");
      (a == "-n" ? o.processes : a == "--port" ? o.port : a == "--rank" ? o.rank
                                                 : a == "--world-size" ? o.world_size : o.master_port) = x;
    }
    else if (a == "--master-addr") o.master_addr = value(a);
    else if (a == "--resume") o.resume = value(a);
    else if (a == "--checkpoint-every") o.checkpoint_every = value(a);
    else if (a == "--max-memory") o.max_memory = value(a);
    else if (a == "--jobs" || a == "-j") {
      const std::string v = value(a);
      try {
        o.jobs = std::stoi(v);
      } catch (const std::exception&) {
        o.jobs = 0;
      }
      if (o.jobs < 1 || o.jobs > 256) throw UsageError("--jobs expects a number from 1 to 256, got '" + v + "'");
    }
    else if (a.rfind("--", 0) == 0) throw UsageError("unknown option '" + a + "'");
    else if (o.command == "plugins" && o.kind.empty()) o.kind = a;
    else if (o.config.empty() && o.command != "plugins") o.config = a;
    else throw UsageError("unexpected argument '" + a + "'");
  }
  return o;
}

// A PHALANX_PLUGIN_PATH entry that is not a folder is most likely a typo; say so (once per process) rather
// than let it surface later as "unknown aggregator".
void warn_about_missing_env_plugin_dirs() {
  static bool warned = false;
  const char* env = std::getenv("PHALANX_PLUGIN_PATH");
  if (warned || !env) return;
  warned = true;
  std::stringstream in(env);
  for (std::string item; std::getline(in, item, ':');) {
    std::error_code ec;
    if (!item.empty() && !fs::is_directory(item, ec))
      std::cerr << "phalanx: warning: PHALANX_PLUGIN_PATH names '" + item + "', which is not a folder; it is "
                   "ignored (fix or remove the entry)\n";
  }
}

void load_plugins(Registry& registry, const Options& o, const Value* config) {
  warn_about_missing_env_plugin_dirs();
  std::vector<std::string> extra = o.plugin_paths;
  if (config) {
    auto from_config = config_plugin_paths(*config);
    extra.insert(extra.end(), from_config.begin(), from_config.end());
  }
  for (const auto& dir : plugin_search_path(extra)) registry.load_directory(dir);
  if (registry.loaded_files().empty())
    throw Error("no plugin libraries found; looked in: " + [&] {
      std::string s;
      for (const auto& d : plugin_search_path(extra)) s += "\n  " + d;
      return s;
    }() + "\nIs phalanx installed (cmake --install), or is PHALANX_PLUGIN_PATH set?");
}

Value load_config(const Options& o) {
  if (o.config.empty()) throw UsageError("'" + o.command + "' needs a config file");
  Value root = load_yaml_file(o.config);
  for (const auto& assignment : o.overrides) apply_override(root, assignment);
  return root;
}

int cmd_plugins(const Options& o) {
  if (o.kind == "core") return print_core_params(std::cout);
  Registry registry;
  load_plugins(registry, o, nullptr);
  std::vector<Kind> kinds = all_kinds();
  if (!o.kind.empty()) {
    Kind k;
    if (!kind_from_name(o.kind, k)) throw UsageError("unknown plugin kind '" + o.kind + "'");
    kinds = {k};
  }
  for (Kind k : kinds) {
    std::cout << kind_name(k) << (k == Kind::Data ? "" : "s") << ":\n";
    for (const PluginEntry* e : registry.list(k)) {
      std::cout << "  " << e->info.name << "  -  " << e->info.summary << "\n";
      for (const auto& p : e->info.params) {
        std::cout << "      " << p.name << " (" << param_type_name(p.type) << ", default "
                  << (p.default_value.is_null() ? std::string("auto") : p.default_value.to_string()) << ")";
        if (p.min || p.max)
          std::cout << " in [" << (p.min ? Value(*p.min).to_string() : "-inf") << ", "
                    << (p.max ? Value(*p.max).to_string() : "inf") << "]";
        if (!p.choices.empty()) {
          std::cout << " one of";
          for (const auto& c : p.choices) std::cout << " " << c;
        }
        std::cout << ": " << p.help << "\n";
      }
    }
  }
  return 0;
}

ReportOptions report_options_of(const Value& root);

void refuse_distributed(const PipelineSpec& spec) {
  if (spec.distributed)
    throw Error(spec.source + ": engine.distributed is true: this is the config of a distributed run; start it "
                "with `phalanx launch -n " + std::to_string(spec.workers + 1) + "`, or simulate it with "
                "--set engine.distributed=false");
}

int cmd_validate(const Options& o) {
  Value root = load_config(o);
  Registry registry;
  load_plugins(registry, o, &root);
  report_options_of(root);
  const auto runs = expand_sweep(root);  // every compare variant, sweep cell and seed
  const MemoryLimit limit = memory_limit(o.max_memory);
  PreflightCache cache;
  for (const auto& r : runs) {
    try {
      PipelineSpec spec = resolve_pipeline(r.config, registry);
      check_plugins(spec, registry);
      const MemoryEstimate estimate = preflight(spec, registry, limit, &cache);
      std::cout << (runs.size() == 1 ? "" : "run '" + r.label + "': ") << estimate.describe(limit) << "\n";
    } catch (const Error& e) {
      throw Error(runs.size() == 1 ? std::string(e.what()) : "in run '" + r.label + "': " + e.what());
    }
  }
  std::cout << o.config << ": OK (" << runs.size() << (runs.size() == 1 ? " run" : " runs") << ")\n";
  return 0;
}

std::vector<std::string> child_args(const Options& o) {
  std::vector<std::string> args;
  for (const auto& p : o.plugin_paths) args.insert(args.end(), {"--plugin-path", fs::absolute(p).string()});
  return args;
}

// The config's `report` section (keys: docs/configs.md).
ReportOptions report_options_of(const Value& root) {
  const Value* report = root.find("report");
  return report ? report_options_from(*report) : ReportOptions{};
}

int cmd_sweep(const Options& o) {
  Value root = load_config(o);
  Registry registry;
  load_plugins(registry, o, &root);
  ReportOptions report = report_options_of(root);
  std::vector<SweepRun> runs = expand_sweep(root);
  std::string name = "sweep";
  const MemoryLimit limit = memory_limit(o.max_memory);
  PreflightCache cache;
  for (const auto& r : runs) {  // validate every run before starting any
    try {
      PipelineSpec spec = resolve_pipeline(r.config, registry);
      refuse_distributed(spec);
      check_plugins(spec, registry);
      // Runs share the machine: --jobs N of them at a time must fit together.
      preflight(spec, registry, {limit.bytes / o.jobs, limit.source + ", shared by --jobs " + std::to_string(o.jobs)},
                &cache);
      name = spec.name;
    } catch (const Error& e) {
      throw Error("in sweep run '" + r.label + "': " + e.what());
    }
  }
  const std::string out = o.out.empty() ? "runs/" + name : o.out;
  fs::create_directories(out);
  std::ofstream(out + "/sweep.yaml") << "# The sweep as run (overrides applied); `phalanx sweep` on it resumes.\n"
                                     << to_yaml(root);
  std::cerr << "sweep: " << runs.size() << " runs into " << out << ", " << o.jobs << " at a time\n";
  std::vector<std::string> args = child_args(o);
  if (!o.checkpoint_every.empty()) {
    RunControl check;
    parse_checkpoint_every(o.checkpoint_every, check);  // refuse a typo before starting runs
    args.insert(args.end(), {"--checkpoint-every", o.checkpoint_every});
  }
  if (!o.max_memory.empty()) args.insert(args.end(), {"--max-memory", o.max_memory});
  install_stop_handlers();
  SweepOutcome outcome = run_sweep(runs, out, o.jobs, boost::dll::program_location().string(), args);
  if (stop_requested()) {
    std::cerr << "sweep: interrupted; " << outcome.interrupted << " runs were stopped. Run the same command "
              << "again to resume.\n";
    return 128 + stop_signal();
  }
  report.plots = o.plots;
  std::cout << write_report(out, report) << "\n";
  std::cout << "sweep: " << outcome.finished << " finished, " << outcome.skipped << " already done, " << outcome.failed
            << " failed; report in " << out << "/report.html and report.md\n";
  return outcome.failed == 0 ? 0 : kExitRunFailed;
}

int cmd_report(const Options& o) {
  if (o.config.empty()) throw UsageError("'report' needs a folder of runs");
  ReportOptions report;
  if (fs::exists(o.config + "/sweep.yaml")) report = report_options_of(load_yaml_file(o.config + "/sweep.yaml"));
  if (!o.best.empty()) report.best_over = o.best;
  report.plots = o.plots;
  std::cout << write_report(o.config, report);
  return 0;
}

// Prints how a single run ended; the exit code: 0 ok, 3 failed or diverged, 128 + signal when stopped by one.
int report_run(const RunResult& r, const std::string& out) {
  if (r.has_last)
    std::cout << "final: step " << r.last.step << ", test accuracy " << 100 * r.last.test_accuracy
              << " %, test loss " << r.last.test_loss << " (outputs in " << out << ")\n";
  if (r.status != RunStatus::ok) std::cout << r.status << ": " << r.message << "\n";
  if (r.status == RunStatus::interrupted) return 128 + stop_signal();
  return r.status == RunStatus::ok ? 0 : kExitRunFailed;
}

// A run whose LibTorch error became status "failed" (run_failure.hpp) has no summary.json from its engine.
RunResult run_one(const PipelineSpec& spec, const Registry& registry, const std::string& dir,
                  std::shared_ptr<spdlog::logger> logger, const RunControl& control) {
  RunResult r = run_reporting_failures([&] { return run_pipeline(spec, registry, dir, logger, control); }, registry,
                                       logger.get());
  if (r.status == RunStatus::failed) write_failure_summary(dir, r.message);
  return r;
}

int cmd_launch(const Options& given) {
  // --resume DIR continues a sync run from DIR's checkpoint with DIR's config.yaml (docs/distributed.md).
  Options o = given;
  RunControl control;
  if (!o.checkpoint_every.empty()) parse_checkpoint_every(o.checkpoint_every, control);
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
  if (o.processes > 0) {
    // Validate here once, so a typo is reported by one process instead of N.
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
  ClusterSpec defaults;
  defaults.rank = -1;
  defaults.world_size = -1;
  ClusterSpec cluster = cluster_from_environment(defaults);
  if (o.rank >= 0) cluster.rank = o.rank;
  if (o.world_size >= 0) cluster.world_size = o.world_size;
  if (!o.master_addr.empty()) cluster.master_addr = o.master_addr;
  if (o.master_port >= 0) cluster.master_port = o.master_port;
  if (cluster.rank < 0 || cluster.world_size < 0)
    throw UsageError("launch without -n is one process of a distributed run: give it --rank and --world-size "
                     "(or RANK and WORLD_SIZE, or SLURM_PROCID and SLURM_NTASKS), or use -n N to start all N here");
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

// The preflight's estimate, and after the run the measured peak, in log.txt (`phalanx validate` prints the
// estimate's items); the byte counts are for docs/reliability.md's accuracy table and tests/core/preflight_test.cpp.
void log_estimate(spdlog::logger& logger, const MemoryEstimate& estimate, const MemoryLimit& limit) {
  logger.info("memory: the preflight estimates {} at the peak ({}); the process holds {} before the run "
              "(estimate_bytes={} start_rss_bytes={})",
              format_bytes(estimate.peak()), limit.source, format_bytes(static_cast<double>(resident_memory())),
              static_cast<std::int64_t>(estimate.peak()), resident_memory());
}

void log_peak_memory(spdlog::logger& logger) {
  logger.info("memory: peak resident {} (peak_rss_bytes={})", format_bytes(static_cast<double>(peak_resident_memory())),
              peak_resident_memory());
}

// Continues the run in o.resume from its checkpoint, with the config.yaml it wrote when it started.
int cmd_resume(const Options& o, RunControl control) {
  if (!o.config.empty() || !o.overrides.empty() || !o.out.empty())
    throw UsageError("run --resume DIR continues DIR with its own config.yaml; it takes no config, --set or --out");
  const std::string dir = o.resume, config = dir + "/config.yaml";
  if (!fs::is_directory(dir)) throw Error("cannot resume '" + dir + "': no such run folder");
  if (!fs::exists(config)) throw Error("cannot resume '" + dir + "': it has no config.yaml, so it is not a run folder");
  const std::optional<RunStatus> status = read_summary_status(dir);
  if (status == RunStatus::ok || status == RunStatus::diverged)
    throw Error("cannot resume '" + dir + "': the run already ended (status " + to_string(*status) +
                " in summary.json)");
  Value root = load_yaml_file(config);
  Registry registry;
  load_plugins(registry, o, &root);
  PipelineSpec spec = resolve_pipeline(root, registry);
  refuse_distributed(spec);
  const MemoryLimit limit = memory_limit(o.max_memory);
  const MemoryEstimate estimate = preflight(spec, registry, limit);
  control.resume = true;
  auto logger = make_run_logger(spec.name, dir + "/log.txt", /*append=*/true);
  log_estimate(*logger, estimate, limit);
  RunResult r;
  try {
    r = run_one(spec, registry, dir, logger, control);
    log_peak_memory(*logger);
  } catch (const Error& e) {
    // The checkpoint stays: a damaged or foreign one is the user's to replace, not a finished run.
    write_failure_summary(dir, e.what());
    throw;
  }
  return report_run(r, dir);
}

int cmd_run(const Options& o) {
  RunControl control;
  if (!o.checkpoint_every.empty()) parse_checkpoint_every(o.checkpoint_every, control);
  install_stop_handlers();
  if (!o.resume.empty()) return cmd_resume(o, control);
  Value root = load_config(o);
  for (const char* key : {"sweep", "seeds"})
    if (const Value* v = root.find(key))
      throw Error(v->location() + ": this config has a '" + key + "' section: run it with `phalanx sweep " + o.config +
                  " [--jobs N]`");
  Registry registry;
  load_plugins(registry, o, &root);
  PipelineSpec base = resolve_pipeline(root, registry);
  auto variants = expand_variants(root);
  // Validate every variant before running any, so a typo in the last one is found in seconds.
  std::vector<PipelineSpec> specs;
  std::vector<MemoryEstimate> estimates;
  const MemoryLimit limit = memory_limit(o.max_memory);
  PreflightCache cache;
  for (const auto& v : variants) {
    try {
      specs.push_back(resolve_pipeline(v.config, registry));
      refuse_distributed(specs.back());
      check_plugins(specs.back(), registry);
      estimates.push_back(preflight(specs.back(), registry, limit, &cache));
    } catch (const Error& e) {
      throw Error(v.label.empty() ? std::string(e.what()) : "in variant '" + v.label + "': " + e.what());
    }
  }
  cache = PreflightCache{};  // the runs load their own copy
  const std::string out = o.out.empty() ? "runs/" + base.name : o.out;
  std::vector<VariantResult> results;
  int failures = 0;
  for (std::size_t i = 0; i < variants.size(); ++i) {
    const std::string dir = variants[i].label.empty() ? out : out + "/" + variants[i].label;
    std::error_code ec;
    fs::create_directories(dir, ec);
    auto logger = make_run_logger(base.name, ec ? "" : dir + "/log.txt");
    if (variants.size() > 1) logger->info("[{}/{}] {}", i + 1, variants.size(), variants[i].label);
    log_estimate(*logger, estimates[i], limit);
    VariantResult r{variants[i], {}, ""};
    try {
      r.result = run_one(specs[i], registry, dir, logger, control);
      log_peak_memory(*logger);
      if (r.result.status != RunStatus::ok) ++failures;
    } catch (const Error& e) {
      write_failure_summary(dir, e.what());
      if (variants.size() == 1) throw;
      r.error = e.what();
      logger->error("{}", r.error);
      ++failures;
    }
    results.push_back(std::move(r));
    if (stop_requested()) break;  // the variant in hand saved a checkpoint; the others have not started
  }
  if (variants.size() > 1) {
    std::string table = comparison_table(base.compare, results);
    std::cout << "\n" << table << "\nRuns are in " << out << "/<variant>/ (metrics.csv, summary.json, log.txt)\n";
    std::ofstream(out + "/comparison.md") << "# " << base.name << "\n\n" << table;
    try {  // the runs' outcome decides the exit code, not the report
      ReportOptions report = report_options_of(root);
      report.plots = o.plots;
      write_report(out, report);
      std::cout << "Report (pivot tables, figures): " << out << "/report.html\n";
    } catch (const Error& e) {
      std::cerr << "report not written: " << e.what() << "\n";
    }
  } else {
    return report_run(results.front().result, out);
  }
  if (stop_requested()) return 128 + stop_signal();
  return failures == 0 ? 0 : kExitRunFailed;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
                      std::string(argv[1]) == "help")) {
      std::cout << kUsage;
      return 0;
    }
    if (argc >= 2 && std::string(argv[1]) == "--version") {
      std::cout << "phalanx " PHALANX_VERSION " (SDK ABI " << PHALANX_SDK_ABI_VERSION << ", " << PHALANX_BUILD_FINGERPRINT << ")\n";
      return 0;
    }
    if (argc >= 2 && std::string(argv[1]) == "check-plugin") return check_plugin_command({argv + 2, argv + argc}, std::cout);
    Options o = parse(argc, argv);
    if (o.command == "run") return cmd_run(o);
    if (o.command == "validate") return cmd_validate(o);
    if (o.command == "sweep") return cmd_sweep(o);
    if (o.command == "report") return cmd_report(o);
    if (o.command == "plugins") return cmd_plugins(o);
    if (o.command == "launch") return cmd_launch(o);
    throw UsageError("unknown command '" + o.command + "'");
  } catch (const UsageError& e) {
    std::cerr << "phalanx: " << e.what() << "\n\n" << kUsage;
    return kExitBadInput;
  } catch (const Error& e) {
    std::cerr << "phalanx: error: " + std::string(e.what()) + "\n";
    return kExitBadInput;
  } catch (const std::exception& e) {
    // Outside a run (a run's LibTorch errors become status "failed" in run_one): the first line only.
    const std::string what = e.what();
    std::cerr << "phalanx: internal error: " + what.substr(0, what.find('\n')) + "\n";
    return kExitRunFailed;
  }
}
