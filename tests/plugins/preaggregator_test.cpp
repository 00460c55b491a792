// Pre-aggregators (nnm, bucketing, clip, arc) against values computed by hand, non-finite rows, the
// bucketing generator's state round trip, and a pipeline that chains two of them in front of cm.
#include <limits>

#include <ATen/ATen.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine/sync_engine.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

at::Tensor rows(std::vector<float> values, std::int64_t d) {
  const auto n = static_cast<std::int64_t>(values.size()) / d;
  return at::tensor(values).reshape({n, d});
}

// NaN-aware comparison: equal where both are NaN.
void expect_near(const at::Tensor& got, const at::Tensor& want, double tolerance = 1e-6) {
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(at::allclose(got, want, 0, tolerance, /*equal_nan=*/true)) << "got\n" << got << "\nwant\n" << want;
}

// --- nnm ---

TEST(PreAggregators, NnmByHand) {
  // Rows (x, 2x) for x = 0, 1, 3, 10; f = 1, so each row averages its n - f = 3 nearest (itself included).
  // Along x: 0 -> {0, 1, 3}, 1 -> {1, 0, 3}, 3 -> {3, 1, 0} (|3-10| = 7 > 3), 10 -> {10, 3, 1}.
  // Means: 4/3, 4/3, 4/3, 14/3 (and twice that in the second coordinate).
  at::Tensor x = rows({0, 0, 1, 2, 3, 6, 10, 20}, 2);
  at::Tensor want = rows({4.f / 3, 8.f / 3, 4.f / 3, 8.f / 3, 4.f / 3, 8.f / 3, 14.f / 3, 28.f / 3}, 2);
  expect_near(make_preaggregator("nnm", "{f: 1}", 4, 0)->transform(x), want, 1e-5);
  // f defaults to the number of Byzantine workers (1 of 4 here).
  expect_near(make_preaggregator("nnm", "{}", 4, 1)->transform(x), want, 1e-5);
  // f = 0 mixes everything: every row becomes the mean (3.5, 7).
  expect_near(make_preaggregator("nnm", "{f: 0}", 4, 0)->transform(x), at::tensor({3.5f, 7.f}).expand({4, 2}), 1e-5);
}

TEST(PreAggregators, NnmMatchesTheDefinitionOnRandomRows) {
  // The vectorised rule against a direct loop: sort the distances of each row, average the n - f closest.
  at::Tensor x = at::randn({9, 5}, make_generator(11));
  const std::int64_t n = 9, f = 3;
  at::Tensor got = make_preaggregator("nnm", "{f: 3}", n, 0)->transform(x);
  for (std::int64_t i = 0; i < n; ++i) {
    at::Tensor order = std::get<1>((x - x[i]).square().sum(1).sort());
    EXPECT_EQ(order[0].item<std::int64_t>(), i);
    at::Tensor want = x.index_select(0, order.narrow(0, 0, n - f)).mean(0);
    EXPECT_TRUE(at::allclose(got[i], want, 1e-5, 1e-6)) << "row " << i;
  }
}

TEST(PreAggregators, NnmKeepsHonestRowsFiniteWithAtMostFBadRows) {
  // Rows x = 0, 1, 3 and two bad rows (NaN, Inf); f = 2, n - f = 3. The bad rows are infinitely far, so
  // each finite row mixes exactly {0, 1, 3} -> 4/3. A bad row is passed through unchanged.
  at::Tensor x = rows({0, 0, 1, 1, 3, 3, kNaN, 1, 5, kInf}, 2);
  at::Tensor want = rows({4.f / 3, 4.f / 3, 4.f / 3, 4.f / 3, 4.f / 3, 4.f / 3, kNaN, 1, 5, kInf}, 2);
  expect_near(make_preaggregator("nnm", "{f: 2}", 5, 2)->transform(x), want, 1e-5);
  // One NaN row of n = 4, f = 1: the n - f = 3 nearest of each finite row are the three finite rows.
  at::Tensor y = rows({0, 0, 1, 1, 3, 3, kNaN, kNaN}, 2);
  at::Tensor out = make_preaggregator("nnm", "{f: 1}", 4, 1)->transform(y);
  EXPECT_TRUE(at::isfinite(out.narrow(0, 0, 3)).all().item<bool>());
  expect_near(out.narrow(0, 0, 3), at::full({3, 2}, 4.f / 3), 1e-5);
}

TEST(PreAggregators, NnmWithMoreThanFBadRowsAveragesTheFiniteNeighbours) {
  // f = 1 but two NaN rows: n - f = 4 nearest of a finite row are 0, 1, 3 and one bad row, which gets
  // weight 0, so the finite rows still become 4/3 instead of NaN.
  at::Tensor x = rows({0, 1, 3, kNaN, kNaN}, 1);
  at::Tensor out = make_preaggregator("nnm", "{f: 1}", 5, 1)->transform(x);
  expect_near(out, rows({4.f / 3, 4.f / 3, 4.f / 3, kNaN, kNaN}, 1), 1e-5);
}

TEST(PreAggregators, NnmRefusesFAtLeastN) {
  EXPECT_ERROR_WITH(make_preaggregator("nnm", "{f: 3}", 3, 0)->transform(at::zeros({3, 2})), "nnm", "f = 3",
                    "only 3 rows");
}

// --- bucketing ---

TEST(PreAggregators, BucketingIsAPermutationAverage) {
  // Row i of the identity is e_i, so output row j is (1/|B_j|) * the indicator of bucket j: scaling back
  // by the bucket sizes must give a 0/1 matrix whose columns each hold exactly one 1 (every input row in
  // exactly one bucket). n = 5, s = 2: buckets of 2, 2, 1.
  at::Tensor out = make_preaggregator("bucketing", "{s: 2}", 5, 0)->transform(at::eye(5));
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{3, 5}));
  at::Tensor sizes = at::tensor({2.f, 2.f, 1.f}).unsqueeze(1);
  at::Tensor membership = out.mul(sizes);
  EXPECT_TRUE(at::allclose(membership, membership.round(), 0, 1e-6));
  EXPECT_TRUE(at::equal(membership.round().sum(0), at::ones({5})));
  EXPECT_TRUE(at::equal(membership.round().sum(1), at::tensor({2.f, 2.f, 1.f})));
  // s = 3 on 7 rows: 3 buckets of 3, 3, 1; s >= n: one bucket, the mean.
  EXPECT_EQ(make_preaggregator("bucketing", "{s: 3}", 7, 0)->transform(at::eye(7)).size(0), 3);
  at::Tensor x = rows({1, 2, 3, 4, 5, 6}, 2);
  expect_near(make_preaggregator("bucketing", "{s: 8}", 3, 0)->transform(x), rows({3, 4}, 2));
}

TEST(PreAggregators, BucketingUsesThePermutationOfItsSeed) {
  // By hand: the permutation is at::randperm from make_generator(seed); position k goes to bucket k / s.
  at::Tensor x = at::arange(12, at::kFloat).reshape({6, 2}).mul_(at::arange(6, at::kFloat).unsqueeze(1).exp());
  at::Tensor order = at::randperm(6, make_generator(21));
  at::Tensor want = x.index_select(0, order).reshape({3, 2, 2}).mean(1);
  expect_near(make_preaggregator("bucketing", "{}", 6, 0, /*seed=*/21)->transform(x), want, 1e-5);
  // Same seed, same buckets; another seed, other buckets; the next call draws a new permutation.
  auto a = make_preaggregator("bucketing", "{}", 6, 0, 21), b = make_preaggregator("bucketing", "{}", 6, 0, 21),
       c = make_preaggregator("bucketing", "{}", 6, 0, 22);
  at::Tensor first = a->transform(x);
  EXPECT_TRUE(at::equal(first, b->transform(x)));
  EXPECT_FALSE(at::equal(first, c->transform(x)));
  EXPECT_FALSE(at::equal(first, a->transform(x)));
}

TEST(PreAggregators, BucketingStateRoundTrip) {
  at::Tensor x = at::randn({8, 3}, make_generator(4));
  auto original = make_preaggregator("bucketing", "{s: 2}", 8, 0, /*seed=*/5);
  original->transform(x);
  State saved = original->save_state();
  ASSERT_EQ(saved.count("generator"), 1u);
  at::Tensor next = original->transform(x);
  at::Tensor after = original->transform(x);
  // Another seed, restored from the checkpoint, draws exactly the permutations `original` drew.
  auto resumed = make_preaggregator("bucketing", "{s: 2}", 8, 0, /*seed=*/6);
  resumed->load_state(saved);
  EXPECT_TRUE(at::equal(resumed->transform(x), next));
  EXPECT_TRUE(at::equal(resumed->transform(x), after));
  EXPECT_ERROR_WITH(resumed->load_state({{"generator", at::zeros({2}, at::kByte)}}), "bucketing", "generator state");
}

// --- clip ---

TEST(PreAggregators, ClipByHand) {
  // c = 1: (3, 4) has norm 5 -> (0.6, 0.8); (0.3, 0.4) has norm 0.5 and stays; (0, 0) stays; the NaN and
  // Inf rows pass through unchanged and do not touch the others.
  at::Tensor x = rows({3, 4, 0.3f, 0.4f, 0, 0, kNaN, 1, kInf, 2}, 2);
  at::Tensor want = rows({0.6f, 0.8f, 0.3f, 0.4f, 0, 0, kNaN, 1, kInf, 2}, 2);
  expect_near(make_preaggregator("clip", "{c: 1}", 5, 0)->transform(x), want);
  // c = 0 sends every finite row to 0.
  expect_near(make_preaggregator("clip", "{c: 0}", 2, 0)->transform(rows({3, 4, -1, 0}, 2)), at::zeros({2, 2}));
  // Entries whose squares overflow float32 are still clipped (norms in float64): (3e30, 4e30) -> (0.6, 0.8).
  expect_near(make_preaggregator("clip", "{c: 1}", 1, 0)->transform(rows({3e30f, 4e30f}, 2)), rows({0.6f, 0.8f}, 2));
}

TEST(PreAggregators, ClipNeedsC) {
  auto ctx = make_context(3, 0);
  EXPECT_ERROR_WITH(builtin_registry().make_preaggregator("clip", params_for(core::Kind::PreAggregator, "clip"), *ctx),
                    "c", "no value");
}

// --- arc ---

TEST(PreAggregators, ArcByHand) {
  // n = 5, f = 1: k = floor(2 * (1/5) * 4) = floor(1.6) = 1. Norms 1, 2, 3, 4, 10 (rows scaled by (0.6,
  // 0.8) so that norm = scale): the 2nd largest is 4, so only the norm-10 row is clipped, to norm 4.
  at::Tensor dir = at::tensor({0.6f, 0.8f});
  at::Tensor x = at::tensor({1.f, -2.f, 3.f, 4.f, -10.f}).unsqueeze(1).mul(dir);
  at::Tensor want = at::tensor({1.f, -2.f, 3.f, 4.f, -4.f}).unsqueeze(1).mul(dir);
  expect_near(make_preaggregator("arc", "{f: 1}", 5, 0)->transform(x), want, 1e-5);
  // f = 2: k = floor(2 * (2/5) * 3) = floor(2.4) = 2; the 3rd largest norm is 3: 4 -> 3, -10 -> -3.
  at::Tensor want2 = at::tensor({1.f, -2.f, 3.f, 3.f, -3.f}).unsqueeze(1).mul(dir);
  expect_near(make_preaggregator("arc", "{f: 2}", 5, 0)->transform(x), want2, 1e-5);
  // f defaults to the Byzantine count (2 of 5); f = 0 gives k = 0 and clips nothing.
  expect_near(make_preaggregator("arc", "{}", 5, 2)->transform(x), want2, 1e-5);
  expect_near(make_preaggregator("arc", "{f: 0}", 5, 0)->transform(x), x);
  // Fewer rows this round than f + 1 (after bucketing, say): refused with the same wording as nnm.
  EXPECT_ERROR_WITH(make_preaggregator("arc", "{f: 2}", 5, 0)->transform(x.narrow(0, 0, 2)), "arc", "f = 2",
                    "only 2 rows");
}

TEST(PreAggregators, ArcTreatsNonFiniteRowsAsTheLargest) {
  // 1-D rows 1, -2, 3, NaN, -10 with f = 2: k = 2; norms 1, 2, 3, +inf (bad), 10: the 3rd largest is 3,
  // so -10 -> -3, and the NaN row passes through.
  at::Tensor x = rows({1, -2, 3, kNaN, -10}, 1);
  expect_near(make_preaggregator("arc", "{f: 2}", 5, 2)->transform(x), rows({1, -2, 3, kNaN, -3}, 1));
  // f = 1 (k = 1): the bad row takes the one clipping slot, the threshold is 10 and nothing else changes.
  expect_near(make_preaggregator("arc", "{f: 1}", 5, 1)->transform(x), x);
  // More bad rows than k: the threshold is infinite and the finite rows are left as they are.
  at::Tensor y = rows({1, kInf, kNaN, -10, 2}, 1);
  expect_near(make_preaggregator("arc", "{f: 1}", 5, 1)->transform(y), y);
}

// --- in a pipeline ---

TEST(PreAggregators, NnmThenBucketingInFrontOfCmRuns) {
  const char* config = R"(name: pre
seed: 5
data: {name: synthetic, train_size: 600, test_size: 200, features: 10, classes: 3, partition: {name: dirichlet, alpha: 1.0}}
model: {name: mlp, hidden: [16]}
workers: {count: 6, byzantine: 2}
optimizer: {name: byzsgdnm, lr: 0.1, schedule: cosine}
aggregator: {name: cm, pre: [{name: nnm}, {name: bucketing, s: 2}]}
attack: {name: alie}
training: {batch_size: 8, budget: {steps: 60}, eval_every: 20}
)";
  core::PipelineSpec spec = core::resolve_pipeline(core::parse_yaml(config, "pre.yaml"), builtin_registry());
  ASSERT_EQ(spec.preaggregators.size(), 2u);
  EXPECT_EQ(spec.preaggregators[0].name, "nnm");
  EXPECT_EQ(spec.preaggregators[1].params.get_int("s"), 2);
  core::RunResult r = core::run_sync(spec, builtin_registry(), "", nullptr);
  EXPECT_EQ(r.status, core::RunStatus::ok) << r.message;
  EXPECT_EQ(r.last.step, 60);
}

}  // namespace
}  // namespace phalanx::test
