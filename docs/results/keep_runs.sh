#!/bin/sh
# Copies what `phalanx report` reads from a sweep folder into a folder committed beside a study's doc, so a
# reader can regenerate every table and plot without rerunning the sweep (docs/results/README.md):
# sweep.yaml, and per run config.yaml, summary.json and metrics.csv. Then writes that folder's report.
#
#   sh docs/results/keep_runs.sh SWEEP_DIR DEST_DIR [PHALANX]
set -eu
src=$1
dest=$2
phalanx=${3:-./build/bin/phalanx}
[ -f "$src/sweep.yaml" ] || { echo "keep_runs: $src has no sweep.yaml: not a sweep folder" >&2; exit 2; }
mkdir -p "$dest"
cp "$src/sweep.yaml" "$dest/sweep.yaml"
count=0
for summary in $(cd "$src" && find . -name summary.json | sort); do
  run=$(dirname "$summary")
  mkdir -p "$dest/$run"
  for f in config.yaml summary.json metrics.csv; do cp "$src/$run/$f" "$dest/$run/$f"; done
  count=$((count + 1))
done
# --no-plots: the report's own SVG figures (small multiples, std bands) without gnuplot's PNGs, which draw
# every run as one line (unreadable past a few dozen runs, and hundreds of KB each).
"$phalanx" report "$dest" --no-plots > /dev/null
echo "keep_runs: $count runs and their report in $dest ($(du -sh "$dest" | cut -f1))"
