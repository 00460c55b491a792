// Properties every pre-aggregator registered in this build must have, the counterpart of
// aggregator_conformance_test.cpp: the suite is instantiated over the registry's list, so a new
// pre-aggregator plugin is tested without touching this file. Values computed by hand are in
// preaggregator_test.cpp.
//
// Every rule runs for n = 7 workers of which f = 2 are Byzantine, with its default parameters; a parameter
// without a default that the rule cannot derive from the run (clip's radius c) is set to 1, which leaves the
// test's rows (norms below 1) unclipped where that matters.
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/context.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

constexpr std::int64_t kPreaggregatorRows = 7;
constexpr std::int64_t kPreaggregatorByzantine = 2;
constexpr std::int64_t kPreaggregatorDim = 6;

std::vector<std::string> preaggregator_names() {
  std::vector<std::string> names;
  for (const core::PluginEntry* entry : builtin_registry().list(core::Kind::PreAggregator))
    names.push_back(entry->info.name);
  return names;
}

/// "{}", or every numeric parameter without a default set to 1 when the rule needs a value for it.
std::string params_yaml(const std::string& name) {
  std::string yaml;
  for (const core::PluginEntry* entry : builtin_registry().list(core::Kind::PreAggregator)) {
    if (entry->info.name != name) continue;
    for (const ParamSpec& spec : entry->info.params)
      if (spec.default_value.is_null() && (spec.type == ParamType::Int || spec.type == ParamType::Double))
        yaml += (yaml.empty() ? "" : ", ") + spec.name + ": 1";
  }
  return "{" + yaml + "}";
}

class PreAggregatorConformance : public ::testing::TestWithParam<std::string> {
 protected:
  std::shared_ptr<PreAggregator> make() {
    contexts_.push_back(make_context(kPreaggregatorRows, kPreaggregatorByzantine));
    const core::Registry& registry = builtin_registry();
    try {
      return registry.make_preaggregator(GetParam(), params_for(core::Kind::PreAggregator, GetParam()),
                                         *contexts_.back());
    } catch (const Error&) {
      return registry.make_preaggregator(
          GetParam(), params_for(core::Kind::PreAggregator, GetParam(), params_yaml(GetParam())), *contexts_.back());
    }
  }

  /// The rule on `x` with the context an engine gives (worker ids 0..n-1, staleness 0).
  static at::Tensor transform(const std::shared_ptr<PreAggregator>& rule, const at::Tensor& x) {
    RoundContext round;
    round.round = 0;
    for (std::int64_t i = 0; i < x.size(0); ++i) round.worker_ids.push_back(i);
    round.staleness.assign(x.size(0), 0);
    return rule->transform_with_context(x, round);
  }

  /// n honest-looking rows of norm well below 1.
  static at::Tensor honest(std::uint64_t seed) {
    return at::randn({kPreaggregatorRows, kPreaggregatorDim}, make_generator(seed)).mul_(0.05);
  }

 private:
  std::vector<std::unique_ptr<core::RunContext>> contexts_;  // outlive the rules of one test
};

TEST_P(PreAggregatorConformance, GivesRowsOfTheSameWidthAndStaysFinite) {
  auto rule = make();
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    const at::Tensor out = transform(rule, honest(seed));
    ASSERT_EQ(out.dim(), 2);
    EXPECT_EQ(out.size(1), kPreaggregatorDim);
    EXPECT_GE(out.size(0), 1);
    EXPECT_LE(out.size(0), kPreaggregatorRows);
    if (rule->keeps_row_order())
      EXPECT_EQ(out.size(0), kPreaggregatorRows) << "keeps_row_order() promises one row per input row";
    EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << out;
  }
}

TEST_P(PreAggregatorConformance, IdenticalRowsStayThatRow) {
  const at::Tensor row = at::tensor({0.05f, -0.02f, 0.01f, 0.0f, 0.03f, -0.04f});
  const at::Tensor out = transform(make(), row.unsqueeze(0).repeat({kPreaggregatorRows, 1}));
  ASSERT_EQ(out.size(1), kPreaggregatorDim);
  EXPECT_TRUE(at::allclose(out, row.unsqueeze(0).expand_as(out), 1e-6, 1e-7)) << out;
}

TEST_P(PreAggregatorConformance, DoesNotModifyItsInput) {
  at::Tensor x = honest(4);
  x[1].fill_(1e20f);
  const at::Tensor copy = x.clone();
  transform(make(), x);
  EXPECT_TRUE(at::equal(x, copy));
}

TEST_P(PreAggregatorConformance, SameSeedGivesBitIdenticalRows) {
  auto first = make(), second = make();
  for (std::uint64_t seed = 5; seed <= 7; ++seed) {
    const at::Tensor x = honest(seed);
    EXPECT_TRUE(at::equal(transform(first, x), transform(second, x))) << "round with rows of seed " << seed;
  }
}

TEST_P(PreAggregatorConformance, RestoredCopyContinuesIdentically) {
  auto original = make();
  transform(original, honest(8));
  auto restored = make();
  restored->load_state(original->save_state());
  for (std::uint64_t seed = 9; seed <= 10; ++seed) {
    const at::Tensor x = honest(seed);
    EXPECT_TRUE(at::equal(transform(original, x), transform(restored, x))) << "round with rows of seed " << seed;
  }
}

TEST_P(PreAggregatorConformance, ARuleThatKeepsRowOrderFollowsAPermutation) {
  // keeps_row_order() tells the aggregator after it that output row i is worker i's: permuting the
  // workers must permute the output rows the same way.
  auto rule = make();
  if (!rule->keeps_row_order()) return;  // bucketing mixes rows by design; its order is its seed's
  const at::Tensor x = honest(11);
  const at::Tensor order = at::randperm(kPreaggregatorRows, make_generator(12), at::kLong);
  const at::Tensor direct = transform(rule, x).index_select(0, order);
  const at::Tensor permuted = transform(make(), x.index_select(0, order));
  EXPECT_TRUE(at::allclose(direct, permuted, 1e-5, 1e-7)) << direct << "\n" << permuted;
}

INSTANTIATE_TEST_SUITE_P(Builtins, PreAggregatorConformance, ::testing::ValuesIn(preaggregator_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace phalanx::test
