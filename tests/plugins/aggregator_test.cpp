// Aggregation rules against values computed by hand, and their behaviour with non-finite rows.
#include <ATen/ATen.h>

#include "support.hpp"

namespace phalanx::test {
namespace {


TEST(Mean, AveragesRows) { expect_near(make_aggregator("mean")->aggregate(rows({{1, 2}, {3, 4}, {5, 9}})), {3, 5}); }

TEST(Mean, EqualsAtMeanOverManyColumnBlocks) {
  // mean sums block of columns by block of columns (4096 at a time); the result is still at::mean's.
  at::Tensor x = at::randn({7, 10'001}, make_generator(5));
  EXPECT_TRUE(at::equal(make_aggregator("mean")->aggregate(x), x.mean(0)));
}

TEST(Mean, RefusesNonFiniteRowsClearly) {
  EXPECT_ERROR_WITH(make_aggregator("mean")->aggregate(rows({{1, 2}, {kNaN, 0}, {0, kInf}})), "aggregator 'mean'",
                    "2 of 3 messages contain NaN or Inf", "robust aggregator");
}

TEST(CoordinateMedian, OddCountTakesMiddleValuePerCoordinate) {
  expect_near(make_aggregator("cm")->aggregate(rows({{1, 10}, {2, 20}, {100, -5}})), {2, 10});
}

TEST(CoordinateMedian, EvenCountAveragesTheTwoMiddleValues) {
  expect_near(make_aggregator("cm")->aggregate(rows({{1, 4}, {2, 3}, {3, 2}, {10, 1}})), {2.5, 2.5});
}

TEST(CoordinateMedian, DropsNonFiniteRows) {
  expect_near(make_aggregator("cm")->aggregate(rows({{1, 1}, {2, 2}, {3, 3}, {kNaN, kInf}})), {2, 2});
}

TEST(CoordinateMedian, AllRowsNonFiniteIsAnError) {
  EXPECT_ERROR_WITH(make_aggregator("cm")->aggregate(rows({{kNaN}, {kInf}})), "every message");
}

TEST(CenteredClipping, FirstRoundClipsAroundZero) {
  // diffs from v = 0: (3,4) has norm 5 -> scaled by tau/5 = 0.2 -> (0.6, 0.8); (0, 0.5) is inside the
  // radius. v = (1/2) * ((0.6, 0.8) + (0, 0.5)) = (0.3, 0.65).
  expect_near(make_aggregator("cc", "{tau: 1}")->aggregate(rows({{3, 4}, {0, 0.5}})), {0.3f, 0.65f});
}

TEST(CenteredClipping, SecondRoundStartsFromThePreviousOutput) {
  auto cc = make_aggregator("cc", "{tau: 1}");
  at::Tensor x = rows({{3, 4}, {0, 0.5}});
  cc->aggregate(x);
  // From v = (0.3, 0.65): (2.7, 3.35) has norm 4.30261 -> scaled to (0.627526, 0.778597); (-0.3, -0.15)
  // is inside. v = (0.3, 0.65) + (1/2)(0.327526, 0.628597).
  expect_near(cc->aggregate(x), {0.463763f, 0.964299f});
}

TEST(CenteredClipping, MoreIterationsMoveFurther) {
  at::Tensor x = rows({{3, 4}, {3, 4}});
  at::Tensor one = make_aggregator("cc", "{tau: 1, iterations: 1}")->aggregate(x);
  at::Tensor three = make_aggregator("cc", "{tau: 1, iterations: 3}")->aggregate(x);
  EXPECT_NEAR(one.norm().item<float>(), 1.0, 1e-5);    // both rows clipped to length 1
  EXPECT_NEAR(three.norm().item<float>(), 3.0, 1e-5);  // one unit per iteration
}

TEST(CenteredClipping, NonFiniteRowContributesNothing) {
  expect_near(make_aggregator("cc", "{tau: 1}")->aggregate(rows({{3, 4}, {kNaN, 0}})), {0.3f, 0.4f});
}

TEST(CenteredClipping, MatchesTheFormulaInFloat64OverManyColumnBlocks) {
  // cc sums the distances in float32 over chunks of columns and four rows at a time (docs/BENCHMARKS.md): check it
  // against the formula in float64 with several blocks and a ragged last one, a row count that is not a
  // multiple of four, a row inside the radius, a NaN row, and a finite row whose squares overflow float32.
  const std::int64_t n = 7, d = 10'001;
  at::Tensor x = at::randn({n, d}, make_generator(3));
  x[1].mul_(1e-3f);        // norm about 0.1: not clipped
  x[4].fill_(1e25f);       // squares beyond float32, finite in float64
  x[5][9'000] = kNaN;      // contributes nothing
  auto cc = make_aggregator("cc", "{tau: 1, iterations: 2}");
  at::Tensor v = at::zeros({d}, at::kDouble);
  for (int round = 0; round < 2; ++round) {
    for (int l = 0; l < 2; ++l) {
      at::Tensor diff = x.to(at::kDouble) - v;
      at::Tensor norm = diff.norm(2, 1, /*keepdim=*/true);
      at::Tensor scale = at::where(at::isfinite(norm), at::clamp_max(1.0 / norm, 1.0), at::zeros_like(norm));
      v = v + at::where(at::isfinite(diff), diff * scale, at::zeros_like(diff)).sum(0) / n;
    }
    at::Tensor out = cc->aggregate(x);
    EXPECT_TRUE(at::allclose(out, v.to(at::kFloat), 1e-5, 1e-6)) << "round " << round << ": largest difference "
                                                                  << (out - v.to(at::kFloat)).abs().max();
  }
}

TEST(CenteredClipping, StateRoundTripGivesTheSameNextOutput) {
  auto first = make_aggregator("cc", "{tau: 1}");
  at::Tensor x = rows({{3, 4}, {0, 0.5}});
  first->aggregate(x);
  auto second = make_aggregator("cc", "{tau: 1}");
  second->load_state(first->save_state());
  EXPECT_TRUE(at::equal(first->aggregate(x), second->aggregate(x)));
}

}  // namespace
}  // namespace phalanx::test
