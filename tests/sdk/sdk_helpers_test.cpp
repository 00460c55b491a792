// Helpers the SDK gives plugin authors: name suggestions, non-finite row checks, pairwise distances.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "phalanx/coordinate_sort.hpp"
#include "phalanx/distances.hpp"
#include "phalanx/helpers/gamma_search.hpp"
#include "phalanx/helpers/parallel.hpp"
#include "phalanx/row_math.hpp"
#include "phalanx/suggest.hpp"
#include "phalanx/tensor_checks.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

TEST(Suggest, NearestName) {
  EXPECT_EQ(nearest_name("krun", {"krum", "mean", "cm"}), "krum");
  EXPECT_EQ(nearest_name("zzzzzz", {"krum", "mean"}), "");
}

TEST(TensorChecks, FiniteRows) {
  at::Tensor x = at::tensor({1.f, 2.f, NAN, 0.f, 3.f, INFINITY}).reshape({3, 2});
  EXPECT_EQ(count_nonfinite_rows(x), 2);
  EXPECT_EQ(finite_rows(x).size(0), 1);
  EXPECT_TRUE(at::equal(finite_row_mask(x).to(at::kInt), at::tensor({1, 0, 0}, at::kInt)));
}

TEST(Distances, MatchHandComputedValues) {
  // rows (0,0), (3,4), (1,0): squared distances 25, 1 and (3-1)^2 + 4^2 = 20.
  at::Tensor d = pairwise_squared_distances(at::tensor({0.f, 0.f, 3.f, 4.f, 1.f, 0.f}).reshape({3, 2}));
  EXPECT_TRUE(at::allclose(d, at::tensor({0., 25., 1., 25., 0., 20., 1., 20., 0.}, at::kDouble).reshape({3, 3})));
}

TEST(Distances, AccurateForCloseRowsFarFromTheOrigin) {
  at::Tensor base = at::full({1000}, 1000.0f);
  at::Tensor rows = at::stack({base, base.add(1e-2f)});
  EXPECT_NEAR(pairwise_squared_distances(rows)[0][1].item<double>(), 1000 * 1e-4, 1e-3);
}

TEST(Distances, NonFiniteRowsAreInfinitelyFar) {
  at::Tensor d = pairwise_squared_distances(at::tensor({0.f, 0.f, NAN, 1.f, 1.f, 0.f}).reshape({3, 2}));
  EXPECT_TRUE(std::isinf(d[0][1].item<double>()));
  EXPECT_TRUE(std::isinf(d[1][2].item<double>()));
  EXPECT_EQ(d[1][1].item<double>(), 0.0);
  EXPECT_EQ(d[0][2].item<double>(), 1.0);
}

}  // namespace
}  // namespace phalanx::test

namespace phalanx::test {
namespace {

// The sorting-network path against at::sort for sizes around the network's power-of-two boundaries and
// widths that do not fill the last block.
class CoordinateSort : public ::testing::TestWithParam<std::int64_t> {};

TEST_P(CoordinateSort, MatchesAtSort) {
  const std::int64_t n = GetParam(), d = 1300;
  at::Tensor x = at::randn({n, d}, make_generator(static_cast<std::uint64_t>(n)));
  at::Tensor reference = std::get<0>(x.sort(0));
  // Median: mean of the two middle values, bit for bit the same arithmetic as the reference.
  at::Tensor expected_median = reference[(n - 1) / 2].add(reference[n / 2]).mul(0.5);
  EXPECT_TRUE(at::equal(coordinate_median(x), expected_median)) << "n = " << n;
  const std::int64_t trim = (n - 1) / 3;
  at::Tensor expected_tm = reference.narrow(0, trim, n - 2 * trim).mean(0);
  EXPECT_TRUE(at::allclose(coordinate_trimmed_mean(x, trim), expected_tm, 1e-5, 1e-6)) << "n = " << n;
}

INSTANTIATE_TEST_SUITE_P(Sizes, CoordinateSort, ::testing::Values(1, 2, 3, 5, 7, 8, 9, 13, 31, 64, 100));

TEST(CoordinateSort, TrimmedMeanForEveryTrim) {
  // From 16 rows on, the trimmed mean does the sort's last pass itself and sums whole groups of 8 ranks
  // without sorting them: every trim puts the boundaries elsewhere in those groups. A NaN or Inf is still
  // reported through `finite`.
  for (std::int64_t n : {9, 16, 17, 31, 64, 100}) {
    at::Tensor x = at::randn({n, 1300}, make_generator(static_cast<std::uint64_t>(n)));
    at::Tensor reference = std::get<0>(x.sort(0));
    for (std::int64_t trim = 0; 2 * trim < n; ++trim) {
      bool finite = false;
      at::Tensor got = coordinate_trimmed_mean(x, trim, &finite);
      EXPECT_TRUE(finite);
      EXPECT_TRUE(at::allclose(got, reference.narrow(0, trim, n - 2 * trim).mean(0), 1e-5, 1e-6))
          << "n = " << n << ", trim = " << trim;
    }
    for (float bad : {kNaN, kInf}) {
      at::Tensor y = x.clone();
      y[n / 2][1299] = bad;
      bool finite = true;
      coordinate_trimmed_mean(y, n / 4, &finite);
      EXPECT_FALSE(finite) << "n = " << n;
    }
  }
}

TEST(CoordinateSort, FullSortOfEveryColumn) {
  at::Tensor x = at::randn({11, 700}, make_generator(3));
  at::Tensor sorted = std::get<0>(x.sort(0));
  // Rebuild the sorted matrix from the blocks: column j of block b is column b * 512 + j.
  at::Tensor rebuilt = at::empty({11, 700});
  std::int64_t block_start = 0;
  reduce_sorted_columns(x, [&](const float* s, std::int64_t n, std::int64_t width, float* out) {
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < width; ++j) rebuilt[i][block_start + j] = s[i * width + j];
    for (std::int64_t j = 0; j < width; ++j) out[j] = 0;
    block_start += width;
  });
  EXPECT_TRUE(at::equal(rebuilt, sorted));
}

TEST(CoordinateSort, RejectsImpossibleTrim) {
  EXPECT_ERROR_WITH(coordinate_trimmed_mean(at::zeros({4, 3}), 2), "cannot drop 2 values at each end of 4");
}

}  // namespace
}  // namespace phalanx::test

namespace phalanx::test {
namespace {

// Rows 0, 1, 3, 10 on a line: squared distances d01 = 1, d02 = 9, d03 = 100, d12 = 4, d13 = 81, d23 = 49.
TEST(Distances, KrumOrderMatchesHandComputedScores) {
  at::Tensor d = pairwise_squared_distances(at::tensor({0.f, 1.f, 3.f, 10.f}).reshape({4, 1}));
  // neighbours 2: scores 1 + 9 = 10, 1 + 4 = 5, 4 + 9 = 13, 49 + 81 = 130.
  EXPECT_TRUE(at::equal(krum_order(d, 2), at::tensor({1, 0, 2, 3}, at::kLong)));
  // neighbours 1: rows 0 and 1 tie at 1; the next nearest distance (9 against 4) puts row 1 first.
  EXPECT_TRUE(at::equal(krum_order(d, 1), at::tensor({1, 0, 2, 3}, at::kLong)));
}

TEST(Distances, KrumOrderBreaksTiesByNextNearestThenIndex) {
  // Rows 0, 1, 2: every score is 1 with one neighbour; next nearest 4, 1, 4: row 1, then rows 0 and 2.
  at::Tensor d = pairwise_squared_distances(at::tensor({2.f, 1.f, 0.f}).reshape({3, 1}));
  EXPECT_TRUE(at::equal(krum_order(d, 1), at::tensor({1, 0, 2}, at::kLong)));
}

TEST(Distances, KrumOrderPutsNonFiniteRowsLast) {
  // Rows NaN, 0, 1, 3: scores inf, 1, 1, 4 with one neighbour; rows 1 and 2 tie, next nearest 9 against 4.
  at::Tensor d = pairwise_squared_distances(at::tensor({NAN, 0.f, 1.f, 3.f}).reshape({4, 1}));
  EXPECT_TRUE(at::equal(krum_order(d, 1), at::tensor({2, 1, 3, 0}, at::kLong)));
  EXPECT_TRUE(at::equal(krum_order(at::zeros({1, 1}, at::kDouble), 1), at::tensor({0}, at::kLong)));
  EXPECT_ERROR_WITH(krum_order(d, 4), "4 neighbours among 4 rows");
}

// ---- float32 Gram matrix with float64 re-checks (PairwiseDistances) ------------------------------------

// Squared distances from float64 differences: what the float64 path computes.
at::Tensor float64_distances(const at::Tensor& rows) {
  at::Tensor wide = rows.to(at::kDouble);
  return (wide.unsqueeze(1) - wide.unsqueeze(0)).pow(2).sum(2);
}

// Adversarial near-ties: rows c + u_i far from the origin (|c| = 100 per coordinate, |u| ~ 1), where the
// float32 Gram matrix cannot tell distances apart, with the u_i in pairs u and -u (equal Krum scores), one
// coordinate of some rows moved by `ulps` float32 steps so that scores differ by about 1e-9 of their value.
at::Tensor near_tie_rows(std::int64_t pairs, std::int64_t d, std::int64_t seed, std::int64_t ulps) {
  at::Generator gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(seed));
  at::Tensor u = at::randn({pairs, d}, gen);
  at::Tensor rows = at::cat({u, u.neg()}).add_(100.0f);
  float* x = rows.data_ptr<float>();
  for (std::int64_t i = 0; i < rows.size(0); i += 3)
    for (std::int64_t s = 0; s < ulps; ++s) x[i * d + (i % d)] = std::nextafter(x[i * d + (i % d)], 1e30f);
  return rows;
}

TEST(PairwiseDistances, BoundsHoldAndNearTiesAreDecidedInFloat64) {
  for (std::int64_t seed = 0; seed < 6; ++seed) {
    at::Tensor rows = near_tie_rows(8, 1000, seed, seed % 3);
    at::Tensor reference = float64_distances(rows);
    PairwiseDistances fast(rows);
    const std::int64_t n = rows.size(0);
    std::vector<std::int64_t> all(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        EXPECT_LE(std::abs(fast.value(i, j) - reference[i][j].item<double>()), fast.error(i, j) * (1 + 1e-9) + 1e-9)
            << i << ", " << j;
    for (std::int64_t k : {1, 5, 13}) {
      // Krum's winner and Multi-Krum's set of m rows: those of the float64 distances.
      const at::Tensor expected = krum_order(reference, k);
      for (std::int64_t m : {1, 4, 9}) {
        PairwiseDistances d(rows);
        std::vector<std::int64_t> got = krum_order(d, all, k, m);
        std::vector<std::int64_t> want(expected.data_ptr<std::int64_t>(), expected.data_ptr<std::int64_t>() + m);
        got.resize(static_cast<std::size_t>(m));
        std::sort(got.begin(), got.end());
        std::sort(want.begin(), want.end());
        EXPECT_EQ(got, want) << "seed " << seed << ", k " << k << ", m " << m;
        EXPECT_GT(d.entries_made_exact(), 0);  // the float32 bounds alone could not decide
      }
      // NNM's neighbourhoods: the k nearest of every row, as sets.
      PairwiseDistances d(rows);
      at::Tensor ref = reference.clone();
      ref.fill_diagonal_(-1.0);
      at::Tensor want = std::get<1>(ref.topk(k, 1, false, false));
      EXPECT_TRUE(at::equal(std::get<0>(nearest_rows(d, k).sort(1)), std::get<0>(want.sort(1))))
          << "seed " << seed << ", k " << k;
    }
  }
}

// Bulyan ranks shrinking subsets: only the distances inside the subset decide its order, so only those are
// made exact, and the winner is still the float64 one of the sub-matrix.
TEST(PairwiseDistances, KrumOrderOfASubsetMakesOnlyItsDistancesExact) {
  const std::vector<std::int64_t> subset = {0, 2, 3, 5, 6, 7};
  std::int64_t made_exact = 0;
  for (std::int64_t seed = 0; seed < 6; ++seed) {
    at::Tensor rows = near_tie_rows(8, 1000, seed, seed % 3);
    const at::Tensor index = at::tensor(subset, at::kLong);
    const at::Tensor reference = float64_distances(rows).index_select(0, index).index_select(1, index);
    PairwiseDistances d(rows);
    const std::int64_t n = rows.size(0);
    EXPECT_EQ(krum_order(d, subset, 2, 1)[0], krum_order(reference, 2)[0].item<std::int64_t>()) << "seed " << seed;
    for (std::int64_t i : subset)
      for (std::int64_t j = 0; j < n; ++j)
        if (std::find(subset.begin(), subset.end(), j) == subset.end()) EXPECT_GT(d.error(i, j), 0.0) << i << ", " << j;
    made_exact += d.entries_made_exact();
  }
  EXPECT_GT(made_exact, 0);  // some seeds needed the float64 pass, inside the subset
}

// The float64 pass converts each row once per block of columns: the same arithmetic as from float32.
TEST(PairwiseDistances, WideRowsGiveTheSameSquaredDistances) {
  at::manual_seed(5);
  for (std::int64_t d : {1, 7, 8, 9, 512, 1001}) {
    const at::Tensor rows = at::randn({2, d}).mul_(at::randn({2, d}).exp_());
    const at::Tensor wide = rows.to(at::kDouble);
    const double from_float = squared_distance(rows.data_ptr<float>(), rows.data_ptr<float>() + d, d);
    const double from_wide = squared_distance_of_wide_rows(wide.data_ptr<double>(), wide.data_ptr<double>() + d, d);
    EXPECT_EQ(from_float, from_wide) << "d = " << d;
  }
}

TEST(PairwiseDistances, ExactTiesAreDecidedFromTheDifferences) {
  // Row 5 duplicates row 0: their scores tie exactly, so no bound separates them and where Multi-Krum's m
  // falls between them both rows must be made exact (from the differences) to break the tie by index.
  at::Generator gen = at::detail::createCPUGenerator(11);
  at::Tensor rows = at::randn({6, 300}, gen).add_(10.0f);
  rows[5].copy_(rows[0]);
  const at::Tensor expected = krum_order(float64_distances(rows), 3);
  std::vector<std::int64_t> all(6);
  std::iota(all.begin(), all.end(), 0);
  std::int64_t made_exact = 0;
  for (std::int64_t m = 1; m < 6; ++m) {
    PairwiseDistances d(rows);
    std::vector<std::int64_t> got = krum_order(d, all, 3, m);
    std::vector<std::int64_t> want(expected.data_ptr<std::int64_t>(), expected.data_ptr<std::int64_t>() + m);
    got.resize(static_cast<std::size_t>(m));
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want) << "m " << m;
    made_exact += d.entries_made_exact();
  }
  EXPECT_GT(made_exact, 0);
}

// Every Gram kernel this CPU runs (AVX-512F, AVX2 + FMA, SSE2: PairwiseDistances picks the widest) keeps the
// bound.
struct EachGramKernel : EachKernel<GramKernel> {
  EachGramKernel()
      : EachKernel(set_gram_kernel, {GramKernel::Avx512, GramKernel::Avx2Fma, GramKernel::Sse2}, GramKernel::Widest) {}
};

TEST(PairwiseDistances, BoundsHoldAtTileAndColumnEdges) {
  // Row counts that leave partial tiles of every shape (4 x 2 rows at a time, 4 x 4 with AVX-512; n = 5, 6
  // and 7 end in tiles 1, 2 and 3 rows wide) and column counts that leave
  // a tail of d % 8 columns, an odd number of 8-column steps (the AVX-512 kernel's 8-wide last step) and
  // several panels of 1024 columns; rows far from the origin, so the bounds matter.
  EachGramKernel kernels;
  kernels.run([] {
    for (std::int64_t n : {1, 2, 5, 6, 7}) {
      for (std::int64_t d : {3, 8, 24, 1031, 2 * 1024 + 13}) {
        at::Generator gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(n * 10000 + d));
        at::Tensor rows = at::randn({n, d}, gen).add_(30.0f);
        at::Tensor reference = float64_distances(rows);
        PairwiseDistances fast(rows);
        for (std::int64_t i = 0; i < n; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            const double want = reference[i][j].item<double>();
            EXPECT_LE(std::abs(fast.value(i, j) - want), fast.error(i, j) * (1 + 1e-9) + 1e-9) << n << " x " << d;
            // The bound is not vacuous: about 16 float32 roundings of the squared norms (30^2 d each).
            if (i != j) EXPECT_LT(fast.error(i, j), 1e-5 * 4 * 900.0 * static_cast<double>(d)) << n << " x " << d;
          }
      }
    }
  });
}

// Whatever kernel estimates the distances, Krum's and Multi-Krum's choices and NNM's neighbourhoods are the
// float64 ones: near ties are decided by the exact pass.
TEST(PairwiseDistances, EveryGramKernelGivesTheFloat64Choices) {
  EachGramKernel kernels;
  kernels.run([] {
    for (std::int64_t seed = 0; seed < 3; ++seed) {
      at::Tensor rows = near_tie_rows(8, 2008, seed, 1);  // 16 rows, 251 steps of 8 columns
      const at::Tensor reference = float64_distances(rows);
      std::vector<std::int64_t> all(static_cast<std::size_t>(rows.size(0)));
      std::iota(all.begin(), all.end(), 0);
      const at::Tensor expected = krum_order(reference, 5);
      PairwiseDistances d(rows);
      EXPECT_EQ(krum_order(d, all, 5, 1)[0], expected[0].item<std::int64_t>()) << "seed " << seed;
      at::Tensor ref = reference.clone();
      ref.fill_diagonal_(-1.0);
      PairwiseDistances e(rows);
      EXPECT_TRUE(at::equal(std::get<0>(nearest_rows(e, 5).sort(1)),
                            std::get<0>(std::get<1>(ref.topk(5, 1, false, false)).sort(1))))
          << "seed " << seed;
    }
  });
}

TEST(PairwiseDistances, WellSeparatedRowsNeedNoFloat64Pass) {
  // Rows at distinct distances from a cluster: the float32 bounds decide alone, which is the fast path.
  at::Generator gen = at::detail::createCPUGenerator(3);
  at::Tensor rows = at::randn({16, 4096}, gen).mul_(at::arange(1, 17, at::kFloat).unsqueeze(1));
  PairwiseDistances d(rows);
  std::vector<std::int64_t> all(16);
  std::iota(all.begin(), all.end(), 0);
  const at::Tensor expected = krum_order(float64_distances(rows), 11);
  EXPECT_EQ(krum_order(d, all, 11, 1)[0], expected[0].item<std::int64_t>());
  nearest_rows(d, 11);
  EXPECT_EQ(d.entries_made_exact(), 0);
}

TEST(PairwiseDistances, OverflowingAndNonFiniteRows) {
  // 1e30 squared overflows float32 but not float64: that block is summed in float64; NaN rows are +inf away.
  at::Tensor rows = at::tensor({1e30f, 0.f, 0.f, 1e30f, NAN, 1.f, 0.f, 0.f}).reshape({4, 2});
  PairwiseDistances d(rows);
  EXPECT_TRUE(d.finite(0) && d.finite(1) && !d.finite(2) && d.finite(3));
  EXPECT_NEAR(d.value(0, 1) / 2e60, 1.0, 1e-6);
  EXPECT_TRUE(std::isinf(d.value(2, 0)) && std::isinf(d.value(3, 2)));
  EXPECT_EQ(d.finite_rows(), (std::vector<std::int64_t>{0, 1, 3}));
}

// Column 0: 14, 0, 3, 1, 2 (sorted 0 1 2 3 14: median 2, mean 4, trimmed mean with trim 1 = 2).
// Column 1: -100, 0, 6, 7, 8 (median 6, mean -15.8).
TEST(CoordinateSort, MeanClosestToTheCentre) {
  at::Tensor rows = at::tensor({14.f, -100.f, 0.f, 0.f, 3.f, 6.f, 1.f, 7.f, 2.f, 8.f}).reshape({5, 2});
  // Median, 2 values: column 0 windows {1, 2} and {2, 3} tie at 1, the lower one wins: 1.5; column 1 {6, 7}.
  EXPECT_TRUE(at::allclose(coordinate_mean_closest_to(rows, 2, ColumnCentre::Median), at::tensor({1.5f, 6.5f})));
  // Trimmed mean with trim 0 (the mean): column 0 nearest to 4 is {2, 3}; column 1 nearest to -15.8 is {0, 6}.
  EXPECT_TRUE(at::allclose(coordinate_mean_closest_to(rows, 2, ColumnCentre::TrimmedMean, 0),
                           at::tensor({2.5f, 3.0f})));
  // Trimmed mean with trim 1: column 0 centre (1 + 2 + 3) / 3 = 2, 3 values {1, 2, 3}; column 1 centre 13/3,
  // 3 values {6, 7, 8} (farther end 3.67) beat {0, 6, 7} (4.33).
  EXPECT_TRUE(at::allclose(coordinate_mean_closest_to(rows, 3, ColumnCentre::TrimmedMean, 1),
                           at::tensor({2.0f, 7.0f})));
  // All values: the plain mean.
  EXPECT_TRUE(at::allclose(coordinate_mean_closest_to(rows, 5, ColumnCentre::Median), rows.mean(0)));
  EXPECT_ERROR_WITH(coordinate_mean_closest_to(rows, 0, ColumnCentre::Median), "cannot keep 0 of 5");
  EXPECT_ERROR_WITH(coordinate_mean_closest_to(rows, 2, ColumnCentre::TrimmedMean, 3), "cannot drop 3");
}

// Bulyan's second stage reads its chosen rows in place: the same bits as on a copy of them, for full and
// partial blocks and both centres; rows outside the input are refused.
TEST(CoordinateSort, MeanClosestToOnChosenRowsIsTheSameAsOnACopy) {
  at::manual_seed(3);
  const at::Tensor rows = at::randn({40, 3000});
  for (const std::vector<std::int64_t>& chosen :
       {std::vector<std::int64_t>{0, 5, 7, 8, 20, 39}, std::vector<std::int64_t>{39, 1, 2, 3, 4, 10, 11, 12, 13, 30, 31}}) {
    const at::Tensor copy = rows.index_select(0, at::tensor(chosen, at::kLong));
    const auto n = static_cast<std::int64_t>(chosen.size());
    for (ColumnCentre centre : {ColumnCentre::Median, ColumnCentre::TrimmedMean}) {
      const at::Tensor want = coordinate_mean_closest_to(copy, n - 2, centre, 1);
      const at::Tensor got = coordinate_mean_closest_to(rows, chosen, n - 2, centre, 1);
      EXPECT_TRUE(at::equal(got.view(at::kInt), want.view(at::kInt))) << "n = " << n;
    }
  }
  EXPECT_ERROR_WITH(coordinate_mean_closest_to(rows, {0, 40}, 1, ColumnCentre::Median), "row 40 of 40");
}

// column_means is LibTorch's rows.mean(0) bit for bit (its cascade over 16-row runs from n = 16 on, the last
// d mod 64 columns left to LibTorch), for the whole width and for any range of columns. Values of mixed
// magnitudes, so that a different order of additions would show in the last bits.
TEST(ColumnMeans, AreLibTorchsMeanBitForBit) {
  at::manual_seed(7);
  for (std::int64_t n : {1, 2, 5, 8, 15, 16, 17, 33, 300}) {
    for (std::int64_t d : {1, 63, 64, 100, 4097, 20011}) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", d = " + std::to_string(d));
      const at::Tensor rows = at::randn({n, d}).mul_(at::randn({n, d}).mul_(3).exp_());
      const at::Tensor want = rows.mean(0);
      at::Tensor whole = at::empty({d}), pieces = at::empty({d});
      column_means(rows.data_ptr<float>(), n, d, 0, d, whole.data_ptr<float>());
      const std::int64_t cut = d / 3 + 1;  // not a multiple of anything
      column_means(rows.data_ptr<float>(), n, d, cut, d, pieces.data_ptr<float>());
      column_means(rows.data_ptr<float>(), n, d, 0, cut, pieces.data_ptr<float>());
      EXPECT_TRUE(at::equal(whole.view(at::kInt), want.view(at::kInt)));
      EXPECT_TRUE(at::equal(pieces.view(at::kInt), want.view(at::kInt)));
    }
  }
}

// mean_of_rows (Multi-Krum's average) is the float64 sum of the chosen rows in the order given, rounded once
// to float32 after the scale: the same bits whatever block of columns a value falls in, for widths below, at
// and across the kernel's blocks, and for counts that leave rows after its groups of four. Every column holds
// +2^60 and -2^60 in two rows that move with the column: small values added between them are lost in float64
// and those added after are kept, so a sum in another order gives other float32 results.
TEST(MeanOfRows, IsTheFloat64SumInTheGivenOrderBitForBit) {
  at::manual_seed(11);
  for (std::int64_t d : {1, 100, 8192, 20011}) {
    const at::Tensor rows = at::randn({9, d});
    auto values = rows.accessor<float, 2>();
    for (std::int64_t j = 0; j < d; ++j) {
      const std::int64_t plus = j % 9, minus = (plus + 1 + j % 8) % 9;
      values[plus][j] = std::ldexp(1.0f, 60);
      values[minus][j] = -std::ldexp(1.0f, 60);
    }
    for (const std::vector<std::int64_t>& chosen :
         std::vector<std::vector<std::int64_t>>{{4}, {0, 2, 3, 8}, {8, 1, 5, 0, 3, 7, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8}}) {
      SCOPED_TRACE("d = " + std::to_string(d) + ", " + std::to_string(chosen.size()) + " rows");
      at::Tensor want = at::empty({d});
      const double scale = 1.0 / static_cast<double>(chosen.size());
      for (std::int64_t j = 0; j < d; ++j) {
        double sum = 0;
        for (std::int64_t r : chosen) sum += static_cast<double>(values[r][j]);
        want.data_ptr<float>()[j] = static_cast<float>(sum * scale);
      }
      EXPECT_TRUE(at::equal(mean_of_rows(rows, chosen).view(at::kInt), want.view(at::kInt)));
    }
  }
}

// A runner that records what it was asked and runs the blocks last to first, as a pool might.
struct RecordingRunner {
  std::vector<std::int64_t> counts;
  BlockRunner runner() {
    return [this](std::int64_t count, const std::function<void(std::int64_t)>& block) {
      counts.push_back(count);
      for (std::int64_t i = count - 1; i >= 0; --i) block(i);
    };
  }
};

TEST(ForEachBlock, RunsEveryBlockOnceOnTheLentRunnerOfThisThreadOnly) {
  std::vector<int> runs(5, 0);
  for_each_block(5, [&](std::int64_t i) { ++runs[i]; });  // nothing lent: in place
  RecordingRunner recording;
  {
    LentThreads lent(recording.runner());
    for_each_block(5, [&](std::int64_t i) { ++runs[i]; });
    std::thread other([&] { for_each_block(3, [&](std::int64_t i) { ++runs[i]; }); });  // not the lender
    other.join();
  }
  for_each_block(2, [&](std::int64_t i) { ++runs[i]; });  // returned: in place again
  EXPECT_EQ(runs, (std::vector<int>{4, 4, 3, 2, 2}));
  EXPECT_EQ(recording.counts, std::vector<std::int64_t>{5});
}

// ALIE's, minmax's and minsum's standard deviation, in blocks of columns shared out of order, is bit for bit
// the one computed in place, and at::std's.
TEST(ForEachBlock, TheCoordinateStdIsTheSameOnLentThreads) {
  at::manual_seed(5);
  const at::Tensor honest = at::randn({5, 20000});  // three blocks of 8,192 columns, the last one short
  const at::Tensor mean = honest.mean(0);
  const at::Tensor in_place = perturbation_direction("std", honest, mean);
  RecordingRunner recording;
  LentThreads lent(recording.runner());
  const at::Tensor shared = perturbation_direction("std", honest, mean);
  EXPECT_EQ(recording.counts, std::vector<std::int64_t>{3});
  EXPECT_TRUE(at::equal(shared, in_place));
  EXPECT_TRUE(at::equal(shared.neg(), honest.std(0, true)));
}

// ALIE's coordinate std (float32 rows) is at::std(0, unbiased) bit for bit at every row count the Welford
// kernel treats differently (counts that are powers of two multiply, the others divide), including a column
// block's tail and columns that are constant, hold NaN or hold an infinity. minmax and minsum pass float64
// rows, which LibTorch reduces in another order: there the two agree to float64 rounding.
TEST(CoordinateStd, IsLibTorchsStdBitForBitOnFloat32Rows) {
  for (const at::ScalarType type : {at::kFloat, at::kDouble})
    for (std::int64_t h = 2; h <= 9; ++h) {
      SCOPED_TRACE("h = " + std::to_string(h) + (type == at::kFloat ? ", float32" : ", float64"));
      at::Tensor honest = at::randn({h, 1031}, make_generator(static_cast<std::uint64_t>(h))).mul_(3).to(type);
      honest.select(1, 0).fill_(0.25);
      honest.select(1, 1).fill_(1e30);
      honest[h - 1][2] = std::numeric_limits<double>::quiet_NaN();
      honest[0][3] = std::numeric_limits<double>::infinity();
      const at::Tensor ours = perturbation_direction("std", honest, honest.mean(0)).neg();
      const at::Tensor theirs = honest.std(0, /*unbiased=*/true);
      const at::Tensor body = ours.narrow(0, 4, 1027), expected = theirs.narrow(0, 4, 1027);
      if (type == at::kFloat)
        EXPECT_TRUE(at::equal(body, expected));
      else
        EXPECT_TRUE(at::allclose(body, expected, 1e-13, 0));
      EXPECT_TRUE(at::equal(ours.narrow(0, 0, 2), theirs.narrow(0, 0, 2)));
      EXPECT_TRUE(std::isnan(ours[2].item<double>()) && std::isnan(theirs[2].item<double>()));
      EXPECT_TRUE(std::isnan(ours[3].item<double>()) && std::isnan(theirs[3].item<double>()));
    }
}

// The coordinate-wise rules' kernels (cm, tm, meamed, ...) on lent threads, tasks run last to first: the same
// bits as in place, and a NaN in the last task's columns is still found.
TEST(ForEachBlock, CoordinateSortKernelsAreTheSameOnLentThreads) {
  at::manual_seed(6);
  for (std::int64_t n : {8, 17}) {
    SCOPED_TRACE(n);
    at::Tensor rows = at::randn({n, 20000});  // several tasks of 16 blocks, the last one short
    const at::Tensor median = coordinate_median(rows), trimmed = coordinate_trimmed_mean(rows, 2);
    const at::Tensor closest = coordinate_mean_closest_to(rows, n / 2, ColumnCentre::Median, 0);
    RecordingRunner recording;
    LentThreads lent(recording.runner());
    bool finite = false;
    EXPECT_TRUE(at::equal(coordinate_median(rows, &finite), median));
    EXPECT_TRUE(finite);
    EXPECT_TRUE(at::equal(coordinate_trimmed_mean(rows, 2), trimmed));
    EXPECT_TRUE(at::equal(coordinate_mean_closest_to(rows, n / 2, ColumnCentre::Median, 0), closest));
    EXPECT_GE(recording.counts.size(), 3u);
    EXPECT_GT(recording.counts.front(), 1);
    rows[n - 1][19990] = std::nanf("");
    coordinate_median(rows, &finite);
    EXPECT_FALSE(finite);
    finite = true;
    coordinate_trimmed_mean(rows, 2, &finite);
    EXPECT_FALSE(finite);
  }
}

}  // namespace
}  // namespace phalanx::test
