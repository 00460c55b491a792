#!/usr/bin/env bash
# The tests that drive the SDK, the core and the plugins under AddressSanitizer + UndefinedBehaviorSanitizer,
# in a build folder of their own (build-asan; the normal build/ is untouched).
# The runtime options (abort on any finding, leak suppressions) are compiled into the executables, so the
# two commands at the end are all it takes to rerun by hand. docs/reliability.md, "Sanitizer run", says what runs,
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
# What runs here is what the sanitizers can find something in: every in-process test of the SDK, the core
# and the plugins, the hostile-input suite (the CLI's error paths, each case a sanitized `phalanx` process),
# the distributed tests of message checks (authentication in-process; malformed, forged, replayed and
# altered messages through real processes), and the short CLI cases. Left out, because they run once in
# the normal build and would only repeat long training runs in sanitized processes (docs/reliability.md,
# "CI time"): the kill-and-resume runs, the sweep and Fashion-MNIST end-to-end runs, the other
# multi-process distributed runs (resume, rejoin, the round context on both servers), and the installed-SDK
# example build. The preflight's accuracy test compares an estimate with the measured RSS, which ASan's
# shadow memory inflates by design. The recorded-
# metrics tests compare with rows recorded from the Release build: this build's -O1 rounds the float64
# honest-deviation metric differently in its last digits (seen: 0.006744283266196799 vs ...15705683), which
# is a property of the flags, not a bug, so they run in the normal pass only. Results.* regenerates every
# committed study's report from its runs (thousands of small files): the report code it drives runs here in
# the report tests and in the report fuzz harness, so repeating it on every committed run adds minutes and
# no new path.
slow_end_to_end='^(KilledRun\.(Sync|Async|Sigterm)|Sweep\.(RunsInParallel|FailedRuns)|SweepShard\.|Cli\.(EndToEnd|Compare)'
slow_end_to_end+='|distributed\.Distributed\.(SyncRun|AsyncRun|AsyncBuffered|SyncRound|WorkersLeave|Interrupt|Uninvited|BothServers)'
slow_end_to_end+='|example_plugin_against_installed_sdk|report_renders_in_chromium'
slow_end_to_end+='|Preflight\.EstimateIsWithinAFactorOfTheMeasuredPeak|RecordedMetrics\.)'
# The same exclusions as a GoogleTest filter, for the unit-test binary run directly below.
unit_filter='-KilledRun.Sync*:KilledRun.Async*:KilledRun.Sigterm*:Sweep.RunsInParallel*:Sweep.FailedRuns*'
unit_filter+=':SweepShard.*:Cli.EndToEnd*:Cli.Compare*:Preflight.EstimateIsWithinAFactorOfTheMeasuredPeak*:RecordedMetrics.*'
unit_filter+=':Results.*'
set -o pipefail
# The in-process tests run as two halves of the unit-test binary side by side (GoogleTest shards), not one
# sanitized process per test case: starting a process that loads LibTorch and every plugin under ASan costs
# about as much as most of these tests, and there are several hundred of them. Each half aborts on the
# first finding, like the per-test runs did.
for shard in 0 1; do
  GTEST_TOTAL_SHARDS=2 GTEST_SHARD_INDEX=$shard "$build/bin/phalanx_tests" --gtest_filter="$unit_filter" \
    --gtest_brief=1 > "$build/unit_shard$shard.log" 2>&1 &
  pids[$shard]=$!
done
unit_failed=0
for shard in 0 1; do
  if ! wait "${pids[$shard]}"; then unit_failed=1; cat "$build/unit_shard$shard.log"; fi
  tail -n 3 "$build/unit_shard$shard.log"
done
# Then the tests that start processes: the hostile-input suite and the distributed message checks.
ctest --test-dir "$build" -j2 --output-on-failure -R '^(Cases/Hostile|distributed\.)' -E "$slow_end_to_end" \
  | tee "$build/ctest.log"
exit $unit_failed
