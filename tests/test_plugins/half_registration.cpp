// Registration that fails half way, in two ways (chosen by HALF_REGISTRATION_DUPLICATE): a register function
// that throws after adding one aggregator, and one that adds an aggregator and then a second 'mean'. Either
// way the loader must keep none of the library's plugins.
#include <stdexcept>

#include <ATen/core/Tensor.h>

#include "phalanx/plugin.hpp"

namespace {
class First : public phalanx::Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override { return inputs[0]; }
};
phalanx::Factory<phalanx::Aggregator> make_first() {
  return [](const phalanx::Params&, const phalanx::Context&) { return std::make_unique<First>(); };
}
}  // namespace

PHALANX_PLUGIN("half_registration", "1.0") {
  registrar.add_aggregator({"registered_before_failure", "added before the registration fails", {}}, make_first());
#ifdef HALF_REGISTRATION_DUPLICATE
  registrar.add_aggregator({"mean", "a second 'mean'", {}}, make_first());
#else
  throw std::runtime_error("configuration file missing");
#endif
}
