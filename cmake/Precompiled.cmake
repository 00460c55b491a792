# Precompiled headers for the LibTorch-heavy translation units (docs/reliability.md, "CI time").
#
# Almost every source of ours includes <ATen/ATen.h>, which costs g++ about 4.5 s to parse per translation
# unit; a fresh CI machine compiles some 120 of them twice (the Release build and the sanitizer build).
# Precompiling it once per target and once for all built-in plugins saves most of that parse.
#
# Out-of-tree plugins (find_package(phalanx)) never see this file: phalanx_add_plugin uses the shared
# plugin header only when the target `phalanx_plugin_pch` exists, i.e. inside this source tree.
option(PHALANX_PCH "Precompile <ATen/ATen.h> (and GoogleTest for the tests): faster cold builds" ON)

set(PHALANX_PCH_HEADERS <ATen/ATen.h> <string> <vector> <memory> <functional> <unordered_map> <map>)

# Gives `target` a precompiled header of its own, with `extra` headers added (e.g. <gtest/gtest.h>).
function(phalanx_precompile target)
  if(PHALANX_PCH)
    target_precompile_headers(${target} PRIVATE ${PHALANX_PCH_HEADERS} ${ARGN})
  endif()
endfunction()

# Uses the precompiled header of `from`, whose compile flags and definitions `target` shares: for targets
# of one or two sources, which a header of their own would cost more than it saves.
function(phalanx_reuse_precompiled target from)
  if(PHALANX_PCH)
    target_precompile_headers(${target} REUSE_FROM ${from})
  endif()
endfunction()

# One precompiled header for every built-in plugin: plugins are one translation unit each, so a header of
# their own would cost more than it saves. It is compiled in an object library with the plugins' flags
# (hidden visibility, position-independent code, the SDK's include path and LibTorch's definitions), which
# g++ requires for a precompiled header to be used.
function(phalanx_add_plugin_pch)
  if(PHALANX_PCH)
    add_library(phalanx_plugin_pch OBJECT ${PROJECT_SOURCE_DIR}/cmake/pch_anchor.cpp)
    target_link_libraries(phalanx_plugin_pch PRIVATE phalanx_sdk)
    set_target_properties(phalanx_plugin_pch PROPERTIES
      POSITION_INDEPENDENT_CODE ON
      CXX_VISIBILITY_PRESET hidden
      VISIBILITY_INLINES_HIDDEN ON)
    target_precompile_headers(phalanx_plugin_pch PRIVATE ${PHALANX_PCH_HEADERS})
  endif()
endfunction()
