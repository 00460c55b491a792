# phalanx_add_test_suites(<target> <timeout>): one ctest test per GoogleTest suite of a test binary, where
# gtest_discover_tests makes one per test case.
#
# Why: every test process loads LibTorch and the plugins before its first test (0.84 s here), which was
# about half of the unit tests' time when each of their 612 cases ran in a process of its own
# (docs/reliability.md, "CI time"). The cases of a suite share a process, as every case already did in the
# sanitizer run's two GoogleTest shards (.ci/sanitize.sh), so none depends on running alone.
# `ctest -R Suite` runs a suite, `--output-on-failure` names the failing case, and
# `build/bin/phalanx_tests --gtest_filter=Suite.Case` runs one case.
#
# Like gtest_discover_tests, the list is read from the binary after each build (--gtest_list_tests), so a
# new suite needs no CMake change. This file is also the script that does it (cmake -P, below).

if(CMAKE_SCRIPT_MODE_FILE)
  # cmake -D BINARY=... -D OUT=... -D TIMEOUT=... -D WORKDIR=... -P GoogleTestSuites.cmake
  execute_process(COMMAND ${BINARY} --gtest_list_tests OUTPUT_VARIABLE listing ERROR_VARIABLE errors
                  RESULT_VARIABLE code TIMEOUT 60)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "${BINARY} --gtest_list_tests failed (${code}): ${errors}")
  endif()
  # Parameter values printed after a case may hold ';' or brackets, which CMake lists would split on.
  string(REGEX REPLACE "[][;]" "_" listing "${listing}")
  string(REPLACE "\n" ";" lines "${listing}")
  set(tests "")
  foreach(line IN LISTS lines)
    # A suite line is its name and a dot at the start of the line (cases are indented), maybe a comment.
    if(line MATCHES "^([A-Za-z_][A-Za-z0-9_/]*)\\.( |$)")
      set(suite ${CMAKE_MATCH_1})
      string(APPEND tests "add_test([=[${suite}]=] [=[${BINARY}]=] [=[--gtest_filter=${suite}.*]=])\n"
                          "set_tests_properties([=[${suite}]=] PROPERTIES TIMEOUT ${TIMEOUT} "
                          "WORKING_DIRECTORY [=[${WORKDIR}]=])\n")
    endif()
  endforeach()
  if(tests STREQUAL "")
    message(FATAL_ERROR "${BINARY} --gtest_list_tests listed no suite")
  endif()
  file(WRITE ${OUT} "${tests}")
  return()
endif()

set(PHALANX_TEST_SUITES_SCRIPT ${CMAKE_CURRENT_LIST_FILE})

function(phalanx_add_test_suites target timeout)
  set(list_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_suites.cmake)
  set(include_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_suites_include.cmake)
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -D BINARY=$<TARGET_FILE:${target}> -D OUT=${list_file} -D TIMEOUT=${timeout}
            -D WORKDIR=${CMAKE_CURRENT_BINARY_DIR} -P ${PHALANX_TEST_SUITES_SCRIPT}
    BYPRODUCTS ${list_file}
    VERBATIM)
  # ctest reads this; before the first build it reports the binary as not built instead of running nothing.
  file(WRITE ${include_file}
       "if(EXISTS [=[${list_file}]=])\n  include([=[${list_file}]=])\nelse()\n"
       "  add_test([=[${target}_NOT_BUILT]=] [=[${target}_NOT_BUILT]=])\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${include_file})
endfunction()
