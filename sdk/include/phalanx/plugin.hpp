// The one include a plugin source file needs besides its math headers, and the macro that writes the
// library's exported handshake (the author writes only the registration body):
//
//   PHALANX_PLUGIN("my_aggregators", "1.0") {
//     registrar.add_aggregator({"trimmed", "drops outliers", {...}}, [](const Params& p, const Context& c) {...});
//   }
#pragma once

#include "phalanx/abi.hpp"
#include "phalanx/error.hpp"
#include "phalanx/registrar.hpp"

// Linked statically (test and fuzz binaries that hold several plugin sources): compiled with
// -DPHALANX_STATIC_PLUGIN=<id>, the handshake function is `phalanx_static_plugin_<id>` and not exported, so
// several plugins share one binary; the host registers it with
// Registry::register_inline(handshake->library_name, handshake->register_plugins).
#ifdef PHALANX_STATIC_PLUGIN
#define PHALANX_STATIC_ENTRY_IMPL(id) phalanx_static_plugin_##id
#define PHALANX_STATIC_ENTRY_FOR(id) PHALANX_STATIC_ENTRY_IMPL(id)
#define PHALANX_PLUGIN_ENTRY PHALANX_STATIC_ENTRY_FOR(PHALANX_STATIC_PLUGIN)
#define PHALANX_PLUGIN_ENTRY_VISIBILITY
#else
#define PHALANX_PLUGIN_ENTRY PHALANX_HANDSHAKE_FUNCTION
#define PHALANX_PLUGIN_ENTRY_VISIBILITY PHALANX_EXPORT
#endif

#define PHALANX_PLUGIN(LIBRARY_NAME, LIBRARY_VERSION)                                                 \
  static void phalanx_register_plugins(::phalanx::Registrar& registrar);                             \
  static void phalanx_register_trampoline(void* registrar) {                                          \
    phalanx_register_plugins(*static_cast<::phalanx::Registrar*>(registrar));                          \
  }                                                                                                   \
  extern "C" PHALANX_PLUGIN_ENTRY_VISIBILITY const phalanx_handshake* PHALANX_PLUGIN_ENTRY() {        \
    static const phalanx_handshake handshake{sizeof(phalanx_handshake),  PHALANX_PLUGIN_ABI_VERSION,   \
                                             PHALANX_BUILD_FINGERPRINT,  LIBRARY_NAME,                 \
                                             LIBRARY_VERSION,            &phalanx_register_trampoline}; \
    return &handshake;                                                                                \
  }                                                                                                   \
  static void phalanx_register_plugins(::phalanx::Registrar& registrar)
