// alie: "A Little Is Enough" (Baruch, Baruch, Goldberg, NeurIPS 2019). Every Byzantine worker sends
//
//   mean_h - z * std_h            (coordinate-wise over the honest messages of the round)
//
// with z = z_max = Phi^-1((h - s) / h), s = floor(n/2 + 1) - b, unless z is given. std_h is the unbiased
// sample standard deviation (0 with a single honest worker). Omniscient: it reads the honest messages.
//
// | parameter | default | meaning                         |
// |-----------|---------|---------------------------------|
// | z         | auto    | deviation in standard deviations |
#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

#include "phalanx/gamma_search.hpp"
#include "phalanx/helpers/parallel.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"

namespace {

using namespace phalanx;

constexpr std::int64_t kColumns = 8192;  // columns per block of work

// Phi^-1(p) = sqrt(2) * erfinv(2p - 1).
double normal_quantile(double p) {
  return std::sqrt(2.0) * at::erfinv(at::scalar_tensor(2.0 * p - 1.0, at::kDouble)).item<double>();
}

class Alie : public Attack {
 public:
  Alie(const Params& p, const Context& c) {
    const std::int64_t n = c.run().workers, b = c.run().byzantine, h = n - b;
    if (p.has("z")) {
      z_ = p.get_double("z");
    } else {
      const std::int64_t s = n / 2 + 1 - b;
      const double q = static_cast<double>(h - s) / static_cast<double>(h);
      // q outside (0, 1) means the formula has no finite answer for this (n, b): fall back to z = 1.
      z_ = (q > 0 && q < 1) ? normal_quantile(q) : 1.0;
      if (b > 0) c.info("z_max = " + std::to_string(z_) + " (n = " + std::to_string(n) + ", b = " + std::to_string(b) + ")");
    }
  }

  at::Tensor craft(const AttackRound& round) override {
    const at::Tensor honest = round.honest.to(at::kFloat).contiguous();
    const std::int64_t h = honest.size(0), d = honest.size(1), b = round.byzantine_true.size(0);
    const std::int64_t blocks = (d + kColumns - 1) / kColumns;
    // Column by column, so blocks of columns may run on the threads the engine lends
    // (phalanx/helpers/parallel.hpp) with the same bits: honest.mean(0) (phalanx::column_means), the SDK's
    // coordinate-wise std, then mean - z * std into every row, with the float32 operations ATen would do.
    at::Tensor mean = at::empty({d});
    const float* x = honest.data_ptr<float>();
    float* mu = mean.data_ptr<float>();
    for_each_block(blocks, [&](std::int64_t k) {
      column_means(x, h, d, k * kColumns, std::min(d, (k + 1) * kColumns), mu);
    });
    // -std_h from the SDK's fast coordinate-wise kernel (0 for one honest row); (-std) * (-z) is std * z.
    const at::Tensor minus_std = h > 1 ? perturbation_direction("std", honest, mean) : at::zeros({d}).neg_();
    const float* ms = minus_std.data_ptr<float>();
    const float minus_z = static_cast<float>(-z_);
    at::Tensor malicious = at::empty({b, d});
    float* out = malicious.data_ptr<float>();
    for_each_block(b > 0 ? blocks : 0, [&](std::int64_t k) {
      const std::int64_t start = k * kColumns, end = std::min(d, start + kColumns);
      for (std::int64_t j = start; j < end; ++j) {
        const float shift = ms[j] * minus_z;
        out[j] = mu[j] - shift;
      }
      for (std::int64_t r = 1; r < b; ++r) std::copy(out + start, out + end, out + r * d + start);
    });
    return malicious;
  }
  bool omniscient() const override { return true; }

 private:
  double z_ = 0;
};

}  // namespace

PHALANX_PLUGIN("alie", "1.0") {
  registrar.add_attack(
      {"alie",
       "A Little Is Enough: mean_h - z * std_h over the honest messages",
       {{"z", ParamType::Double, Value(), "deviation in standard deviations (auto: z_max of the paper)"}}},
      [](const Params& p, const Context& c) { return std::make_unique<Alie>(p, c); });
}
