// MomentumWorkerRule's one-pass update must give exactly what LibTorch's `u.mul_(beta).add_(g, 1 - beta)`
// gives (the recorded metrics of every ByzSGDm / ByzSGDnm run depend on it), at every length: the fused
// pass covers whole blocks and LibTorch the rest of the row. Kept in a host's storage
// (keep_momentum_in), it must update that storage in place with the same values.
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

TEST(MomentumWorkerRule, KeptInTheHostsStorageUpdatesItInPlaceWithTheSameValues) {
  at::Generator gen = make_generator(11);
  const std::int64_t d = 1000;
  MomentumWorkerRule kept(0.9), own(0.9);
  at::Tensor matrix = at::full({3, d}, -7.0f);  // the host's message matrix; the rule lives in row 1
  const at::Tensor row = matrix[1];
  EXPECT_FALSE(kept.keep_momentum_in(row)) << "before the first message there is no momentum to move";
  for (int step = 0; step < 5; ++step) {
    const at::Tensor g = at::randn({d}, gen);
    const at::Tensor message = kept.message(g, step);
    const at::Tensor expected = own.message(g, step);
    ASSERT_TRUE(at::equal(message, expected)) << "step " << step;
    if (step == 0) {
      EXPECT_NE(message.data_ptr(), row.data_ptr());
      EXPECT_FALSE(kept.keep_momentum_in(matrix.narrow(1, 0, d - 1)[1])) << "a row of another length";
      EXPECT_FALSE(kept.keep_momentum_in(matrix.t()[0].narrow(0, 0, 3))) << "not contiguous, other length";
      ASSERT_TRUE(kept.keep_momentum_in(row));
      EXPECT_TRUE(at::equal(row, expected)) << "the momentum moves into the row";
    } else {
      EXPECT_EQ(message.data_ptr(), row.data_ptr()) << "step " << step << ": the message is the row";
    }
    EXPECT_TRUE(at::equal(kept.save_state().at("momentum"), own.save_state().at("momentum")));
  }
  EXPECT_TRUE(at::equal(matrix[0], at::full({d}, -7.0f)));
  EXPECT_TRUE(at::equal(matrix[2], at::full({d}, -7.0f)));
  // A restored state lives in the rule's own buffer again: the row is left alone.
  const at::Tensor before = row.clone();
  kept.load_state(own.save_state());
  const at::Tensor g = at::randn({d}, gen);
  EXPECT_TRUE(at::equal(kept.message(g, 5), own.message(g, 5)));
  EXPECT_TRUE(at::equal(row, before));
}

}  // namespace
