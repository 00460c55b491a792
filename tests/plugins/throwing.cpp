// Plugins that fail: one whose constructor throws a std::exception, one whose aggregate throws, one that
// returns nothing.
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
}
