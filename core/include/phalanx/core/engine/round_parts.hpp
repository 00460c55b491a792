// What a simulation engine hands the defence and the attack besides the rows (SDK v2): each round's
// RoundContext, and the defence oracle an omniscient attack may query.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/round.hpp"

namespace phalanx::core {

/// Builds each round's context: worker ids that do not reveal who is Byzantine, and the server's gradient on
/// its clean sample when the config sets server_data.samples.
class RoundContextSource {
 public:
  RoundContextSource(const PipelineSpec& spec, const Dataset& data);
  /// The context of update `round` whose rows came from engine workers `workers` with `staleness`; the
  /// parameters (and the server gradient) are taken from `model` now.
  RoundContext context(std::int64_t round, const std::vector<std::int64_t>& workers,
                       std::vector<std::int64_t> staleness, FlatModel& model) const;
  /// The id a defence sees for engine worker `w`.
  std::int64_t worker_id(std::int64_t w) const { return ids_[w]; }

 private:
  const PipelineSpec& spec_;
  std::vector<std::int64_t> ids_;
  at::Tensor sample_x_, sample_y_;  // undefined without server_data
};

/// The indices of the server's clean sample: `samples` draws without replacement from the honest workers'
/// partitions, seeded from the run seed. Never a Byzantine worker's sample.
at::Tensor server_sample_indices(const PipelineSpec& spec, const Dataset& data);

/// The configured pre-aggregators + aggregator of `plugins` as a DefenceOracle. The real instances run the
/// candidate rows, then get back the state they had before the first call (save_state/load_state, deep
/// copies), so the real defence later behaves as if the oracle had never been called.
class EngineDefenceOracle : public DefenceOracle {
 public:
  /// `positions` ([n] long): where candidate row j (honest rows first, then the attack's) sits among the
  /// rows the server aggregates; undefined when the order is the same.
  EngineDefenceOracle(const PipelineSpec& spec, EnginePlugins& plugins, RoundContext round, at::Tensor positions);
  at::Tensor evaluate(const at::Tensor& rows) const override;

 private:
  void restore() const;
  const PipelineSpec& spec_;
  EnginePlugins& plugins_;
  RoundContext round_;
  at::Tensor positions_;
  mutable std::vector<State> saved_;  // pre-aggregators' states, then the aggregator's; filled on first call
};

}  // namespace phalanx::core
