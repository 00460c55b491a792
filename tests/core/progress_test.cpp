// Progress lines (core/run/progress.hpp), the engines' step callback, and the run loggers' level.
#include "phalanx/core/run/progress.hpp"

#include <sstream>

#include <spdlog/spdlog.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine/async_engine.hpp"
#include "phalanx/core/engine/sync_engine.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/core/run/run_output.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

TEST(Progress, DurationsAndTexts) {
  EXPECT_EQ(core::format_duration(42.4), "42 s");
  EXPECT_EQ(core::format_duration(185), "3 min 05 s");
  EXPECT_EQ(core::format_duration(7620), "2 h 07 min");
  EXPECT_EQ(core::run_progress_text(120, 1000, 40), "step 120/1000 (12 %), 40.0 steps/s, about 22 s left");
  EXPECT_EQ(core::run_progress_text(0, 10, 0), "step 0/10 (0 %)");
  EXPECT_EQ(core::sweep_progress_text(3, 2, 1, 16, 250), "3/16 runs done, 2 running, 1 failed, about 4 min 10 s left");
}

TEST(Progress, PlainLinesAtMostOnePerIntervalAndTheLast) {
  std::ostringstream out;
  double now = 0;
  core::RunProgress progress(out, /*terminal=*/false, 10, [&] { return now; });
  for (int step = 1; step <= 35; ++step, now += 1) progress.update(step, 35);  // one step per second
  progress.finish();
  const std::string text = out.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  // Step 1 starts the clock; lines at 10, 20 and 30 s, and at the last step.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4) << text;
  EXPECT_THAT(text, ::testing::HasSubstr("progress: step 11/35 (31 %), 1.0 steps/s, about 24 s left\n"));
  EXPECT_THAT(text, ::testing::EndsWith("progress: step 35/35 (100 %), 1.0 steps/s, about 0 s left\n"));
}

TEST(Progress, TerminalRedrawsOneLineAndEndsIt) {
  std::ostringstream out;
  double now = 0;
  core::RunProgress progress(out, /*terminal=*/true, 10, [&] { return now; });
  for (int step = 1; step <= 4; ++step, now += 1) progress.update(step, 10);
  progress.finish();
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\r'), 3) << text;  // steps 2, 3, 4 (step 1 starts the clock)
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;  // finish() ends the open line
  EXPECT_THAT(text, ::testing::HasSubstr("\r\033[Kstep 4/10 (40 %), 1.0 steps/s, about 6 s left"));
}

const char* kTiny = R"(name: tiny
seed: 3
data: {name: synthetic, train_size: 300, test_size: 100, features: 6, classes: 3}
model: {name: logreg}
workers: {count: 4, byzantine: 1}
optimizer: {name: byzsgdnm, lr: 0.1}
aggregator: {name: cm}
attack: {name: alie}
training: {batch_size: 8, budget: {steps: 30}, eval_every: 10}
)";

// The callback sees every step once, in order, and changes nothing in the metrics.
void expect_steps_reported_without_effect(const std::string& engine) {
  Value config = core::parse_yaml(kTiny, "tiny.yaml");
  core::apply_override(config, "engine.name=" + engine);
  const core::PipelineSpec spec = core::resolve_pipeline(config, builtin_registry());
  const std::string plain = temp_dir("progress_plain_" + engine), watched = temp_dir("progress_watched_" + engine);
  auto run = engine == "async" ? core::run_async : core::run_sync;
  run(spec, builtin_registry(), plain, nullptr, {});
  core::RunControl control;
  std::vector<std::int64_t> seen;
  control.on_step = [&](std::int64_t done, std::int64_t total) {
    seen.push_back(done);
    EXPECT_EQ(total, 30);
  };
  run(spec, builtin_registry(), watched, nullptr, control);
  ASSERT_EQ(seen.size(), 30u) << engine;
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], static_cast<std::int64_t>(i + 1));
  EXPECT_EQ(metrics_without_wall_time(plain), metrics_without_wall_time(watched)) << engine;
}

TEST(Progress, EnginesReportEveryStepAndMetricsStayBitIdentical) {
  expect_steps_reported_without_effect("sync");
  expect_steps_reported_without_effect("async");
}

TEST(Logging, DebugLevelShowsPluginDebugMessagesInfoHidesThem) {
  const std::string dir = temp_dir("log_level");
  for (auto level : {spdlog::level::info, spdlog::level::debug}) {
    core::set_log_options(level, /*quiet=*/true);  // quiet: nothing on the test's console
    const std::string file = dir + "/" + spdlog::level::to_string_view(level).data() + ".txt";
    auto logger = core::make_run_logger("t", file);
    core::RunContext context(RunInfo{}, 1, "aggregator 'probe'", logger);
    context.debug("a debug message");
    context.info("an info message");
    logger->flush();
  }
  core::set_log_options(spdlog::level::info, false);
  EXPECT_THAT(read_file(dir + "/info.txt"), ::testing::Not(::testing::HasSubstr("a debug message")));
  EXPECT_THAT(read_file(dir + "/info.txt"), ::testing::HasSubstr("an info message"));
  EXPECT_THAT(read_file(dir + "/debug.txt"), ::testing::HasSubstr("aggregator 'probe': a debug message"));
}

}  // namespace
}  // namespace phalanx::test
