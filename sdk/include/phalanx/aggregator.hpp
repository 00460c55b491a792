// Aggregators and pre-aggregators.
//
// Inputs are the n messages of a round as rows of one [n, d] float32 tensor. Byzantine rows may hold
// anything, NaN and Inf included: a robust rule must return a finite [d] vector whenever at most f rows
// are bad (treat non-finite rows as maximally distant or drop them; see phalanx/tensor_checks.hpp).
// The rows are the engine's own (an honest worker's row carries its momentum to the next round): read them,
// never write to them; `phalanx check-plugin` checks that a rule leaves its input unchanged.
#pragma once

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"
#include "phalanx/round.hpp"
#include "phalanx/stateful.hpp"

namespace phalanx {

class PHALANX_EXPORT Aggregator : public Stateful {
 public:
  ~Aggregator() override;
  /// [n, d] -> [d].
  virtual at::Tensor aggregate(const at::Tensor& inputs) = 0;
  /// The same with what the server knows of the round (phalanx/round.hpp); engines call this one. The
  /// default ignores the context, so rows-only rules override only aggregate(inputs). A rule that needs the
  /// context overrides this and still implements aggregate(inputs) for callers without one (tests, tools).
  virtual at::Tensor aggregate_with_context(const at::Tensor& inputs, const RoundContext& round) {
    (void)round;
    return aggregate(inputs);
  }
};

/// Composable in front of any aggregator: [n, d] -> [n', d] (nearest-neighbour mixing, bucketing, ...).
class PHALANX_EXPORT PreAggregator : public Stateful {
 public:
  ~PreAggregator() override;
  virtual at::Tensor transform(const at::Tensor& inputs) = 0;
  /// As Aggregator::aggregate_with_context. Default: ignores the context.
  virtual at::Tensor transform_with_context(const at::Tensor& inputs, const RoundContext& round) {
    (void)round;
    return transform(inputs);
  }
  /// True when output row i comes from input row i (same count and order: clipping, nearest-neighbour mixing),
  /// so the aggregator after it still learns each row's worker id and staleness. Default false (bucketing).
  virtual bool keeps_row_order() const { return false; }
};

}  // namespace phalanx
