// The verbs and flags of `phalanx`, on CLI11. Unknown flags are collected rather than thrown by CLI11, so the
// error can name the verb and suggest the flag meant (the same nearest_name as config keys).
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include "phalanx/abi.hpp"
#include "phalanx/helpers/suggest.hpp"

namespace phalanx::cli {

namespace {

constexpr const char* kDescription =
    "phalanx: distributed learning that stays correct with slow or Byzantine workers.\n"
    "Exit codes: 0 ok, 2 bad input (usage, config, data, plugins, memory), 3 a run failed or diverged, 128 + n "
    "stopped by signal n.\nPlugins are loaded from <prefix>/lib/phalanx/plugins, then PHALANX_PLUGIN_PATH "
    "(colon-separated folders), then --plugin-path and the config's plugins.paths.";

std::string version_text() {
  return std::string("phalanx ") + PHALANX_VERSION + " (SDK ABI " + std::to_string(PHALANX_SDK_ABI_VERSION) + ", " +
         PHALANX_BUILD_FINGERPRINT + ")";
}

// One value per --set (so `--set a=1 CFG` does not swallow CFG), any number of them.
CLI::Option* add_list(CLI::App* app, const std::string& name, std::vector<std::string>& into, const std::string& help) {
  return app->add_option(name, into, help)->allow_extra_args(false)->type_size(1);
}

void add_config_flags(CLI::App* app, Options& o) {
  add_list(app, "--set", o.overrides, "override a config key, e.g. --set optimizer.lr=0.1 (repeatable)");
  add_list(app, "--plugin-path", o.plugin_paths, "one more folder of plugin libraries (repeatable)");
  app->add_option("--max-memory", o.max_memory, "refuse runs over SIZE (512M, 8G, 1.5GiB) instead of the memory "
                                                 "available");
}

void add_run_flags(CLI::App* app, Options& o) {
  add_config_flags(app, o);
  app->add_option("--out", o.out, "output folder (default runs/<name>)");
  app->add_option("--checkpoint-every", o.checkpoint_every,
                  "save DIR/checkpoint.pt every N steps or sim:T units of simulated time; Ctrl-C or SIGTERM "
                  "finishes the step, saves one and exits with 130 or 143");
}

void define_verbs(CLI::App& app, Options& o) {
  CLI::App* run = app.add_subcommand("run", "Run the pipeline in CFG (every variant of its `compare` section, side "
                                            "by side). Outputs in --out: metrics.jsonl, metrics.csv, config.yaml, "
                                            "summary.json, log.txt.");
  run->add_option("CFG", o.config, "the config file");
  add_run_flags(run, o);
  run->add_option("--resume", o.resume, "continue the run in DIR from its checkpoint (bit for bit the metrics of an "
                                        "uninterrupted run); takes no CFG, --set or --out");

  CLI::App* sweep = app.add_subcommand("sweep", "Run the grid in CFG's `sweep` section times its `seeds`, --jobs at "
                                                "a time, one folder and process per run; finished runs are skipped, "
                                                "interrupted ones resume. Then writes the report.");
  sweep->add_option("CFG", o.config, "the config file");
  add_run_flags(sweep, o);
  sweep->add_option("--jobs,-j", o.jobs, "runs at a time")->check(CLI::Range(1, 256));
  sweep->add_flag("--plots,!--no-plots", o.plots, "--no-plots: the report without its plots");
  sweep->add_option("--shard", o.shard, "run only slice i of N (i from 0 to N-1) of the runs, e.g. on a cluster; "
                                        "default: SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set "
                                        "(docs/sweeps.md)");

  CLI::App* report = app.add_subcommand("report", "Tables (mean +/- std over seeds; best value of KEY per cell; "
                                                  "aggregators x attacks ranked by worst case) and plots of the runs "
                                                  "below DIR: DIR/report.md and the self-contained DIR/report.html.");
  report->add_option("DIR", o.config, "a folder of runs (a sweep's --out)");
  add_list(report, "--best", o.best, "keep the best value of KEY per cell (repeatable; default: the sweep's "
                                     "report.best_over)");
  report->add_flag("--plots,!--no-plots", o.plots, "--no-plots: tables only");

  CLI::App* validate = app.add_subcommand("validate", "Check CFG and every plugin parameter without training, and "
                                                      "print what each run will hold in memory.");
  validate->add_option("CFG", o.config, "the config file");
  add_config_flags(validate, o);

  CLI::App* launch = app.add_subcommand("launch", "Run CFG as a distributed run: with -n N, a server and N-1 workers "
                                                  "on this machine; otherwise one process of a run on many machines "
                                                  "(rank 0: the server; RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT or "
                                                  "SLURM_PROCID, SLURM_NTASKS are read). See docs/distributed.md.");
  launch->add_option("CFG", o.config, "the config file");
  add_config_flags(launch, o);
  launch->add_option("--out", o.out, "output folder of the server (default runs/<name>)");
  const auto port_range = CLI::Range(0, 65535);
  launch->add_option("-n", o.processes, "processes to start here (workers.count + 1)")->check(port_range);
  launch->add_option("--port", o.port, "port of the local run (default: a free one)")->check(port_range);
  launch->add_option("--rank", o.rank, "this process's rank (0: the server)")->check(port_range);
  launch->add_option("--world-size", o.world_size, "number of processes")->check(port_range);
  launch->add_option("--master-addr", o.master_addr, "host of rank 0");
  launch->add_option("--master-port", o.master_port, "port of rank 0")->check(port_range);
  launch->add_option("--resume", o.resume, "continue the run in DIR from its checkpoint, with DIR's config.yaml "
                                           "(takes no CFG)");
  launch->add_option("--checkpoint-every", o.checkpoint_every, "the server saves a checkpoint every N updates "
                                                               "(rounds in sync mode); Ctrl-C or SIGTERM saves one too");
  launch->add_flag("--rejoin", o.rejoin, "a restarted worker process: take its rank back in the running job");

  CLI::App* plugins = app.add_subcommand("plugins", "List plugins (data, model, optimizer, aggregator, preaggregator, "
                                                    "attack) with their parameters; `phalanx plugins core` lists "
                                                    "the core's own config keys the same way.");
  plugins->add_option("KIND", o.kind, "only this kind");
  // (the core keys' listing, `phalanx plugins core`, is a kind handled in cmd_plugins)

  CLI::App* check = app.add_subcommand("check-plugin", "Run the conformance properties on every plugin in the "
                                                       "library LIB (docs/plugins.md); exit 0 when all pass.");
  check->add_option("LIB", o.config, "the plugin library (.so)");
  add_list(check, "--expect", o.expect, "NAME=PROMISE[,PROMISE]: what plugin NAME promises less than a robust "
                                        "rule: not-robust, unbounded, order-dependent, trusts-first-row (repeatable)");
  add_list(check, "--params", o.params, "NAME={key: value}: parameters plugin NAME needs (repeatable)");
}

std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : app.get_options()) {
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
    for (const auto& s : opt->get_snames()) names.push_back("-" + s);
  }
  return names;
}

// What CLI11 left over (allow_extras) is an unknown flag or a stray argument: refuse it, with a suggestion.
void refuse_leftovers(const CLI::App& app, const CLI::App* verb) {
  const std::vector<std::string> left = app.remaining(true);  // with fallthrough, a verb's leftovers land here
  if (left.empty()) return;
  const std::string& a = left.front();
  if (a.empty() || a[0] != '-') throw UsageError("unexpected argument '" + a + "'");
  const std::string flag = a.substr(0, a.find('='));
  std::vector<std::string> names = option_names(app);
  if (verb)
    for (const auto& n : option_names(*verb)) names.push_back(n);
  const std::string near = nearest_name(flag, names);
  throw UsageError("unknown option '" + flag + "'" + (verb ? " for '" + verb->get_name() + "'" : std::string()) +
                   (near.empty() ? std::string() : "; did you mean '" + near + "'?"));
}

void check_log_level(const std::string& level) {
  for (const char* ok : {"trace", "debug", "info", "warn", "error"})
    if (level == ok) return;
  const std::string near = nearest_name(level, {"trace", "debug", "info", "warn", "error"});
  throw UsageError("--log-level must be one of trace, debug, info, warn, error; got '" + level + "'" +
                   (near.empty() ? std::string() : " (did you mean '" + near + "'?)"));
}

}  // namespace

int parse_command_line(int argc, char** argv, Options& o) {
  CLI::App app(kDescription, "phalanx");
  app.set_help_all_flag("--help-all", "the usage of every verb");
  app.set_version_flag("--version", version_text());
  app.add_option("--log-level", o.log_level, "trace, debug, info (default), warn or error; debug shows the "
                                             "plugins' debug messages");
  app.add_flag("-q,--quiet", o.quiet, "no progress lines, and only warnings and errors on the console");
  app.allow_extras();
  define_verbs(app, o);
  for (CLI::App* verb : app.get_subcommands({})) verb->allow_extras()->fallthrough();
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "phalanx: " << e.what() << "\nRun 'phalanx --help' (or 'phalanx VERB --help') for the usage.\n";
    return kExitBadInput;
  }
  const std::vector<CLI::App*> chosen = app.get_subcommands();
  const CLI::App* verb = chosen.empty() ? nullptr : chosen.front();
  if (!verb) {
    const std::vector<std::string> left = app.remaining();
    if (left.empty() || left.front().rfind("-", 0) == 0) refuse_leftovers(app, nullptr);
    if (left.size() == 1 && left.front() == "help") {  // `phalanx help`, as before CLI11
      std::cout << app.help();
      return 0;
    }
    std::vector<std::string> verbs;
    for (const CLI::App* v : app.get_subcommands({})) verbs.push_back(v->get_name());
    const std::string near = left.empty() ? "" : nearest_name(left.front(), verbs);
    throw UsageError(left.empty() ? "no command given"
                                  : "unknown command '" + left.front() + "'" +
                                        (near.empty() ? std::string() : "; did you mean '" + near + "'?"));
  }
  o.command = verb->get_name();
  refuse_leftovers(app, verb);
  check_log_level(o.log_level);
  return -1;
}

}  // namespace phalanx::cli
