// Shared helpers for the test suites.
#pragma once

#include <ATen/core/Tensor.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "phalanx/aggregator.hpp"
#include "phalanx/attack.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/run/run_output.hpp"
#include "phalanx/error.hpp"
#include "phalanx/optimizer.hpp"

namespace phalanx::test {

// Where this build's files are. Only support.cpp is compiled with these paths, so the other test sources
// are the same in every clone and ccache and the precompiled header serve them all.
std::string source_dir();          // the repository root
std::string phalanx_binary();      // the `phalanx` executable of this build
std::string builtin_plugin_dir();  // the built-in plugins of this build
std::string test_plugin_dir();     // the deliberately broken plugins of tests/plugins

/// A registry holding every built-in plugin of this build (loaded through the real loader).
const core::Registry& builtin_registry();

/// A context for a run with n workers of which b are Byzantine.
std::unique_ptr<core::RunContext> make_context(std::int64_t n, std::int64_t b, std::uint64_t seed = 1);

/// Params for plugin (kind, name) from a YAML flow map such as "{tau: 0.5}".
Params params_for(core::Kind kind, const std::string& name, const std::string& yaml = "{}");

/// An aggregator of this build for a run with n workers of which b are Byzantine.
std::shared_ptr<Aggregator> make_aggregator(const std::string& name, const std::string& params = "{}",
                                            std::int64_t n = 4, std::int64_t b = 1);

/// The other plugin kinds of this build, the same way; the run contexts outlive the plugins.
std::shared_ptr<PreAggregator> make_preaggregator(const std::string& name, const std::string& params, std::int64_t n,
                                                  std::int64_t b, std::uint64_t seed = 1);
std::shared_ptr<Attack> make_attack(const std::string& name, const std::string& params, std::int64_t n, std::int64_t b,
                                    std::uint64_t seed = 1);
std::shared_ptr<Optimizer> make_optimizer(const std::string& name, const std::string& params = "{}",
                                          std::int64_t workers = 4);

/// An [n, d] float32 tensor from its rows.
at::Tensor rows(std::vector<std::vector<float>> values);

/// An [n, d] float32 tensor from its values in row-major order.
at::Tensor matrix(std::int64_t n, std::int64_t d, const std::vector<float>& values);

/// EXPECT every element of `got` within `tol` of `want`.
void expect_near(const at::Tensor& got, std::vector<float> want, double tol = 1e-5);

/// EXPECT every element of `got` within `rtol` of `want`, relative (plus 1e-6 absolute, for zeros).
void expect_close(const at::Tensor& got, const std::vector<float>& want, double rtol = 1e-5);

inline const float kNaN = std::numeric_limits<float>::quiet_NaN();
inline const float kInf = std::numeric_limits<float>::infinity();

/// A fresh empty folder under the test temp dir.
std::string temp_dir(const std::string& name);

std::string read_file(const std::string& path);
/// How many times `what` occurs in `text` (overlapping occurrences count).
std::size_t count_occurrences(const std::string& text, const std::string& what);

/// DIR/metrics.jsonl without the wall_time field, the only thing allowed to differ between two runs of one
/// config and seed.
std::string metrics_without_wall_time(const std::string& dir);
void write_file(const std::string& path, const std::string& text);

/// Runs a shell command, returns its exit code and (stdout+stderr) output.
int run_command(const std::string& command, std::string* output);

/// Runs this build's `phalanx` with `args` and stdin from /dev/null; its exit code goes to `code`.
std::string run_phalanx(const std::string& args, int* code);

/// Runs a test body once per vector kernel this CPU runs, chosen through the SDK's setter (set_gram_kernel,
/// set_sort_kernel: false for a kernel the CPU lacks); the widest is chosen again afterwards, also when an
/// assertion fails.
template <typename Kernel>
class EachKernel {
 public:
  EachKernel(bool (*choose)(Kernel), std::vector<Kernel> kernels, Kernel widest)
      : choose_(choose), kernels_(std::move(kernels)), widest_(widest) {}
  ~EachKernel() { choose_(widest_); }
  EachKernel(const EachKernel&) = delete;
  EachKernel& operator=(const EachKernel&) = delete;

  template <typename Body>
  void run(const Body& body) {
    int ran = 0;
    for (Kernel kernel : kernels_) {
      if (!choose_(kernel)) continue;  // this CPU lacks it; the baseline kernel always runs
      SCOPED_TRACE("kernel " + std::to_string(static_cast<int>(kernel)));
      body();
      ++ran;
    }
    EXPECT_GE(ran, 1);
  }

 private:
  bool (*choose_)(Kernel);
  std::vector<Kernel> kernels_;
  Kernel widest_;
};

}  // namespace phalanx::test

/// EXPECT that `statement` throws phalanx::Error whose message contains every listed substring.
#define EXPECT_ERROR_WITH(statement, ...)                                               \
  do {                                                                                  \
    try {                                                                               \
      statement;                                                                        \
      ADD_FAILURE() << "expected phalanx::Error from: " #statement;                    \
    } catch (const ::phalanx::Error& e) {                                               \
      for (const char* part : {__VA_ARGS__}) EXPECT_THAT(e.what(), ::testing::HasSubstr(part)); \
    }                                                                                   \
  } while (0)
