// The aggregators that have a public reference implementation (caf, smea, monna: ByzFL; dnc, signguard,
// clippedclustering: fedlib, which current Blades imports) against values computed with that code, unmodified,
// on fixed inputs. tests/reference/*.py regenerate every number here; where the reference draws random numbers,
// the script hands it the draws the plugin makes (torch's CPU generator seeded with the plugin's seed, 1 in these
// tests). Where a plugin's definition deliberately differs from the reference, the test says which and why.
#include <cmath>
#include <vector>

#include <ATen/ATen.h>

#include "support.hpp"

namespace phalanx::test {
namespace {

at::Tensor matrix(std::int64_t n, std::int64_t d, const std::vector<float>& values) {
  return at::tensor(values, at::kFloat).reshape({n, d});
}

/// EXPECT `got` within rtol of `want` element by element (plus a small absolute floor near zero).
void expect_close(const at::Tensor& got, const std::vector<float>& want, double rtol = 1e-5) {
  ASSERT_EQ(got.numel(), static_cast<std::int64_t>(want.size()));
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i].item<float>(), want[i], rtol * std::abs(want[i]) + 1e-6) << "index " << i;
}

const at::Tensor& byzfl_example() {
  static const at::Tensor x = matrix(3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  return x;
}

// ---- smea -------------------------------------------------------------------------------------------------

// n = 7, d = 5, f = 2; row 6 shifted by +3 (tests/reference/byzfl_reference.py, "smea").
at::Tensor smea_rows() {
  return matrix(7, 5, {0.034192767, 1.35974753, 1.22472107, -0.510307074, -0.29796952, -0.527384222,
                       0.569726348, -0.0560644381, 0.746885598, -1.84732485, 1.56654882, -0.0964321569,
                       0.680378437, -0.136566341, -0.379098564, 0.463110149, 0.824513555, -0.202529877,
                       -0.15278618, 0.685698628, -0.870340645, -1.51438355, 0.394981861, -0.670565844,
                       -1.92034054, -0.814053655, -0.467597544, -1.1932025, -1.49246383, 0.0366378278,
                       3.89724928, 2.76686792, 2.25640398, 3.38499382, 3.7172358});
}

TEST(SmeaReference, ExactModeMatchesABruteForceWithEigvalsh) {
  // numpy.linalg.eigvalsh over all 21 subsets: the best is rows 0, 1, 2, 3, 5.
  expect_close(make_aggregator("smea", "{}", 7, 2)->aggregate(smea_rows()),
               {0.144482773, 0.437991546, 0.09066054, -0.309047565, -0.360411295});
}

TEST(SmeaReference, OnePowerStepMatchesByzflWithTheSameStartVectors) {
  // The plugin's first start vector is the script's first injected draw.
  at::Tensor first = at::randn({5}, make_generator(1), at::TensorOptions().dtype(at::kDouble));
  EXPECT_NEAR(first[0].item<double>(), 0.661352172, 1e-8);
  EXPECT_NEAR(first[2].item<double>(), 0.0616772582, 1e-8);
  // ByzFL's SMEA (one power step) with the plugin's draws picks another subset than the exact argmin above.
  expect_close(make_aggregator("smea", "{power_iters: 1}", 7, 2)->aggregate(smea_rows()),
               {0.133225375, 0.228634344, 0.408297411, -0.144667968, -0.751806968});
  // ByzFL's documented example: with these draws it returns the worst subset's mean (4, 5, 6); the exact
  // answer is (2.5, 3.5, 4.5), the first of two tied subsets.
  expect_close(make_aggregator("smea", "{power_iters: 1}", 3, 1)->aggregate(byzfl_example()), {4, 5, 6});
  expect_close(make_aggregator("smea", "{}", 3, 1)->aggregate(byzfl_example()), {2.5, 3.5, 4.5});
}

TEST(SmeaReference, ResumedGeneratorDrawsTheSameStartVectors) {
  auto first = make_aggregator("smea", "{power_iters: 1}", 7, 2);
  first->aggregate(smea_rows());
  State saved = first->save_state();
  at::Tensor next = first->aggregate(smea_rows() * 2);
  auto resumed = make_aggregator("smea", "{power_iters: 1}", 7, 2);
  resumed->load_state(saved);
  EXPECT_TRUE(at::equal(resumed->aggregate(smea_rows() * 2), next));
}

TEST(SmeaReference, NonFiniteRowIsDroppedAndCountsAsOneOfTheF) {
  // f = 3 with one NaN row: f' = 2 over the same 7 rows.
  at::Tensor x = at::cat({matrix(1, 5, {kNaN, 0, 0, 0, 0}), smea_rows()});
  expect_close(make_aggregator("smea", "{}", 8, 3)->aggregate(x),
               {0.144482773, 0.437991546, 0.09066054, -0.309047565, -0.360411295});
}

TEST(SmeaReference, RefusesTooManySubsetsNamingMaxSubsets) {
  EXPECT_ERROR_WITH(make_aggregator("smea", "{}", 64, 10), "aggregator.max_subsets", "C(n, f)", "n = 64",
                    "f = 10", "max_subsets = 1000000");
  EXPECT_ERROR_WITH(make_aggregator("smea", "{max_subsets: 20}", 5, 2)->aggregate(smea_rows()), "max_subsets = 20");
  EXPECT_ERROR_WITH(make_aggregator("smea", "{}", 4, 2), "aggregator.f", "n > 2f");
}

// ---- caf --------------------------------------------------------------------------------------------------

// n = 7, d = 5, f = 2; row 5 shifted by +5, row 6 by -2.5 (tests/reference/byzfl_reference.py, "caf").
at::Tensor caf_rows() {
  return matrix(7, 5, {0.35877341, 1.51067734, -1.7863313, 1.68661356, -0.0473172106, -0.799978614, -0.8029567,
                       -1.08281648, -0.223645359, 0.83388418, 0.584063709, 0.638285995, -1.69480836, -1.57096207,
                       1.55380321, 0.968885362, 2.18321395, 1.20981586, -1.02439129, 1.28527248, 0.628394246,
                       0.21482493, -0.819873333, 0.00278022187, -0.146998703, 5.89253509, 5.12449694, 6.58474588,
                       4.22551423, 5.47110257, -2.00115761, -3.36433852, -3.68126607, -1.48642051, -1.9825595});
}

TEST(CafReference, MaxTauOverAllRowsMatchesByzflWithTheSameStartVectors) {
  // ByzFL's CAF: tau_max over all rows, one power step; 7 passes, so 7 start vectors.
  expect_close(make_aggregator("caf", "{tau_max_over: all}", 7, 2)->aggregate(caf_rows()),
               {0.205493597, 0.479223565, -1.02894455, -0.307271136, 0.52971703});
}

TEST(CafReference, ActiveAndExactModesMatchByzflsLoopWithThatLineChanged) {
  // The script's transcription of ByzFL's loop, checked there against ByzFL in ByzFL's own mode, with tau_max
  // taken over the rows still weighted and/or the exact top eigenpair (numpy.linalg.eigh).
  expect_close(make_aggregator("caf", "{}", 7, 2)->aggregate(caf_rows()),
               {0.331457221, 0.50906768, -0.54380924, -0.588563815, 0.763656676});
  expect_close(make_aggregator("caf", "{power_iters: 0}", 7, 2)->aggregate(caf_rows()),
               {0.317471756, 0.667276804, -0.968474757, -0.170655302, 0.653121393});
  expect_close(make_aggregator("caf", "{power_iters: 0, tau_max_over: all}", 7, 2)->aggregate(caf_rows()),
               {0.247272861, 0.478450979, -1.11671278, -0.168069943, 0.586098768});
}

TEST(CafReference, ByzflsDocumentedExampleInEveryMode) {
  for (const char* params : {"{}", "{tau_max_over: all}", "{power_iters: 0}", "{power_iters: 3}"}) {
    SCOPED_TRACE(params);
    expect_close(make_aggregator("caf", params, 3, 1)->aggregate(byzfl_example()), {4, 5, 6});
  }
}

TEST(CafReference, ResumedGeneratorDrawsTheSameStartVectors) {
  auto first = make_aggregator("caf", "{}", 7, 2);
  first->aggregate(caf_rows());
  State saved = first->save_state();
  at::Tensor next = first->aggregate(caf_rows() * 2);
  auto resumed = make_aggregator("caf", "{}", 7, 2);
  resumed->load_state(saved);
  EXPECT_TRUE(at::equal(resumed->aggregate(caf_rows() * 2), next));
}

TEST(CafReference, ZeroFGivesTheMeanAndTooLargeFIsRefused) {
  expect_close(make_aggregator("caf", "{f: 0}", 3, 1)->aggregate(byzfl_example()), {4, 5, 6});
  EXPECT_ERROR_WITH(make_aggregator("caf", "{}", 4, 2), "aggregator.f", "n > 2f");
}

// ---- monna ------------------------------------------------------------------------------------------------

// n = 7, d = 4, row 6 shifted by +4; distinct distances (tests/reference/byzfl_reference.py, "monna").
at::Tensor monna_rows() {
  return matrix(7, 4, {-0.395301282, 0.263914883, 0.607128263, -0.972159803, 0.767664254, 0.25505811, 0.782979846,
                       0.272418231, 1.16200817, -0.93775636, 1.77609968, 1.20238984, -0.599957824, 0.660166323,
                       0.444767386, -1.74576354, 0.595216274, -0.585399091, -0.25001353, -0.602386415, -0.428084016,
                       0.0717347041, 0.0967191234, -1.55915189, 3.73129398, 2.6551888, 2.72922218, 3.6530464});
}

TEST(MonnaReference, MatchesByzfl) {
  expect_close(make_aggregator("monna", "{}", 7, 2)->aggregate(monna_rows()),
               {-0.0120925188, 0.133094986, 0.336316217, -0.921408683});
  expect_close(make_aggregator("monna", "{f: 3, trusted: 2}", 7, 3)->aggregate(monna_rows()),
               {0.532396853, -0.251045614, 0.729048565, -0.0249345377});
  // ByzFL's documented example, MoNNA(f = 1, idx = 1): rows 0 and 2 tie, the lower index is kept.
  expect_close(make_aggregator("monna", "{trusted: 1}", 3, 1)->aggregate(byzfl_example()), {2.5, 3.5, 4.5});
}

TEST(MonnaReference, NonFiniteRowIsDroppedAndABadTrustedRowIsAnError) {
  // f = 3 with one NaN row: f' = 2 over the same 7 rows.
  at::Tensor x = at::cat({monna_rows(), matrix(1, 4, {kNaN, 0, 0, 0})});
  expect_close(make_aggregator("monna", "{}", 8, 3)->aggregate(x),
               {-0.0120925188, 0.133094986, 0.336316217, -0.921408683});
  at::Tensor bad = monna_rows();
  bad[0][1] = kInf;
  EXPECT_ERROR_WITH(make_aggregator("monna", "{}", 7, 2)->aggregate(bad), "aggregator 'monna'", "trusted row 0",
                    "NaN or Inf");
  EXPECT_ERROR_WITH(make_aggregator("monna", "{trusted: 4}", 7, 2)->aggregate(monna_rows().narrow(0, 0, 3)),
                    "trusted row 4 does not exist");
}

TEST(MonnaReference, RefusesATrustedRowOutsideTheHonestWorkers) {
  EXPECT_ERROR_WITH(make_aggregator("monna", "{trusted: 7}", 7, 2), "aggregator.trusted", "0..6");
  EXPECT_ERROR_WITH(make_aggregator("monna", "{trusted: 5}", 7, 2), "aggregator.trusted", "Byzantine worker");
  EXPECT_ERROR_WITH(make_aggregator("monna", "{}", 4, 2), "aggregator.f", "n > 2f");
}

}  // namespace
}  // namespace phalanx::test
