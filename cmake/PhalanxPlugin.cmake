# phalanx_add_plugin(<target> SOURCES <files...> [LIBRARIES <libs...>] [OUTPUT_DIRECTORY <dir>])
#
# Builds one plugin library: a MODULE linked against the SDK, hidden visibility (only the handshake is
# exported), no "lib" prefix. Used for the built-in plugins and, through find_package(phalanx), for
# plugins written outside the source tree.
function(phalanx_add_plugin target)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  add_library(${target} MODULE ${ARG_SOURCES})
  if(TARGET phalanx::sdk)
    target_link_libraries(${target} PRIVATE phalanx::sdk ${ARG_LIBRARIES})
  else()
    target_link_libraries(${target} PRIVATE phalanx_sdk ${ARG_LIBRARIES})
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    CXX_STANDARD 17)
  # Inside the phalanx source tree only: the built-in plugins' shared precompiled header.
  if(TARGET phalanx_plugin_pch)
    target_precompile_headers(${target} REUSE_FROM phalanx_plugin_pch)
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  endif()
endfunction()
