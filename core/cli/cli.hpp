// The command line's pieces shared by its verbs (core/cli/*.cpp, one file per verb or family of verbs).
// Exit codes (docs/reliability.md, "Exit codes"): 0 every run ended ok, 2 bad input (usage, config, data,
// plugins, a run that does not fit in memory), 3 a run that failed or diverged, 128 + n a run stopped by
// signal n.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/experiment/report.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/error.hpp"
#include "phalanx/value.hpp"

namespace phalanx::core {
struct MemoryEstimate;
}

namespace phalanx::cli {

struct Options {
  std::string command;
  std::string config;  // CFG, or DIR for report
  std::string kind;    // plugins KIND
  std::string out;
  std::vector<std::string> overrides;
  std::vector<std::string> plugin_paths;
  std::vector<std::string> best;
  int jobs = 1;
  bool plots = true;
  std::string shard;  // sweep --shard i/N
  std::vector<std::string> expect, params;  // check-plugin
  // launch
  int processes = 0;
  int port = 0;
  int rank = -1, world_size = -1, master_port = -1;
  bool rejoin = false;  // launch --rejoin: a restarted worker taking its rank back
  std::string master_addr;
  // run / sweep checkpoints
  std::string resume;
  std::string checkpoint_every;
  std::string max_memory;  // --max-memory: the preflight's limit instead of the memory available
  // A run forked by `phalanx sweep`: the parent's preflight of it, so the child does not measure it again.
  std::shared_ptr<const core::MemoryEstimate> preflight_done;
  // every verb
  std::string log_level = "info";
  bool quiet = false;
};

struct UsageError : Error {
  using Error::Error;
};

constexpr int kExitBadInput = 2;
constexpr int kExitRunFailed = 3;

/// Parses argv into `o`. Returns -1 to go on, or the exit code when parsing already ended the process's
/// work (--help, --version: 0; a usage error, printed: 2).
int parse_command_line(int argc, char** argv, Options& o);

void load_plugins(core::Registry& registry, const Options& o, const Value* config);
/// Prints each distinct config warning (e.g. Variant::warnings) once to stderr.
void print_config_warnings(const std::vector<std::string>& warnings);
Value load_config(const Options& o);
core::ReportOptions report_options_of(const Value& root);
void refuse_distributed(const core::PipelineSpec& spec);
/// The flags a sweep or launch passes on to the processes it starts (plugin paths, log level, quiet).
std::vector<std::string> child_args(const Options& o);
/// Applies --log-level and -q to every run logger made from now on.
void apply_logging(const Options& o);

/// Runs the verb in `o` and turns its errors into one message and the exit code above.
int execute(const Options& o);

int cmd_run(const Options& o);
int cmd_validate(const Options& o);
int cmd_sweep(const Options& o);
int cmd_report(const Options& o);
int cmd_plugins(const Options& o);
int cmd_launch(const Options& o);
int cmd_check_plugin(const Options& o);

}  // namespace phalanx::cli
