#!/usr/bin/env bash
# A bounded soak of the distributed mode (docs/distributed.md, "Soak"); ctest runs its short variant
# (KILLS=2 STEPS=30000, test soak.distributed_short).
#
# One asynchronous job (5 workers: 4 honest, 1 Byzantine that sends Gaussian garbage through its attack and
# malformed messages through PHALANX_FAULT), with honest workers killed (SIGKILL) at random moments and
# started again with `launch --rejoin`, and the server stopped once (SIGTERM: it drains, checkpoints and
# stops) and resumed with `launch --resume`. At the end it checks that nothing was lost:
#   - the run completed (status ok, exit 0) and keeps no checkpoint;
#   - metrics.csv has one row per evaluation step, in order, none lost or repeated;
#   - missing_messages = the number of workers killed (async counts one per loss);
#   - the log has one "rejoined" line per restart and one "resumed at update" line;
#   - rejected_messages = 3 malformed messages x 2 lifetimes of the Byzantine process (before and after the
#     resume), nonfinite_messages = 2 (one NaN message per lifetime).
#
# Usage: tests/soak/distributed_soak.sh [OUT_DIR]
# Environment: PHALANX (binary, default build/bin/phalanx), KILLS (workers killed, default 6), STEPS (server
# updates, default 60000), SEED (of the kill schedule, default 1).
set -u
PHALANX=${PHALANX:-build/bin/phalanx}
KILLS=${KILLS:-6}
STEPS=${STEPS:-60000}
SEED=${SEED:-1}
OUT=$(realpath -m "${1:-runs/distributed-soak}")
EVAL=1000
RANDOM=$SEED
[ -x "$PHALANX" ] || { echo "soak: no phalanx binary at $PHALANX (set PHALANX=...)"; exit 2; }
PHALANX=$(realpath "$PHALANX")
rm -rf "$OUT" && mkdir -p "$OUT"
WORK=$(mktemp -d)
declare -A PID
cleanup() {
  for r in "${!PID[@]}"; do kill -9 "${PID[$r]}" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/soak.yaml" <<EOF
name: soak
seed: $SEED
data: {name: synthetic, train_size: 4000, test_size: 500, features: 20, classes: 4, separation: 0.3}
model: {name: mlp, hidden: [32]}
workers: {count: 5, byzantine: 1}
attack: {name: gaussian, sigma: 100}
engine: {name: async, buffer: 3, timeout: 1}
aggregator: cc
optimizer: {name: sgd, lr: 0.05}
training: {batch_size: 16, budget: {steps: $STEPS}, eval_every: $EVAL}
EOF
(umask 077; openssl rand -hex 32 > "$WORK/run.key")
export WORLD_SIZE=6 MASTER_ADDR=127.0.0.1 PHALANX_KEY_FILE=$WORK/run.key
export MASTER_PORT=$(( 20000 + (RANDOM % 20000) ))
# Rank 5 (worker 4, the Byzantine one) also sends three malformed messages in each of its lifetimes.
FAULTS="5:nan@3,5:wrong_size@5,5:wrong_index@7"

fail() { echo "soak: FAILED: $*"; tail -20 "$OUT/log.txt" 2>/dev/null; exit 1; }
count() { local c; c=$(grep -c "$1" "$OUT/log.txt" 2>/dev/null); echo "${c:-0}"; }
# Waits until the server's log has at least $2 lines matching $1, at most $3 seconds.
wait_for() {
  for _ in $(seq $(( $3 * 10 ))); do [ "$(count "$1")" -ge "$2" ] && return 0; sleep 0.1; done
  fail "waited $3 s for $2 x '$1' in the server's log"
}
start() {  # start RANK ARGS...
  local r=$1; shift
  RANK=$r PHALANX_FAULT=$FAULTS "$PHALANX" launch "$@" > "$OUT/rank$r.$(date +%s%N).txt" 2>&1 &
  PID[$r]=$!
}
start_all() {  # start_all ARGS...: the server writes OUT
  for r in 0 1 2 3 4 5; do start "$r" "$@" --out "$OUT"; done
}
running() { kill -0 "${PID[0]}" 2>/dev/null || fail "the server ended before the faults were all injected (raise STEPS)"; }

kill_and_rejoin() {  # kill_and_rejoin N ARGS...: the N-th kill of this run
  local n=$1; shift
  local r=$(( 1 + RANDOM % 4 ))
  sleep "$(( 1 + RANDOM % 3 )).$(( RANDOM % 10 ))"
  running
  echo "soak: kill $n: worker $(( r - 1 )) (rank $r)"
  kill -9 "${PID[$r]}"
  wait "${PID[$r]}" 2>/dev/null
  wait_for "is gone" "$n" 30
  start "$r" "$@" --rejoin
  wait_for "rejoined at update" "$n" 90
}

started=$(date +%s)
start_all "$WORK/soak.yaml"
wait_for "step .*/$STEPS" 1 120
half=$(( KILLS / 2 ))
for n in $(seq 1 "$half"); do kill_and_rejoin "$n" "$WORK/soak.yaml"; done

echo "soak: stopping the server (SIGTERM), then resuming"
running
kill -TERM "${PID[0]}"
for r in 0 1 2 3 4 5; do wait "${PID[$r]}" 2>/dev/null; done
[ -s "$OUT/checkpoint.pt" ] || fail "no checkpoint after SIGTERM"
start_all --resume "$OUT"
wait_for "resumed at update" 1 120
for n in $(seq $(( half + 1 )) "$KILLS"); do kill_and_rejoin "$n" --resume "$OUT"; done

wait "${PID[0]}"; code=$?
for r in 1 2 3 4 5; do wait "${PID[$r]}" 2>/dev/null; done
PID=()
elapsed=$(( $(date +%s) - started ))

# The checks.
[ "$code" = 0 ] || fail "the server exited with $code"
grep -q '"status": "ok"' "$OUT/summary.json" || fail "summary.json: $(grep status "$OUT/summary.json")"
[ ! -e "$OUT/checkpoint.pt" ] || fail "a finished run keeps no checkpoint"
column() { awk -F, -v c="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } { print $k }' "$OUT/metrics.csv"; }
expected_steps=$(seq "$EVAL" "$EVAL" "$STEPS" | tr '\n' ' ')
[ "$(( STEPS % EVAL ))" = 0 ] || expected_steps="$expected_steps$STEPS "
got_steps=$(column step | tr '\n' ' ')
[ "$got_steps" = "$expected_steps" ] || fail "metrics rows lost or repeated: steps '$got_steps', expected '$expected_steps'"
last() { column "$1" | tail -1; }
[ "$(last missing_messages)" = "$KILLS" ] || fail "missing_messages $(last missing_messages), expected $KILLS (workers killed)"
[ "$(count 'rejoined at update')" = "$KILLS" ] || fail "$(count 'rejoined at update') rejoins logged, expected $KILLS"
[ "$(count 'resumed at update')" = 1 ] || fail "$(count 'resumed at update') resumes logged, expected 1"
[ "$(last rejected_messages)" = 6 ] || fail "rejected_messages $(last rejected_messages), expected 6 (3 per Byzantine lifetime)"
[ "$(last nonfinite_messages)" = 2 ] || fail "nonfinite_messages $(last nonfinite_messages), expected 2"
rows=$(( $(wc -l < "$OUT/metrics.csv") - 1 ))
echo "soak: PASSED in ${elapsed} s: $STEPS updates, $KILLS workers killed and rejoined, 1 server stop + resume," \
     "$(last rejected_messages) malformed messages rejected, $(last missing_messages) losses counted, $rows metrics rows" \
     "(0 lost), final test accuracy $(last test_accuracy)"
