// bitflip: each Byzantine worker sends -s times its true message (Allen-Zhu et al. 2021; the ByzSGDnm
// paper uses s = 10).
//
// | parameter | default | meaning                   |
// |-----------|---------|---------------------------|
// | scale     | 1       | s in -s * (true message)  |
#include <algorithm>

#include <ATen/ATen.h>

#include "phalanx/helpers/parallel.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class BitFlip : public Attack {
 public:
  explicit BitFlip(double scale) : scale_(scale) {}
  at::Tensor craft(const AttackRound& round) override {
    // Each value on its own, so blocks of columns may run on the threads the engine lends
    // (phalanx/helpers/parallel.hpp): the float32 products ATen's rows.mul(-scale) computes.
    const at::Tensor rows = round.byzantine_true.to(at::kFloat).contiguous();
    at::Tensor flipped = at::empty(rows.sizes());
    if (rows.dim() != 2) return flipped.copy_(rows.mul(-scale_));
    constexpr std::int64_t kColumns = 16384;
    const std::int64_t n = rows.size(0), d = rows.size(1);
    const float factor = static_cast<float>(-scale_);
    const float* in = rows.data_ptr<float>();
    float* out = flipped.data_ptr<float>();
    for_each_block((d + kColumns - 1) / kColumns, [&](std::int64_t k) {
      const std::int64_t start = k * kColumns, end = std::min(d, start + kColumns);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = start; j < end; ++j) out[i * d + j] = in[i * d + j] * factor;
    });
    return flipped;
  }

 private:
  double scale_;
};

}  // namespace

PHALANX_PLUGIN("bitflip", "1.0") {
  registrar.add_attack({"bitflip",
                        "send -scale * the true message",
                        {{"scale", ParamType::Double, 1.0, "s in -s * message (the ByzSGDnm paper uses 10)", 0.0}}},
                       [](const Params& p, const Context&) {
                         return std::make_unique<BitFlip>(p.get_double("scale"));
                       });
}
