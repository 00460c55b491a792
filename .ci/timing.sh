# Sourced by .ci/run: `timed NAME CMD...` runs one step and records its wall time; `breakdown` prints the
# table docs/reliability.md ("CI time") keeps: each step's wall time, the ten slowest tests of each ctest
# run and the compile time per target of each build folder.
declare -a ci_step_names=() ci_step_seconds=()

timed() {
  local name=$1 start=$SECONDS
  shift
  echo "=== ${name}: $*"
  "$@"
  ci_step_names+=("$name")
  ci_step_seconds+=($((SECONDS - start)))
  echo "=== ${name}: $((SECONDS - start)) s"
}

# Under .ci/run's `set -o pipefail`, `sort | head` fails with SIGPIPE (exit 141) once head stops reading, so
# the lists are cut by awk, which reads its whole input.
# The ten slowest tests of a ctest log (lines "  3/483 Test  #17: Suite.Name ....   Passed   12.34 sec").
slowest_tests() {
  grep -E 'Test +#[0-9]+: ' "$1" | sed -E 's/.*Test +#[0-9]+: ([^ ]+) .* ([0-9.]+) sec.*/\2 \1/' |
    sort -rn | awk 'NR <= 10 {printf "  %8.1f s  %s\n", $1, $2}'
}

# Compile and link seconds per target from a ninja log (summed over its objects; -j2 runs two at once).
compile_per_target() {
  awk -F'\t' 'NR > 1 {
      t = $4
      if (match(t, /CMakeFiles\/[^\/]+\.dir/)) t = substr(t, RSTART + 11, RLENGTH - 15)
      else { n = split(t, parts, "/"); t = parts[n] " (link)" }
      if (t ~ /^(aggregators|preaggregators|attacks|optimizers|data|models)_/) t = "built-in plugins (all)"
      s[t] += ($2 - $1) / 1000
    }
    END { for (t in s) printf "%8.1f s  %s\n", s[t], t }' "$1" | sort -rn | awk 'NR <= 12'
}

breakdown() {
  echo
  echo "=== CI breakdown (wall time per step)"
  local i total=0
  for i in "${!ci_step_names[@]}"; do
    printf '  %6d s  %s\n' "${ci_step_seconds[$i]}" "${ci_step_names[$i]}"
    total=$((total + ci_step_seconds[i]))
  done
  printf '  %6d s  total (%d min %d s)\n' "$total" $((total / 60)) $((total % 60))
  local log dir
  for log in build/ctest.log build-asan/ctest.log; do
    [[ -f $log ]] || continue
    echo "=== ten slowest tests in $log"
    slowest_tests "$log"
  done
  for dir in build build-fuzz build-asan; do
    [[ -f $dir/.ninja_log ]] || continue
    echo "=== compile + link seconds per target in $dir (summed over objects)"
    compile_per_target "$dir/.ninja_log"
  done
}
