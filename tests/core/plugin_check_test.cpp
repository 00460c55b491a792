// The plugin checker (core/src/plugins/plugin_check.cpp): every built-in pre-aggregator, attack and optimizer
// passes it (aggregators: tests/plugins/aggregator_conformance_test.cpp), and each deliberately broken
// plugin of tests/test_plugins/nonconforming.cpp fails the property it breaks.
#include <sstream>

#include "phalanx/core/config/check_plugin_command.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/plugins/plugin_check.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

using core::CheckOptions;
using core::CheckResult;
using core::CheckStatus;

std::string nonconforming_library() { return test_plugin_dir() + "/test_nonconforming.so"; }

/// The results of `phalanx check-plugin` on the nonconforming library, by "plugin: property".
std::map<std::string, CheckResult> nonconforming_results(int* exit_code = nullptr, std::string* printed = nullptr) {
  core::Registry registry;
  registry.load_library(nonconforming_library());
  std::map<std::string, CheckResult> by_key;
  for (const CheckResult& r : core::check_registry(registry, {})) by_key[r.plugin + ": " + r.property] = r;
  if (exit_code) {
    std::ostringstream out;
    *exit_code = core::check_plugin_command({nonconforming_library()}, out);
    *printed = out.str();
  }
  return by_key;
}

TEST(PluginCheck, EveryBuiltinPreAggregatorAttackAndOptimizerPasses) {
  CheckOptions options;
  options.params["clip"] = core::parse_yaml("{c: 1.0}", "test");  // clip's radius has no default
  std::size_t state_checks = 0, plugins = 0;
  for (core::Kind kind : {core::Kind::PreAggregator, core::Kind::Attack, core::Kind::Optimizer})
    for (const core::PluginEntry* entry : builtin_registry().list(kind)) {
      ++plugins;
      for (const CheckResult& r : core::check_plugin(builtin_registry(), *entry, options)) {
        EXPECT_EQ(r.status, CheckStatus::Pass) << core::format_result(r);
        state_checks += r.property == "state round trip";
      }
    }
  EXPECT_EQ(state_checks, plugins);
}

TEST(PluginCheck, EachBrokenPluginFailsThePropertyItBreaks) {
  auto results = nonconforming_results();
  auto status = [&](const std::string& key) {
    EXPECT_EQ(results.count(key), 1u) << key;
    return results[key].status;
  };
  EXPECT_EQ(status("aggregator 'wrong_shape': shape and dtype"), CheckStatus::Fail);
  EXPECT_THAT(results["aggregator 'wrong_shape': shape and dtype"].detail, ::testing::HasSubstr("[22]"));
  EXPECT_EQ(status("aggregator 'draws_from_global': determinism"), CheckStatus::Fail);
  EXPECT_EQ(status("aggregator 'counts_calls': state round trip"), CheckStatus::Fail);
  EXPECT_EQ(status("aggregator 'forgets_state': state round trip"), CheckStatus::Fail);
  EXPECT_EQ(status("aggregator 'first_row': permutation invariance"), CheckStatus::Fail);
  EXPECT_EQ(status("aggregator 'first_row': bounded under f outliers"), CheckStatus::Fail);
  EXPECT_EQ(status("aggregator 'bad_default': parameter declarations"), CheckStatus::Fail);
  EXPECT_THAT(results["aggregator 'bad_default': parameter declarations"].detail, ::testing::HasSubstr("'k'"));
  EXPECT_EQ(status("attack 'too_few_rows': shape and dtype"), CheckStatus::Fail);
  EXPECT_EQ(status("attack 'reads_byzantine_rows': Byzantine messages unread"), CheckStatus::Fail);
  EXPECT_EQ(status("aggregator 'torch_error': shape and dtype"), CheckStatus::Fail);
  EXPECT_THAT(results["aggregator 'torch_error': shape and dtype"].detail, ::testing::HasSubstr("threw: "));
  EXPECT_THAT(results["aggregator 'torch_error': shape and dtype"].detail,
              ::testing::Not(::testing::HasSubstr("frame #")));  // one line per property, not LibTorch's stack
  for (const auto& [key, r] : results)
    if (r.plugin == "aggregator 'conforming_median'") EXPECT_EQ(r.status, CheckStatus::Pass) << core::format_result(r);
}

TEST(PluginCheck, CommandPrintsOneLinePerPropertyAndFailsWhenOneFails) {
  int code = 0;
  std::string printed;
  auto results = nonconforming_results(&code, &printed);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(printed, ::testing::HasSubstr("FAIL  aggregator 'first_row'  permutation invariance: rows in another order"));
  EXPECT_THAT(printed, ::testing::HasSubstr("PASS  aggregator 'conforming_median'  determinism"));
  EXPECT_EQ(static_cast<std::size_t>(std::count(printed.begin(), printed.end(), '\n')), results.size() + 1);
}

TEST(PluginCheck, DeclaredPromisesTurnChecksIntoSkips) {
  std::ostringstream out;
  core::check_plugin_command({nonconforming_library(), "--expect", "first_row=order-dependent,not-robust"}, out);
  EXPECT_THAT(out.str(), ::testing::HasSubstr("SKIP  aggregator 'first_row'  permutation invariance: declared order-dependent"));
  EXPECT_THAT(out.str(), ::testing::HasSubstr("SKIP  aggregator 'first_row'  bounded under f outliers: declared not robust"));
}

TEST(PluginCheck, BadArgumentsAreClearErrors) {
  std::ostringstream out;
  CheckOptions options;
  EXPECT_ERROR_WITH(core::parse_promises("mean=fast", options), "unknown promise 'fast'", "not-robust");
  EXPECT_ERROR_WITH(core::parse_promises("mean", options), "NAME=PROMISE");
  EXPECT_ERROR_WITH(core::check_plugin_command({}, out), "no library given");
  EXPECT_ERROR_WITH(core::check_plugin_command({nonconforming_library(), "--expect", "nosuch=unbounded"}, out),
                    "'nosuch'", "no aggregator");
  EXPECT_ERROR_WITH(core::check_plugin_command({test_plugin_dir() + "/missing.so"}, out), "missing.so");
  EXPECT_ERROR_WITH(core::check_plugin_command({nonconforming_library(), "--params", "bad_default=[1]"}, out),
                    "must be a map");
}

TEST(PluginCheck, ARequiredParameterWithoutAValueFailsNamingIt) {
  // A null default may mean "automatic" or "required": only creating the plugin tells, and it names the key.
  const core::PluginEntry& clip = builtin_registry().find(core::Kind::PreAggregator, "clip");
  std::vector<CheckResult> results = core::check_plugin(builtin_registry(), clip, {});
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].status, CheckStatus::Pass) << core::format_result(results[0]);
  for (std::size_t i = 1; i < results.size(); ++i) {
    EXPECT_EQ(results[i].status, CheckStatus::Fail);
    EXPECT_THAT(results[i].detail, ::testing::HasSubstr("preaggregator.c has no value"));
  }
}

}  // namespace
}  // namespace phalanx::test
