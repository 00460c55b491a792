// Sweeps: a grid over any config keys, times a list of seeds, each run in its own folder and its own
// process (forked from the sweep, so it inherits the loaded LibTorch, plugins and data sets), up to `jobs` at
// a time. A run whose folder holds a summary.json (status ok or diverged) is
// finished and is not run again, so an interrupted sweep resumes where it stopped.
//
//   sweep: {aggregator.name: [cm, cc], training.batch_size: [16, 64], optimizer.lr: [0.1, 0.5]}
//   seeds: [1, 2, 3]
//   report: {best_over: [optimizer.lr]}    # optional: `phalanx report` keeps the best value per cell
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "phalanx/value.hpp"

namespace phalanx::core {

struct SweepRun {
  std::string label;  // relative folder, e.g. "cm_16_0.1/seed1"
  Value config;       // the root config for this run (no sweep/seeds/compare sections)
  std::vector<std::string> warnings;  // its variant's (Variant::warnings)
};

/// Expands `root`'s sweep grid and seeds (errors name file:line). A config without them gives one run.
std::vector<SweepRun> expand_sweep(const Value& root);

/// True when `dir` holds a finished run: summary.json written with status ok or diverged (failed runs are
/// retried).
bool run_finished(const std::string& dir);

/// One of N disjoint slices of a sweep (`phalanx sweep --shard i/N`), for sweeps spread over machines that
/// share the output folder. Run k of the expanded list belongs to slice k mod N: stable for a given config,
/// and round robin so that each slice gets a like mix of cheap and costly grid cells.
struct Shard {
  int index = 0;  // from 0 to count - 1
  int count = 1;
};

/// Parses "i/N" with 0 <= i < N; throws an Error saying what is wrong otherwise.
Shard parse_shard(const std::string& text);

/// The shard of a SLURM job array task, when SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are both given
/// (null pointers: unset): index = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN (0 when unset), so both
/// --array=0-(N-1) and --array=1-N work; a task outside [0, N) (an array with a step) is an Error.
std::optional<Shard> shard_from_slurm(const char* task_id, const char* task_count, const char* task_min);

/// The runs of `runs` that belong to `shard`, in their order.
std::vector<SweepRun> runs_of_shard(const std::vector<SweepRun>& runs, const Shard& shard);

struct SweepOutcome {
  int finished = 0;  // ran now and ended with status ok or diverged
  int diverged = 0;  // of those, diverged: an outcome (a defence that lost), reported, not a failure
  int skipped = 0;   // already finished before
  int failed = 0;    // failed: an error, a crash; retried by the next sweep
  int interrupted = 0;  // stopped by Ctrl-C / SIGTERM with a checkpoint; the next sweep resumes them
};

/// Starts one run in a child process and returns its pid: `input` is the run's config file, `dir` its folder,
/// `resume` is true when `dir` holds a checkpoint to continue from.
using RunStarter = std::function<pid_t(const std::string& input, const std::string& dir, bool resume)>;

/// Runs every not-yet-finished run of `runs` under `out_dir`, each started by `start`, `jobs` at a time.
/// Progress goes to stderr: a line per run that ends, with runs done, running, failed and the time left
/// (`quiet`: only failures).
SweepOutcome run_sweep(const std::vector<SweepRun>& runs, const std::string& out_dir, int jobs,
                       const RunStarter& start, bool quiet = false);

/// Forks a child that writes its stdout and stderr to `console` and exits with the code `body` returns (an
/// exception escaping `body` is printed and exits 3). A child that crashes takes only its own run with it.
/// The caller must not have more threads than this one running LibTorch work: a forked child has only
/// the forking thread, so a thread pool in use at the fork would never answer (cmd_sweep keeps one
/// intra-op thread for that reason).
pid_t fork_run(const std::string& console, const std::function<int()>& body);

}  // namespace phalanx::core
