// example_trust: an FLTrust-like aggregator (Cao et al., NDSS 2021) written as a user plugin, to show the
// round context (phalanx/round.hpp). The server computes its own gradient g0 on a small clean sample every
// round (the config's `server_data: {samples: N}`); each row is trusted as far as it points the same way:
//
//   w_i = max(0, cos(x_i, g0))^power        (0 for a row holding NaN/Inf or of norm 0)
//   out = sum_i w_i (||g0|| / ||x_i||) x_i / sum_i w_i     (rows rescaled to g0's norm; 0 when all w_i = 0)
//
// power = 1 is FLTrust's trust score; a larger power trusts only rows closely aligned with g0.
//
// It declares that it needs the server gradient (so `phalanx validate` refuses a config without server_data) and
// reports one diagnostic per round, `example_trust.trusted`: the rows given a positive weight (SDK v3).
#include <ATen/ATen.h>

#include <phalanx/plugin.hpp>

namespace {

using namespace phalanx;

class Trust : public Aggregator {
 public:
  explicit Trust(const Params& p) : power_(p.get_double("power")) {}

  at::Tensor aggregate(const at::Tensor&) override {
    throw Error("example_trust needs the server gradient: add `server_data: {samples: 100}` to the config");
  }

  at::Tensor aggregate_with_context(const at::Tensor& inputs, const RoundContext& round) override {
    if (!round.server_gradient.defined()) return aggregate(inputs);
    // float64: the norm of a huge Byzantine row overflows float32.
    at::Tensor x = inputs.to(at::kDouble);
    at::Tensor g0 = round.server_gradient.to(at::kDouble);
    at::Tensor finite = at::isfinite(x).all(1);
    x = x.masked_fill(~finite.unsqueeze(1), 0.0);
    at::Tensor norms = x.norm(2, 1);
    at::Tensor cosines = x.matmul(g0) / (norms * g0.norm()).clamp_min(1e-30);
    at::Tensor weights = cosines.clamp_min(0).pow(power_).masked_fill(~finite | (norms == 0), 0.0);
    round.report("trusted", weights.gt(0).sum().item<double>());
    if (weights.sum().item<double>() == 0.0) return at::zeros({inputs.size(1)}, inputs.options());
    at::Tensor rescaled = x * (g0.norm() / norms.clamp_min(1e-30)).unsqueeze(1);
    return (weights.unsqueeze(1) * rescaled).sum(0).div(weights.sum()).to(at::kFloat);
  }

 private:
  double power_;
};

}  // namespace

PHALANX_PLUGIN("example_trust", "1.0") {
  registrar.add_aggregator(
      {"example_trust",
       "FLTrust-like: rows weighted by their cosine with the server's own gradient (example user plugin)",
       {{"power", ParamType::Double, Value(1.0), "exponent of the trust score (1: FLTrust)", 0.5, 8.0}},
       {{"trusted", "rows given a positive weight, mean over the rounds since the previous metrics row"}},
       {Need::ServerGradient}},
      [](const Params& p, const Context&) { return std::make_unique<Trust>(p); });
}
