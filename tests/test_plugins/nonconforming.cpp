// Plugins that load and run but each break one conformance property `phalanx check-plugin` must catch:
// a wrong output shape, a result that depends on the call count, one that depends on the row order, one
// that forgets part of its state in save_state, a default outside its declared range, and an attack that
// crafts the wrong number of rows, and one on which LibTorch throws. `conforming_median` breaks nothing (so a failure is not blanket).
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {
using namespace phalanx;

class WrongShape : public Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override { return inputs.mean(0).repeat({2}); }
};

class CountsCalls : public Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override { return inputs.mean(0).add(static_cast<float>(calls_++)); }

 private:
  int calls_ = 0;
};
int instances = 0;
class DrawsFromGlobal : public Aggregator {  // each instance differs: not reproducible from the seed
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override { return std::get<0>(inputs.median(0)).add(1e-3f * instances++); }
};

class FirstRow : public Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override { return inputs[0].clone(); }
};

class ForgetsState : public Aggregator {  // a running mean whose count is not saved
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor m = std::get<0>(inputs.median(0));
    sum_ = sum_.defined() ? sum_ + m : m;
    ++count_;
    return sum_ / static_cast<float>(count_);
  }
  State save_state() const override { return sum_.defined() ? State{{"sum", sum_}} : State{}; }
  void load_state(const State& s) override { sum_ = s.count("sum") ? s.at("sum").clone() : at::Tensor(); }

 private:
  at::Tensor sum_;
  std::int64_t count_ = 0;
};

class Median : public Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor x = inputs.masked_fill(~at::isfinite(inputs), std::numeric_limits<float>::quiet_NaN());
    return std::get<0>(at::nanmedian(x, 0)).nan_to_num(0);
  }
};

class TorchError : public Aggregator {  // LibTorch throws a c10::Error, whose what() holds stack frames
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override { return inputs.mm(inputs)[0]; }
};

class TooFewRows : public Attack {
 public:
  at::Tensor craft(const AttackRound& round) override { return round.byzantine_true.narrow(0, 0, 1).clone(); }
};

// Declares Need::ByzantineShapeOnly and then sends the Byzantine workers' own messages, negated.
class ReadsByzantineRows : public Attack {
 public:
  at::Tensor craft(const AttackRound& round) override { return round.byzantine_true.neg(); }
};

template <class T>
Factory<Aggregator> make() {
  return [](const Params&, const Context&) { return std::make_unique<T>(); };
}
}  // namespace

PHALANX_PLUGIN("nonconforming", "1.0") {
  registrar.add_aggregator({"wrong_shape", "returns [2d]", {}}, make<WrongShape>());
  registrar.add_aggregator({"counts_calls", "result depends on the call count", {}}, make<CountsCalls>());
  registrar.add_aggregator({"draws_from_global", "result depends on a process-wide counter", {}},
                           make<DrawsFromGlobal>());
  registrar.add_aggregator({"first_row", "returns row 0", {}}, make<FirstRow>());
  registrar.add_aggregator({"forgets_state", "running median whose count is not saved", {}}, make<ForgetsState>());
  registrar.add_aggregator({"bad_default", "default outside its range", {{"k", ParamType::Int, Value(5), "k", 0, 3}}},
                           make<Median>());
  registrar.add_aggregator({"torch_error", "hands LibTorch an impossible product", {}}, make<TorchError>());
  registrar.add_aggregator({"conforming_median", "coordinate-wise median of the finite values", {}}, make<Median>());
  registrar.add_attack({"too_few_rows", "crafts one row for b workers", {}},
                       [](const Params&, const Context&) { return std::make_unique<TooFewRows>(); });
  registrar.add_attack({"reads_byzantine_rows", "promises to read only the shape, reads the values", {}, {},
                        {Need::ByzantineShapeOnly}},
                       [](const Params&, const Context&) { return std::make_unique<ReadsByzantineRows>(); });
}
