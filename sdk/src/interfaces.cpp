// Key functions of the SDK's interfaces: defined here, out of line, so each vtable and type_info exists
// once, in the SDK library, and dynamic_cast / exceptions work between the host and every plugin.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ATen.h>

#include "phalanx/aggregator.hpp"
#include "phalanx/attack.hpp"
#include "phalanx/context.hpp"
#include "phalanx/data.hpp"
#include "phalanx/diagnostics.hpp"
#include "phalanx/error.hpp"
#include "phalanx/generator_state.hpp"
#include "phalanx/optimizer.hpp"
#include "phalanx/registrar.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx {

Context::~Context() = default;
Stateful::~Stateful() = default;
Aggregator::~Aggregator() = default;
PreAggregator::~PreAggregator() = default;
Attack::~Attack() = default;
DefenceOracle::~DefenceOracle() = default;
DiagnosticSink::~DiagnosticSink() = default;
WorkerRule::~WorkerRule() = default;
IdentityWorkerRule::~IdentityWorkerRule() = default;
Optimizer::~Optimizer() = default;
DataSource::~DataSource() = default;
Registrar::~Registrar() = default;

at::Tensor Attack::poison_labels(const at::Tensor& labels, std::int64_t) const { return labels; }

at::Tensor IdentityWorkerRule::message(const at::Tensor& gradient, std::int64_t) { return gradient; }

MomentumWorkerRule::MomentumWorkerRule(double beta) : beta_(beta) {}
MomentumWorkerRule::~MomentumWorkerRule() = default;

at::Tensor MomentumWorkerRule::message(const at::Tensor& gradient, std::int64_t) {
  if (!buffer_.defined()) {
    buffer_ = gradient.clone();
  } else {
    buffer_.mul_(beta_).add_(gradient, 1.0 - beta_);
  }
  return buffer_;
}

State MomentumWorkerRule::save_state() const {
  if (!buffer_.defined()) return {};
  return {{"momentum", buffer_.clone()}};
}

void MomentumWorkerRule::load_state(const State& state) {
  auto it = state.find("momentum");
  buffer_ = it == state.end() ? at::Tensor() : it->second.clone();
}

at::Tensor Optimizer::params_for_worker(const at::Tensor& params, std::int64_t) const { return params; }

at::Generator make_generator(std::uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

State save_generator(const at::Generator& generator) { return {{"generator", generator.get_state()}}; }

void load_generator(const State& state, at::Generator& generator, std::uint64_t seed, const std::string& owner) {
  auto it = state.find("generator");
  if (it == state.end()) {  // nothing saved yet: start the stream from the beginning
    generator = make_generator(seed);
    return;
  }
  try {
    generator.set_state(it->second);
  } catch (const c10::Error& e) {
    throw Error(owner + ": the saved generator state does not fit this LibTorch build (" +
                std::string(e.what_without_backtrace()) + "); was the checkpoint written by another version?");
  }
}

at::Tensor finite_row_mask(const at::Tensor& rows) {
  if (rows.scalar_type() != at::kFloat || rows.dim() != 2) return at::isfinite(rows).all(/*dim=*/1);
  // One streaming pass with integer operations the compiler vectorises: a float is NaN or Inf exactly
  // when its exponent bits are all ones, and adding one exponent step then carries into the sign bit.
  // (at::isfinite(rows).all(1) would allocate an n x d bool tensor and read the data twice.)
  at::Tensor x = rows.contiguous();
  const std::int64_t n = x.size(0), d = x.size(1);
  at::Tensor mask = at::empty({n}, at::kBool);
  const auto* bits = reinterpret_cast<const std::uint32_t*>(x.data_ptr<float>());
  bool* out = mask.data_ptr<bool>();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t* row = bits + i * d;
    std::uint32_t any = 0;
    for (std::int64_t j = 0; j < d; ++j) any |= (row[j] & 0x7f800000u) + 0x00800000u;
    out[i] = (any & 0x80000000u) == 0;
  }
  return mask;
}

at::Tensor finite_rows(const at::Tensor& rows) {
  at::Tensor mask = finite_row_mask(rows);
  if (mask.all().item<bool>()) return rows;
  return rows.index_select(0, mask.nonzero().squeeze(1));
}

std::int64_t count_nonfinite_rows(const at::Tensor& rows) {
  return rows.size(0) - finite_row_mask(rows).sum().item<std::int64_t>();
}

}  // namespace phalanx
