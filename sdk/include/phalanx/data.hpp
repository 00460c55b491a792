// Data sources load a whole data set into memory; the host partitions the training set across workers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "phalanx/export.hpp"

namespace phalanx {

struct PHALANX_EXPORT Dataset {
  at::Tensor train_x;  // [N, ...sample_shape] float32
  at::Tensor train_y;  // [N] int64 class labels in [0, classes)
  at::Tensor test_x;
  at::Tensor test_y;
  std::vector<std::int64_t> sample_shape;  // e.g. {1, 28, 28}
  std::int64_t classes = 0;
  std::string description;  // for the log: where it came from
};

class PHALANX_EXPORT DataSource {
 public:
  virtual ~DataSource();
  /// Throws phalanx::Error naming the missing or broken file and how to get it.
  virtual Dataset load() = 0;
};

}  // namespace phalanx
