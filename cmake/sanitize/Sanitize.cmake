# PHALANX_SANITIZE=ON: every target of ours (SDK, core, CLI, plugins, test plugins, tests) is compiled and
# linked with AddressSanitizer + UndefinedBehaviorSanitizer. Issue 6 asks for it; .ci/sanitize.sh runs the
# tests under it and docs/reliability.md ("Sanitizer run") says what runs and what was found.
#
# LibTorch, yaml-cpp, spdlog and Boost stay uninstrumented: ASan still sees every heap block they allocate
# (malloc is intercepted), it just cannot see out-of-bounds accesses made *inside* them.
#
# -fno-sanitize-recover=undefined: a UBSan finding aborts instead of printing and going on, so it fails
# the test that triggered it. -fno-omit-frame-pointer: readable stack traces from the fast unwinder.
set(PHALANX_SANITIZE_FLAGS
  -fsanitize=address,undefined
  -fno-sanitize-recover=undefined
  -fno-omit-frame-pointer)
add_compile_options(${PHALANX_SANITIZE_FLAGS})
add_link_options(${PHALANX_SANITIZE_FLAGS})

set(PHALANX_SANITIZE_DIR ${CMAKE_CURRENT_LIST_DIR})

# The runtime options (abort on any finding, suppressions) are compiled into each executable, see
# defaults.cpp. Called from the top-level CMakeLists.txt once every target exists.
function(phalanx_sanitize_executables dir)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(target ${targets})
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "EXECUTABLE")
      target_sources(${target} PRIVATE ${PHALANX_SANITIZE_DIR}/defaults.cpp)
      set_source_files_properties(${PHALANX_SANITIZE_DIR}/defaults.cpp TARGET_DIRECTORY ${target} PROPERTIES
        COMPILE_DEFINITIONS "PHALANX_SANITIZE_DIR=\"${PHALANX_SANITIZE_DIR}\"")
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(subdir ${subdirs})
    phalanx_sanitize_executables(${subdir})
  endforeach()
endfunction()
