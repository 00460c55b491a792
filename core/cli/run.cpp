// `phalanx run CFG` and `phalanx run --resume DIR`: simulated runs in this process, with a progress line.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "cli.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/outline.hpp"
#include "phalanx/core/engine.hpp"
#include "phalanx/core/engine/preflight.hpp"
#include "phalanx/core/engine/run_failure.hpp"
#include "phalanx/core/experiment/compare.hpp"
#include "phalanx/core/experiment/report.hpp"
#include "phalanx/core/run/memory_guard.hpp"
#include "phalanx/core/run/progress.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/core/run/stop_signal.hpp"

namespace phalanx::cli {

namespace fs = std::filesystem;
using namespace phalanx::core;

namespace {

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
// Progress goes to stderr: redrawn on a terminal, a plain line every 10 s otherwise, none with --quiet.
RunResult run_one(const PipelineSpec& spec, const Registry& registry, const std::string& dir,
                  std::shared_ptr<spdlog::logger> logger, RunControl control, bool quiet) {
  std::optional<RunProgress> progress;
  if (!quiet) {
    progress.emplace(std::cerr, ::isatty(STDERR_FILENO) != 0);
    control.on_step = [&](std::int64_t done, std::int64_t total) { progress->update(done, total); };
  }
  RunResult r = run_reporting_failures([&] { return run_pipeline(spec, registry, dir, logger, control); }, registry,
                                       logger.get());
  if (progress) progress->finish();
  if (r.status == RunStatus::failed) write_failure_summary(dir, r.message);
  return r;
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
  const MemoryEstimate estimate = o.preflight_done ? *o.preflight_done : preflight(spec, registry, limit);
  control.resume = true;
  auto logger = make_run_logger(spec.name, dir + "/log.txt", /*append=*/true);
  log_estimate(*logger, estimate, limit);
  RunResult r;
  try {
    r = run_one(spec, registry, dir, logger, control, o.quiet);
    log_peak_memory(*logger);
  } catch (const Error& e) {
    // The checkpoint stays: a damaged or foreign one is the user's to replace, not a finished run.
    write_failure_summary(dir, e.what());
    throw;
  }
  return report_run(r, dir);
}

struct Prepared {
  std::vector<Variant> variants;
  std::vector<PipelineSpec> specs;
  std::vector<MemoryEstimate> estimates;
};

// Validates every variant before running any, so a typo in the last one is found in seconds. A run forked by a
// sweep (one variant) takes the preflight its parent made of it.
Prepared prepare_variants(const Value& root, const Registry& registry, const MemoryLimit& limit,
                          const MemoryEstimate* preflight_done) {
  Prepared p;
  p.variants = expand_variants(root);
  print_config_warnings(variant_warnings(p.variants));
  for (const auto& v : p.variants) {
    try {
      p.specs.push_back(resolve_pipeline(v.config, registry));
      refuse_distributed(p.specs.back());
      // These plugin instances only prove that construction succeeds; the run makes its own (engine.cpp
      // says why they cannot be handed over).
      check_plugins(p.specs.back(), registry);
      const bool measured = preflight_done != nullptr && p.variants.size() == 1;
      p.estimates.push_back(measured ? *preflight_done : preflight(p.specs.back(), registry, limit));
    } catch (const Error& e) {
      throw Error(v.label.empty() ? std::string(e.what()) : "in variant '" + v.label + "': " + e.what());
    }
  }
  return p;
}

ReportOptions report_for(const Value& root, const Options& o) {
  ReportOptions report = report_options_of(root);
  report.plots = o.plots;
  return report;
}

int finish_comparison(const ComparisonOutline& base, const std::vector<VariantResult>& results, const std::string& out,
                      int failures, ReportOptions report) {
  std::string table = comparison_table(base.compare, results);
  std::cout << "\n" << table << "\nRuns are in " << out << "/<variant>/ (metrics.csv, summary.json, log.txt)\n";
  std::ofstream(out + "/comparison.md") << "# " << base.name << "\n\n" << table;
  try {  // the runs' outcome decides the exit code, not the report
    write_report(out, report);
    std::cout << "Report (pivot tables, figures): " << out << "/report.html\n";
  } catch (const Error& e) {
    std::cerr << "report not written: " << e.what() << "\n";
  }
  if (stop_requested()) return 128 + stop_signal();
  return failures == 0 ? 0 : kExitRunFailed;
}

}  // namespace

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
  const ComparisonOutline base = resolve_outline(root);
  const MemoryLimit limit = memory_limit(o.max_memory);
  const Prepared p = prepare_variants(root, registry, limit, o.preflight_done.get());
  const std::string out = o.out.empty() ? "runs/" + base.name : o.out;
  std::vector<VariantResult> results;
  int failures = 0;
  for (std::size_t i = 0; i < p.variants.size(); ++i) {
    const std::string dir = p.variants[i].label.empty() ? out : out + "/" + p.variants[i].label;
    std::error_code ec;
    fs::create_directories(dir, ec);
    auto logger = make_run_logger(base.name, ec ? "" : dir + "/log.txt");
    if (p.variants.size() > 1) logger->info("[{}/{}] {}", i + 1, p.variants.size(), p.variants[i].label);
    log_estimate(*logger, p.estimates[i], limit);
    VariantResult r{p.variants[i], {}, ""};
    try {
      r.result = run_one(p.specs[i], registry, dir, logger, control, o.quiet);
      log_peak_memory(*logger);
      if (r.result.status != RunStatus::ok) ++failures;
    } catch (const Error& e) {
      write_failure_summary(dir, e.what());
      if (p.variants.size() == 1) throw;
      r.error = e.what();
      logger->error("{}", r.error);
      ++failures;
    }
    results.push_back(std::move(r));
    if (stop_requested()) break;  // the variant in hand saved a checkpoint; the others have not started
  }
  if (p.variants.size() == 1) return report_run(results.front().result, out);
  return finish_comparison(base, results, out, failures, report_for(root, o));
}

}  // namespace phalanx::cli
