// Aggregation rules against values computed by hand, and their behaviour with non-finite rows.
#include <ATen/ATen.h>

#include "support.hpp"

namespace phalanx::test {
namespace {

std::shared_ptr<Aggregator> make(const std::string& name, const std::string& params = "{}", std::int64_t n = 4,
                                 std::int64_t b = 1) {
  static std::vector<std::unique_ptr<core::RunContext>> contexts;  // outlive the aggregators
  contexts.push_back(make_context(n, b));
  return builtin_registry().make_aggregator(name, params_for(core::Kind::Aggregator, name, params), *contexts.back());
}

at::Tensor rows(std::vector<std::vector<float>> values) {
  std::vector<at::Tensor> r;
  for (auto& v : values) r.push_back(at::tensor(v, at::kFloat));
  return at::stack(r);
}

void expect_near(const at::Tensor& got, std::vector<float> want, double tol = 1e-5) {
  ASSERT_EQ(got.numel(), static_cast<std::int64_t>(want.size()));
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i].item<float>(), want[i], tol) << "index " << i;
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

TEST(Mean, AveragesRows) { expect_near(make("mean")->aggregate(rows({{1, 2}, {3, 4}, {5, 9}})), {3, 5}); }

TEST(Mean, RefusesNonFiniteRowsClearly) {
  EXPECT_ERROR_WITH(make("mean")->aggregate(rows({{1, 2}, {kNaN, 0}, {0, kInf}})), "aggregator 'mean'",
                    "2 of 3 messages contain NaN or Inf", "robust aggregator");
}

TEST(CoordinateMedian, OddCountTakesMiddleValuePerCoordinate) {
  expect_near(make("cm")->aggregate(rows({{1, 10}, {2, 20}, {100, -5}})), {2, 10});
}

TEST(CoordinateMedian, EvenCountAveragesTheTwoMiddleValues) {
  expect_near(make("cm")->aggregate(rows({{1, 4}, {2, 3}, {3, 2}, {10, 1}})), {2.5, 2.5});
}

TEST(CoordinateMedian, DropsNonFiniteRows) {
  expect_near(make("cm")->aggregate(rows({{1, 1}, {2, 2}, {3, 3}, {kNaN, kInf}})), {2, 2});
}

TEST(CoordinateMedian, AllRowsNonFiniteIsAnError) {
  EXPECT_ERROR_WITH(make("cm")->aggregate(rows({{kNaN}, {kInf}})), "every message");
}

TEST(CenteredClipping, FirstRoundClipsAroundZero) {
  // diffs from v = 0: (3,4) has norm 5 -> scaled by tau/5 = 0.2 -> (0.6, 0.8); (0, 0.5) is inside the
  // radius. v = (1/2) * ((0.6, 0.8) + (0, 0.5)) = (0.3, 0.65).
  expect_near(make("cc", "{tau: 1}")->aggregate(rows({{3, 4}, {0, 0.5}})), {0.3f, 0.65f});
}

TEST(CenteredClipping, SecondRoundStartsFromThePreviousOutput) {
  auto cc = make("cc", "{tau: 1}");
  at::Tensor x = rows({{3, 4}, {0, 0.5}});
  cc->aggregate(x);
  // From v = (0.3, 0.65): (2.7, 3.35) has norm 4.30261 -> scaled to (0.627526, 0.778597); (-0.3, -0.15)
  // is inside. v = (0.3, 0.65) + (1/2)(0.327526, 0.628597).
  expect_near(cc->aggregate(x), {0.463763f, 0.964299f});
}

TEST(CenteredClipping, MoreIterationsMoveFurther) {
  at::Tensor x = rows({{3, 4}, {3, 4}});
  at::Tensor one = make("cc", "{tau: 1, iterations: 1}")->aggregate(x);
  at::Tensor three = make("cc", "{tau: 1, iterations: 3}")->aggregate(x);
  EXPECT_NEAR(one.norm().item<float>(), 1.0, 1e-5);    // both rows clipped to length 1
  EXPECT_NEAR(three.norm().item<float>(), 3.0, 1e-5);  // one unit per iteration
}

TEST(CenteredClipping, NonFiniteRowContributesNothing) {
  expect_near(make("cc", "{tau: 1}")->aggregate(rows({{3, 4}, {kNaN, 0}})), {0.3f, 0.4f});
}

TEST(CenteredClipping, StateRoundTripGivesTheSameNextOutput) {
  auto first = make("cc", "{tau: 1}");
  at::Tensor x = rows({{3, 4}, {0, 0.5}});
  first->aggregate(x);
  auto second = make("cc", "{tau: 1}");
  second->load_state(first->save_state());
  EXPECT_TRUE(at::equal(first->aggregate(x), second->aggregate(x)));
}

}  // namespace
}  // namespace phalanx::test
