#include "phalanx/core/experiment/sweep.hpp"

#include <chrono>
#include <csignal>

#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "phalanx/core/experiment/compare.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/run/progress.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/core/run/stop_signal.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace fs = std::filesystem;

namespace {

constexpr int kForkedRunCrashed = 3;  // the CLI's exit code for a run that failed

void erase_key(Value& root, const std::string& key) {
  auto& entries = root.as_map();
  for (auto it = entries.begin(); it != entries.end(); ++it)
    if (it->first == key) {
      entries.erase(it);
      return;
    }
}

std::vector<std::int64_t> seeds_of(const Value& root) {
  const Value* seeds = root.find("seeds");
  if (!seeds || seeds->is_null()) return {};
  std::vector<std::int64_t> out;
  const Value::List items = seeds->type() == Value::Type::List ? seeds->as_list() : Value::List{*seeds};
  for (const auto& s : items) {
    if (s.type() != Value::Type::Int || s.as_int() < 0)
      throw Error(s.location() + ": seeds must be a list of non-negative integers, got '" + s.to_string() + "'");
    out.push_back(s.as_int());
  }
  if (out.empty()) throw Error(seeds->location() + ": seeds is an empty list");
  return out;
}

}  // namespace

std::vector<SweepRun> expand_sweep(const Value& root) {
  Value base = root;
  const Value* sweep = root.find("sweep");
  if (sweep && !sweep->is_null() && (sweep->type() != Value::Type::Map || sweep->as_map().empty()))
    throw Error(sweep->location() + ": 'sweep' must map config keys to lists of values, e.g. "
                "{aggregator.name: [cm, cc], training.batch_size: [16, 64]}");
  std::vector<std::int64_t> seeds = seeds_of(root);
  erase_key(base, "sweep");
  erase_key(base, "seeds");
  erase_key(base, "report");
  // A compare section inside a sweep is just more grid keys.
  Value grid = Value::map({});
  if (const Value* compare = root.find("compare")) {
    // A list here used to vanish silently, so `validate` said OK to a config whose comparison never ran.
    if (!compare->is_null() && compare->type() != Value::Type::Map)
      throw Error(compare->location() + ": 'compare' must map config keys to lists of values, e.g. "
                  "{aggregator.name: [mean, cm]}");
    if (compare->type() == Value::Type::Map) grid = *compare;
  }
  if (sweep && !sweep->is_null())
    for (const auto& [k, v] : sweep->as_map()) grid.set(k, v);
  erase_key(base, "compare");
  if (!grid.as_map().empty()) base.set("compare", grid);

  std::vector<SweepRun> runs;
  for (const Variant& v : expand_variants(base)) {
    if (seeds.empty()) {
      runs.push_back({v.label.empty() ? "run" : v.label, v.config, v.warnings});
      continue;
    }
    for (std::int64_t seed : seeds) {
      Value config = v.config;
      config.set("seed", Value(seed));
      runs.push_back({(v.label.empty() ? std::string("run") : v.label) + "/seed" + std::to_string(seed), config,
                      v.warnings});
    }
  }
  return runs;
}

namespace {

// A whole non-negative number, or nullopt.
std::optional<long> whole_number(const std::string& text) {
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) return {};
  return std::stol(text);
}

}  // namespace

Shard parse_shard(const std::string& text) {
  const std::size_t slash = text.find('/');
  const auto index = whole_number(text.substr(0, slash));
  const auto count = slash == std::string::npos ? std::nullopt : whole_number(text.substr(slash + 1));
  if (!index || !count)
    throw Error("--shard expects i/N (slice i of N, i from 0 to N-1, e.g. --shard 0/4), got '" + text + "'");
  if (*count < 1) throw Error("--shard " + text + ": N must be at least 1");
  if (*index >= *count)
    throw Error("--shard " + text + ": i must be from 0 to " + std::to_string(*count - 1) +
                " (slices are numbered from 0)");
  return {static_cast<int>(*index), static_cast<int>(*count)};
}

std::optional<Shard> shard_from_slurm(const char* task_id, const char* task_count, const char* task_min) {
  if (!task_id || !task_count) return std::nullopt;
  const auto id = whole_number(task_id), count = whole_number(task_count);
  const auto min = task_min ? whole_number(task_min) : std::optional<long>(0);
  if (!id || !count || !min || *count < 1)
    throw Error(std::string("SLURM_ARRAY_TASK_ID='") + task_id + "', SLURM_ARRAY_TASK_COUNT='" + task_count +
                "'" + (task_min ? std::string(", SLURM_ARRAY_TASK_MIN='") + task_min + "'" : "") +
                " are not a job array's numbers; give --shard i/N explicitly");
  const long index = *id - *min;
  if (index < 0 || index >= *count)
    throw Error("SLURM_ARRAY_TASK_ID=" + std::to_string(*id) + " is task " + std::to_string(index) + " of an array of " +
                std::to_string(*count) + " starting at " + std::to_string(*min) +
                ": use a contiguous array without a step (sbatch --array=0-" + std::to_string(*count - 1) +
                "), or give --shard i/N explicitly");
  return Shard{static_cast<int>(index), static_cast<int>(*count)};
}

std::vector<SweepRun> runs_of_shard(const std::vector<SweepRun>& runs, const Shard& shard) {
  std::vector<SweepRun> mine;
  for (std::size_t k = 0; k < runs.size(); ++k)
    if (static_cast<int>(k % static_cast<std::size_t>(shard.count)) == shard.index) mine.push_back(runs[k]);
  return mine;
}

bool run_finished(const std::string& dir) {
  // A failed run (a crash, a plugin that could not load, a full disk) is tried again on resume, an
  // interrupted one continues from its checkpoint; a run that ended ok or diverged is an outcome, kept.
  const std::optional<RunStatus> status = read_summary_status(dir);
  return status == RunStatus::ok || status == RunStatus::diverged;
}

pid_t fork_run(const std::string& console, const std::function<int()>& body) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);  // or the child would write the parent's buffered output a second time
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("cannot start a run: fork failed: ") + std::strerror(errno));
  if (pid > 0) return pid;
  int code = kForkedRunCrashed;
  const int fd = ::open(console.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0 && ::dup2(fd, STDOUT_FILENO) >= 0 && ::dup2(fd, STDERR_FILENO) >= 0) {
    ::close(fd);
    try {
      code = body();
    } catch (const std::exception& e) {
      std::cerr << "phalanx: error: " << e.what() << "\n";
    }
  }
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  // _exit: the parent's objects (its loggers, LibTorch's globals) belong to the parent; the run wrote and
  // closed its own files before body() returned.
  ::_exit(code);
}

SweepOutcome run_sweep(const std::vector<SweepRun>& runs, const std::string& out_dir, int jobs,
                       const RunStarter& start, bool quiet) {
  SweepOutcome outcome;
  std::vector<const SweepRun*> todo;
  for (const auto& r : runs) {
    if (run_finished(out_dir + "/" + r.label)) {
      ++outcome.skipped;
    } else {
      todo.push_back(&r);
    }
  }
  if (outcome.skipped)
    std::cerr << "sweep: " << outcome.skipped << " of " << runs.size() << " runs already finished, skipping them\n";

  std::map<pid_t, const SweepRun*> running;
  const auto started = std::chrono::steady_clock::now();
  std::size_t next = 0, done = 0;
  auto start_one = [&](const SweepRun& r) {
    const std::string dir = out_dir + "/" + r.label;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error("cannot create '" + dir + "': " + ec.message());
    const std::string input = dir + "/input.yaml";
    std::ofstream(input) << to_yaml(r.config);
    // A run stopped by Ctrl-C or killed after a checkpoint continues where it was, bit for bit.
    const bool resume = fs::exists(checkpoint_path(dir));
    if (resume) std::cerr << "sweep: " << r.label << " resumes from its checkpoint\n";
    running[start(input, dir, resume)] = &r;
  };
  while (next < todo.size() || !running.empty()) {
    // After Ctrl-C (which every child receives too) nothing new starts; the running ones save and exit.
    while (next < todo.size() && static_cast<int>(running.size()) < jobs && !stop_requested())
      start_one(*todo[next++]);
    if (running.empty()) break;
    int status = 0;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const std::string label = it->second->label;
    // A run that diverged exits like a failed one (3); its summary.json tells them apart.
    const bool diverged = WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
                          read_summary_status(out_dir + "/" + label) == RunStatus::diverged;
    const bool ok = (WIFEXITED(status) && WEXITSTATUS(status) == 0) || diverged;
    // A run that saved and exited, or one that the signal reached before it could (still starting up).
    const bool stopped =
        (WIFEXITED(status) && (WEXITSTATUS(status) == 128 + SIGINT || WEXITSTATUS(status) == 128 + SIGTERM)) ||
        (WIFSIGNALED(status) && (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM));
    ++done;
    ok ? ++outcome.finished : stopped ? ++outcome.interrupted : ++outcome.failed;
    if (diverged) ++outcome.diverged;
    running.erase(it);
    // Time left: the wall time per run so far (with `jobs` in parallel) times the runs not yet ended.
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const double left = static_cast<double>(todo.size() - done) * elapsed / static_cast<double>(done);
    if (!quiet || !(ok || stopped))
      std::cerr << "sweep: " << label << (diverged ? " diverged" : ok ? " done" : stopped ? " interrupted (the next sweep resumes it)" : " FAILED")
                << (ok || stopped ? "" : " (see " + out_dir + "/" + label + "/console.txt)") << "; "
                << sweep_progress_text(outcome.finished, static_cast<int>(running.size()), outcome.failed,
                                       static_cast<int>(todo.size()), left)
                << "\n";
  }
  return outcome;
}

}  // namespace phalanx::core
