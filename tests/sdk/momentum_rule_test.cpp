// MomentumWorkerRule's one-pass update must give exactly what LibTorch's `u.mul_(beta).add_(g, 1 - beta)`
// gives (the recorded metrics of every ByzSGDm / ByzSGDnm run depend on it), at every length: the fused
// pass covers whole blocks and LibTorch the rest of the row.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include <ATen/ATen.h>

#include "phalanx/context.hpp"
#include "phalanx/optimizer.hpp"

namespace {

using namespace phalanx;

TEST(MomentumWorkerRule, MatchesLibTorchsTwoPassesBitForBitAtEveryLength) {
  at::Generator gen = make_generator(7);
  for (std::int64_t d : {1, 15, 16, 17, 63, 64, 65, 127, 1000, 159010}) {
    for (double beta : {0.9, 0.99, 0.3}) {
      MomentumWorkerRule rule(beta);
      at::Tensor reference;
      for (int step = 0; step < 4; ++step) {
        const at::Tensor g = at::randn({d}, gen) * (step + 1);
        const at::Tensor message = rule.message(g, step);
        reference = step == 0 ? g.clone() : reference.mul_(beta).add_(g, 1.0 - beta);
        ASSERT_EQ(message.numel(), d);
        ASSERT_TRUE(at::equal(message, reference)) << "d = " << d << ", beta = " << beta << ", step " << step
                                                   << ": largest difference "
                                                   << (message - reference).abs().max().item<float>();
      }
    }
  }
}

TEST(MomentumWorkerRule, KeepsNonFiniteValuesAsLibTorchDoes) {
  MomentumWorkerRule rule(0.9);
  at::Tensor g = at::ones({130});
  rule.message(g, 0);
  g[3] = std::numeric_limits<float>::infinity();
  g[100] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor m = rule.message(g, 1);
  EXPECT_TRUE(std::isinf(m[3].item<float>()));
  EXPECT_TRUE(std::isnan(m[100].item<float>()));
  EXPECT_FLOAT_EQ(m[0].item<float>(), 1.0f);
}

}  // namespace
