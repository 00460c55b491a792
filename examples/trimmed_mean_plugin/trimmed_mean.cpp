// example_trimmed_mean: coordinate-wise trimmed mean (Yin et al., ICML 2018), written as a user plugin.
//
//   out[j] = mean of x_1[j..n] after dropping the `trim` largest and `trim` smallest values
//
// One file: the doc comment, the class, the registration. Parameters are declared once and arrive
// validated (type, range, default) in Params.
#include <ATen/ATen.h>

#include <phalanx/plugin.hpp>
#include <phalanx/tensor_checks.hpp>

namespace {

using namespace phalanx;

class TrimmedMean : public Aggregator {
 public:
  TrimmedMean(const Params& p, const Context& c) : trim_(p.get_int_or("trim", c.run().byzantine)) {
    if (2 * trim_ >= c.run().workers)
      p.fail("trim", "must leave at least one value: 2 * trim < n = " + std::to_string(c.run().workers));
  }

  at::Tensor aggregate(const at::Tensor& inputs) override {
    at::Tensor rows = finite_rows(inputs);  // NaN/Inf rows count as trimmed outliers
    const std::int64_t dropped = inputs.size(0) - rows.size(0);
    if (rows.size(0) == 0) throw Error("example_trimmed_mean: every message holds NaN or Inf");
    // A pre-aggregator (bucketing) may hand over fewer rows than workers: trim less, keep at least one.
    const std::int64_t trim = std::min(std::max<std::int64_t>(0, trim_ - dropped / 2), (rows.size(0) - 1) / 2);
    at::Tensor sorted = std::get<0>(rows.sort(0));
    return sorted.narrow(0, trim, rows.size(0) - 2 * trim).mean(0);
  }

 private:
  std::int64_t trim_;
};

}  // namespace

PHALANX_PLUGIN("example_trimmed_mean", "1.0") {
  registrar.add_aggregator(
      {"example_trimmed_mean",
       "coordinate-wise trimmed mean (example user plugin)",
       {{"trim", ParamType::Int, Value(), "values dropped at each end (auto: the number of Byzantine workers)", 0}}},
      [](const Params& p, const Context& c) { return std::make_unique<TrimmedMean>(p, c); });
}
