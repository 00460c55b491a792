// A library as the version 1 SDK wrote it: its entry symbol carries no version. The loader must refuse it
// with a message that says to rebuild, without calling anything in it.
#include <cstdint>

namespace {
struct HandshakeV1 {
  std::uint32_t struct_size;
  std::uint32_t abi_version;
  const char* fingerprint;
  const char* library_name;
  const char* library_version;
  void (*register_plugins)(void*);
};
void never_called(void*) { throw 1; }
}  // namespace

extern "C" __attribute__((visibility("default"))) const HandshakeV1* phalanx_plugin_handshake() {
  static const HandshakeV1 handshake{sizeof(HandshakeV1), 1, "", "v1_only", "1.0", &never_called};
  return &handshake;
}
