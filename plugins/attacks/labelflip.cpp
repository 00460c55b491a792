// labelflip: data poisoning. Byzantine workers run the honest computation on flipped labels
//
//   y -> C - 1 - y          (C classes)
//
// and send the resulting message unchanged (Allen-Zhu, Ebrahimian, Li, Alistarh, "Byzantine-Resilient
// Non-Convex Stochastic Gradient Descent", ICLR 2021; Karimireddy, He, Jaggi, ICLR 2022). The engine
// calls poison_labels() for Byzantine workers before their gradient; craft() passes it through.
//
// | parameter | default | meaning |
// |-----------|---------|---------|
// | (none)    |         |         |
#include <string>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class LabelFlip : public Attack {
 public:
  at::Tensor craft(const AttackRound& round) override { return round.byzantine_true; }
  at::Tensor poison_labels(const at::Tensor& labels, std::int64_t classes) const override {
    if (classes < 1) throw Error("attack 'labelflip' needs the class count, got " + std::to_string(classes));
    return labels.neg().add_(classes - 1);
  }
};

}  // namespace

PHALANX_PLUGIN("labelflip", "1.0") {
  registrar.add_attack({"labelflip", "train on flipped labels y -> C-1-y (data poisoning)", {}},
                       [](const Params&, const Context&) { return std::make_unique<LabelFlip>(); });
}
