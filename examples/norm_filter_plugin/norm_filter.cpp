// norm_filter: drop the f rows of largest norm, average the rest (the tutorial of docs/plugins.md).
//
//   out = mean of the n - f rows of smallest ||x_i||    (rows holding NaN/Inf count as infinitely long)
#include <limits>

#include <ATen/ATen.h>

#include <phalanx/plugin.hpp>

namespace {

using namespace phalanx;

class NormFilter : public Aggregator {
 public:
  NormFilter(const Params& p, const Context& c) : f_(p.get_int_or("f", c.run().byzantine)) {}

  at::Tensor aggregate(const at::Tensor& rows) override {
    at::Tensor norms = rows.norm(2, 1).nan_to_num(std::numeric_limits<float>::infinity());
    const std::int64_t keep = std::max<std::int64_t>(1, rows.size(0) - f_);  // a pre-aggregator may send fewer rows
    at::Tensor kept = norms.argsort().narrow(0, 0, keep);
    return rows.index_select(0, kept).mean(0);
  }

 private:
  std::int64_t f_;
};

}  // namespace

PHALANX_PLUGIN("norm_filter", "1.0") {
  registrar.add_aggregator(
      {"norm_filter", "mean of the rows left after dropping the f longest",
       {{"f", ParamType::Int, Value(), "rows dropped (auto: the number of Byzantine workers)", 0}}},
      [](const Params& p, const Context& c) { return std::make_unique<NormFilter>(p, c); });
}
