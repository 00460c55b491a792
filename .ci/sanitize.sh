#!/usr/bin/env bash
# Issue 6: the unit, integration, hostile-input and distributed tests under AddressSanitizer +
# UndefinedBehaviorSanitizer, in a build folder of their own (build-asan; the normal build/ is untouched).
# The runtime options (abort on any finding, leak suppressions) are compiled into the executables, so the
# ctest line below is all it takes to rerun by hand. docs/reliability.md, "Sanitizer run", says what runs,
# how long it takes and what it found.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-asan

# -O1 -g1: optimised (NDEBUG, as shipped) and with function names and line numbers in the reports, at half
# the compile time of RelWithDebInfo's -O2 -g (a LibTorch translation unit: 22 s instead of 47 s here),
# which is what a fresh CI machine pays since ccache cannot reuse the normal build's objects.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DPHALANX_SANITIZE=ON
# The test binaries pull in the CLI and every plugin; the benchmarks are left out (never run by ctest).
cmake --build "$build" -j2 --target phalanx_tests phalanx_hostile_tests phalanx_distributed_tests
ctest --test-dir "$build" -j2 --output-on-failure
