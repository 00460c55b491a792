// mimic: every Byzantine worker sends a copy of one honest worker's message (Karimireddy, He, Jaggi,
// "Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing", ICLR 2022). Under heterogeneous
// data this over-weights one worker's distribution without ever looking like an outlier.
//
//   x_byz = x_target          (target indexes the honest workers, 0 <= target < h)
//
// Omniscient: it reads the honest messages.
//
// | parameter | default | meaning                              |
// |-----------|---------|--------------------------------------|
// | target    | 0       | index of the honest worker to copy   |
#include <string>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "repeated_row.hpp"

namespace {

using namespace phalanx;

class Mimic : public Attack {
 public:
  explicit Mimic(std::int64_t target) : target_(target) {}
  at::Tensor craft(const AttackRound& round) override {
    const std::int64_t h = round.honest.size(0);
    if (target_ >= h)
      throw Error("attack 'mimic': target = " + std::to_string(target_) + " but there are only " + std::to_string(h) +
                  " honest workers; choose attack.target between 0 and " + std::to_string(h - 1));
    at::Tensor copied = round.honest[target_];
    // A copy, not a view: `copied` is a row of the matrix the engine may write the answer into.
    return repeated(copied, round.byzantine_true.size(0)).contiguous();
  }
  bool omniscient() const override { return true; }

 private:
  std::int64_t target_;
};

}  // namespace

PHALANX_PLUGIN("mimic", "1.0") {
  registrar.add_attack(
      {"mimic",
       "send a copy of one honest worker's message",
       {{"target", ParamType::Int, 0, "index of the honest worker to copy (0 .. h-1)", 0}},
       {},
       {Need::ByzantineShapeOnly}},
      [](const Params& p, const Context& c) {
        const std::int64_t target = p.get_int("target"), h = c.run().workers - c.run().byzantine;
        // The run facts are known here in a real run; catch the mistake before training starts.
        if (c.run().workers > 0 && target >= h)
          p.fail("target", "must be below the number of honest workers (" + std::to_string(h) + ")");
        return std::make_unique<Mimic>(target);
      });
}
