// Properties every aggregator registered in this build must have (the aggregator counterpart of mlpack's
// shared optimizer tests). The properties themselves are the core's plugin checker
// (core/src/plugins/plugin_check.cpp), the same code `phalanx check-plugin` runs on an author's library, so
// the built-in rules and out-of-tree ones are held to one standard. The suite is instantiated over the
// registry's list, so a new aggregator plugin is tested without touching this file.
//
// What a built-in rule promises less than a robust rule is stated here, as its author would state it with
// `--expect`:
// - `mean` is not robust: it must refuse non-finite rows with a clear error, and one huge row moves it
//   (checked below, beyond the checker).
// - `foolsgold` defends against sybils, not magnitude: one lone huge row that resembles no honest row keeps
//   a large weight (plugins/aggregators/foolsgold.cpp); huge rows must still not make it non-finite, and two
//   equal huge rows (sybils) get no weight.
// - `monna` trusts one row by definition (row 0 with its default parameters, an honest worker's in every run
//   since Byzantine workers are the last b): the checker keeps that row honest and permutes only the others.
#include <ATen/ATen.h>

#include "phalanx/core/plugins/plugin_check.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

std::vector<std::string> aggregator_names() {
  std::vector<std::string> names;
  for (const core::PluginEntry* entry : builtin_registry().list(core::Kind::Aggregator)) names.push_back(entry->info.name);
  return names;
}

core::CheckOptions builtin_promises() {
  core::CheckOptions options;
  core::parse_promises("mean=not-robust", options);
  core::parse_promises("foolsgold=unbounded", options);
  core::parse_promises("monna=trusts-first-row", options);
  return options;
}

class AggregatorConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(AggregatorConformance, PassesEveryCheckedProperty) {
  const core::PluginEntry& entry = builtin_registry().find(core::Kind::Aggregator, GetParam());
  std::size_t checked = 0;
  for (const core::CheckResult& r : core::check_plugin(builtin_registry(), entry, builtin_promises())) {
    EXPECT_NE(r.status, core::CheckStatus::Fail) << core::format_result(r);
    checked += r.status == core::CheckStatus::Pass;
  }
  EXPECT_GE(checked, 9u) << "fewer properties ran than the checker has: one stopped the others";
}

INSTANTIATE_TEST_SUITE_P(Builtins, AggregatorConformance, ::testing::ValuesIn(aggregator_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(MeanConformance, RefusesNonFiniteRowsAndFollowsHugeRows) {
  at::Tensor x = at::randn({7, 11}, make_generator(20)).mul_(0.01);
  x[3][2] = kNaN;
  EXPECT_ERROR_WITH(make_aggregator("mean", "{}", 7, 2)->aggregate(x), "NaN or Inf");
  x[3].fill_(1e20f);
  at::Tensor out = make_aggregator("mean", "{}", 7, 2)->aggregate(x);
  EXPECT_TRUE(at::equal(out, x.mean(0)));
  EXPECT_GT(out.abs().max().item<float>(), 1e18f) << "mean is not robust: a huge row moves it";
}

}  // namespace
}  // namespace phalanx::test
