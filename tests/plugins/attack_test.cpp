// Attacks against values computed by hand.
#include <ATen/ATen.h>

#include "support.hpp"

namespace phalanx::test {
namespace {

TEST(Attacks, NoneSendsTheTrueMessage) {
  AttackRound round{at::zeros({2, 2}), at::tensor({1.f, -2.f}).reshape({1, 2}), 0};
  EXPECT_TRUE(at::equal(make_attack("none", "{}", 3, 1)->craft(round), round.byzantine_true));
}

TEST(Attacks, BitflipSendsMinusScaleTimesTheTrueMessage) {
  AttackRound round{at::zeros({2, 2}), at::tensor({1.f, -2.f, 0.5f, 0.f}).reshape({2, 2}), 0};
  at::Tensor out = make_attack("bitflip", "{scale: 10}", 4, 2)->craft(round);
  EXPECT_TRUE(at::equal(out, at::tensor({-10.f, 20.f, -5.f, -0.f}).reshape({2, 2})));
}

TEST(Attacks, AlieUsesZMaxOfThePaper) {
  // n = 8, b = 3: h = 5, s = floor(8/2 + 1) - 3 = 2, z = Phi^-1(3/5) = 0.2533471. Honest values 0,2,4,6,8:
  // mean 4, unbiased std sqrt(10) -> 4 - 0.2533471 * 3.1622777 = 3.1988461.
  AttackRound round{at::tensor({0.f, 2.f, 4.f, 6.f, 8.f}).reshape({5, 1}), at::zeros({3, 1}), 0};
  at::Tensor out = make_attack("alie", "{}", 8, 3)->craft(round);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{3, 1}));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(out[i][0].item<float>(), 3.1988461f, 1e-5);
}

TEST(Attacks, AlieWithExplicitZ) {
  AttackRound round{at::tensor({0.f, 2.f, 4.f, 6.f, 8.f}).reshape({5, 1}), at::zeros({1, 1}), 0};
  EXPECT_NEAR(make_attack("alie", "{z: 1}", 6, 1)->craft(round)[0][0].item<float>(), 4 - 3.1622777f, 1e-5);
}

TEST(Attacks, AlieIsOmniscientAndBitflipIsNot) {
  EXPECT_TRUE(make_attack("alie", "{}", 8, 3)->omniscient());
  EXPECT_FALSE(make_attack("bitflip", "{}", 8, 3)->omniscient());
}

}  // namespace
}  // namespace phalanx::test
