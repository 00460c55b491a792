#include "support.hpp"
#include "small_run.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>

#include "phalanx/core/config/config.hpp"

namespace phalanx::test {

std::string source_dir() { return PHALANX_SOURCE_DIR; }
std::string phalanx_binary() { return PHALANX_BINARY; }
std::string builtin_plugin_dir() { return PHALANX_BUILTIN_PLUGIN_DIR; }
std::string test_plugin_dir() { return PHALANX_TEST_PLUGIN_DIR; }

const char* const kSmallRun = R"(name: small_run
seed: 5
data: {name: synthetic, train_size: 600, test_size: 100, features: 8, classes: 3}
model: {name: mlp, hidden: [8]}
workers: {count: 6, byzantine: 2}
optimizer: {name: sgd, lr: 0.05}
training: {batch_size: 8, budget: {steps: 3}, eval_every: 3}
)";

core::PipelineSpec resolve_config(const std::string& yaml, const std::vector<std::string>& overrides,
                                  const core::Registry& registry, const std::string& file) {
  Value root = core::parse_yaml(yaml, file);
  for (const auto& o : overrides) core::apply_override(root, o);
  return core::resolve_pipeline(root, registry);
}

const core::Registry& builtin_registry() {
  static core::Registry* registry = [] {
    auto* r = new core::Registry();  // never destroyed: plugins stay loaded for the whole test binary
    r->load_directory(PHALANX_BUILTIN_PLUGIN_DIR);
    return r;
  }();
  return *registry;
}

std::unique_ptr<core::RunContext> make_context(std::int64_t n, std::int64_t b, std::uint64_t seed) {
  RunInfo info;
  info.workers = n;
  info.byzantine = b;
  info.seed = seed;
  return std::make_unique<core::RunContext>(info, seed, "test", nullptr);
}

Params params_for(core::Kind kind, const std::string& name, const std::string& yaml) {
  return builtin_registry().validate(kind, name, core::parse_yaml(yaml, "test"), core::kind_name(kind));
}

std::shared_ptr<Aggregator> make_aggregator(const std::string& name, const std::string& params, std::int64_t n,
                                            std::int64_t b) {
  static std::vector<std::unique_ptr<core::RunContext>> contexts;  // outlive the aggregators
  contexts.push_back(make_context(n, b));
  return builtin_registry().make_aggregator(name, params_for(core::Kind::Aggregator, name, params), *contexts.back());
}

std::shared_ptr<PreAggregator> make_preaggregator(const std::string& name, const std::string& params, std::int64_t n,
                                                  std::int64_t b, std::uint64_t seed) {
  static std::vector<std::unique_ptr<core::RunContext>> contexts;
  contexts.push_back(make_context(n, b, seed));
  return builtin_registry().make_preaggregator(name, params_for(core::Kind::PreAggregator, name, params),
                                               *contexts.back());
}

std::shared_ptr<Attack> make_attack(const std::string& name, const std::string& params, std::int64_t n, std::int64_t b,
                                    std::uint64_t seed) {
  static std::vector<std::unique_ptr<core::RunContext>> contexts;
  contexts.push_back(make_context(n, b, seed));
  return builtin_registry().make_attack(name, params_for(core::Kind::Attack, name, params), *contexts.back());
}

std::shared_ptr<Optimizer> make_optimizer(const std::string& name, const std::string& params, std::int64_t workers) {
  static std::vector<std::unique_ptr<core::RunContext>> contexts;
  contexts.push_back(make_context(workers, 0));
  return builtin_registry().make_optimizer(name, params_for(core::Kind::Optimizer, name, params), *contexts.back());
}

at::Tensor rows(std::vector<std::vector<float>> values) {
  std::vector<at::Tensor> r;
  for (auto& v : values) r.push_back(at::tensor(v, at::kFloat));
  return at::stack(r);
}

at::Tensor matrix(std::int64_t n, std::int64_t d, const std::vector<float>& values) {
  return at::tensor(values, at::kFloat).reshape({n, d});
}

void expect_close(const at::Tensor& got, const std::vector<float>& want, double rtol) {
  ASSERT_EQ(got.numel(), static_cast<std::int64_t>(want.size()));
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i].item<float>(), want[i], rtol * std::abs(want[i]) + 1e-6) << "index " << i;
}

void expect_near(const at::Tensor& got, std::vector<float> want, double tol) {
  ASSERT_EQ(got.numel(), static_cast<std::int64_t>(want.size()));
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i].item<float>(), want[i], tol) << "index " << i;
}

std::string temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("phalanx_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::size_t count_occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string metrics_without_wall_time(const std::string& dir) {
  std::string out;
  std::stringstream in(read_file(dir + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const auto start = line.find("\"wall_time\"");
    out += line.substr(0, start) + line.substr(line.find(',', start) + 1) + "\n";
  }
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

int run_command(const std::string& command, std::string* output) {
  std::string full = command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buffer;
  std::string text;
  while (std::size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) text.append(buffer.data(), n);
  int status = pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string run_phalanx(const std::string& args, int* code) {
  std::string out;
  *code = run_command(phalanx_binary() + " " + args + " </dev/null", &out);
  return out;
}

}  // namespace phalanx::test
