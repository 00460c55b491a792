// nnm: nearest-neighbour mixing (Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, "Fixing by
// Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity", AISTATS 2023). Every row is replaced by
// the average of its n - f nearest rows, itself included:
//
//   y_i = (1 / (n - f)) sum_{j in N_i} x_j,   N_i = the n - f rows closest to x_i in Euclidean distance
//
// Computed without per-pair loops: one float32 Gram matrix with error bounds (phalanx::PairwiseDistances),
// the neighbourhoods by phalanx::nearest_rows (which recomputes in float64 a row whose k-th and (k+1)-th
// nearest the bounds cannot separate, so every neighbourhood is the float64 one), and the mixing as one
// [n, n] x [n, d] matrix product.
//
// Non-finite rows (NaN/Inf): they are infinitely far from every other row, so with at most f of them every
// finite row's n - f nearest rows are all finite and its y_i is exactly the rule above. A non-finite row
// is passed through unchanged (its mixture would include itself), so the aggregator after nnm still sees
// it as a bad row and counts it against its own f. With more than f bad rows, a finite row averages only
// the finite rows among its n - f nearest (the bad ones get weight 0) rather than turning non-finite.
//
// | parameter | default | meaning                                          |
// |-----------|---------|--------------------------------------------------|
// | f         | auto    | rows to tolerate (auto: number of Byzantine workers); n - f rows are mixed |
#include <string>

#include <ATen/ATen.h>

#include "phalanx/distances.hpp"
#include "phalanx/helpers/byzantine_count.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"

namespace {

using namespace phalanx;

class NearestNeighbourMixing : public PreAggregator {
 public:
  explicit NearestNeighbourMixing(std::int64_t f) : f_(f) {}

  bool keeps_row_order() const override { return true; }  // row i of the output stays worker i's
  at::Tensor transform(const at::Tensor& inputs) override {
    const std::int64_t n = inputs.size(0);
    require_rows_above(f_, n, "nnm");
    const std::int64_t k = n - f_;
    PairwiseDistances distances(inputs);  // +inf to and from bad rows
    at::Tensor finite = at::empty({n}, at::kBool);
    for (std::int64_t i = 0; i < n; ++i) finite.data_ptr<bool>()[i] = distances.finite(i);
    // Every row is its own nearest neighbour, even when another row is an exact duplicate of it.
    at::Tensor nearest = nearest_rows(distances, k);  // [n, k]
    // Weight 1/(number of finite neighbours) on each finite neighbour: 1/(n-f) whenever <= f rows are bad.
    at::Tensor weights = finite.index_select(0, nearest.reshape({-1})).reshape({n, k}).to(inputs.scalar_type());
    weights.div_(weights.sum(1, /*keepdim=*/true).clamp_min_(1.0));
    at::Tensor mixing = at::zeros({n, n}, inputs.options()).scatter_(1, nearest, weights);
    // Usually every row is finite: one product into an output reused between rounds (a fresh [n, d]
    // output and two full copies cost more than the product; docs/BENCHMARKS.md).
    if (inputs.scalar_type() == at::kFloat && finite.all().item<bool>()) {
      at::Tensor out = output_.get({n, inputs.size(1)});
      return at::mm_out(out, mixing, inputs);
    }
    // Bad rows are zeroed before the product: 0 * NaN would otherwise leak NaN into every output row.
    at::Tensor bad = finite.logical_not().unsqueeze(1);
    at::Tensor mixed = at::mm(mixing, inputs.masked_fill(bad, 0.0));
    return at::where(bad, inputs, mixed);
  }

 private:
  std::int64_t f_;
  OutputBuffer output_;
};

}  // namespace

PHALANX_PLUGIN("nnm", "1.0") {
  registrar.add_preaggregator(
      {"nnm",
       "nearest-neighbour mixing: each row becomes the mean of its n-f nearest rows",
       {byzantine_count_param("rows to tolerate (auto: number of Byzantine workers)")}},
      [](const Params& p, const Context& c) {
        return std::make_unique<NearestNeighbourMixing>(byzantine_count(p, c));
      });
}
