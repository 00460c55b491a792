// "Did you mean ...?" for names typed by a user: plugin names, parameters, config sections.
#pragma once

#include <string>
#include <vector>

#include "phalanx/export.hpp"

namespace phalanx {

/// The candidate closest to `wanted` by edit distance, or "" when none is close enough to be a typo.
PHALANX_EXPORT std::string nearest_name(const std::string& wanted, const std::vector<std::string>& candidates);

}  // namespace phalanx
