// The command line's flags as a user meets them (core/cli/parse.cpp): help, version, unknown flags, log
// level, quiet and the progress lines of a run whose output is not a terminal.
#include <filesystem>

#include "support.hpp"

namespace phalanx::test {
namespace {

TEST(CliFlags, HelpOnEveryVerbExitsZero) {
  int code = -1;
  std::string out = run_phalanx("--help", &code);
  EXPECT_EQ(code, 0) << out;
  for (const char* part : {"--log-level", "--quiet", "--version", "run", "sweep", "report", "validate", "launch",
                           "plugins"})
    EXPECT_THAT(out, ::testing::HasSubstr(part));
  for (const std::string verb : {"run", "sweep", "report", "validate", "launch", "plugins"}) {
    out = run_phalanx(verb + " --help", &code);
    EXPECT_EQ(code, 0) << verb << ": " << out;
    EXPECT_THAT(out, ::testing::HasSubstr("Usage: phalanx " + verb)) << out;
  }
  out = run_phalanx("sweep --help", &code);
  EXPECT_THAT(out, ::testing::HasSubstr("--shard"));
  out = run_phalanx("launch --help", &code);
  EXPECT_THAT(out, ::testing::HasSubstr("--master-addr"));
}

TEST(CliFlags, VersionComesFromTheBuild) {
  int code = -1;
  const std::string out = run_phalanx("--version", &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, ::testing::MatchesRegex("phalanx [0-9]+\\.[0-9]+\\.[0-9]+ \\(SDK ABI [0-9]+, .*\\)\n"));
}

TEST(CliFlags, UnknownFlagsAndVerbsSuggestTheRightOne) {
  int code = -1;
  std::string out = run_phalanx("sweep cfg.yaml --jbos 2", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("unknown option '--jbos' for 'sweep'; did you mean '--jobs'?"));
  out = run_phalanx("run cfg.yaml --checkpoint-evry 5", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("did you mean '--checkpoint-every'?"));
  out = run_phalanx("swep cfg.yaml", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("unknown command 'swep'; did you mean 'sweep'?"));
  out = run_phalanx("report a b", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("unexpected argument 'b'"));
  out = run_phalanx("sweep cfg.yaml --jobs 0", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("--jobs"));
  out = run_phalanx("--log-level chatty plugins", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("--log-level must be one of trace, debug, info, warn, error; got 'chatty'"));
  out = run_phalanx("", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("no command given"));
}

const char* kProgressRun = R"(name: cli_progress
data: {name: synthetic, train_size: 300, test_size: 100}
model: logreg
workers: {count: 3}
training: {batch_size: 8, budget: {steps: 40}, eval_every: 20}
)";

TEST(CliFlags, ProgressIsPlainWithoutATerminalAndQuietHidesIt) {
  const std::string dir = temp_dir("cli_progress");
  write_file(dir + "/c.yaml", kProgressRun);
  int code = -1;
  std::string out = run_phalanx("run " + dir + "/c.yaml --out " + dir + "/a", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("progress: step 40/40 (100 %)"));
  EXPECT_EQ(out.find('\r'), std::string::npos) << "a log that is not a terminal gets no carriage returns";
  // Global flags go before or after the verb.
  out = run_phalanx("run " + dir + "/c.yaml --out " + dir + "/b -q", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::Not(::testing::HasSubstr("progress:")));
  EXPECT_THAT(out, ::testing::Not(::testing::HasSubstr("[info]")));
  EXPECT_THAT(out, ::testing::HasSubstr("final: step 40"));
  EXPECT_THAT(read_file(dir + "/b/log.txt"), ::testing::HasSubstr("[info]")) << "quiet spares log.txt";
  out = run_phalanx("--log-level warn run " + dir + "/c.yaml --out " + dir + "/c", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(read_file(dir + "/c/log.txt"), ::testing::Not(::testing::HasSubstr("[info]")));
  EXPECT_EQ(metrics_without_wall_time(dir + "/a"), metrics_without_wall_time(dir + "/b"));
}

}  // namespace
}  // namespace phalanx::test
