// bitflip: each Byzantine worker sends -s times its true message (Allen-Zhu et al. 2021; the ByzSGDnm
// paper uses s = 10).
//
// | parameter | default | meaning                   |
// |-----------|---------|---------------------------|
// | scale     | 1       | s in -s * (true message)  |
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class BitFlip : public Attack {
 public:
  explicit BitFlip(double scale) : scale_(scale) {}
  at::Tensor craft(const AttackRound& round) override { return round.byzantine_true.mul(-scale_); }

 private:
  double scale_;
};

}  // namespace

PHALANX_PLUGIN("bitflip", "1.0") {
  registrar.add_attack({"bitflip",
                        "send -scale * the true message",
                        {{"scale", ParamType::Double, 1.0, "s in -s * message (the ByzSGDnm paper uses 10)", 0.0}}},
                       [](const Params& p, const Context&) { return std::make_unique<BitFlip>(p.get_double("scale")); });
}
