// Aggregators and pre-aggregators.
//
// Inputs are the n messages of a round as rows of one [n, d] float32 tensor. Byzantine rows may hold
// anything, NaN and Inf included: a robust rule must return a finite [d] vector whenever at most f rows
// are bad (treat non-finite rows as maximally distant or drop them; see phalanx/tensor_checks.hpp).
#pragma once

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"
#include "phalanx/stateful.hpp"

namespace phalanx {

class PHALANX_EXPORT Aggregator : public Stateful {
 public:
  ~Aggregator() override;
  /// [n, d] -> [d].
  virtual at::Tensor aggregate(const at::Tensor& inputs) = 0;
};

/// Composable in front of any aggregator: [n, d] -> [n', d] (nearest-neighbour mixing, bucketing, ...).
class PHALANX_EXPORT PreAggregator : public Stateful {
 public:
  ~PreAggregator() override;
  virtual at::Tensor transform(const at::Tensor& inputs) = 0;
};

}  // namespace phalanx
