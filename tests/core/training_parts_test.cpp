// Partitions, schedules, budgets and seeds; the gradient threads.
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/core/engine/worker_pool.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <thread>

#include <ATen/ATen.h>

#include "support.hpp"

namespace phalanx::test {
namespace {

at::Tensor labels(std::int64_t n, std::int64_t classes) { return at::arange(n, at::kLong).remainder(classes); }

TEST(Partition, IidCoversEverySampleOnceInNearEqualParts) {
  auto parts = core::partition_indices(labels(103, 10), 10, 4, "iid", 1.0, 7);
  ASSERT_EQ(parts.size(), 4u);
  at::Tensor all = at::cat(parts);
  EXPECT_EQ(all.size(0), 103);
  EXPECT_TRUE(at::equal(std::get<0>(all.sort()), at::arange(103, at::kLong)));
  for (const auto& p : parts) EXPECT_NEAR(p.size(0), 103 / 4.0, 1.0);
}

TEST(Partition, DirichletCoversEverySampleAndSkewsLabels) {
  at::Tensor y = labels(2000, 10);
  auto parts = core::partition_indices(y, 10, 5, "dirichlet", 0.1, 3);
  EXPECT_EQ(at::cat(parts).size(0), 2000);
  EXPECT_TRUE(at::equal(std::get<0>(at::cat(parts).sort()), at::arange(2000, at::kLong)));
  // With alpha = 0.1 some worker's most common label is far above the 10 % of an even split.
  double max_share = 0;
  for (const auto& p : parts) {
    at::Tensor counts = at::bincount(y.index_select(0, p), {}, 10);
    max_share = std::max(max_share, counts.max().item<double>() / static_cast<double>(p.size(0)));
  }
  EXPECT_GT(max_share, 0.4);
}

TEST(Partition, SameSeedSamePartition) {
  auto a = core::partition_indices(labels(500, 10), 10, 5, "dirichlet", 0.5, 11);
  auto b = core::partition_indices(labels(500, 10), 10, 5, "dirichlet", 0.5, 11);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i]));
}

TEST(Partition, EmptyWorkerIsAClearError) {
  EXPECT_ERROR_WITH(core::partition_indices(labels(40, 2), 2, 30, "dirichlet", 1e-4, 1), "received no training sample",
                    "raise data.partition.alpha");
  EXPECT_ERROR_WITH(core::partition_indices(labels(3, 2), 2, 4, "iid", 1, 1), "fewer than the 4 workers");
}

// The labels worker w's samples carry.
std::set<std::int64_t> labels_of(const at::Tensor& y, const at::Tensor& part) {
  at::Tensor mine = y.index_select(0, part).contiguous();
  return std::set<std::int64_t>(mine.data_ptr<std::int64_t>(), mine.data_ptr<std::int64_t>() + mine.numel());
}

TEST(Partition, ShardsGiveEveryWorkerExactlyKLabelsAndEverySampleOnce) {
  struct Case { std::int64_t n, classes, workers, k; };
  for (const Case c : {Case{600, 10, 5, 2}, Case{2000, 10, 20, 2}, Case{600, 5, 10, 3}, Case{400, 4, 4, 1}}) {
    at::Tensor y = labels(c.n, c.classes);
    auto parts = core::partition_indices(y, c.classes, c.workers, "shards", 1.0, 9, c.k);
    ASSERT_EQ(static_cast<std::int64_t>(parts.size()), c.workers);
    EXPECT_TRUE(at::equal(std::get<0>(at::cat(parts).sort()), at::arange(c.n, at::kLong)));
    for (std::int64_t w = 0; w < c.workers; ++w) {
      EXPECT_EQ(static_cast<std::int64_t>(labels_of(y, parts[w]).size()), c.k) << "worker " << w << " of " << c.workers;
      EXPECT_EQ(parts[w].size(0), c.n / c.workers);
    }
  }
}

TEST(Partition, ShardsDependOnTheSeedOnly) {
  at::Tensor y = labels(600, 10);
  auto a = core::partition_indices(y, 10, 5, "shards", 1.0, 4, 2);
  auto b = core::partition_indices(y, 10, 5, "shards", 1.0, 4, 2);
  auto c = core::partition_indices(y, 10, 5, "shards", 1.0, 5, 2);
  bool any_differs = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::equal(a[i], b[i]));
    any_differs = any_differs || !at::equal(a[i], c[i]);
  }
  EXPECT_TRUE(any_differs);
}

TEST(Partition, ShardsRefuseMoreLabelsThanClassesOrSamples) {
  EXPECT_ERROR_WITH(core::partition_indices(labels(100, 4), 4, 5, "shards", 1.0, 1, 5), "per_worker = 5",
                    "4 classes", "use at most 4");
  EXPECT_ERROR_WITH(core::partition_indices(labels(12, 4), 4, 5, "shards", 1.0, 1, 3), "at least workers * per_worker = 15",
                    "lower data.partition.per_worker");
}

TEST(Schedule, ConstantCosineStepWarmup) {
  core::ScheduleSpec s;
  EXPECT_DOUBLE_EQ(core::learning_rate(s, 0.5, 70, 100), 0.5);
  s.name = "cosine";
  EXPECT_DOUBLE_EQ(core::learning_rate(s, 0.5, 0, 100), 0.5);
  EXPECT_NEAR(core::learning_rate(s, 0.5, 50, 100), 0.25, 1e-12);
  EXPECT_NEAR(core::learning_rate(s, 0.5, 100, 100), 0.0, 1e-12);
  s.name = "step";
  s.step_every = 10;
  s.step_gamma = 0.5;
  EXPECT_DOUBLE_EQ(core::learning_rate(s, 1.0, 25, 100), 0.25);
  s.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(core::learning_rate(s, 1.0, 0, 100), 0.25);
  EXPECT_DOUBLE_EQ(core::learning_rate(s, 1.0, 3, 100), 1.0);
}

TEST(Budget, StepsFollowFromBatchSizeAsInThePaper) {
  // T = E N / (B m) for epochs; T = C / (B h) for a gradient budget.
  EXPECT_EQ(core::budget_steps({"epochs", 2}, 60000, 8, 5, 32), 469);
  EXPECT_EQ(core::budget_steps({"gradients", 16000}, 60000, 8, 5, 32), 100);
  EXPECT_EQ(core::budget_steps({"steps", 7}, 60000, 8, 5, 32), 7);
}

TEST(Seeds, DerivedSeedsDifferByPurposeAndAreStable) {
  EXPECT_EQ(core::derive_seed(1, "a"), core::derive_seed(1, "a"));
  EXPECT_NE(core::derive_seed(1, "a"), core::derive_seed(1, "b"));
  EXPECT_NE(core::derive_seed(1, "a"), core::derive_seed(2, "a"));
}

}  // namespace
}  // namespace phalanx::test

namespace phalanx::test {
namespace {

// The pool's threads watch for the next call a short while before they sleep: calls in quick succession
// (caught while watching), calls after a pause longer than that (a sleeping thread is woken) and a pool
// destroyed right after a call (its threads still watching) must each run every task exactly once and return.
TEST(WorkerPool, CallsInQuickSuccessionAndAfterPausesRunEveryTaskOnce) {
  for (int pools = 0; pools < 20; ++pools) {
    core::WorkerPool pool(2);
    for (int call = 0; call < 300; ++call) {
      if (call % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      const std::int64_t count = 2 + call % 5;
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(count));
      pool.run(count, [&](std::int64_t i, int) { ++runs[static_cast<std::size_t>(i)]; });
      for (std::int64_t i = 0; i < count; ++i)
        ASSERT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << call << " " << i;
    }
  }
}

TEST(WorkerPool, RunsEveryTaskOnceOnItsSlotsAndRethrows) {
  core::WorkerPool pool(3);
  EXPECT_EQ(pool.slots(), 3);
  for (int round = 0; round < 50; ++round) {  // many rounds: a wake-up lost between rounds would hang here
    std::vector<int> runs(17, 0), slot_of(17, -1);
    pool.run(17, [&](std::int64_t i, int slot) {
      ++runs[i];
      slot_of[i] = slot;
    });
    for (int i = 0; i < 17; ++i) {
      EXPECT_EQ(runs[i], 1) << i;
      EXPECT_GE(slot_of[i], 0);
      EXPECT_LT(slot_of[i], 3);
    }
  }
  std::atomic<int> finished{0};
  EXPECT_THROW(pool.run(8,
                        [&](std::int64_t i, int) {
                          if (i == 3) throw Error("task 3 failed");
                          ++finished;
                        }),
               Error);
  EXPECT_EQ(finished.load(), 7);  // the other tasks still ran
  EXPECT_EQ(core::gradient_threads(4, 2), 2);
  EXPECT_EQ(core::gradient_threads(1, 8), 1);
  EXPECT_GE(core::gradient_threads(0, 8), 1);
}

// Several blocks of columns (the last one short): the blocked sums agree with ATen's float64 norms to
// rounding, and are the same bits for no pool, one thread and three.
TEST(HonestComparison, MatchesTheDefinitionAndIsTheSameForAnyThreadCount) {
  at::manual_seed(11);
  const at::Tensor honest = at::randn({5, 5000});
  const at::Tensor aggregate = honest.mean(0) + 0.1 * at::randn({5000});
  const at::Tensor mean = honest.to(at::kDouble).mean(0), update = aggregate.to(at::kDouble);
  const double deviation = (update - mean).norm().item<double>() / mean.norm().item<double>();
  const double cosine = update.dot(mean).item<double>() / (update.norm().item<double>() * mean.norm().item<double>());
  const core::HonestComparison alone = core::compare_with_honest_mean(aggregate, honest, nullptr);
  EXPECT_NEAR(alone.deviation, deviation, 1e-12 * deviation);
  EXPECT_NEAR(alone.cosine, cosine, 1e-12);
  EXPECT_GT(alone.deviation, 0.1);  // the noise added above is not lost
  for (int threads : {1, 3}) {
    core::WorkerPool pool(threads);
    const core::HonestComparison shared = core::compare_with_honest_mean(aggregate, honest, &pool);
    EXPECT_EQ(shared.deviation, alone.deviation) << threads;
    EXPECT_EQ(shared.cosine, alone.cosine) << threads;
  }
}

// The metric's exact arithmetic, written plainly: each column's float64 sum S of the rows from 0 in row order,
// never divided by h (h * aggregate is compared with it instead); the four products summed per lane (column j
// in lane j mod 4) within blocks of 2,048 columns, the lanes in order, then the blocks in order. Recorded
// metrics depend on every bit of it.
TEST(HonestComparison, IsItsArithmeticBitForBit) {
  at::manual_seed(12);
  for (std::int64_t h : {1, 3, 5, 8}) {
    for (std::int64_t d : {1, 7, 2048, 2051, 10001}) {
      const at::Tensor honest = at::randn({h, d}), aggregate = honest.mean(0) + 0.1 * at::randn({d});
      const float* x = honest.data_ptr<float>();
      const float* a = aggregate.data_ptr<float>();
      // S^2, aggregate^2, (h * aggregate - S)^2 and aggregate * S, with S the column's sum over the rows
      double total[4] = {};
      for (std::int64_t start = 0; start < d; start += 2048) {
        double lanes[4][4] = {};
        for (std::int64_t j = start; j < std::min(d, start + 2048); ++j) {
          double sum = 0.0;
          for (std::int64_t r = 0; r < h; ++r) sum += static_cast<double>(x[r * d + j]);
          const double update = static_cast<double>(a[j]);
          const double difference = update * static_cast<double>(h) - sum;
          const std::int64_t lane = (j - start) % 4;
          lanes[0][lane] += sum * sum;
          lanes[1][lane] += update * update;
          lanes[2][lane] += difference * difference;
          lanes[3][lane] += update * sum;
        }
        for (int k = 0; k < 4; ++k) {
          double block = 0.0;
          for (int lane = 0; lane < 4; ++lane) block += lanes[k][lane];
          total[k] += block;
        }
      }
      const double sum_norm = std::sqrt(total[0]), update_norm = std::sqrt(total[1]);
      const core::HonestComparison c = core::compare_with_honest_mean(aggregate, honest, nullptr);
      EXPECT_EQ(c.deviation, std::sqrt(total[2]) / sum_norm) << "h = " << h << ", d = " << d;
      EXPECT_EQ(c.cosine, total[3] / (sum_norm * update_norm)) << "h = " << h << ", d = " << d;
    }
  }
}

TEST(HonestComparison, AZeroMeanGivesTheAbsoluteDeviationAndCosineZero) {
  const at::Tensor honest = at::stack({at::ones({3000}), -at::ones({3000})});
  const core::HonestComparison c = core::compare_with_honest_mean(at::full({3000}, 0.5), honest, nullptr);
  EXPECT_DOUBLE_EQ(c.deviation, 0.5 * std::sqrt(3000.0));
  EXPECT_EQ(c.cosine, 0.0);
}

// How each worker's message reaches its row: the same bits (NaN payloads and signed zeros included), and
// "finite" false exactly when one value, at any position of a vector body or its tail, is NaN or infinite.
TEST(CopyAndCheckFinite, CopiesEveryBitAndFindsANonFiniteValueAnywhere) {
  for (const std::int64_t n : {1, 15, 16, 37, 1000}) {
    at::Tensor src = at::randn({n}, make_generator(static_cast<std::uint64_t>(n)));
    src[0] = -0.0f;
    at::Tensor dst = at::full({n}, 7.0f);
    EXPECT_TRUE(core::copy_and_check_finite(dst.data_ptr<float>(), src.data_ptr<float>(), n));
    EXPECT_EQ(std::memcmp(dst.data_ptr<float>(), src.data_ptr<float>(), 4 * n), 0);
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()})
      for (const std::int64_t at : {std::int64_t{0}, n / 2, n - 1}) {
        at::Tensor with_bad = src.clone();
        with_bad[at] = bad;
        EXPECT_FALSE(core::copy_and_check_finite(dst.data_ptr<float>(), with_bad.data_ptr<float>(), n))
            << "n = " << n << ", position " << at;
        EXPECT_EQ(std::memcmp(dst.data_ptr<float>(), with_bad.data_ptr<float>(), 4 * n), 0);
      }
  }
  const float largest = std::numeric_limits<float>::max();  // the exponent one below all ones is finite
  float out = 0;
  EXPECT_TRUE(core::copy_and_check_finite(&out, &largest, 1));
}

}  // namespace
}  // namespace phalanx::test
