// Key functions of the SDK's interfaces: defined here, out of line, so each vtable and type_info exists
// once, in the SDK library, and dynamic_cast / exceptions work between the host and every plugin.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ATen.h>

#include "phalanx/aggregator.hpp"
#include "phalanx/attack.hpp"
#include "phalanx/context.hpp"
#include "phalanx/data.hpp"
#include "phalanx/diagnostics.hpp"
#include "phalanx/error.hpp"
#include "phalanx/generator_state.hpp"
#include "phalanx/helpers/parallel.hpp"
#include "phalanx/optimizer.hpp"
#include "phalanx/registrar.hpp"
#include "phalanx/tensor_checks.hpp"
#include "target_region.hpp"

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

namespace {

// u <- beta u + (1 - beta) g as LibTorch computes `u.mul_(beta).add_(g, 1 - beta)` on float32 tensors in its
// vectorised kernels (AVX2 / AVX-512): the product u * beta rounded to float, then one fused multiply-add
// g * (1 - beta) + that product, both coefficients rounded to float first. One pass instead of two.
#if defined(__x86_64__)
#define PHALANX_FUSED_MOMENTUM_TARGET __attribute__((target("avx2,fma")))
#else  // elsewhere fused_momentum_matches_libtorch() is false and this is never called
#define PHALANX_FUSED_MOMENTUM_TARGET
#endif
PHALANX_FUSED_MOMENTUM_TARGET void fused_momentum(float* u, const float* g, float beta, float alpha,
                                                  std::int64_t d) {
  for (std::int64_t j = 0; j < d; ++j) u[j] = std::fma(g[j], alpha, u[j] * beta);
}

void aten_momentum(at::Tensor& u, const at::Tensor& g, double beta) { u.mul_(beta).add_(g, 1.0 - beta); }

// LibTorch's kernels work on blocks of 2 vectors (16 or 32 floats) and finish a row's last few values with a
// scalar loop, whose rounding depends on how that file was compiled; the CPU may also lack FMA, in which
// case LibTorch multiplies and adds separately. So the fused pass covers whole multiples of this many
// values, LibTorch does the rest, and the fused pass is used only once it has reproduced LibTorch's own
// results bit for bit on this CPU (fused_momentum_matches_libtorch).
constexpr std::int64_t kFusedBlock = 64;

bool fused_momentum_matches_libtorch() {
#if defined(__x86_64__)
  if (!cpu::has_avx2() || !cpu::has_fma()) return false;
  constexpr std::int64_t n = 4 * kFusedBlock;
  at::Tensor u = at::empty({n}, at::kFloat), g = at::empty({n}, at::kFloat);
  for (std::int64_t j = 0; j < n; ++j) {  // values of varied magnitude and sign, mantissas fully used
    u.data_ptr<float>()[j] = static_cast<float>(std::sin(0.7 * static_cast<double>(j) + 0.3) * (1.0 + j % 7));
    g.data_ptr<float>()[j] = static_cast<float>(std::cos(1.3 * static_cast<double>(j)) * (1.0 + j % 5) * 1e-2);
  }
  for (double beta : {0.9, 0.99, 0.5, 0.123456789}) {
    at::Tensor expected = u.clone(), fused = u.clone();
    aten_momentum(expected, g, beta);
    fused_momentum(fused.data_ptr<float>(), g.data_ptr<float>(), static_cast<float>(beta),
                   static_cast<float>(1.0 - beta), n);
    if (std::memcmp(expected.data_ptr<float>(), fused.data_ptr<float>(), n * sizeof(float)) != 0) return false;
  }
  return true;
#else
  return false;
#endif
}

}  // namespace

at::Tensor MomentumWorkerRule::message(const at::Tensor& gradient, std::int64_t) {
  if (!buffer_.defined()) {
    buffer_ = gradient.clone();
    return buffer_;
  }
  static const bool fused = fused_momentum_matches_libtorch();
  const std::int64_t d = buffer_.numel();
  if (!fused || gradient.scalar_type() != at::kFloat || buffer_.scalar_type() != at::kFloat ||
      !gradient.is_contiguous() || !buffer_.is_contiguous() || gradient.sizes() != buffer_.sizes() ||
      buffer_.dim() != 1) {
    aten_momentum(buffer_, gradient, beta_);
    return buffer_;
  }
  const std::int64_t body = d / kFusedBlock * kFusedBlock;
  fused_momentum(buffer_.data_ptr<float>(), gradient.data_ptr<float>(), static_cast<float>(beta_),
                 static_cast<float>(1.0 - beta_), body);
  if (body < d) {
    at::Tensor rest = buffer_.narrow(0, body, d - body);
    aten_momentum(rest, gradient.narrow(0, body, d - body), beta_);
  }
  return buffer_;
}

bool MomentumWorkerRule::keep_momentum_in(const at::Tensor& storage) {
  if (!buffer_.defined() || !storage.defined() || storage.scalar_type() != buffer_.scalar_type() ||
      storage.sizes() != buffer_.sizes() || !storage.is_contiguous())
    return false;
  if (storage.data_ptr() != buffer_.data_ptr()) storage.copy_(buffer_);
  buffer_ = storage;
  return true;
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

// The OR over x[0, n) of (bits & exponent) + one exponent step: its sign bit is set exactly when one of the floats
// is NaN or infinite (its exponent bits all ones carry into it). Clones for wider vectors than the baseline's
// SSE2 (outside any anonymous namespace: GCC's ifunc wants external linkage; the SDK exports only PHALANX_EXPORT).
__attribute__((target_clones("avx512f", "avx2", "default"))) std::uint32_t nonfinite_bits(const std::uint32_t* x,
                                                                                       std::int64_t n) {
  std::uint32_t any = 0;
  for (std::int64_t j = 0; j < n; ++j) any |= (x[j] & 0x7f800000u) + 0x00800000u;
  return any;
}

at::Tensor finite_row_mask(const at::Tensor& rows) {
  if (rows.scalar_type() != at::kFloat || rows.dim() != 2) return at::isfinite(rows).all(/*dim=*/1);
  // One streaming pass with integer operations the compiler vectorises: a float is NaN or Inf exactly
  // when its exponent bits are all ones, and adding one exponent step then carries into the sign bit.
  // (at::isfinite(rows).all(1) would allocate an n x d bool tensor and read the data twice.) Large inputs
  // (the Byzantine rows of a round) are split into blocks of columns for the threads the engine lends
  // (phalanx/helpers/parallel.hpp); a row is finite when each of its blocks is, however they were shared.
  at::Tensor x = rows.contiguous();
  const std::int64_t n = x.size(0), d = x.size(1);
  constexpr std::int64_t kShareFrom = 1 << 18, kBlock = 1 << 15;  // below 1 MB a hand-off costs more than it saves
  const std::int64_t width = n * d >= kShareFrom ? kBlock : std::max<std::int64_t>(d, 1);
  const std::int64_t per_row = (d + width - 1) / width;
  std::vector<std::uint32_t> flags(static_cast<std::size_t>(n * per_row), 0);
  const auto* bits = reinterpret_cast<const std::uint32_t*>(x.data_ptr<float>());
  const auto check_block = [&](std::int64_t task) {
    const std::int64_t start = (task % per_row) * width, end = std::min(d, start + width);
    flags[static_cast<std::size_t>(task)] = nonfinite_bits(bits + (task / per_row) * d + start, end - start);
  };
  if (n * d >= kShareFrom) {
    for_each_block(n * per_row, check_block);
  } else {
    for (std::int64_t task = 0; task < n * per_row; ++task) check_block(task);
  }
  at::Tensor mask = at::empty({n}, at::kBool);
  bool* out = mask.data_ptr<bool>();
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint32_t any = 0;
    for (std::int64_t k = 0; k < per_row; ++k) any |= flags[static_cast<std::size_t>(i * per_row + k)];
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
