// What a comparison needs of its base config before any variant is resolved (config/pipeline.cpp).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "phalanx/value.hpp"

namespace phalanx::core {

/// The name and the compare grid of `root`, checked as resolve_pipeline checks them. The rest of a compare's
/// base is resolved only inside each variant (`phalanx run` resolves every variant before running any), so
/// no config is resolved twice.
struct ComparisonOutline {
  std::string name;
  std::vector<std::pair<std::string, std::vector<Value>>> compare;
};
ComparisonOutline resolve_outline(const Value& root);

}  // namespace phalanx::core
