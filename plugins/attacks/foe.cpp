// foe: "Fall of Empires", the inner-product manipulation attack (Xie, Koyejo, Gupta, "Fall of Empires:
// Breaking Byzantine-tolerant SGD by Inner Product Manipulation", UAI 2019; also called ipm). Every
// Byzantine worker sends
//
//   -eps * mean_h
//
// so that, for small eps, the aggregate keeps a negative inner product with the true gradient while the
// malicious messages stay close to the honest ones. Omniscient: it reads the honest messages.
//
// | parameter | default | meaning                    |
// |-----------|---------|----------------------------|
// | eps       | 0.1     | eps in -eps * mean_h (>= 0) |
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "repeated_row.hpp"

namespace {

using namespace phalanx;

class FallOfEmpires : public Attack {
 public:
  explicit FallOfEmpires(double eps) : eps_(eps) {}
  at::Tensor craft(const AttackRound& round) override {
    if (round.honest.size(0) == 0) throw Error("attack 'foe' needs at least one honest message");
    at::Tensor malicious = round.honest.mean(0).mul_(-eps_);
    return repeated(malicious, round.byzantine_true.size(0));
  }
  bool omniscient() const override { return true; }

 private:
  double eps_;
};

}  // namespace

PHALANX_PLUGIN("foe", "1.0") {
  registrar.add_attack({"foe",
                        "Fall of Empires (inner-product manipulation): send -eps * mean_h",
                        {{"eps", ParamType::Double, 0.1, "eps in -eps * mean_h", 0.0}},
                        {},
                        {Need::ByzantineShapeOnly}},
                       [](const Params& p, const Context&) {
                         return std::make_unique<FallOfEmpires>(p.get_double("eps"));
                       });
}
