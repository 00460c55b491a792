// nan: every Byzantine worker sends a vector of NaN. Not an attack from a paper but a robustness test:
// a robust aggregator must still return a finite update when at most f rows are non-finite (see
// phalanx/aggregator.hpp), and `mean` must report the problem instead of poisoning the model.
//
//   x_byz = (NaN, ..., NaN)
//
// | parameter | default | meaning |
// |-----------|---------|---------|
// | (none)    |         |         |
#include <limits>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class NotANumber : public Attack {
 public:
  at::Tensor craft(const AttackRound& round) override {
    return at::full_like(round.byzantine_true, std::numeric_limits<float>::quiet_NaN());
  }
};

}  // namespace

PHALANX_PLUGIN("nan", "1.0") {
  registrar.add_attack({"nan", "send vectors of NaN (robustness test)", {}, {}, {Need::ByzantineShapeOnly}},
                       [](const Params&, const Context&) { return std::make_unique<NotANumber>(); });
}
