// zero: every Byzantine worker sends the zero vector. A baseline that drags the aggregate towards 0
// (slows training) without ever being an outlier in direction; used as a "crash" fault in robustness
// studies (e.g. Karimireddy, He, Jaggi, ICLR 2022).
//
//   x_byz = 0
//
// | parameter | default | meaning |
// |-----------|---------|---------|
// | (none)    |         |         |
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class Zero : public Attack {
 public:
  at::Tensor craft(const AttackRound& round) override { return at::zeros_like(round.byzantine_true); }
};

}  // namespace

PHALANX_PLUGIN("zero", "1.0") {
  registrar.add_attack({"zero", "send the zero vector", {}, {}, {Need::ByzantineShapeOnly}},
                       [](const Params&, const Context&) { return std::make_unique<Zero>(); });
}
