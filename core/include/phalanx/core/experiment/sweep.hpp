// Sweeps: a grid over any config keys, times a list of seeds, each run in its own folder and its own
// process, up to `jobs` at a time. A run whose folder holds a summary.json (status ok or diverged) is
// finished and is not run again, so an interrupted sweep resumes where it stopped.
//
//   sweep: {aggregator.name: [cm, cc], training.batch_size: [16, 64], optimizer.lr: [0.1, 0.5]}
//   seeds: [1, 2, 3]
//   report: {best_over: [optimizer.lr]}    # optional: `phalanx report` keeps the best value per cell
#pragma once

#include <string>
#include <vector>

#include "phalanx/value.hpp"

namespace phalanx::core {

struct SweepRun {
  std::string label;  // relative folder, e.g. "cm_16_0.1/seed1"
  Value config;       // the root config for this run (no sweep/seeds/compare sections)
};

/// Expands `root`'s sweep grid and seeds (errors name file:line). A config without them gives one run.
std::vector<SweepRun> expand_sweep(const Value& root);

/// True when `dir` holds a finished run: summary.json written with status ok or diverged (failed runs are
/// retried).
bool run_finished(const std::string& dir);

struct SweepOutcome {
  int finished = 0;  // ran now and ended with status ok
  int skipped = 0;   // already finished before
  int failed = 0;    // failed or diverged
  int interrupted = 0;  // stopped by Ctrl-C / SIGTERM with a checkpoint; the next sweep resumes them
};

/// Runs every not-yet-finished run of `runs` under `out_dir` with `phalanx_binary run`, `jobs` at a time.
/// `extra_args` are passed to each child (e.g. --plugin-path). Progress goes to stderr.
SweepOutcome run_sweep(const std::vector<SweepRun>& runs, const std::string& out_dir, int jobs,
                       const std::string& phalanx_binary, const std::vector<std::string>& extra_args);

}  // namespace phalanx::core
