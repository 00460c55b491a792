// The coordinate sort's kernels (AVX-512F, AVX2, SSE2: the SDK runs the widest this CPU has) against a plain
// per-column reference that does the arithmetic the SDK documents, bit for bit: sort the column, take the
// centre, choose the window, sum it in sorted order from +0, multiply by 1 / keep. Every kernel this CPU runs
// must give exactly those bits, so a run gives the same numbers on any x86-64 machine.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/context.hpp"
#include "phalanx/helpers/coordinate_sort.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

struct EachSortKernel : EachKernel<SortKernel> {
  EachSortKernel()
      : EachKernel(set_sort_kernel, {SortKernel::Avx512, SortKernel::Avx2, SortKernel::Sse2}, SortKernel::Widest) {}
};

// The documented arithmetic of coordinate_mean_closest_to, one column at a time.
float mean_closest_reference(std::vector<float> column, std::int64_t keep, ColumnCentre centre, std::int64_t trim) {
  std::sort(column.begin(), column.end());
  const auto n = static_cast<std::int64_t>(column.size());
  auto at = [&](std::int64_t i) { return column[static_cast<std::size_t>(i)]; };
  float c = 0.0f;
  if (centre == ColumnCentre::Median) {
    c = 0.5f * at((n - 1) / 2) + 0.5f * at(n / 2);
  } else {
    for (std::int64_t i = trim; i < n - trim; ++i) c += at(i);
    c *= 1.0f / static_cast<float>(n - 2 * trim);
  }
  float reach = std::numeric_limits<float>::infinity();
  std::int64_t begin = 0;
  for (std::int64_t w = 0; w + keep <= n; ++w) {
    const float farther = std::max(c - at(w), at(w + keep - 1) - c);
    if (farther < reach) {
      reach = farther;
      begin = w;
    }
  }
  float sum = 0.0f;
  for (std::int64_t i = begin; i < begin + keep; ++i) sum += at(i);
  return sum * (1.0f / static_cast<float>(keep));
}

std::vector<float> column_of(const at::Tensor& rows, std::int64_t j) {
  const at::Tensor x = rows.contiguous();
  std::vector<float> column;
  for (std::int64_t i = 0; i < x.size(0); ++i) column.push_back(x.data_ptr<float>()[i * x.size(1) + j]);
  return column;
}

// Row counts on both sides of the network sizes (8, 16, 32, 64, 512: the block narrows to 16 columns
// there), column counts that leave a partial block and a tail narrower than every vector, and values with
// many exact ties (small integers), where the lowest window must win in every lane as in the reference.
TEST(CoordinateSortKernels, MeanClosestToIsTheReferenceBitForBitOnEveryKernel) {
  EachSortKernel kernels;
  kernels.run([] {
    for (std::int64_t n : {3, 8, 9, 17, 34, 64, 300}) {
      for (bool ties : {false, true}) {
        const std::int64_t d = n == 300 ? 45 : 1000 + 13;
        at::Tensor rows = ties ? at::randint(-3, 4, {n, d}, make_generator(static_cast<std::uint64_t>(n))).to(at::kFloat)
                               : at::randn({n, d}, make_generator(static_cast<std::uint64_t>(n)));
        const std::int64_t f = (n - 1) / 3;
        for (ColumnCentre centre : {ColumnCentre::Median, ColumnCentre::TrimmedMean}) {
          for (std::int64_t keep : {std::int64_t{1}, n - 2 * f, n - f, n}) {
            SCOPED_TRACE("n " + std::to_string(n) + ", keep " + std::to_string(keep) + (ties ? ", ties" : ""));
            const at::Tensor got = coordinate_mean_closest_to(rows, keep, centre, f);
            const float* values = got.data_ptr<float>();
            int wrong = 0;
            for (std::int64_t j = 0; j < d; ++j) {
              const float want = mean_closest_reference(column_of(rows, j), keep, centre, f);
              if (std::memcmp(&want, values + j, sizeof(float)) != 0 && ++wrong <= 3)
                ADD_FAILURE() << "column " << j << ": " << values[j] << ", reference " << want;
            }
            EXPECT_EQ(wrong, 0);
          }
        }
      }
    }
  });
}

// The median, the trimmed mean (with the sort's last pass fused in) and the full sort: the same bits on
// every kernel as on SSE2, for the same sizes.
TEST(CoordinateSortKernels, MedianTrimmedMeanAndSortAreTheSameOnEveryKernel) {
  for (std::int64_t n : {2, 7, 8, 9, 16, 17, 33, 64, 100, 300, 600}) {
    const std::int64_t d = 2 * 512 + 45, trim = (n - 1) / 4;
    const at::Tensor rows = at::randn({n, d}, make_generator(static_cast<std::uint64_t>(100 + n)));
    auto sorted_of = [&rows] {
      at::Tensor out = at::empty_like(rows);
      std::int64_t start = 0;
      reduce_sorted_columns(rows, [&](const float* s, std::int64_t count, std::int64_t width, float* result) {
        for (std::int64_t i = 0; i < count; ++i)
          std::memcpy(out[i].data_ptr<float>() + start, s + i * width, sizeof(float) * static_cast<std::size_t>(width));
        std::fill(result, result + width, 0.0f);
        start += width;
      });
      return out;
    };
    ASSERT_TRUE(set_sort_kernel(SortKernel::Sse2));
    const at::Tensor median = coordinate_median(rows), trimmed = coordinate_trimmed_mean(rows, trim);
    const at::Tensor sorted = sorted_of();
    EXPECT_TRUE(at::equal(sorted, std::get<0>(rows.sort(0)))) << "n " << n;
    EachSortKernel kernels;
    kernels.run([&] {
      SCOPED_TRACE("n " + std::to_string(n));
      EXPECT_TRUE(at::equal(coordinate_median(rows).view(at::kInt), median.view(at::kInt)));
      EXPECT_TRUE(at::equal(coordinate_trimmed_mean(rows, trim).view(at::kInt), trimmed.view(at::kInt)));
      EXPECT_TRUE(at::equal(sorted_of(), sorted));
    });
  }
}

TEST(CoordinateSortKernels, TheWidestIsTheDefaultAndAnyKernelCanBeChosenBack) {
  EXPECT_TRUE(set_sort_kernel(SortKernel::Sse2));
  EXPECT_TRUE(set_sort_kernel(SortKernel::Widest));
  // A CPU without AVX2 refuses it and keeps what it had.
  const bool avx2 = set_sort_kernel(SortKernel::Avx2);
  EXPECT_EQ(avx2, __builtin_cpu_supports("avx2") != 0);
  set_sort_kernel(SortKernel::Widest);
}

}  // namespace
}  // namespace phalanx::test
