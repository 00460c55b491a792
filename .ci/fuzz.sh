#!/usr/bin/env bash
# Fuzzing step of CI (docs/reliability.md "Fuzzing"): builds the libFuzzer harnesses of tests/fuzz with
# clang-14 in build-fuzz/, replays the inputs of tests/fuzz/regressions/ once, then runs each harness for
# PHALANX_FUZZ_SECONDS (default 45) from its seeds, two harnesses at a time. New corpus entries and crash
# inputs go to a scratch folder, never into the repository. Exits non-zero on any crash, sanitizer report, leak, slow input
# (-timeout) or memory blow-up (-rss_limit_mb), after running every harness; the input is kept and named.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${PHALANX_FUZZ_SECONDS:-45}
build=${PHALANX_FUZZ_BUILD:-build-fuzz}
work=${PHALANX_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/phalanx-fuzz.XXXXXX")}

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPHALANX_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$build" -j2

# The input libFuzzer saved for a failure (crash-, leak-, timeout-, oom- or slow-unit-<sha1>).
artifact() {
  local f
  for f in "$1"/crash-* "$1"/leak-* "$1"/timeout-* "$1"/oom-* "$1"/slow-unit-*; do
    [[ -e $f ]] && { echo "$f"; return; }
  done
  echo "no input saved, see $1/fuzz.log"
}

# Inputs longer than a real file of the kind buy nothing but slower runs; CIFAR-10 needs whole records.
declare -A max_len=([config]=8192 [idx]=4096 [cifar10]=12292 [speed_trace]=2048 [report]=16384)
# One harness: its regression inputs once, then fuzzing from its seeds; the verdict goes to $work/<name>/result.
fuzz_one() {
  local name=$1 bin=$build/tests/fuzz/${1}_fuzz dir=$work/$1 result=ok
  mkdir -p "$dir/corpus"
  cp tests/fuzz/corpus/$name/* "$dir/corpus/"
  # The config loader also starts from every shipped config and every hostile-input case.
  if [[ $name == config ]]; then
    find configs -name '*.yaml' -exec cp --backup=numbered {} "$dir/corpus/" \;
    cp tests/hostile/*.yaml "$dir/corpus/"
  fi
  local opts=(-max_len="${max_len[$name]}" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$dir/")
  export TMPDIR=$dir  # the harnesses' scratch files go with the rest
  if [[ -d tests/fuzz/regressions/$name ]]; then
    "$bin" "${opts[@]}" tests/fuzz/regressions/$name/* >"$dir/regressions.log" 2>&1 || result="regression input fails (see $dir/regressions.log)"
  fi
  if [[ $result == ok ]]; then
    "$bin" "${opts[@]}" -max_total_time="$seconds" -print_final_stats=1 "$dir/corpus" >"$dir/fuzz.log" 2>&1 ||
      result="FAILED: $(artifact "$dir")"
  fi
  echo "$result" >"$dir/result"
}

# Two harnesses at a time (each fuzzes on one core), so the step costs about half the harnesses' seconds.
names=(config idx cifar10 speed_trace report)
running=0
for name in "${names[@]}"; do
  fuzz_one "$name" &
  running=$((running + 1))
  if ((running >= 2)); then
    wait -n
    running=$((running - 1))
  fi
done
wait

failed=()
printf '%-12s %10s %8s %s\n' harness executions exec/s result
for name in "${names[@]}"; do
  dir=$work/$name
  result=$(cat "$dir/result" 2>/dev/null || echo "FAILED: no verdict (see $dir)")
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$dir/fuzz.log" 2>/dev/null || true)
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$dir/fuzz.log" 2>/dev/null || true)
  printf '%-12s %10s %8s %s\n' "$name" "${execs:--}" "${rate:--}" "$result"
  if [[ $result != ok ]]; then
    failed+=("$name")
    grep -E -A25 'FUZZ FINDING|ERROR:|runtime error' "$dir"/*.log | head -40 || true
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: failed: ${failed[*]} (inputs and logs in $work)"
  exit 1
fi
echo "fuzz: all harnesses clean for ${seconds}s each (logs in $work)"
