// Helpers for rules that must survive Byzantine rows holding NaN or Inf.
#pragma once

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"

namespace phalanx {

/// [n] bool: true where the whole row of `rows` ([n, d]) is finite.
PHALANX_EXPORT at::Tensor finite_row_mask(const at::Tensor& rows);
/// The finite rows of `rows` (all of them when none is bad, without a copy).
PHALANX_EXPORT at::Tensor finite_rows(const at::Tensor& rows);
/// Number of rows containing NaN or Inf.
PHALANX_EXPORT std::int64_t count_nonfinite_rows(const at::Tensor& rows);

}  // namespace phalanx
