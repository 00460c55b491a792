// A library whose handshake declares only its first two fields. The loader must refuse it by its size and
// read nothing beyond those 8 bytes (the sanitizer build would flag a read past this object).
#include <cstdint>

#include "phalanx/abi.hpp"

namespace {
struct ShortHandshake {
  std::uint32_t struct_size;
  std::uint32_t abi_version;
};
}  // namespace

extern "C" __attribute__((visibility("default"))) const phalanx_handshake* PHALANX_HANDSHAKE_FUNCTION() {
  static const ShortHandshake handshake{sizeof(ShortHandshake), PHALANX_SDK_ABI_VERSION};
  return reinterpret_cast<const phalanx_handshake*>(&handshake);
}
