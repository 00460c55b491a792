// The robust aggregation rules (tm, krum, multikrum, gm, bulyan, meamed, mda, phocas) against values computed
// by hand, their handling of NaN/Inf rows, and their refusal of an f the rule cannot tolerate. Properties
// shared by every aggregator live in aggregator_conformance_test.cpp.
#include <cmath>
#include <limits>

#include <ATen/ATen.h>

#include "support.hpp"

namespace phalanx::test {
namespace {


// ---- tm ---------------------------------------------------------------------------------------------------

TEST(TrimmedMean, DropsTheBLargestAndBSmallestValuesOfEachCoordinate) {
  // b = 1. Coordinate 0: 1 2 3 100 -> drop 1 and 100 -> (2 + 3) / 2 = 2.5.
  // Coordinate 1: -30 10 20 40 -> drop -30 and 40 -> (10 + 20) / 2 = 15.
  expect_near(make_aggregator("tm", "{}", 4, 1)->aggregate(rows({{1, 10}, {2, 20}, {3, -30}, {100, 40}})), {2.5, 15});
}

TEST(TrimmedMean, ANonFiniteRowCountsAsOneOfTheTrimmedValues) {
  // b = 2, one NaN row dropped -> b' = 1 on 1 2 3 100 -> (2 + 3) / 2 = 2.5.
  expect_near(make_aggregator("tm", "{}", 5, 2)->aggregate(rows({{1}, {2}, {kNaN}, {3}, {100}})), {2.5});
}

TEST(TrimmedMean, RefusesBWithoutAMajorityOfKeptValues) {
  EXPECT_ERROR_WITH(make_aggregator("tm", "{b: 2}", 4, 1), "aggregator 'tm'", "aggregator.b", "needs n > 2b",
                    "The largest b for n = 4 is 1");
  // Automatic b is the number of Byzantine workers.
  EXPECT_ERROR_WITH(make_aggregator("tm", "{}", 4, 2), "b = 2 with n = 4");
}

// ---- krum -------------------------------------------------------------------------------------------------

// Rows (x, 5) with x = 0, 1, 2.5, 3, 10; n = 5, f = 1, so each score sums the k = n - f - 2 = 2 smallest squared
// distances to the other rows:
//   x = 0:   1, 6.25, 9, 100        -> 1 + 6.25     = 7.25
//   x = 1:   1, 2.25, 4, 81         -> 1 + 2.25     = 3.25
//   x = 2.5: 6.25, 2.25, 0.25, 56.25 -> 0.25 + 2.25 = 2.5   (lowest)
//   x = 3:   9, 4, 0.25, 49         -> 0.25 + 4     = 4.25
//   x = 10:  100, 81, 56.25, 49     -> 49 + 56.25   = 105.25
at::Tensor krum_example() { return rows({{0, 5}, {1, 5}, {2.5, 5}, {3, 5}, {10, 5}}); }

TEST(Krum, ReturnsTheRowWithTheLowestScore) {
  expect_near(make_aggregator("krum", "{}", 5, 1)->aggregate(krum_example()), {2.5, 5});
}

TEST(Krum, NonFiniteRowIsDroppedAndCountsAsOneOfTheF) {
  // The NaN row is dropped, f' = 0, k = 4 - 0 - 2 = 2 over x = 0, 1, 2.5, 10:
  //   0: 1 + 6.25 = 7.25;  1: 1 + 2.25 = 3.25;  2.5: 2.25 + 6.25 = 8.5;  10: 56.25 + 81 = 137.25  -> x = 1.
  expect_near(make_aggregator("krum", "{}", 5, 1)->aggregate(rows({{kNaN, 5}, {0, 5}, {1, 5}, {2.5, 5}, {10, 5}})), {1, 5});
}

TEST(Krum, TiesGoToTheRowWhoseNextNeighbourIsCloserWhateverTheOrder) {
  // n = 3, f = 0, k = 1: x = 0 and x = 1 both score 1 (each other's nearest). Next nearest: 0 -> 5 is 25,
  // 1 -> 5 is 16, so x = 1 wins in either order.
  expect_near(make_aggregator("krum", "{}", 3, 0)->aggregate(rows({{0}, {1}, {5}})), {1});
  expect_near(make_aggregator("krum", "{}", 3, 0)->aggregate(rows({{1}, {0}, {5}})), {1});
}

TEST(Krum, FewerRowsThanWorkersKeepsAtLeastOneNeighbour) {
  // Built for n = 7, f = 2 but given 3 rows (e.g. after bucketing): k = max(1, 3 - 2 - 2) = 1, as above.
  expect_near(make_aggregator("krum", "{}", 7, 2)->aggregate(rows({{5}, {0}, {1}})), {1});
}

TEST(Krum, RefusesFBeyondTheBreakdownPoint) {
  EXPECT_ERROR_WITH(make_aggregator("krum", "{}", 4, 1), "aggregator 'krum'", "aggregator.f", "n >= 2f + 3",
                    "f = 1 with n = 4", "The largest f for n = 4 is 0");
  EXPECT_ERROR_WITH(make_aggregator("krum", "{f: 0}", 2, 0), "at least 3 workers");
}

// ---- multikrum --------------------------------------------------------------------------------------------

TEST(MultiKrum, AveragesTheNMinusFRowsWithTheLowestScores) {
  // Scores as in krum_example(); m = n - f = 4 keeps x = 2.5, 1, 3, 0 -> (0 + 1 + 2.5 + 3) / 4 = 1.625.
  expect_near(make_aggregator("multikrum", "{}", 5, 1)->aggregate(krum_example()), {1.625, 5});
}

TEST(MultiKrum, ExplicitMAveragesThatManyRows) {
  // m = 2 keeps x = 2.5 and x = 1 -> 1.75; m = 1 is Krum.
  expect_near(make_aggregator("multikrum", "{m: 2}", 5, 1)->aggregate(krum_example()), {1.75, 5});
  expect_near(make_aggregator("multikrum", "{m: 1}", 5, 1)->aggregate(krum_example()), {2.5, 5});
}

TEST(MultiKrum, NonFiniteRowIsNeverAveraged) {
  // The Inf row is dropped, f' = 0, k = 2, m = n' - f' = 4: every finite row -> (0 + 1 + 2.5 + 10) / 4 = 3.375.
  expect_near(make_aggregator("multikrum", "{}", 5, 1)->aggregate(rows({{0, 5}, {1, 5}, {kInf, 5}, {2.5, 5}, {10, 5}})),
              {3.375, 5});
}

TEST(MultiKrum, RefusesImpossibleFOrM) {
  EXPECT_ERROR_WITH(make_aggregator("multikrum", "{}", 6, 2), "aggregator 'multikrum'", "aggregator.f", "n >= 2f + 3",
                    "The largest f for n = 6 is 1");
  EXPECT_ERROR_WITH(make_aggregator("multikrum", "{m: 5}", 5, 1), "aggregator.m", "m = 5", "use at most 4");
}

// ---- gm ---------------------------------------------------------------------------------------------------

// Rows (1, 0), (-1, 0), (0, 3). The coordinate-wise median is (0, 0) (x: -1 0 1, y: 0 0 3), at distances
// 1, 1, 3, so weights 1, 1, 1/3: z_1 = ((1, 0) + (-1, 0) + (0, 3) / 3) / (7/3) = (0, 3/7).
at::Tensor triangle() { return rows({{1, 0}, {-1, 0}, {0, 3}}); }

TEST(GeometricMedian, OneWeiszfeldStepFromTheMedian) {
  expect_near(make_aggregator("gm", "{iterations: 1}", 3, 0)->aggregate(triangle()), {0, 3.0f / 7.0f});
}

TEST(GeometricMedian, ConvergesToTheFermatPoint) {
  // Every angle of the triangle is below 120 degrees, so the geometric median is the Fermat point, where
  // the sides to (1, 0) and (-1, 0) meet at 120 degrees: (0, y) with tan(60 deg) = 1 / y, y = 1/sqrt(3).
  expect_near(make_aggregator("gm", "{iterations: 500, tolerance: 0}", 3, 0)->aggregate(triangle()),
              {0, static_cast<float>(1.0 / std::sqrt(3.0))}, 1e-4);
}

TEST(GeometricMedian, IgnoresNonFiniteRows) {
  expect_near(make_aggregator("gm", "{iterations: 1}", 5, 2)->aggregate(rows({{kNaN, 0}, {1, 0}, {-1, 0}, {kInf, -kInf}, {0, 3}})),
              {0, 3.0f / 7.0f});
}

TEST(GeometricMedian, RefusesANonPositiveSmoothing) {
  // gm has no f (the geometric median tolerates any minority); its impossible settings are parameter ranges.
  EXPECT_ERROR_WITH(params_for(core::Kind::Aggregator, "gm", "{nu: 0}"), "aggregator.nu", "out of range");
  EXPECT_ERROR_WITH(params_for(core::Kind::Aggregator, "gm", "{iterations: 0}"), "aggregator.iterations",
                    "out of range");
}

// ---- bulyan -----------------------------------------------------------------------------------------------

TEST(Bulyan, RepeatedKrumThenMeanOfTheValuesClosestToTheMedian) {
  // x = 0, 1, 3, 4, 7, 50, -40 (second coordinate 5 everywhere), n = 7, f = 1: theta = 5 rows, beta = 3.
  // Krum on the r rows left, k = r - f - 2 (at least 1), squared distances:
  //   r = 7, k = 4: 0: 1+9+16+49 = 75, 1: 1+4+9+36 = 50, 3: 1+4+9+16 = 30, 4: 1+9+9+16 = 35, 7: 110,
  //                 50: 8575, -40: 7066                                  -> 3
  //   r = 6, k = 3: 0: 1+16+49 = 66, 1: 1+9+36 = 46, 4: 9+9+16 = 34, 7: 94, ...        -> 4
  //   r = 5, k = 2: 0: 1+49 = 50, 1: 1+36 = 37, 7: 36+49 = 85, 50: 4250, -40: 3281   -> 1
  //   r = 4, k = 1: 0: 49, 7: 49 (tie; next nearest 1600 for 0 against 1849 for 7)   -> 0
  //   r = 3, k = 1: 7: 1849, 50: 1849 (tie; next 2209 for 7 against 8100 for 50)      -> 7
  // Chosen 0 1 3 4 7, median 3; the 3 values closest to it are 3, 4, 1 -> 8/3.
  expect_near(make_aggregator("bulyan", "{}", 7, 1)->aggregate(rows({{0, 5}, {1, 5}, {3, 5}, {4, 5}, {7, 5}, {50, 5}, {-40, 5}})),
              {8.0f / 3.0f, 5});
}

TEST(Bulyan, NonFiniteRowIsDroppedAndCountsAsOneOfTheF) {
  // n = 7, f = 1, the NaN row dropped -> f' = 0: theta = beta = 6, the mean of the finite rows
  // (0 + 1 + 3 + 4 + 7 - 40) / 6 = -25/6.
  expect_near(make_aggregator("bulyan", "{}", 7, 1)->aggregate(rows({{0}, {1}, {3}, {4}, {7}, {kNaN}, {-40}})), {-25.0f / 6.0f});
}

TEST(Bulyan, RefusesFBeyondTheBreakdownPoint) {
  EXPECT_ERROR_WITH(make_aggregator("bulyan", "{}", 7, 2), "aggregator 'bulyan'", "aggregator.f", "n >= 4f + 3",
                    "f = 2 with n = 7", "The largest f for n = 7 is 1");
}

// ---- meamed and phocas ------------------------------------------------------------------------------------

// Coordinate 0: 0 2 2.4 2.6 4.7, coordinate 1: 10 -50 11 12 13; n = 5, f = 1, so each keeps n - f = 4 values.
at::Tensor five_rows() { return rows({{0, 10}, {2, -50}, {2.4f, 11}, {2.6f, 12}, {4.7f, 13}}); }

TEST(MeanAroundMedian, AveragesTheValuesClosestToTheMedian) {
  // Coordinate 0: median 2.4, distances 2.4 0.4 0 0.2 2.3 -> drop 0 -> (2 + 2.4 + 2.6 + 4.7) / 4 = 2.925.
  // Coordinate 1: median 11, distances 1 61 0 1 2 -> drop -50 -> (10 + 11 + 12 + 13) / 4 = 11.5.
  expect_near(make_aggregator("meamed", "{}", 5, 1)->aggregate(five_rows()), {2.925f, 11.5f});
}

TEST(MeanAroundMedian, EvenCountUsesTheMeanOfTheTwoMiddleValues) {
  // 0 1 2 10: median 1.5, distances 1.5 0.5 0.5 8.5 -> drop 10 -> (0 + 1 + 2) / 3 = 1.
  expect_near(make_aggregator("meamed", "{}", 4, 1)->aggregate(rows({{0}, {1}, {2}, {10}})), {1});
}

TEST(MeanAroundMedian, NonFiniteRowIsDroppedAndCountsAsOneOfTheF) {
  // f' = 0 after dropping the Inf row: the mean of 0 2 2.4 4.7 = 9.1 / 4 = 2.275.
  expect_near(make_aggregator("meamed", "{}", 5, 1)->aggregate(rows({{0}, {2}, {2.4f}, {kInf}, {4.7f}})), {2.275f});
}

TEST(MeanAroundMedian, RefusesFWithoutAnHonestMajority) {
  EXPECT_ERROR_WITH(make_aggregator("meamed", "{}", 4, 2), "aggregator 'meamed'", "aggregator.f", "n > 2f",
                    "The largest f for n = 4 is 1");
}

TEST(Phocas, AveragesTheValuesClosestToTheTrimmedMean) {
  // Coordinate 0: trimmed mean (2 + 2.4 + 2.6) / 3 = 7/3, distances 2.33 0.33 0.07 0.27 2.37 -> drop 4.7
  //   -> (0 + 2 + 2.4 + 2.6) / 4 = 1.75 (meamed drops 0 instead, see above).
  // Coordinate 1: trimmed mean (10 + 11 + 12) / 3 = 11 -> drop -50 -> 11.5.
  expect_near(make_aggregator("phocas", "{}", 5, 1)->aggregate(five_rows()), {1.75f, 11.5f});
}

TEST(Phocas, NonFiniteRowIsDroppedAndCountsAsOneOfTheF) {
  // f' = 0 after dropping the NaN row: the mean of 0 2 2.4 4.7 = 2.275.
  expect_near(make_aggregator("phocas", "{}", 5, 1)->aggregate(rows({{0}, {kNaN}, {2}, {2.4f}, {4.7f}})), {2.275f});
}

TEST(Phocas, RefusesFWithoutAnHonestMajority) {
  EXPECT_ERROR_WITH(make_aggregator("phocas", "{f: 3}", 6, 1), "aggregator 'phocas'", "aggregator.f", "n > 2f",
                    "The largest f for n = 6 is 2");
}

// tm, meamed and phocas sort columns in blocks (phalanx::reduce_sorted_columns); against a plain at::sort
// reference on enough columns for two blocks, the second one partial.
TEST(CoordinateRules, MatchASortBasedReferenceAcrossBlocks) {
  const std::int64_t n = 13, f = 3, d = 5000;
  at::Tensor x = at::randn({n, d}, make_generator(4));
  at::Tensor sorted = std::get<0>(x.sort(0));
  at::Tensor trimmed_mean = sorted.narrow(0, f, n - 2 * f).mean(0);
  at::Tensor median = sorted[n / 2];
  auto mean_of_nearest = [&](const at::Tensor& center) {
    at::Tensor nearest = std::get<1>(x.sub(center).abs().topk(n - f, 0, /*largest=*/false));
    return x.gather(0, nearest).mean(0);
  };
  EXPECT_TRUE(at::allclose(make_aggregator("tm", "{}", n, f)->aggregate(x), trimmed_mean, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(make_aggregator("meamed", "{}", n, f)->aggregate(x), mean_of_nearest(median), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(make_aggregator("phocas", "{}", n, f)->aggregate(x), mean_of_nearest(trimmed_mean), 1e-5, 1e-6));
}

// ---- mda --------------------------------------------------------------------------------------------------

// A (0,0), B (2,0), C (0,2), D (3,3), E (-1,-1). Squared distances: AB 4, AC 4, AD 18, AE 2, BC 8, BD 10,
// BE 10, CD 10, CE 10, DE 32.
at::Tensor mda_example() { return rows({{0, 0}, {2, 0}, {0, 2}, {3, 3}, {-1, -1}}); }

TEST(MinimumDiameterAveraging, AveragesTheSubsetWithTheSmallestDiameter) {
  // f = 1, subsets of 4 (leave one out): without A, B or C the subset holds D and E (32); without D:
  // max(4, 4, 2, 8, 10, 10) = 10; without E: 18. So A B C E -> ((0+2+0-1)/4, (0+0+2-1)/4) = (0.25, 0.25).
  expect_near(make_aggregator("mda", "{}", 5, 1)->aggregate(mda_example()), {0.25f, 0.25f});
}

TEST(MinimumDiameterAveraging, LargerFSearchesSmallerSubsets) {
  // f = 2, subsets of 3: ABC 8, ABD 18, ABE 10, ACD 18, ACE 10, ADE 32, BCD 10, BCE 10, BDE 32, CDE 32.
  // So A B C -> (2/3, 2/3).
  expect_near(make_aggregator("mda", "{}", 5, 2)->aggregate(mda_example()), {2.0f / 3.0f, 2.0f / 3.0f});
}

TEST(MinimumDiameterAveraging, NonFiniteRowIsDroppedAndCountsAsOneOfTheF) {
  // f = 2, the NaN row dropped -> f' = 1 over A B C D E: as with f = 1 above.
  at::Tensor x = at::cat({rows({{kNaN, 0}}), mda_example()});
  expect_near(make_aggregator("mda", "{}", 6, 2)->aggregate(x), {0.25f, 0.25f});
}

TEST(MinimumDiameterAveraging, RefusesFWithoutAnHonestMajorityAndTooManyWorkers) {
  EXPECT_ERROR_WITH(make_aggregator("mda", "{}", 4, 2), "aggregator 'mda'", "aggregator.f", "n > 2f",
                    "The largest f for n = 4 is 1");
  EXPECT_ERROR_WITH(make_aggregator("mda", "{}", 26, 1), "aggregator 'mda'", "exponential", "n <= 25", "got n = 26",
                    "multikrum");
  EXPECT_ERROR_WITH(make_aggregator("mda", "{}", 7, 1)->aggregate(at::zeros({26, 3})), "n <= 25", "got n = 26");
}

}  // namespace
}  // namespace phalanx::test
