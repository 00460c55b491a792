// bucketing: Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
// Bucketing", ICLR 2022. The rows are shuffled by a random permutation pi and averaged in buckets of s:
//
//   y_j = mean { x_pi(k) : k in [j*s, min((j+1)*s, n)) },   j = 0 .. ceil(n/s) - 1
//
// so n rows become ceil(n/s) (the last bucket holds n mod s rows when s does not divide n). Averaging
// reduces the heterogeneity the aggregator after it sees; the random assignment keeps the Byzantine rows
// from choosing their bucket-mates.
//
// The permutation comes from a generator seeded with this plugin's own seed (Context::seed()); its
// position is saved by save_state() so a resumed run draws the same permutations. A non-finite row makes
// its own bucket non-finite, so at most as many buckets as bad rows are bad.
//
// | parameter | default | meaning          |
// |-----------|---------|------------------|
// | s         | 2       | rows per bucket  |
#include <algorithm>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/generator_state.hpp"
#include "phalanx/plugin.hpp"
#include "phalanx/row_math.hpp"

namespace {

using namespace phalanx;

class Bucketing : public PreAggregator {
 public:
  Bucketing(std::int64_t s, std::uint64_t seed) : s_(s), seed_(seed), generator_(make_generator(seed)) {}

  at::Tensor transform(const at::Tensor& inputs) override {
    const std::int64_t n = inputs.size(0), d = inputs.size(1), buckets = (n + s_ - 1) / s_;
    at::Tensor order = at::randperm(n, generator_, at::TensorOptions().dtype(at::kLong));
    // Position k of the shuffled order goes to bucket k / s. Each bucket's mean is summed chunk by chunk
    // straight from the input rows into a small buffer that stays in cache, so every input byte is read
    // once (a shuffled copy of the whole [n, d] input would triple the memory traffic), and each chunk of
    // the result is written once, with streaming stores, into an output reused between rounds (a fresh
    // output costs more in page faults than reading the input; docs/BENCHMARKS.md).
    at::Tensor x = inputs.contiguous().to(at::kFloat);
    at::Tensor out = output_.get({buckets, d});
    const float* in = x.data_ptr<float>();
    float* result = out.data_ptr<float>();
    const std::int64_t* pick = order.data_ptr<std::int64_t>();
    constexpr std::int64_t kChunk = 4096;
    std::vector<float> sum(static_cast<std::size_t>(std::min(kChunk, d)));
    for (std::int64_t b = 0; b < buckets; ++b) {
      const std::int64_t first = b * s_, last = std::min(n, first + s_);
      const float scale = 1.0f / static_cast<float>(last - first);
      for (std::int64_t start = 0; start < d; start += kChunk) {
        const std::int64_t width = std::min(kChunk, d - start);
        float* acc = sum.data();
        std::copy_n(in + pick[first] * d + start, width, acc);
        for (std::int64_t k = first + 1; k < last; ++k) {
          const float* row = in + pick[k] * d + start;
          for (std::int64_t j = 0; j < width; ++j) acc[j] += row[j];
        }
        scale_row_streaming(acc, scale, result + b * d + start, width);
      }
    }
    return out.to(inputs.scalar_type());
  }

  State save_state() const override { return save_generator(generator_); }
  void load_state(const State& state) override { load_generator(state, generator_, seed_, "pre-aggregator 'bucketing'"); }

 private:
  std::int64_t s_;
  std::uint64_t seed_;
  at::Generator generator_;
  OutputBuffer output_;
};

}  // namespace

PHALANX_PLUGIN("bucketing", "1.0") {
  registrar.add_preaggregator(
      {"bucketing",
       "shuffle the rows and average them in buckets of s",
       {{"s", ParamType::Int, 2, "rows per bucket", 1}}},
      [](const Params& p, const Context& c) { return std::make_unique<Bucketing>(p.get_int("s"), c.seed()); });
}
