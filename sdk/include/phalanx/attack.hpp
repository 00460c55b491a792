// Attacks: what the Byzantine workers send instead of their honest message, and/or how they poison
// their own data.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "phalanx/diagnostics.hpp"
#include "phalanx/export.hpp"
#include "phalanx/round.hpp"
#include "phalanx/stateful.hpp"

namespace phalanx {

struct PHALANX_EXPORT AttackRound {
  /// [h, d] messages of the honest workers this round (omniscient attacks read them, never write them).
  at::Tensor honest;
  /// [b, d] messages the Byzantine workers would have sent had they been honest.
  at::Tensor byzantine_true;
  /// The round index: the server update these messages will produce.
  std::int64_t step = 0;
  /// [d] the update the server aggregated in the previous round; undefined before the first one (and in the
  /// distributed mode).
  at::Tensor previous_aggregate;
  /// The configured pre-aggregators + aggregator on a copy of their state, for attacks that search against
  /// the defence (evaluate(cat(honest, candidate))). Null where the defence cannot be evaluated (a distributed
  /// worker playing the attack itself); valid only during craft().
  const DefenceOracle* defence = nullptr;
  /// Where this round's diagnostics go (phalanx/diagnostics.hpp); null when nothing records them.
  DiagnosticSink* diagnostics = nullptr;

  /// Reports a declared diagnostic when this call records them; does nothing otherwise.
  void report(const char* name, double value) const {
    if (diagnostics) diagnostics->report(name, value);
  }
};

class PHALANX_EXPORT Attack : public Stateful {
 public:
  ~Attack() override;
  /// Returns the [b, d] messages the Byzantine workers send. Any strides will do (the engine copies the rows
  /// into its own matrix): one row sent by every Byzantine worker may come back as row.expand({b, d}). A view
  /// of round.honest must be copied first: the engine may write the answer into the same matrix.
  virtual at::Tensor craft(const AttackRound& round) = 0;
  /// Data poisoning (label flipping): the labels a Byzantine worker trains on. Default: unchanged.
  virtual at::Tensor poison_labels(const at::Tensor& labels, std::int64_t classes) const;
  /// Whether craft() reads the honest messages; the distributed mode must gather them first.
  virtual bool omniscient() const { return false; }
};

}  // namespace phalanx
