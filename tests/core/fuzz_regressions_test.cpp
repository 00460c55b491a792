// Inputs that made a fuzzer of tests/fuzz/ fail (docs/reliability.md, "Fuzzing"), replayed in the normal
// build through the code a run uses: each must now end in a clear phalanx::Error naming the file, or in
// a valid result. tests/fuzz/regressions/<harness>/ holds the inputs; .ci/fuzz.sh also replays them under
// the sanitizers.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/experiment/report.hpp"
#include "phalanx/core/engine/speed_trace.hpp"
#include "phalanx/core/experiment/sweep.hpp"
#include "support.hpp"

namespace phalanx {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::vector<fs::path> regressions(const std::string& harness) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(test::source_dir()) / "tests/fuzz/regressions" / harness))
    out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The config harness's input: a config file, then `--set` lines after a NUL byte. An alias bomb took over
// ten seconds to refuse under the sanitizers (two exceptions per word); it must be refused, and quickly.
TEST(FuzzRegressions, ConfigInputsValidateOrGiveAClearError) {
  const auto files = regressions("config");
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    const auto start = std::chrono::steady_clock::now();
    try {
      std::ifstream in(f, std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const std::string overrides = text.find('\0') == std::string::npos ? "" : text.substr(text.find('\0') + 1);
      const fs::path config = fs::path(test::temp_dir("fuzz_config")) / (f.filename().string() + ".yaml");
      std::ofstream(config, std::ios::binary) << text.substr(0, text.find('\0'));
      Value root = core::load_yaml_file(config.string());
      std::stringstream lines(overrides);
      for (std::string line; std::getline(lines, line);)
        if (!line.empty()) core::apply_override(root, line);
      for (const auto& run : core::expand_sweep(root)) core::resolve_pipeline(run.config, test::builtin_registry());
    } catch (const Error& e) {
      EXPECT_FALSE(std::string(e.what()).empty());
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
  }
}

// A blank line used to become a worker without times; SpeedModel::next then took `pos % 0` (SIGFPE).
TEST(FuzzRegressions, SpeedTraceInputsGiveTimesOrAClearError) {
  const auto files = regressions("speed_trace");
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    core::SpeedSpec spec;
    spec.name = "trace";
    spec.file = f.string();
    for (std::int64_t workers : {1, 2}) {
      try {
        core::SpeedModel model(spec, workers, 1);
        for (std::int64_t k = 0; k < workers; ++k)
          for (int step = 0; step < 3; ++step) EXPECT_GT(model.next(k), 0.0);
      } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr(f.filename().string()));
      }
    }
  }
}

TEST(FuzzRegressions, BlankTraceLinesAreSkippedLikeEmptyOnes) {
  std::istringstream in("1.0 2.0\n \t\r\n\v\n0.5\n");
  const auto trace = core::parse_speed_trace(in, "t.txt");
  ASSERT_EQ(trace.size(), 2u);
  EXPECT_EQ(trace[0], (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(trace[1], (std::vector<double>{0.5}));
}

// The report harness's input: up to two run folders' config.yaml, summary.json and metrics.csv, separated
// by NUL bytes. A metrics.csv without a step column made write_report convert NaN to an integer (UB).
TEST(FuzzRegressions, ReportInputsGiveAReportOrAClearError) {
  const auto files = regressions("report");
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    std::ifstream in(f, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const fs::path dir = fs::path(test::temp_dir("fuzz_report")) / f.filename();
    fs::remove_all(dir);
    const char* names[] = {"a/config.yaml", "a/summary.json", "a/metrics.csv",
                           "b/config.yaml", "b/summary.json", "b/metrics.csv"};
    std::size_t start = 0;
    for (int i = 0; i < 6 && start <= bytes.size(); ++i) {
      std::size_t end = std::min(bytes.find('\0', start), bytes.size());
      fs::create_directories((dir / names[i]).parent_path());
      std::ofstream(dir / names[i], std::ios::binary) << bytes.substr(start, end - start);
      start = end + 1;
    }
    core::ReportOptions options;
    options.plots = false;
    options.best_over = {"optimizer.lr"};
    options.plot_by = {"aggregator"};
    try {
      const std::string md = core::write_report(dir.string(), options);
      EXPECT_THAT(md, HasSubstr("| test accuracy (%) |"));
      EXPECT_THAT(md, ::testing::Not(HasSubstr("-9223372036854775808")));
    } catch (const Error& e) {
      EXPECT_FALSE(std::string(e.what()).empty());
    }
  }
}

}  // namespace
}  // namespace phalanx
