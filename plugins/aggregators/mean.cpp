// mean: the average of the n rows, (1/n) sum_i x_i. Not robust: one Byzantine row moves it arbitrarily.
//
// A row holding NaN or Inf would silently poison the model, so mean refuses it with a clear error
// instead (robust rules drop such rows).
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

class Mean : public Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override {
    if (std::int64_t bad = count_nonfinite_rows(inputs)) {
      throw Error("aggregator 'mean': " + std::to_string(bad) + " of " + std::to_string(inputs.size(0)) +
                  " messages contain NaN or Inf; the mean of them is not finite. Use a robust aggregator "
                  "(cm, cc, ...) when workers may send such messages.");
    }
    return inputs.mean(0);
  }
};

}  // namespace

PHALANX_PLUGIN("mean", "1.0") {
  registrar.add_aggregator({"mean", "arithmetic mean of the messages (not robust)", {}},
                           [](const Params&, const Context&) { return std::make_unique<Mean>(); });
}
