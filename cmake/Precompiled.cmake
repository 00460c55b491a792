# Precompiled headers and unity batches for the LibTorch-heavy translation units (docs/reliability.md, "CI time").
#
# Almost every source of ours includes <ATen/ATen.h>, which costs g++ about 4.5 s to parse per translation
# unit; a fresh CI machine compiles some 120 of them twice (the Release build and the sanitizer build).
# Precompiling it once per target and once for all built-in plugins saves most of that parse.
#
# Out-of-tree plugins (find_package(phalanx)) never see this file: phalanx_add_plugin uses the shared
# plugin header only when the target `phalanx_plugin_pch` exists, i.e. inside this source tree.
option(PHALANX_PCH "Precompile <ATen/ATen.h> (and GoogleTest for the tests): faster cold builds" ON)

set(PHALANX_PCH_HEADERS <ATen/ATen.h> <string> <vector> <memory> <functional> <unordered_map> <map>)

# Unity build of the targets with many LibTorch-heavy sources (the core, the CLI, the unit tests and the
# fuzz build's libraries): CMake compiles them in batches of 8 files, so each batch instantiates the ATen
# and GoogleTest templates they share once instead of once per file. A cold Release build of phalanx_core
# (with the SDK it needs, ccache off) took 5 min 11 s without it and 2 min 59 s with it
# (docs/reliability.md, "CI time"). A change to one file recompiles its batch, so
# a developer iterating on one file may prefer -DPHALANX_UNITY=OFF. The SDK stays out: its kernels are what
# the benchmarks measure, compiled one file at a time as before.
option(PHALANX_UNITY "Compile the core, the CLI and the unit tests as unity batches: faster cold builds" ON)

function(phalanx_unity target)
  if(PHALANX_UNITY)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 8)
  endif()
endfunction()

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
