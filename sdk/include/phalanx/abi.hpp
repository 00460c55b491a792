// The binary contract between the phalanx host and a plugin library.
//
// A plugin library exports exactly one C symbol, `phalanx_plugin_handshake_v<ABI>`, returning constant data the
// host checks before it touches any C++ type of the library (the pattern of LLVM pass plugins): the size
// of the struct, the SDK ABI version (exact match required), and a build fingerprint naming the compiler,
// the libstdc++ ABI flag and the LibTorch version, because C++ objects cross the boundary.
#pragma once

#include <cstdint>

#include <torch/csrc/api/include/torch/version.h>

#include "phalanx/export.hpp"

/// The contract headers (everything in sdk/include/phalanx except helpers/) define the ABI. Bump this when
/// one of them changes (docs/plugins.md, "When to bump the ABI version", says exactly when);
/// tests/sdk/sdk_abi_test.cpp fails if they change without a bump. The entry symbol's name carries the
/// version, so a library built against another version is refused before its handshake is even read.
#define PHALANX_SDK_ABI_VERSION 3

// A plugin may be built against another ABI version only in tests that check the refusal.
#ifndef PHALANX_PLUGIN_ABI_VERSION
#define PHALANX_PLUGIN_ABI_VERSION PHALANX_SDK_ABI_VERSION
#endif

#define PHALANX_STRINGIFY_IMPL(x) #x
#define PHALANX_STRINGIFY(x) PHALANX_STRINGIFY_IMPL(x)

#if defined(__clang__)
#define PHALANX_COMPILER_ID "clang" PHALANX_STRINGIFY(__clang_major__)
#elif defined(__GNUC__)
#define PHALANX_COMPILER_ID "gcc" PHALANX_STRINGIFY(__GNUC__)
#else
#define PHALANX_COMPILER_ID "unknown"
#endif

#ifndef PHALANX_BUILD_FINGERPRINT
#define PHALANX_BUILD_FINGERPRINT                                                                   \
  PHALANX_COMPILER_ID " cxx11abi=" PHALANX_STRINGIFY(_GLIBCXX_USE_CXX11_ABI) " torch=" PHALANX_STRINGIFY( \
      TORCH_VERSION_MAJOR) "." PHALANX_STRINGIFY(TORCH_VERSION_MINOR)
#endif

extern "C" {
/// Constant description of a plugin library. Only append fields; `struct_size` lets the host see which
/// fields a library knows about, and the host reads no field that lies beyond it.
struct phalanx_handshake {
  std::uint32_t struct_size;
  std::uint32_t abi_version;
  const char* fingerprint;
  const char* library_name;
  const char* library_version;
  /// Receives a `phalanx::Registrar*`; kept as void* so the struct stays plain C.
  void (*register_plugins)(void* registrar);
};
}

#define PHALANX_HANDSHAKE_FUNCTION_IMPL(v) phalanx_plugin_handshake_v##v
#define PHALANX_HANDSHAKE_FUNCTION_FOR(v) PHALANX_HANDSHAKE_FUNCTION_IMPL(v)
/// The exported function of a plugin built for ABI version `PHALANX_PLUGIN_ABI_VERSION`.
#define PHALANX_HANDSHAKE_FUNCTION PHALANX_HANDSHAKE_FUNCTION_FOR(PHALANX_PLUGIN_ABI_VERSION)

/// Name of the one symbol every plugin library of this ABI version exports.
#define PHALANX_HANDSHAKE_SYMBOL "phalanx_plugin_handshake_v" PHALANX_STRINGIFY(PHALANX_SDK_ABI_VERSION)
/// The entry symbol of ABI version 1, which carried no version in its name: a library exporting it was
/// built against the version 1 SDK and needs a rebuild.
#define PHALANX_HANDSHAKE_SYMBOL_V1 "phalanx_plugin_handshake"
