// The catalogue's attacks (signflip, gaussian, labelflip, foe, mimic, minmax, minsum, nan, inf, zero)
// against values computed by hand, plus each one through the engine once.
#include <limits>

#include <ATen/ATen.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine/sync_engine.hpp"
#include "phalanx/distances.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

at::Tensor rows(std::vector<float> values, std::int64_t d) {
  const auto n = static_cast<std::int64_t>(values.size()) / d;
  return at::tensor(values).reshape({n, d});
}

// Every Byzantine row must be the same vector `expected`.
void expect_every_row_near(const at::Tensor& out, const at::Tensor& expected, double tolerance = 1e-6) {
  for (std::int64_t i = 0; i < out.size(0); ++i)
    EXPECT_TRUE(at::allclose(out[i], expected, 0, tolerance)) << "row " << i << ": " << out[i] << " vs " << expected;
}

// Honest rows (1, 2) and (3, -4): mean_h = (2, -1).
const at::Tensor& two_honest() {
  static const at::Tensor honest = rows({1, 2, 3, -4}, 2);
  return honest;
}

TEST(AttackRules, SignflipSendsTheNegatedHonestMean) {
  AttackRound round{two_honest(), at::zeros({2, 2}), 0};
  at::Tensor out = make_attack("signflip", "{}", 4, 2)->craft(round);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{2, 2}));
  expect_every_row_near(out, at::tensor({-2.f, 1.f}));  // -(2, -1)
}

TEST(AttackRules, FoeSendsMinusEpsTimesTheHonestMean) {
  AttackRound round{two_honest(), at::zeros({3, 2}), 0};
  expect_every_row_near(make_attack("foe", "{}", 5, 3)->craft(round), at::tensor({-0.2f, 0.1f}));      // -0.1 * (2, -1)
  expect_every_row_near(make_attack("foe", "{eps: 4}", 5, 3)->craft(round), at::tensor({-8.f, 4.f}));  // -4 * (2, -1)
}

TEST(AttackRules, MimicCopiesTheTargetHonestWorker) {
  AttackRound round{two_honest(), at::zeros({2, 2}), 0};
  expect_every_row_near(make_attack("mimic", "{}", 4, 2)->craft(round), at::tensor({1.f, 2.f}));
  expect_every_row_near(make_attack("mimic", "{target: 1}", 4, 2)->craft(round), at::tensor({3.f, -4.f}));
}

TEST(AttackRules, MimicRefusesATargetBeyondTheHonestWorkers) {
  // 4 workers, 2 Byzantine: honest indices are 0 and 1.
  EXPECT_ERROR_WITH(make_attack("mimic", "{target: 2}", 4, 2), "target", "honest workers (2)");
  // A round with fewer honest rows than the run promised is caught when crafting.
  AttackRound round{two_honest(), at::zeros({1, 2}), 0};
  EXPECT_ERROR_WITH(make_attack("mimic", "{target: 2}", 10, 1)->craft(round), "mimic", "only 2 honest");
}

TEST(AttackRules, GaussianDrawsFromThePluginSeed) {
  // The stream is exactly at::randn from make_generator(the plugin's seed), scaled by sigma.
  AttackRound round{two_honest(), at::zeros({3, 4}), 0};
  at::Tensor out = make_attack("gaussian", "{sigma: 2.5}", 5, 3, /*seed=*/42)->craft(round);
  at::Tensor expected = at::randn({3, 4}, make_generator(42)).mul_(2.5);
  EXPECT_TRUE(at::allclose(out, expected, 0, 0));
  EXPECT_TRUE(at::equal(make_attack("gaussian", "{sigma: 0}", 5, 3)->craft(round), at::zeros({3, 4})));
}

TEST(AttackRules, GaussianHasTheRequestedStandardDeviation) {
  // 3 x 20000 draws: the sample mean is within ~4 sigma/sqrt(60000) and the std within 1 %.
  AttackRound round{two_honest(), at::zeros({3, 20000}), 0};
  at::Tensor out = make_attack("gaussian", "{}", 5, 3)->craft(round).to(at::kDouble);
  EXPECT_NEAR(out.mean().item<double>(), 0.0, 4 * 200 / std::sqrt(60000.0));
  EXPECT_NEAR(out.std().item<double>(), 200.0, 2.0);
}

TEST(AttackRules, GaussianStateRoundTripContinuesTheStream) {
  AttackRound round{two_honest(), at::zeros({2, 5}), 0};
  auto first = make_attack("gaussian", "{}", 4, 2, /*seed=*/7);
  at::Tensor draw1 = first->craft(round);
  State saved = first->save_state();
  ASSERT_EQ(saved.count("generator"), 1u);
  EXPECT_EQ(saved.at("generator").scalar_type(), at::kByte);
  at::Tensor draw2 = first->craft(round);
  EXPECT_FALSE(at::equal(draw1, draw2));

  // A plugin with another seed, restored, continues exactly where `first` was when saved.
  auto resumed = make_attack("gaussian", "{}", 4, 2, /*seed=*/99);
  resumed->load_state(saved);
  EXPECT_TRUE(at::equal(resumed->craft(round), draw2));
  // An empty state restarts the plugin's own stream.
  auto restarted = make_attack("gaussian", "{}", 4, 2, /*seed=*/7);
  restarted->craft(round);
  restarted->load_state({});
  EXPECT_TRUE(at::equal(restarted->craft(round), draw1));
  // A state that is not a generator state is an error, not a crash.
  EXPECT_ERROR_WITH(resumed->load_state({{"generator", at::zeros({3}, at::kByte)}}), "gaussian", "generator state");
}

TEST(AttackRules, LabelflipPoisonsLabelsAndSendsTheTrueMessage) {
  auto attack = make_attack("labelflip", "{}", 4, 1);
  // C = 4: y -> 3 - y.
  at::Tensor labels = at::tensor({0, 1, 2, 3, 1}, at::kLong);
  EXPECT_TRUE(at::equal(attack->poison_labels(labels, 4), at::tensor({3, 2, 1, 0, 2}, at::kLong)));
  // C = 10: 7 -> 2, 0 -> 9.
  EXPECT_TRUE(at::equal(attack->poison_labels(at::tensor({7, 0}, at::kLong), 10), at::tensor({2, 9}, at::kLong)));
  AttackRound round{two_honest(), rows({5, 6}, 2), 0};
  EXPECT_TRUE(at::equal(attack->craft(round), round.byzantine_true));
}

TEST(AttackRules, NanInfAndZeroSendConstantVectors) {
  AttackRound round{two_honest(), rows({5, 6, 7, 8}, 2), 0};
  at::Tensor nan = make_attack("nan", "{}", 4, 2)->craft(round);
  ASSERT_EQ(nan.sizes(), (at::IntArrayRef{2, 2}));
  EXPECT_TRUE(at::isnan(nan).all().item<bool>());
  at::Tensor inf = make_attack("inf", "{}", 4, 2)->craft(round);
  EXPECT_TRUE(at::equal(inf, at::full({2, 2}, std::numeric_limits<float>::infinity())));
  EXPECT_TRUE(at::equal(make_attack("zero", "{}", 4, 2)->craft(round), at::zeros({2, 2})));
}

TEST(AttackRules, OmniscienceFlags) {
  for (const char* name : {"signflip", "foe", "mimic", "minmax", "minsum"})
    EXPECT_TRUE(make_attack(name, "{}", 6, 2)->omniscient()) << name;
  for (const char* name : {"gaussian", "labelflip", "nan", "inf", "zero"})
    EXPECT_FALSE(make_attack(name, "{}", 6, 2)->omniscient()) << name;
}

// --- minmax / minsum (Shejwalkar & Houmansadr, NDSS 2021) ---

TEST(AttackRules, MinmaxByHand) {
  // Honest 0, 2, 4 (d = 1): mean 2, unbiased std 2, p = -2, m(gamma) = 2 - 2 gamma. Honest maximum:
  // (4 - 0)^2 = 16. Farthest honest message from m is 4: (2 + 2 gamma)^2 <= 16  ->  gamma = 1, m = 0.
  AttackRound round{rows({0, 2, 4}, 1), at::zeros({2, 1}), 0};
  expect_every_row_near(make_attack("minmax", "{}", 5, 2)->craft(round), at::tensor({0.f}), 1e-5);
  // Honest 0, 2, 4, 10, direction sign: mean 4, p = -sign(4) = -1, m = 4 - gamma. Honest maximum 10^2 =
  // 100; farthest is 10: (6 + gamma)^2 <= 100  ->  gamma = 4, m = 0.
  AttackRound round4{rows({0, 2, 4, 10}, 1), at::zeros({1, 1}), 0};
  expect_every_row_near(make_attack("minmax", "{direction: sign}", 5, 1)->craft(round4), at::tensor({0.f}), 1e-5);
  // direction unit in 1-D is the same p = -1.
  expect_every_row_near(make_attack("minmax", "{direction: unit}", 5, 1)->craft(round4), at::tensor({0.f}), 1e-5);
}

TEST(AttackRules, MinsumByHand) {
  // Honest 0, 2, 4, 10, direction sign: m = 4 - gamma. Sums of squared distances of each honest message
  // to the others: 0 -> 4+16+100 = 120, 2 -> 4+4+64 = 72, 4 -> 16+4+36 = 56, 10 -> 100+64+36 = 200, so
  // the bound is 200. sum_i (4 - gamma - x_i)^2 = (4-g)^2 + (2-g)^2 + g^2 + (6+g)^2 = 56 + 4 g^2 (the
  // cross terms cancel) <= 200  ->  gamma = 6, m = -2.
  AttackRound round{rows({0, 2, 4, 10}, 1), at::zeros({2, 1}), 0};
  expect_every_row_near(make_attack("minsum", "{direction: sign}", 6, 2)->craft(round), at::tensor({-2.f}), 1e-5);
  // Honest 0, 2, 4 with p = -std = -2: bound max(20, 8, 20) = 20; sum = (2-2g)^2 + (2g)^2 + (2+2g)^2 =
  // 8 + 12 g^2 <= 20  ->  gamma = 1, m = 0.
  AttackRound round3{rows({0, 2, 4}, 1), at::zeros({1, 1}), 0};
  expect_every_row_near(make_attack("minsum", "{}", 4, 1)->craft(round3), at::tensor({0.f}), 1e-5);
}

// The perturbation each direction uses, recomputed here independently of the plugin.
at::Tensor perturbation(const at::Tensor& honest, const std::string& direction) {
  at::Tensor mean = honest.mean(0);
  if (direction == "unit") return mean.div(-mean.norm().item<double>());
  if (direction == "sign") return mean.sign().neg();
  return honest.std(0, /*unbiased=*/true).neg();
}

// max (minmax) or sum (minsum) of squared distances from `m` to the honest rows, and the honest bound.
double spread(const at::Tensor& honest, const at::Tensor& m, bool sum) {
  at::Tensor d = (honest - m.unsqueeze(0)).square().sum(1);
  return sum ? d.sum().item<double>() : d.max().item<double>();
}
double honest_bound(const at::Tensor& honest, bool sum) {
  at::Tensor d = pairwise_squared_distances(honest.to(at::kFloat));
  return sum ? d.sum(1).max().item<double>() : d.max().item<double>();
}

TEST(AttackRules, MinmaxAndMinsumGammaIsMaximalUnderTheConstraint) {
  at::Tensor honest = at::randn({6, 9}, make_generator(3)).add_(0.5);
  for (const char* name : {"minmax", "minsum"}) {
    const bool sum = std::string(name) == "minsum";
    for (const std::string direction : {"std", "unit", "sign"}) {
      SCOPED_TRACE(std::string(name) + " direction " + direction);
      AttackRound round{honest, at::zeros({2, 9}), 0};
      at::Tensor out = make_attack(name, "{direction: " + direction + "}", 8, 2)->craft(round);
      ASSERT_EQ(out.sizes(), (at::IntArrayRef{2, 9}));
      EXPECT_TRUE(at::equal(out[0], out[1]));
      // out = mean + gamma p: recover gamma and check the residual is along p.
      at::Tensor h = honest.to(at::kDouble), mean = h.mean(0), p = perturbation(h, direction);
      at::Tensor offset = out[0].to(at::kDouble) - mean;
      const double gamma = offset.dot(p).item<double>() / p.dot(p).item<double>();
      EXPECT_GT(gamma, 0.1);
      EXPECT_TRUE(at::allclose(offset, p.mul(gamma), 1e-4, 1e-5));
      // The defining constraint holds at gamma (gamma and the message are float32-rounded, hence the
      // relative slack) ...
      const double bound = honest_bound(honest, sum);
      EXPECT_LE(spread(h, mean + p * gamma, sum), bound * (1 + 1e-6));
      EXPECT_LE(spread(h, out[0].to(at::kDouble), sum), bound * (1 + 1e-5));
      // ... and a slightly larger gamma breaks it, so gamma is (numerically) the largest one.
      EXPECT_GT(spread(h, mean + p * (gamma * 1.001), sum), bound);
    }
  }
}

TEST(AttackRules, MinmaxWithIdenticalHonestMessagesSendsThem) {
  // std = 0 and the honest maximum is 0: no room to move, the attack sends mean_h.
  AttackRound round{rows({1, 2, 1, 2, 1, 2}, 2), at::zeros({1, 2}), 0};
  expect_every_row_near(make_attack("minmax", "{}", 4, 1)->craft(round), at::tensor({1.f, 2.f}));
  expect_every_row_near(make_attack("minsum", "{}", 4, 1)->craft(round), at::tensor({1.f, 2.f}));
}

TEST(AttackRules, MinmaxRejectsAnUnknownDirection) {
  EXPECT_ERROR_WITH(params_for(core::Kind::Attack, "minmax", "{direction: sideways}"), "direction", "std, unit, sign");
}

// Each attack through the synchronous engine: the crafted [b, d] messages fit what the engine expects.
TEST(AttackRules, EveryAttackRunsThroughTheEngine) {
  const char* config = R"(name: attacks
seed: 3
data: {name: synthetic, train_size: 300, test_size: 100, features: 6, classes: 3}
model: {name: mlp, hidden: [8]}
workers: {count: 6, byzantine: 2}
optimizer: {name: sgd, lr: 0.05}
aggregator: {name: cm}
training: {batch_size: 8, budget: {steps: 6}, eval_every: 6}
)";
  for (const char* name : {"signflip", "gaussian", "labelflip", "foe", "mimic", "minmax", "minsum", "nan", "inf", "zero"}) {
    SCOPED_TRACE(name);
    Value root = core::parse_yaml(config, "attacks.yaml");
    core::set_path(root, "attack", core::parse_yaml(std::string("{name: ") + name + "}", "attacks.yaml"));
    core::RunResult r = core::run_sync(core::resolve_pipeline(root, builtin_registry()), builtin_registry(), "", nullptr);
    EXPECT_EQ(r.status, core::RunStatus::ok) << r.message;
    EXPECT_EQ(r.last.step, 6);
  }
}

}  // namespace
}  // namespace phalanx::test
