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
#include <cmath>

#include <ATen/ATen.h>

#include "phalanx/gamma_search.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

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
    const at::Tensor& honest = round.honest;
    at::Tensor mean = honest.mean(0);
    // -std_h from the SDK's fast coordinate-wise kernel; negating back is exact.
    at::Tensor std = honest.size(0) > 1 ? perturbation_direction("std", honest, mean).neg_() : at::zeros_like(mean);
    at::Tensor malicious = mean.sub_(std.mul_(z_));
    return malicious.unsqueeze(0).expand({round.byzantine_true.size(0), malicious.size(0)}).contiguous();
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
