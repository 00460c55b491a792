// Optimizer rules against values computed by hand.
#include <ATen/ATen.h>

#include "support.hpp"

namespace phalanx::test {
namespace {

void expect_near(const at::Tensor& got, std::vector<float> want) {
  ASSERT_EQ(got.numel(), static_cast<std::int64_t>(want.size()));
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i].item<float>(), want[i], 1e-6) << "index " << i;
}

TEST(Sgd, StepsAgainstTheUpdate) {
  at::Tensor w = at::tensor({1.f, 1.f});
  make_optimizer("sgd")->apply(w, at::tensor({2.f, -4.f}), Arrival{}, 0.5);
  expect_near(w, {0.f, 3.f});
}

TEST(Sgd, WorkerSendsTheRawGradient) {
  auto rule = make_optimizer("sgd")->make_worker_rule(0);
  expect_near(rule->message(at::tensor({1.f, 2.f}), 0), {1.f, 2.f});
  expect_near(rule->message(at::tensor({3.f, 4.f}), 1), {3.f, 4.f});
}

TEST(ByzSgdm, WorkerMomentumStartsAtTheFirstGradient) {
  auto rule = make_optimizer("byzsgdm", "{beta: 0.9}")->make_worker_rule(0);
  expect_near(rule->message(at::tensor({1.f, 0.f}), 0), {1.f, 0.f});    // u = g at t = 0
  expect_near(rule->message(at::tensor({0.f, 1.f}), 1), {0.9f, 0.1f});  // 0.9 u + 0.1 g
  expect_near(rule->message(at::tensor({0.f, 0.f}), 2), {0.81f, 0.09f});
}

TEST(ByzSgdm, EachWorkerHasItsOwnBuffer) {
  auto opt = make_optimizer("byzsgdm", "{beta: 0.5}");
  auto a = opt->make_worker_rule(0), b = opt->make_worker_rule(1);
  a->message(at::tensor({2.f}), 0);
  expect_near(b->message(at::tensor({4.f}), 0), {4.f});
  expect_near(a->message(at::tensor({0.f}), 1), {1.f});
}

TEST(ByzSgdm, ServerStepIsNotNormalised) {
  at::Tensor w = at::tensor({1.f, 1.f});
  make_optimizer("byzsgdm")->apply(w, at::tensor({3.f, 4.f}), Arrival{}, 0.5);
  expect_near(w, {-0.5f, -1.f});
}

TEST(ByzSgdnm, ServerStepHasLengthLr) {
  // u = (3, 4), ||u|| = 5: w <- w - 0.5 * (0.6, 0.8).
  at::Tensor w = at::tensor({1.f, 1.f});
  make_optimizer("byzsgdnm")->apply(w, at::tensor({3.f, 4.f}), Arrival{}, 0.5);
  expect_near(w, {0.7f, 0.6f});
}

TEST(ByzSgdnm, ZeroAggregateGivesAZeroStepNotNaN) {
  at::Tensor w = at::tensor({1.f, -2.f});
  make_optimizer("byzsgdnm")->apply(w, at::zeros({2}), Arrival{}, 0.5);
  expect_near(w, {1.f, -2.f});
}

TEST(ByzSgdnm, WorkerMomentumMatchesByzSgdm) {
  auto m = make_optimizer("byzsgdm", "{beta: 0.7}")->make_worker_rule(0);
  auto nm = make_optimizer("byzsgdnm", "{beta: 0.7}")->make_worker_rule(0);
  for (int t = 0; t < 4; ++t) {
    at::Tensor g = at::tensor({float(t), 1.f - t});
    EXPECT_TRUE(at::equal(m->message(g, t), nm->message(g, t)));
  }
}

// The properties every optimizer shares (a quadratic is minimised, state round trips of the server and
// worker halves, shapes, determinism) are checked for each registered one in optimizer_conformance_test.cpp.

}  // namespace
}  // namespace phalanx::test
