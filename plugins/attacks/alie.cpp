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
#include <vector>

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
      if (b > 0)
        c.info("z_max = " + std::to_string(z_) + " (n = " + std::to_string(n) + ", b = " + std::to_string(b) + ")");
    }
  }

  at::Tensor craft(const AttackRound& round) override {
    const at::Tensor honest = round.honest.to(at::kFloat).contiguous();
    const std::int64_t h = honest.size(0), d = honest.size(1), b = round.byzantine_true.size(0);
    if (b == 0) return at::empty({0, d}, at::kFloat);
    // Every Byzantine worker sends the same row: it is computed once and handed back expanded to [b, d]
    // (stride 0 between rows), so no copy of it is made here, and the engine's copy into the round's rows
    // reads one row b times (docs/BENCHMARKS.md, "Engine overhead", eighth round).
    at::Tensor malicious = output_.get({1, d});
    const float* x = honest.data_ptr<float>();
    float* out = malicious.data_ptr<float>();
    const float minus_z = static_cast<float>(-z_);
    mean_.resize(static_cast<std::size_t>(d));
    if (h > 1) std_.resize(static_cast<std::size_t>(d));
    else std_.assign(static_cast<std::size_t>(d), 0.0f);  // 0 with one honest row
    // One pass over the honest rows: each block of columns gets its mean (honest.mean(0) bit for bit,
    // phalanx::column_means) and its std (rows.std(0, true), phalanx::column_stds) while its h rows are in
    // cache, then mean - z * std, with the float32 operations ATen would do. Columns are independent, so
    // the blocks may run on the threads the engine lends (phalanx/helpers/parallel.hpp) with the same bits.
    for_each_block((d + kColumns - 1) / kColumns, [&](std::int64_t k) {
      const std::int64_t start = k * kColumns, end = std::min(d, start + kColumns);
      column_means(x, h, d, start, end, mean_.data());
      if (h > 1) column_stds(x, h, d, start, end, std_.data());
      for (std::int64_t j = start; j < end; ++j) {
        const float shift = -std_[static_cast<std::size_t>(j)] * minus_z;  // (-std) * (-z), zeros signed as ATen's
        out[j] = mean_[static_cast<std::size_t>(j)] - shift;
      }
    });
    return malicious.expand({b, d});
  }
  bool omniscient() const override { return true; }

 private:
  double z_ = 0;
  OutputBuffer output_;  // the crafted rows, reused when the engine no longer holds the previous ones
  std::vector<float> mean_, std_;  // per column, each block writing its own columns
};

}  // namespace

PHALANX_PLUGIN("alie", "1.0") {
  registrar.add_attack(
      {"alie",
       "A Little Is Enough: mean_h - z * std_h over the honest messages",
       {{"z", ParamType::Double, Value(), "deviation in standard deviations (auto: z_max of the paper)"}},
       {},
       {Need::ByzantineShapeOnly}},
      [](const Params& p, const Context& c) { return std::make_unique<Alie>(p, c); });
}
