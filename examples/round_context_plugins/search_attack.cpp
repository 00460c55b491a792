// example_search: an attack that asks the defence it attacks (the defence oracle, phalanx/attack.hpp) which
// of a few candidate messages hurts most, written as a user plugin. Every Byzantine worker sends
//
//   z = -eps * mean(honest)             (inner-product manipulation, Xie et al., UAI 2019)
//
// with eps taken from `factors` as the one whose aggregate the defence moves farthest from the honest mean:
// ||defence(honest, z, ..., z) - mean(honest)||. The oracle runs on a copy of the defence's state, so the
// search leaves the real defence untouched.
#include <ATen/ATen.h>

#include <phalanx/plugin.hpp>

namespace {

using namespace phalanx;

class Search : public Attack {
 public:
  explicit Search(const Params& p) : factors_(p.get_double_list("factors")) {}

  bool omniscient() const override { return true; }

  at::Tensor craft(const AttackRound& round) override {
    if (round.defence == nullptr)
      throw Error("example_search needs the defence oracle (sync or async simulation, or the distributed server)");
    const std::int64_t b = round.byzantine_true.size(0);
    at::Tensor mean = round.honest.mean(0);
    at::Tensor best;
    double best_distance = -1.0;
    for (double eps : factors_) {
      at::Tensor z = mean.mul(-eps).unsqueeze(0).repeat({b, 1});
      at::Tensor aggregate = round.defence->evaluate(at::cat({round.honest, z}));
      const double distance = (aggregate - mean).norm().item<double>();
      if (distance > best_distance) {  // the first factor wins a tie: the result does not depend on luck
        best_distance = distance;
        best = z;
      }
    }
    return best;
  }

 private:
  std::vector<double> factors_;
};

}  // namespace

PHALANX_PLUGIN("example_search", "1.0") {
  registrar.add_attack(
      {"example_search",
       "inner-product manipulation with the factor the defence oracle finds most harmful (example user plugin)",
       {{"factors", ParamType::DoubleList, Value::list({0.5, 1.0, 2.0, 4.0, 8.0}), "candidate factors eps", 0.0}}},
      [](const Params& p, const Context&) { return std::make_unique<Search>(p); });
}
