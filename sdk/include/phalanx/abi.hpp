// The binary contract between the phalanx host and a plugin library.
//
// A plugin library exports exactly one C symbol, `phalanx_plugin_handshake`, returning constant data the
// host checks before it touches any C++ type of the library (the pattern of LLVM pass plugins): the size
// of the struct, the SDK ABI version (exact match required), and a build fingerprint naming the compiler,
// the libstdc++ ABI flag and the LibTorch version, because C++ objects cross the boundary.
#pragma once

#include <cstdint>

#include <torch/csrc/api/include/torch/version.h>

#include "phalanx/export.hpp"

/// Bump whenever anything in sdk/include changes in a way that affects the binary layout or behaviour
/// plugins rely on. tests/sdk_abi_test.cpp fails if the headers change without a bump.
#define PHALANX_SDK_ABI_VERSION 1

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
/// fields a library knows about.
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

/// Name of the one symbol every plugin library exports.
#define PHALANX_HANDSHAKE_SYMBOL "phalanx_plugin_handshake"
