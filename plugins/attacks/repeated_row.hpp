// The answer of an attack whose Byzantine workers all send one row. Header-only: each attack is its own plugin
// library.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace phalanx {

/// Every Byzantine worker sends `row` ([d]): the [b, d] float32 answer of craft(), one row b times (stride 0;
/// the engine copies it into each of its rows, attack.hpp). A row that is a view of round.honest must be
/// copied first.
inline at::Tensor repeated(const at::Tensor& row, std::int64_t b) {
  return row.to(at::kFloat).unsqueeze(0).expand({b, row.size(0)});
}

}  // namespace phalanx
