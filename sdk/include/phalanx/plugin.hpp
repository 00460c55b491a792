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

#define PHALANX_PLUGIN(LIBRARY_NAME, LIBRARY_VERSION)                                                 \
  static void phalanx_register_plugins(::phalanx::Registrar& registrar);                             \
  static void phalanx_register_trampoline(void* registrar) {                                          \
    phalanx_register_plugins(*static_cast<::phalanx::Registrar*>(registrar));                          \
  }                                                                                                   \
  extern "C" PHALANX_EXPORT const phalanx_handshake* PHALANX_HANDSHAKE_FUNCTION() {                   \
    static const phalanx_handshake handshake{sizeof(phalanx_handshake),  PHALANX_PLUGIN_ABI_VERSION,   \
                                             PHALANX_BUILD_FINGERPRINT,  LIBRARY_NAME,                 \
                                             LIBRARY_VERSION,            &phalanx_register_trampoline}; \
    return &handshake;                                                                                \
  }                                                                                                   \
  static void phalanx_register_plugins(::phalanx::Registrar& registrar)
