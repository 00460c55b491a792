#include "phalanx/core/engine/round_parts.hpp"

#include <algorithm>
#include <numeric>
#include <random>

#include <ATen/ATen.h>

#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

// A permutation of 0..n-1 from the run seed: ids stay the same every round, but the Byzantine workers (the
// last b engine indices) do not get recognisable ids.
std::vector<std::int64_t> shuffled_ids(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  return ids;
}

State deep_copy(const State& state) {
  State copy;
  for (const auto& [name, tensor] : state) copy.emplace(name, tensor.defined() ? tensor.clone() : tensor);
  return copy;
}

}  // namespace

at::Tensor server_sample_indices(const PipelineSpec& spec, const Dataset& data) {
  std::vector<at::Tensor> partitions = partition_of(spec, data.train_y, data.classes);
  at::Tensor honest = at::cat(std::vector<at::Tensor>(partitions.begin(), partitions.begin() + spec.honest()));
  if (honest.numel() < spec.server_samples)
    throw Error("server_data.samples is " + std::to_string(spec.server_samples) + " but the honest workers hold only " +
                std::to_string(honest.numel()) + " training samples; lower server_data.samples");
  std::vector<std::int64_t> order(honest.numel());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(derive_seed(spec.seed, "server_data"));
  std::shuffle(order.begin(), order.end(), rng);
  order.resize(spec.server_samples);
  return honest.index_select(0, at::tensor(order, at::kLong));
}

RoundContextSource::RoundContextSource(const PipelineSpec& spec, const Dataset& data)
    : spec_(spec), ids_(shuffled_ids(spec.workers, derive_seed(spec.seed, "worker_ids"))) {
  if (spec.server_samples > 0) {
    at::Tensor picked = server_sample_indices(spec, data);
    sample_x_ = data.train_x.index_select(0, picked);
    sample_y_ = data.train_y.index_select(0, picked);
  }
}

RoundContext RoundContextSource::context(std::int64_t round, const std::vector<std::int64_t>& workers,
                                         std::vector<std::int64_t> staleness, FlatModel& model) const {
  RoundContext c;
  c.round = round;
  c.worker_ids.reserve(workers.size());
  for (std::int64_t w : workers) c.worker_ids.push_back(ids_[w]);
  c.staleness = std::move(staleness);
  c.parameters = model.params().clone();
  if (sample_x_.defined()) {
    c.server_gradient = model.loss_and_gradient(sample_x_, sample_y_).second;
    if (spec_.weight_decay > 0) c.server_gradient.add_(model.params(), spec_.weight_decay);
  }
  return c;
}

EngineDefenceOracle::EngineDefenceOracle(const PipelineSpec& spec, EnginePlugins& plugins, RoundContext round,
                                         at::Tensor positions)
    : spec_(spec), plugins_(plugins), round_(std::move(round)), positions_(std::move(positions)) {}

at::Tensor EngineDefenceOracle::evaluate(const at::Tensor& rows) const {
  const std::int64_t n = static_cast<std::int64_t>(round_.worker_ids.size());
  if (!rows.defined() || rows.dim() != 2 || rows.size(0) != n || rows.scalar_type() != at::kFloat ||
      (round_.parameters.defined() && rows.size(1) != round_.parameters.numel()))
    throw Error("attack '" + spec_.attack.name + "': the defence oracle takes [" + std::to_string(n) +
                ", d] float32 rows (honest rows first, then the attack's)");
  if (saved_.empty()) {
    for (const auto& pre : plugins_.preaggregators) saved_.push_back(deep_copy(pre->save_state()));
    saved_.push_back(deep_copy(plugins_.aggregator->save_state()));
  }
  at::Tensor ordered = rows.contiguous();
  if (positions_.defined()) ordered = at::empty_like(ordered).index_copy_(0, positions_, ordered);
  at::Tensor result;
  try {
    result = aggregate_rows(spec_, plugins_, ordered, round_, RoundKind::Query);
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return result;
}

void EngineDefenceOracle::restore() const {
  // Copies again: a plugin may keep the tensors it is given and change them in place in the next call.
  for (std::size_t i = 0; i < plugins_.preaggregators.size(); ++i)
    plugins_.preaggregators[i]->load_state(deep_copy(saved_[i]));
  plugins_.aggregator->load_state(deep_copy(saved_.back()));
}

}  // namespace phalanx::core
