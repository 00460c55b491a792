// fltrust: FLTrust (Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
// Bootstrapping", NDSS 2021). The server computes its own gradient g0 on a small clean sample every round
// (RoundContext::server_gradient, set by the config's `server_data: {samples: N}`; the paper's root set has
// 100 examples) and trusts each row as far as it points the same way:
//
//   TS_i = max(0, cos(x_i, g0))                 (0 when ||x_i|| = 0, ||g0|| = 0 or x_i holds NaN/Inf)
//   x̄_i  = (||g0|| / ||x_i||) x_i               (every row rescaled to the server gradient's norm)
//   out  = sum_i TS_i x̄_i / sum_i TS_i
//
// When every score is 0 (no row has a positive cosine with g0) the output is the zero vector: the model does
// not move this round. The paper's formula divides by zero there; returning g0 instead would train on the
// server's few clean examples alone, a choice the paper does not make, so no update is the conservative one.
// Computed in float64 (norms of huge Byzantine rows overflow float32). Non-finite rows score 0 and take no part.
// f is not used: the rule needs no bound on the Byzantine count.
//
// Needs the round context: the plain aggregate(rows) and a context without a server gradient (no
// server_data in the config, or the distributed mode, which refuses server_data) are errors that say so.
#include <string>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "phalanx/tensor_checks.hpp"

namespace {

using namespace phalanx;

const char* const kNeedsServerGradient =
    "aggregator 'fltrust' needs the server's own gradient on a clean sample: add `server_data: {samples: 100}` "
    "(the paper's root set size) to the config; it is computed in the sync and async simulations, not in the "
    "distributed mode";

class FlTrust : public Aggregator {
 public:
  at::Tensor aggregate(const at::Tensor& inputs) override {
    (void)inputs;
    throw Error(kNeedsServerGradient);
  }

  at::Tensor aggregate_with_context(const at::Tensor& inputs, const RoundContext& round) override {
    const at::Tensor& g0 = round.server_gradient;
    if (!g0.defined()) throw Error(kNeedsServerGradient);
    if (g0.dim() != 1 || g0.numel() != inputs.size(1))
      throw Error("aggregator 'fltrust': the server gradient has " + std::to_string(g0.numel()) +
                  " values but the rows have " + std::to_string(inputs.size(1)));
    at::Tensor reference = g0.to(at::kDouble);
    if (!at::isfinite(reference).all().item<bool>())
      throw Error("aggregator 'fltrust': the server gradient holds NaN or Inf (the model diverged); lower the "
                  "learning rate");
    const double reference_norm = reference.norm().item<double>();
    at::Tensor finite = finite_row_mask(inputs);
    // Non-finite rows become zero rows: they score 0 and add nothing.
    at::Tensor x = inputs.to(at::kDouble).masked_fill(finite.logical_not().unsqueeze(1), 0.0);
    at::Tensor norms = x.norm(2, {1});
    at::Tensor usable = norms.gt(0).logical_and(finite);
    at::Tensor cosine = x.mv(reference).div(norms.clamp_min(1e-300).mul(reference_norm > 0 ? reference_norm : 1.0));
    at::Tensor scores = cosine.clamp_min(0.0).masked_fill(usable.logical_not(), 0.0);
    if (reference_norm == 0.0) scores.zero_();
    const double total = scores.sum().item<double>();
    if (!(total > 0.0)) return at::zeros({inputs.size(1)}, inputs.options());
    // sum_i TS_i (||g0|| / ||x_i||) x_i / sum_i TS_i
    at::Tensor weights = scores.mul(reference_norm).div(norms.clamp_min(1e-300)).div(total);
    return weights.matmul(x).to(inputs.scalar_type());
  }
};

}  // namespace

PHALANX_PLUGIN("fltrust", "1.0") {
  registrar.add_aggregator({"fltrust",
                            "FLTrust (Cao et al. 2021): rows weighted by ReLU(cos(x_i, g0)) with the server's own "
                            "gradient g0 (needs server_data), rescaled to ||g0||",
                            {},
                            {},
                            {Need::ServerGradient}},
                           [](const Params&, const Context&) { return std::make_unique<FlTrust>(); });
}
