// The one exception type of phalanx. Messages are for the person at the keyboard: what happened, where
// (file:line, config path or plugin name) and what to do.
#pragma once

#include <stdexcept>
#include <string>

#include "phalanx/export.hpp"

namespace phalanx {

class PHALANX_EXPORT Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message);
  ~Error() override;
};

}  // namespace phalanx
