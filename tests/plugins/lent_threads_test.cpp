// Plugins whose work the engine shares out in blocks of columns (phalanx/helpers/parallel.hpp) give the same
// bits on lent threads as in place, and the same as the plain ATen formula they replace. The runner here runs
// the blocks last to first, as a pool might, so a block that depended on an earlier one would show.
#include <ATen/ATen.h>

#include "phalanx/helpers/parallel.hpp"
#include "phalanx/tensor_checks.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

struct ReversedRunner {
  std::int64_t calls = 0;
  BlockRunner runner() {
    return [this](std::int64_t count, const std::function<void(std::int64_t)>& block) {
      ++calls;
      for (std::int64_t i = count - 1; i >= 0; --i) block(i);
    };
  }
};

// Rows with signed zeros and a width that leaves every block kind a short last block.
at::Tensor sample_rows(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor rows = at::randn({n, d});
  rows.select(1, 7).fill_(-0.0);
  return rows;
}

TEST(LentThreads, MeanIsAtenMeanOnLentThreads) {
  const at::Tensor rows = sample_rows(8, 70001, 1);
  const at::Tensor in_place = make_aggregator("mean", "{}", 8, 3)->aggregate(rows);
  ReversedRunner reversed;
  LentThreads lent(reversed.runner());
  const at::Tensor shared = make_aggregator("mean", "{}", 8, 3)->aggregate(rows);
  EXPECT_GE(reversed.calls, 1);
  EXPECT_TRUE(at::equal(shared, in_place));
  EXPECT_TRUE(at::equal(shared, rows.mean(0)));
  at::Tensor poisoned = rows.clone();
  poisoned[5][70000] = kInf;  // in the last block, which the runner runs first
  EXPECT_ERROR_WITH(make_aggregator("mean", "{}", 8, 3)->aggregate(poisoned), "1 of 8 messages contain NaN or Inf");
}

TEST(LentThreads, CenteredClippingIsTheSameOnLentThreads) {
  const at::Tensor first = sample_rows(8, 70001, 2), second = sample_rows(8, 70001, 3).mul_(0.01);
  for (const char* params : {"{tau: 0.1, iterations: 3}", "{tau: 1000}"}) {
    SCOPED_TRACE(params);
    auto in_place = make_aggregator("cc", params, 8, 3), shared = make_aggregator("cc", params, 8, 3);
    const at::Tensor a1 = in_place->aggregate(first).clone(), a2 = in_place->aggregate(second).clone();
    ReversedRunner reversed;
    LentThreads lent(reversed.runner());
    EXPECT_TRUE(at::equal(shared->aggregate(first), a1));
    EXPECT_TRUE(at::equal(shared->aggregate(second), a2));  // the second round starts from the first's centre
    EXPECT_GE(reversed.calls, 4);
  }
  // A NaN row in the last block is still dropped: the result is cc of the other rows.
  at::Tensor poisoned = first.clone();
  poisoned[2][70000] = kNaN;
  const at::Tensor in_place = make_aggregator("cc", "{tau: 1000}", 8, 3)->aggregate(poisoned);
  ReversedRunner reversed;
  LentThreads lent(reversed.runner());
  const at::Tensor shared = make_aggregator("cc", "{tau: 1000}", 8, 3)->aggregate(poisoned);
  EXPECT_TRUE(at::equal(shared, in_place));
  EXPECT_TRUE(shared.isfinite().all().item<bool>());
}

TEST(LentThreads, AlieIsItsFormulaOnLentThreads) {
  const at::Tensor honest = sample_rows(5, 40001, 4);
  AttackRound round{honest, at::zeros({3, 40001}), 0};
  const at::Tensor in_place = make_attack("alie", "{}", 8, 3)->craft(round);
  ReversedRunner reversed;
  LentThreads lent(reversed.runner());
  auto attack = make_attack("alie", "{}", 8, 3);
  const at::Tensor shared = attack->craft(round);
  EXPECT_EQ(reversed.calls, 1);  // one pass: each block gets its mean, its std and its rows
  EXPECT_TRUE(at::equal(shared, in_place));
  // The formula as ATen computes it: mean - z * std, z = Phi^-1(3/5) printed by the attack (0.253347).
  const double z = std::sqrt(2.0) * at::erfinv(at::scalar_tensor(2.0 * 0.6 - 1.0, at::kDouble)).item<double>();
  const at::Tensor formula = honest.mean(0).sub_(honest.std(0, true).mul_(z));
  for (std::int64_t r = 0; r < 3; ++r) EXPECT_TRUE(at::equal(shared[r], formula));
  // One honest worker: the message is its row.
  AttackRound lone{honest.narrow(0, 0, 1), at::zeros({2, 40001}), 0};
  EXPECT_TRUE(at::equal(make_attack("alie", "{}", 3, 2)->craft(lone)[1], honest[0]));
}

TEST(LentThreads, BitflipIsMinusScaleTimesTheRowsOnLentThreads) {
  const at::Tensor rows = sample_rows(3, 40001, 5);
  AttackRound round{at::zeros({5, 40001}), rows, 0};
  ReversedRunner reversed;
  LentThreads lent(reversed.runner());
  const at::Tensor shared = make_attack("bitflip", "{scale: 10}", 8, 3)->craft(round);
  EXPECT_EQ(reversed.calls, 1);
  EXPECT_TRUE(at::equal(shared, rows.mul(-10.0)));
}

TEST(LentThreads, FiniteRowMaskFindsABadValueInAnyBlock) {
  const at::Tensor rows = sample_rows(4, 100000, 6);
  ReversedRunner reversed;
  LentThreads lent(reversed.runner());
  EXPECT_EQ(count_nonfinite_rows(rows), 0);
  EXPECT_EQ(reversed.calls, 1);
  for (std::int64_t column : {0, 32767, 32768, 99999}) {
    at::Tensor bad = rows.clone();
    bad[2][column] = kNaN;
    bad[3][column] = -kInf;
    EXPECT_TRUE(at::equal(finite_row_mask(bad).to(at::kInt), at::tensor({1, 1, 0, 0}, at::kInt)));
  }
  EXPECT_EQ(count_nonfinite_rows(rows.narrow(1, 0, 100)), 0);  // small: in place, no hand-off
  EXPECT_EQ(reversed.calls, 5);
}

// A kernel called from inside a block runs in place: the runner is never asked again from its own blocks.
TEST(LentThreads, ForEachBlockInsideABlockRunsInPlace) {
  ReversedRunner reversed;
  LentThreads lent(reversed.runner());
  std::vector<int> runs(6, 0);
  for_each_block(2, [&](std::int64_t outer) {
    for_each_block(3, [&](std::int64_t inner) { ++runs[outer * 3 + inner]; });
  });
  EXPECT_EQ(runs, std::vector<int>(6, 1));
  EXPECT_EQ(reversed.calls, 1);
  for_each_block(2, [](std::int64_t) {});  // and the runner is back afterwards
  EXPECT_EQ(reversed.calls, 2);
}

}  // namespace
}  // namespace phalanx::test
