#include "phalanx/error.hpp"

namespace phalanx {

Error::Error(const std::string& message) : std::runtime_error(message) {}
// Out of line so the vtable and type_info live in the SDK library only, shared by host and plugins.
Error::~Error() = default;

}  // namespace phalanx
