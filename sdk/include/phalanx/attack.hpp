// Attacks: what the Byzantine workers send instead of their honest message, and/or how they poison
// their own data.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"
#include "phalanx/stateful.hpp"

namespace phalanx {

struct PHALANX_EXPORT AttackRound {
  /// [h, d] messages of the honest workers this round (omniscient attacks read them).
  at::Tensor honest;
  /// [b, d] messages the Byzantine workers would have sent had they been honest.
  at::Tensor byzantine_true;
  std::int64_t step = 0;
};

class PHALANX_EXPORT Attack : public Stateful {
 public:
  ~Attack() override;
  /// Returns the [b, d] messages the Byzantine workers send.
  virtual at::Tensor craft(const AttackRound& round) = 0;
  /// Data poisoning (label flipping): the labels a Byzantine worker trains on. Default: unchanged.
  virtual at::Tensor poison_labels(const at::Tensor& labels, std::int64_t classes) const;
  /// Whether craft() reads the honest messages; the distributed mode must gather them first.
  virtual bool omniscient() const { return false; }
};

}  // namespace phalanx
