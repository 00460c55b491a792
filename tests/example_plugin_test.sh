#!/usr/bin/env bash
# Installs this build into a temporary prefix, builds examples/trimmed_mean_plugin against the *installed*
# SDK with find_package(phalanx), and runs it in a pipeline with the installed phalanx.
set -euo pipefail
src=$1
build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -x "$work/prefix/bin/phalanx"
test -f "$work/prefix/include/phalanx/plugin.hpp"
test -f "$work/prefix/lib/cmake/phalanx/phalanxConfig.cmake"
ls "$work/prefix/lib/phalanx/plugins/"aggregators_cc.so > /dev/null

cmake -S "$src/examples/trimmed_mean_plugin" -B "$work/example" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$work/configure.log"
cmake --build "$work/example" -j2 > "$work/build.log" || { cat "$work/build.log"; exit 1; }

export PHALANX_PLUGIN_PATH="$work/example"
# Listed into a file first: `| grep -q` would close the pipe at the first match and, under pipefail, fail
# on the SIGPIPE phalanx then gets while it still writes the rest of the list.
"$work/prefix/bin/phalanx" plugins aggregator > "$work/plugins.txt"
grep -q "example_trimmed_mean" "$work/plugins.txt"
"$work/prefix/bin/phalanx" run "$src/examples/trimmed_mean_plugin/pipeline.yaml" --out "$work/run"
grep -q '"status": "ok"' "$work/run/summary.json"
# The plugin must actually have learned something under the attack.
acc=$(sed -n 's/.*"test_accuracy": \([0-9.e-]*\).*/\1/p' "$work/run/summary.json")
awk -v a="$acc" 'BEGIN { exit !(a > 0.6) }' || { echo "accuracy $acc too low"; exit 1; }
echo "example plugin OK: accuracy $acc"
