// none: Byzantine workers behave honestly (the no-attack baseline with the same worker count).
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class NoAttack : public Attack {
 public:
  at::Tensor craft(const AttackRound& round) override { return round.byzantine_true; }
};

}  // namespace

PHALANX_PLUGIN("none", "1.0") {
  registrar.add_attack({"none", "no attack: Byzantine workers send their honest message", {}},
                       [](const Params&, const Context&) { return std::make_unique<NoAttack>(); });
}
