// inf: every Byzantine worker sends a vector of +Inf. Not an attack from a paper but a robustness test:
// squared norms and distances of such a row are +Inf, and Inf - Inf = NaN inside naive rules, so it
// checks a different code path than `nan` (see phalanx/aggregator.hpp for the contract).
//
//   x_byz = (+Inf, ..., +Inf)
//
// | parameter | default | meaning |
// |-----------|---------|---------|
// | (none)    |         |         |
#include <limits>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class Infinity : public Attack {
 public:
  at::Tensor craft(const AttackRound& round) override {
    return at::full_like(round.byzantine_true, std::numeric_limits<float>::infinity());
  }
};

}  // namespace

PHALANX_PLUGIN("inf", "1.0") {
  registrar.add_attack({"inf", "send vectors of +Inf (robustness test)", {}, {}, {Need::ByzantineShapeOnly}},
                       [](const Params&, const Context&) { return std::make_unique<Infinity>(); });
}
