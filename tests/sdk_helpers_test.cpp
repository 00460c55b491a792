// Helpers the SDK gives plugin authors: name suggestions, non-finite row checks, pairwise distances.
#include <ATen/ATen.h>

#include "phalanx/distances.hpp"
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
