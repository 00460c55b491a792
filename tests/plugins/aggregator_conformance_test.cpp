// Properties every aggregator registered in this build must have (the aggregator counterpart of mlpack's
// shared optimizer tests). The suite is instantiated over the registry's list, so a new aggregator plugin is
// tested without touching this file.
//
// Every rule runs with f = 2 Byzantine workers out of n = 7, except a rule that refuses that setting as
// beyond its breakdown point (Bulyan needs n >= 4f + 3): it runs at the smallest n >= 7 it accepts for
// f = 2, which the test output reports.
//
// `mean` is not robust and is expected not to be: where the robust rules must stay finite or bounded, the
// tests check instead that mean refuses non-finite rows with a clear error and that one huge row moves it.
//
// Every call goes through aggregate_with_context with the context an engine gives (worker ids 0..n-1, staleness
// 0) and, as the server gradient for rules that need one (fltrust), the coordinate-wise median of the finite
// values: honest-looking and, like the rows, permuted along with them. Rows-only rules ignore it.
//
// `foolsgold` defends against sybils, not magnitude: one lone huge row that resembles no honest row keeps a
// large weight (plugins/aggregators/foolsgold.cpp). Huge rows must still not make it non-finite, and two equal
// huge rows (sybils) must get no weight.
//
// `monna` trusts one row by definition (row 0 with its default parameters, an honest worker's in every run
// since Byzantine workers are the last b): the tests keep that row honest and permute only the others.
#include <limits>
#include <vector>

#include <ATen/ATen.h>

#include "support.hpp"

namespace phalanx::test {
namespace {

constexpr std::int64_t kF = 2;
constexpr std::int64_t kPreferredN = 7;
constexpr std::int64_t kLargestN = 25;
constexpr std::int64_t kDim = 11;

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

std::vector<std::string> aggregator_names() {
  std::vector<std::string> names;
  for (const core::PluginEntry* entry : builtin_registry().list(core::Kind::Aggregator)) names.push_back(entry->info.name);
  return names;
}

class AggregatorConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    for (std::int64_t n = kPreferredN; n <= kLargestN && n_ == 0; ++n) {
      try {
        make(n);
        n_ = n;
      } catch (const Error&) {
        // refused as beyond the rule's breakdown point: try one more worker
      }
    }
    ASSERT_GT(n_, 0) << "aggregator '" << GetParam() << "' accepts f = " << kF << " for no n in " << kPreferredN
                     << ".." << kLargestN;
    if (n_ != kPreferredN) RecordProperty("workers", std::to_string(n_));
  }

  /// For failure messages: the setting the rule runs in.
  std::string setting() const { return GetParam() + " with n = " + std::to_string(n_) + ", f = " + std::to_string(kF); }

  /// A fresh aggregator (no state carried over) for n workers of which f are Byzantine, default parameters.
  std::shared_ptr<Aggregator> make(std::int64_t n = 0) {
    contexts_.push_back(make_context(n > 0 ? n : n_, kF));
    return builtin_registry().make_aggregator(GetParam(), params_for(core::Kind::Aggregator, GetParam()),
                                              *contexts_.back());
  }

  bool robust() const { return GetParam() != "mean"; }
  bool bounds_magnitude() const { return robust() && GetParam() != "foolsgold"; }

  /// The rule on `x` with the context an engine would hand it.
  static at::Tensor aggregate(const std::shared_ptr<Aggregator>& rule, const at::Tensor& x) {
    RoundContext round;
    round.round = 0;
    for (std::int64_t i = 0; i < x.size(0); ++i) round.worker_ids.push_back(i);
    round.staleness.assign(x.size(0), 0);
    round.server_gradient = std::get<0>(at::nanmedian(x.masked_fill(at::isinf(x), kNaN), 0));
    return rule->aggregate_with_context(x, round);
  }

  /// The first row a test may make Byzantine or move: 1 for a rule that trusts row 0, else 0.
  std::int64_t first_free_row() const { return GetParam() == "monna" ? 1 : 0; }

  /// n honest-looking rows: small Gaussian gradients.
  at::Tensor honest(std::uint64_t seed, std::int64_t rows = 0) const {
    return at::randn({rows > 0 ? rows : n_, kDim}, make_generator(seed)).mul_(0.01);
  }

  std::int64_t n_ = 0;

 private:
  std::vector<std::unique_ptr<core::RunContext>> contexts_;  // outlive the aggregators of one test
};

TEST_P(AggregatorConformance, PermutationInvariant) {
  SCOPED_TRACE(setting());
  at::Tensor x = honest(5);
  at::Tensor reference = aggregate(make(), x);
  const std::int64_t fixed = first_free_row();
  at::Tensor kept = at::arange(fixed, at::kLong);
  at::Tensor reversed = at::cat({kept, at::arange(n_ - 1, fixed - 1, -1, at::kLong)});
  at::Tensor shuffled = at::cat({kept, at::randperm(n_ - fixed, make_generator(9), at::kLong).add_(fixed)});
  for (const at::Tensor& order : {reversed, shuffled}) {
    at::Tensor permuted = aggregate(make(), x.index_select(0, order));
    EXPECT_TRUE(at::allclose(reference, permuted, 1e-5, 1e-6))
        << "order " << order << "\noriginal order gives " << reference << "\npermuted gives " << permuted;
  }
}

TEST_P(AggregatorConformance, IdenticalRowsGiveThatRow) {
  SCOPED_TRACE(setting());
  // Small enough to lie inside cc's default clipping radius (0.1), where clipping leaves it alone.
  at::Tensor row = at::tensor({0.05f, -0.02f, 0.01f, 0.0f, 0.03f});
  at::Tensor out = aggregate(make(), row.unsqueeze(0).repeat({n_, 1}));
  EXPECT_TRUE(at::allclose(out, row, 1e-6, 1e-7)) << out;
}

TEST_P(AggregatorConformance, DoesNotModifyItsInput) {
  SCOPED_TRACE(setting());
  at::Tensor x = honest(6);
  x[1].fill_(1e20f);
  at::Tensor copy = x.clone();
  aggregate(make(), x);
  EXPECT_TRUE(at::equal(x, copy));
}

TEST_P(AggregatorConformance, FiniteWithUpToFNonFiniteRows) {
  SCOPED_TRACE(setting());
  // Bad rows at the front and in the middle (not only at the end, where Byzantine workers usually sit), as
  // a whole NaN row and as a row holding +Inf, -Inf and NaN among finite values.
  at::Tensor mixed = at::zeros({kDim});
  mixed[0] = kInf;
  mixed[3] = -kInf;
  mixed[7] = kNaN;
  const std::vector<at::Tensor> bad_rows{at::full({kDim}, kNaN), mixed};
  const std::vector<std::int64_t> positions{first_free_row(), n_ / 2};
  for (std::int64_t bad = 1; bad <= kF; ++bad) {
    at::Tensor x = honest(10 + bad);
    for (std::int64_t i = 0; i < bad; ++i) x[positions[i]].copy_(bad_rows[i]);
    SCOPED_TRACE(std::to_string(bad) + " non-finite rows");
    if (robust()) {
      at::Tensor out = aggregate(make(), x);
      EXPECT_EQ(out.sizes(), at::IntArrayRef({kDim}));
      EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << out;
    } else {
      EXPECT_ERROR_WITH(aggregate(make(), x), "NaN or Inf");
    }
  }
}

TEST_P(AggregatorConformance, BoundedWhenFRowsAreHuge) {
  SCOPED_TRACE(setting());
  // Honest rows are about 0.01 per coordinate; f rows of 1e20 (same sign, so they do not cancel, then
  // opposite signs) must not drag a robust rule anywhere near them.
  for (float second : {1e20f, -1e20f}) {
    at::Tensor x = honest(20);
    x[first_free_row()].fill_(1e20f);
    x[n_ - 1].fill_(second);
    at::Tensor out = aggregate(make(), x);
    SCOPED_TRACE("huge rows 1e20 and " + std::to_string(second));
    ASSERT_TRUE(at::isfinite(out).all().item<bool>()) << out;
    const float largest = out.abs().max().item<float>();
    if (bounds_magnitude()) {
      EXPECT_LT(largest, 1.0f) << out;
    } else if (robust()) {
      // foolsgold: equal huge rows are sybils and get weight 0; a lone huge row is not bounded.
      if (second > 0) EXPECT_LT(largest, 1.0f) << out;
    } else {
      // mean takes the huge rows in like any other: far away when they share a sign, cancelling otherwise.
      EXPECT_TRUE(at::equal(out, x.mean(0))) << out;
      if (second > 0) EXPECT_GT(largest, 1e18f) << "mean is not robust: huge rows move it";
    }
  }
}

TEST_P(AggregatorConformance, AcceptsFewerRowsThanWorkers) {
  SCOPED_TRACE(setting());
  // Pre-aggregators such as bucketing hand the rule fewer rows than there are workers, down to one.
  for (std::int64_t rows = n_ - 1; rows >= 1; --rows) {
    at::Tensor out = aggregate(make(), honest(30 + rows, rows));
    SCOPED_TRACE(std::to_string(rows) + " rows");
    EXPECT_EQ(out.sizes(), at::IntArrayRef({kDim}));
    EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << out;
  }
}

INSTANTIATE_TEST_SUITE_P(Builtins, AggregatorConformance, ::testing::ValuesIn(aggregator_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace phalanx::test
