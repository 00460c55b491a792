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

// ---- dnc --------------------------------------------------------------------------------------------------

// n = 7, d = 12; row 5 shifted by +3, the first half of row 6 by -4 (tests/reference/fedlib_reference.py, "dnc").
at::Tensor dnc_rows() {
  return matrix(7, 12, {-1.23166502, 0.267118961, -0.00692612352, 0.501535296, -1.32672834, 1.10776818,
                        0.0937548801, -1.17081809, -1.35824037, -1.30656397, -0.717615306, 1.18562138,
                        0.894533753, -0.544047832, -0.546587944, 1.92958772, 0.902788579, -0.803390563,
                        -0.149711967, -0.430291593, 0.151541457, 0.879149854, -0.274891466, 0.369281024,
                        0.568265438, 0.783507645, -0.630434096, -0.221796453, 1.97235346, -0.185968056,
                        0.0299130939, 0.440948248, -0.577260554, -0.38974759, 1.67822802, 1.29645598,
                        -1.10343742, 0.0651657954, -1.28942966, -1.53174758, 0.00273647252, 1.52455425,
                        -0.0818261355, 1.47020102, -1.05685043, 0.136268288, 0.0809459463, 0.0861959681,
                        0.993400097, 0.573378742, -0.549020588, -1.35127711, -0.553810298, -0.0205854587,
                        -0.550670683, -1.52508044, -1.76363194, 0.8112818, 0.256431162, -0.585558116,
                        3.44081569, 3.49441838, 2.78649116, 2.57285476, 4.14881611, 3.85323977, 4.43252945,
                        4.01220798, 3.25840783, 2.55086613, 2.65735888, 2.40543151, -3.93474531,
                        -3.79082561, -2.83341217, -2.65240574, -4.01800966, -3.61004114, -1.17550015,
                        -0.677687645, -1.08625686, 0.126703978, -0.538106918, -0.774098933});
}

TEST(DncReference, AllCoordinatesMatchFedlib) {
  // d <= sub_dim: every iteration sees every coordinate, so the result is deterministic.
  expect_close(make_aggregator("dnc", "{}", 7, 2)->aggregate(dnc_rows()),
               {0.0242193695, 0.229024649, -0.604479671, -0.134739622, 0.199467957, 0.324475676,
                -0.131708175, -0.243008181, -0.920888305, 0.0260776766, 0.204619676, 0.470399231});
  expect_close(make_aggregator("dnc", "{filter_frac: 0.5}", 7, 2)->aggregate(dnc_rows()),
               {-0.635608137, -0.440950394, -0.975968421, -0.554350674, -0.50344491, -0.331277132,
                -0.30567351, -0.315454751, -0.94844985, 0.0428487249, 0.0808319002, 0.262982875});
}

TEST(DncReference, RandomCoordinateSubsetsMatchFedlibWithTheSamePermutations) {
  // One coordinate per iteration, two iterations: the kept sets differ from the full-coordinate ones above.
  expect_close(make_aggregator("dnc", "{sub_dim: 1, niters: 2}", 7, 2)->aggregate(dnc_rows()),
               {0.338190466, 0.219501078, -0.753868043, -0.293808341, 0.581017077, 0.128652543,
                -0.188073918, -0.0110557079, -0.811550379, 0.359238088, 0.435178399, 0.29159373});
}

TEST(DncReference, ResumedGeneratorDrawsTheSamePermutations) {
  auto first = make_aggregator("dnc", "{sub_dim: 1, niters: 2}", 7, 2);
  first->aggregate(dnc_rows());
  State saved = first->save_state();
  at::Tensor next = first->aggregate(dnc_rows().flip(0));
  auto resumed = make_aggregator("dnc", "{sub_dim: 1, niters: 2}", 7, 2);
  resumed->load_state(saved);
  EXPECT_TRUE(at::equal(resumed->aggregate(dnc_rows().flip(0)), next));
}

TEST(DncReference, NonFiniteRowIsDroppedAndCountsAsOneOfTheF) {
  at::Tensor x = at::cat({dnc_rows(), at::full({1, 12}, kNaN)});
  expect_close(make_aggregator("dnc", "{f: 3}", 8, 3)->aggregate(x),
               {0.0242193695, 0.229024649, -0.604479671, -0.134739622, 0.199467957, 0.324475676,
                -0.131708175, -0.243008181, -0.920888305, 0.0260776766, 0.204619676, 0.470399231});
}

// ---- signguard --------------------------------------------------------------------------------------------

// n = 7, d = 20: rows 0-4 mostly positive, rows 5-6 mostly negative, three zeros in row 2; every norm within
// 0.93 and 1.15 times the median, so fedlib's clipping before the norm filter changes nothing
// (tests/reference/fedlib_reference.py, "signguard").
at::Tensor signguard_rows() {
  return matrix(7, 20, {-1.44244123, 0.807138383, 0.754906654, -0.72261852, -1.28620422, 0.716708064,
                        1.30572653, 1.23265815, -0.921774745, 0.991833568, 1.40924084, 1.29097211,
                        -0.653807282, 1.24899173, -0.90300864, 1.49140716, 0.711607754, 0.910475612,
                        1.44328761, 1.08020329, 1.23575068, 1.10475099, 0.73134023, 0.554544568,
                        -0.595046222, -0.860131323, 0.592076302, 0.669911921, -0.985891283, 0.855181634,
                        1.06214309, 0.843296826, 1.05605757, 1.14296508, -1.35432851, 0.533516109,
                        1.25076473, -0.873689234, 0.749220133, 0.611527562, 0, 0, 0, 0.810525119,
                        1.48236692, 1.02695954, 1.39490819, 0.590494215, 0.556526959, 0.939013362,
                        -0.522470355, 0.807122588, 0.530036807, -1.318578, 0.580887735, 1.05330956,
                        1.46852124, 0.970537484, -0.810276449, -1.35643601, 1.23944545, -0.637493849,
                        0.931122184, 0.856624424, 1.30370975, 0.990662038, 0.919784248, 0.920175076,
                        1.2227385, 1.47463417, -1.13642192, 0.925731599, 1.11895061, 1.49859536,
                        1.40032709, 0.593789339, 0.741638303, -1.04365492, 0.97741282, 0.927947402,
                        -0.827690482, 1.32555234, -1.02283013, 0.546770215, 1.07358813, 1.48522747,
                        0.873994052, 0.881921649, 1.34638119, 1.09124279, 1.03366613, 0.685587049,
                        1.05660272, 0.662731409, 1.06961858, 1.28074348, 0.57959944, 1.26629484,
                        1.31733966, 0.578824282, -1.32963526, -0.556439042, -1.43924022, 0.827892244,
                        -0.840479791, -0.867482066, -0.78406024, -0.587960184, -1.06647611, -0.58426702,
                        -0.897103608, -0.638523281, -1.1214608, -0.738797724, -0.585714102, -0.516904414,
                        -1.3148433, -0.831019461, -1.32327235, -1.40148842, -0.551907003, -0.664201915,
                        -0.596300006, 0.673027933, -0.753112078, 0.699564338, -0.66754818, -1.33766532,
                        -1.3957628, -1.30657375, 1.3750906, -1.02199078, -0.635839462, -0.639838159,
                        -0.86310631, -0.551365852, -0.878856778, -0.849296808, -0.802121222, -0.884414613});
}

TEST(SignguardReference, MatchesFedlibWhereBothNormFiltersAgree) {
  // fedlib's clip factor M / (nu + 1e-6) differs from M / nu by about 1e-6 relative here.
  expect_close(make_aggregator("signguard", "{}", 7, 2)->aggregate(signguard_rows()),
               {0.0645809919, 0.492834419, 0.25554356, 0.401824951, 0.385688305, 0.611017227, 0.951907277,
                0.795384705, 0.221902326, 0.998323739, 0.341323912, 0.848204017, 0.599469364, 0.574175179,
                0.136965171, 0.921110451, 0.908286691, 0.225470021, 0.658711791, 0.313006252});
  expect_close(make_aggregator("signguard", "{agg: median}", 7, 2)->aggregate(signguard_rows()),
               {0, 0.703913629, 0.658361852, 0.554544568, 0.993862629, 0.8882761, 0.824723601, 0.816429496,
                0.556526959, 0.939013362, 0.956905305, 0.83005631, 0.978138566, 1.08925843, 0.580887735,
                1.05330956, 0.664989233, 0.794035137, 0.876396239, 0.611527562}, 1e-4);
}

TEST(SignguardReference, ARowAboveRTimesTheMedianNormIsDroppedNotClipped) {
  // Four copies of h and one row with h's signs but 10 times its norm. The paper's filter (and this plugin)
  // drops that row; fedlib clips it to the median norm first, so it would average it in.
  at::Tensor h = at::tensor({0.3f, -0.2f, 0.5f, 0.1f});
  at::Tensor far = at::tensor({4.0f, -1.0f, 2.0f, 3.0f});
  far = far * (10.0f * h.norm() / far.norm());
  at::Tensor x = at::cat({h.unsqueeze(0).repeat({4, 1}), far.unsqueeze(0)});
  EXPECT_TRUE(at::allclose(make_aggregator("signguard", "{}", 5, 1)->aggregate(x), h, 1e-6, 1e-7));
}

TEST(SignguardReference, RandomSignBlockAndSeedsResumeFromTheSavedGenerator) {
  auto first = make_aggregator("signguard", "{sign_fraction: 0.3}", 7, 2);
  first->aggregate(signguard_rows());
  State saved = first->save_state();
  at::Tensor next = first->aggregate(signguard_rows().flip(1));
  auto resumed = make_aggregator("signguard", "{sign_fraction: 0.3}", 7, 2);
  resumed->load_state(saved);
  EXPECT_TRUE(at::equal(resumed->aggregate(signguard_rows().flip(1)), next));
}

// ---- clippedclustering ------------------------------------------------------------------------------------

TEST(ClippedclusteringReference, FedlibsUnitTest) {
  // fedlib/aggregators/tests/test_clippedclustering.py: the first call on these rows.
  at::Tensor x = rows({{1, 2, 3}, {-1, 4, -1}, {2, 2, 3}, {3, 1, 3}});
  expect_close(make_aggregator("clippedclustering", "{}", 4, 1)->aggregate(x),
               {1.95961654, 1.65320551, 2.95961642}, 1e-4);
}

// n = 7, d = 6: rows 0-4 shifted by +1, rows 5-6 by -1, row 6 scaled by 5 (tests/reference/fedlib_reference.py).
at::Tensor clustering_rows() {
  return matrix(7, 6, {0.433236241, -0.0565742254, 2.06207991, -0.129352212, -0.779405355, 1.65495622,
                        1.84125113, 0.0508897901, 0.434669673, 3.77972722, -0.0174384117, 0.494210899,
                        2.17875624, 1.74540615, 2.61180401, 1.81775582, 0.592321038, 1.11844003,
                        0.449872315, 1.80575693, 1.50835633, -0.230798125, 1.4845283, 0.180661857,
                        1.0721904, 0.618979692, 1.28305161, -1.5956068, 1.4443965, -0.423225641,
                        0.172044516, -2.18247771, -1.51796377, -1.71008468, -0.74274981, 0.059238553,
                        -3.93384099, -5.11143112, -4.17674923, -5.52320433, -4.72630072, -8.68699455});
}

TEST(ClippedclusteringReference, MatchesFedlibOverTwoCallsSharingTheNormHistory) {
  auto aggregator = make_aggregator("clippedclustering", "{}", 7, 2);
  expect_close(aggregator->aggregate(clustering_rows()), {0.99320668, 0.738360345, 1.42162585, 0.454110533,
                                                          0.514437377, 0.522660792});
  // Second call on the rows times 3: the median of all 14 norms seen sets the clipping threshold.
  expect_close(aggregator->aggregate(clustering_rows() * 3),
               {2.72827482, 2.09621978, 4.06926823, 1.02449691, 1.49659133, 1.47067964});
  auto single_median = make_aggregator("clippedclustering", "{linkage: single, agg: median}", 7, 2);
  expect_close(single_median->aggregate(clustering_rows()),
               {1.0721904, 0.618979692, 1.50835633, -0.129352212, 0.435993344, 0.377654493});
}

TEST(ClippedclusteringReference, NormHistoryIsSavedAndRestored) {
  auto first = make_aggregator("clippedclustering", "{}", 7, 2);
  first->aggregate(clustering_rows());
  State saved = first->save_state();
  auto resumed = make_aggregator("clippedclustering", "{}", 7, 2);
  resumed->load_state(saved);
  at::Tensor out = resumed->aggregate(clustering_rows() * 3);
  expect_close(out, {2.72827482, 2.09621978, 4.06926823, 1.02449691, 1.49659133, 1.47067964});
  // A fresh instance has no history: its threshold comes from this call's norms only, a different result.
  at::Tensor fresh = make_aggregator("clippedclustering", "{}", 7, 2)->aggregate(clustering_rows() * 3);
  EXPECT_FALSE(at::allclose(fresh, out));
}

TEST(ClippedclusteringReference, NonFiniteRowsAreDroppedAndTheirNormsNotRecorded) {
  auto aggregator = make_aggregator("clippedclustering", "{}", 8, 2);
  aggregator->aggregate(at::cat({clustering_rows(), at::full({1, 6}, kNaN)}));
  expect_close(aggregator->aggregate(clustering_rows() * 3),
               {2.72827482, 2.09621978, 4.06926823, 1.02449691, 1.49659133, 1.47067964});
}

}  // namespace
}  // namespace phalanx::test
