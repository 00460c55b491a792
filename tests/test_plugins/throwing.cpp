// Plugins that fail: one whose constructor throws a std::exception, one whose aggregate throws, one that
// returns nothing, and two that fail inside a run (from their fourth call on: the preflight's one call and
// the first steps pass): one hands LibTorch an impossible reshape (a c10::Error), one runs out of memory
// (std::bad_alloc).
#include <new>
#include <stdexcept>

#include <ATen/core/Tensor.h>

#include "phalanx/plugin.hpp"

namespace {
class Never : public phalanx::Aggregator {
 public:
  Never() { throw std::runtime_error("cannot open /dev/imaginary"); }
  at::Tensor aggregate(const at::Tensor& inputs) override { return inputs[0]; }
};
class ThrowsOnAggregate : public phalanx::Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor&) override { throw std::out_of_range("vector::_M_range_check"); }
};

class FailsLater : public phalanx::Aggregator {
 public:
  explicit FailsLater(bool out_of_memory) : out_of_memory_(out_of_memory) {}
  at::Tensor aggregate(const at::Tensor& inputs) override {
    if (++calls_ < 4) return inputs[0];
    if (out_of_memory_) throw std::bad_alloc();
    return inputs.mm(inputs)[0];  // n x d times n x d: a c10::Error
  }

 private:
  bool out_of_memory_;
  int calls_ = 0;
};
}  // namespace

PHALANX_PLUGIN("throwing", "1.0") {
  registrar.add_aggregator({"throws_on_create", "constructor throws", {}},
                           [](const phalanx::Params&, const phalanx::Context&) { return std::make_unique<Never>(); });
  registrar.add_aggregator({"throws_on_aggregate", "aggregate throws a std::exception", {}},
                           [](const phalanx::Params&, const phalanx::Context&) {
                             return std::make_unique<ThrowsOnAggregate>();
                           });
  registrar.add_aggregator({"returns_null", "factory returns nullptr", {}},
                           [](const phalanx::Params&, const phalanx::Context&) {
                             return std::unique_ptr<phalanx::Aggregator>();
                           });
  registrar.add_aggregator({"torch_error_later", "a LibTorch error from its fourth call on", {}},
                           [](const phalanx::Params&, const phalanx::Context&) {
                             return std::make_unique<FailsLater>(false);
                           });
  registrar.add_aggregator({"bad_alloc_later", "std::bad_alloc from its fourth call on", {}},
                           [](const phalanx::Params&, const phalanx::Context&) {
                             return std::make_unique<FailsLater>(true);
                           });
}
