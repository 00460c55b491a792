// signflip: every Byzantine worker sends the negated mean of the honest messages (the "sign flipping"
// attack as used by Allouah et al., "Fixing by Mixing: A Recipe for Optimal Byzantine ML under
// Heterogeneity", AISTATS 2023):
//
//   -mean_h = -(1/h) sum_{i honest} x_i
//
// Omniscient: it reads the honest messages of the round.
//
// | parameter | default | meaning |
// |-----------|---------|---------|
// | (none)    |         |         |
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "repeated_row.hpp"

namespace {

using namespace phalanx;

class SignFlip : public Attack {
 public:
  at::Tensor craft(const AttackRound& round) override {
    if (round.honest.size(0) == 0) throw Error("attack 'signflip' needs at least one honest message to negate");
    at::Tensor malicious = round.honest.mean(0).neg_();
    return repeated(malicious, round.byzantine_true.size(0));
  }
  bool omniscient() const override { return true; }
};

}  // namespace

PHALANX_PLUGIN("signflip", "1.0") {
  registrar.add_attack({"signflip", "send the negated mean of the honest messages", {}, {}, {Need::ByzantineShapeOnly}},
                       [](const Params&, const Context&) { return std::make_unique<SignFlip>(); });
}
