// The float64 distance sum has AVX-512, AVX2 and baseline clones; the SDK documents its arithmetic (eight
// float64 sums over the columns, each a product then an addition, the rest of the columns into the first,
// the eight added in order), and every clone must give exactly those bits, so an exact Krum distance is the
// same on every x86-64 machine. An FMA in one clone would change the last bits and fail here.
#include <cstdint>
#include <cstring>

#include <ATen/ATen.h>

#include "phalanx/helpers/row_math.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

double documented_squared_distance(const float* x, const float* y, std::int64_t d) {
  double sum[8] = {};
  std::int64_t j = 0;
  for (; j + 8 <= d; j += 8)
    for (std::int64_t l = 0; l < 8; ++l) {
      const double t = static_cast<double>(x[j + l]) - static_cast<double>(y[j + l]);
      volatile double square = t * t;  // rounded on its own: no FMA here either, whatever the build's flags
      sum[l] += square;
    }
  for (; j < d; ++j) {
    const double t = static_cast<double>(x[j]) - static_cast<double>(y[j]);
    volatile double square = t * t;
    sum[0] += square;
  }
  double total = 0;
  for (double s : sum) total += s;
  return total;
}

TEST(SquaredDistance, IsTheDocumentedFloat64SumBitForBit) {
  at::manual_seed(13);
  for (std::int64_t d : {1, 7, 8, 9, 64, 1001, 100'003}) {
    // Magnitudes spread over many binades, so a fused multiply-add would round differently somewhere.
    const at::Tensor rows = at::randn({2, d}).mul_(at::randn({2, d}).mul_(4).exp_());
    const float* x = rows.data_ptr<float>();
    const double want = documented_squared_distance(x, x + d, d);
    const double got = squared_distance(x, x + d, d);
    const at::Tensor wide = rows.to(at::kDouble);
    const double got_wide = squared_distance_of_wide_rows(wide.data_ptr<double>(), wide.data_ptr<double>() + d, d);
    EXPECT_EQ(std::memcmp(&got, &want, sizeof want), 0) << "d = " << d << ": " << got << " vs " << want;
    EXPECT_EQ(std::memcmp(&got_wide, &want, sizeof want), 0) << "d = " << d << ": " << got_wide << " vs " << want;
  }
}

}  // namespace
}  // namespace phalanx::test
