// The hostile-input suite (docs/reliability.md): every file in tests/hostile/ is one case, a config fed to the real
// `phalanx` binary, with comment lines at its top saying what must happen:
//
//   # expect-exit: 2                      exit code (required)
//   # expect-output: unknown parameter    substring of stdout+stderr (any number of lines, all must appear)
//   # expect-no-output: frame #0          substring that must not appear (any number of lines)
//   # env: PHALANX_PLUGIN_PATH=/x         environment variable for the phalanx process (any number of lines)
//   # command: validate                   validate (default) | run | any argument list (@CONFIG@ = this file)
//   # setup: <shell command>              run in the case's temp folder first (any number of lines)
//
// Placeholders in the whole file: @TMP@ (a fresh folder for the case), @CONFIG@ (the config as written
// there), @TEST_PLUGINS@ (build/test_plugins: broken plugins), @HOSTILE@ (tests/hostile). `command: run`
// means `run @CONFIG@ --out @TMP@/out`. Every case runs under a timeout: a hang fails it, and so does an
// exit by signal (a crash), whatever the expected code. docs/reliability.md lists the cases.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phalanx::test {
namespace {

namespace fs = std::filesystem;

// Own small helpers rather than tests/support.cpp: this binary does not link LibTorch, so each of the
// many short ctest processes starts in milliseconds and the suite stays fast.
std::string temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("phalanx_hostile_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Runs a shell command; returns its exit code (128 + n when the shell saw signal n) and stdout+stderr.
int run_command(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buffer;
  std::string text;
  while (std::size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) text.append(buffer.data(), n);
  const int status = pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const std::string kCaseDir = PHALANX_HOSTILE_DIR;
constexpr int kTimeoutSeconds = 60;

struct HostileCase {
  std::string name;  // file stem
  std::string path;
};

std::vector<HostileCase> list_cases() {
  std::vector<HostileCase> cases;
  if (!fs::is_directory(kCaseDir)) return cases;
  for (const auto& entry : fs::directory_iterator(kCaseDir))
    if (entry.path().extension() == ".yaml") cases.push_back({entry.path().stem().string(), entry.path().string()});
  std::sort(cases.begin(), cases.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return cases;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
    text.replace(pos, from.size(), to);
  return text;
}

// Single-quoted for sh (the paths here hold no quote, but stay safe).
std::string quoted(const std::string& s) { return "'" + replace_all(s, "'", "'\\''") + "'"; }

// gtest would print the parameter as bytes.
void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.path; }

class Hostile : public ::testing::TestWithParam<HostileCase> {};

TEST_P(Hostile, EndsInAClearErrorOrADocumentedRecovery) {
  const HostileCase& c = GetParam();
  const std::string tmp = temp_dir("hostile_" + c.name);
  const std::string config = tmp + "/" + c.name + ".yaml";
  auto substitute = [&](std::string s) {
    s = replace_all(s, "@TMP@", tmp);
    s = replace_all(s, "@CONFIG@", config);
    s = replace_all(s, "@TEST_PLUGINS@", PHALANX_TEST_PLUGIN_DIR);
    return replace_all(s, "@HOSTILE@", kCaseDir);
  };
  const std::string text = substitute(read_file(c.path));
  write_file(config, text);

  int expect_exit = -1;
  std::vector<std::string> expect_output, expect_no_output, setup, env;
  std::string command = "validate";
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line) && line.rfind('#', 0) == 0;) {
    auto value = [&](const std::string& key) -> const char* {
      const std::string prefix = "# " + key + ":";
      return line.rfind(prefix, 0) == 0 ? line.c_str() + prefix.size() + (line.size() > prefix.size()) : nullptr;
    };
    if (const char* v = value("expect-exit")) expect_exit = std::stoi(v);
    if (const char* v = value("expect-output")) expect_output.emplace_back(v);
    if (const char* v = value("command")) command = v;
    if (const char* v = value("setup")) setup.emplace_back(v);
    if (const char* v = value("expect-no-output")) expect_no_output.emplace_back(v);
    if (const char* v = value("env")) env.emplace_back(v);
  }
  ASSERT_GE(expect_exit, 0) << c.path << ": no '# expect-exit: N' line at the top";
  ASSERT_FALSE(expect_output.empty()) << c.path << ": no '# expect-output: TEXT' line: say what the message must be";

  for (const auto& step : setup) {
    std::string out;
    ASSERT_EQ(run_command("cd " + quoted(tmp) + " && " + step, &out), 0) << "setup failed: " << step << "\n" << out;
  }
  if (command == "validate") command = "validate " + quoted(config);
  if (command == "run") command = "run " + quoted(config) + " --out " + quoted(tmp + "/out");

  std::string environment;
  for (const auto& assignment : env) environment += quoted(assignment) + " ";
  std::string out;
  const int code = run_command("cd " + quoted(tmp) + " && env " + environment + "timeout -s KILL " +
                                   std::to_string(kTimeoutSeconds) + " " +
                                   quoted(PHALANX_BINARY) + " " + command,
                               &out);
  ASSERT_NE(code, 137) << "killed after " << kTimeoutSeconds << " s: a hang (or out of memory)\n" << out;
  ASSERT_LT(code, 128) << "ended by signal " << code - 128 << ": a crash\n" << out;
  EXPECT_EQ(code, expect_exit) << out;
  for (const auto& part : expect_output) EXPECT_THAT(out, ::testing::HasSubstr(part));
  for (const auto& part : expect_no_output) EXPECT_THAT(out, ::testing::Not(::testing::HasSubstr(part)));
  for (const char* crash : {"terminate called", "Segmentation fault", "Aborted", "core dumped"})
    EXPECT_THAT(out, ::testing::Not(::testing::HasSubstr(crash)));
}

std::string case_name(const ::testing::TestParamInfo<HostileCase>& info) {
  std::string name = info.param.name;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Cases, Hostile, ::testing::ValuesIn(list_cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Hostile);

TEST(HostileSuite, HasAtLeastFiftyCases) { EXPECT_GE(list_cases().size(), 50u); }

}  // namespace
}  // namespace phalanx::test
