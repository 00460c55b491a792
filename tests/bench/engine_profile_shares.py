#!/usr/bin/env python3
"""Splits a profile of one synchronous `phalanx run` into forward/backward and the engine's own parts.

Reads `perf script -F comm,tid,ip,sym` output of `perf record --call-graph dwarf` (docs/BENCHMARKS.md, "Engine
overhead on the quick start: CPU-time profile"). Only samples under run_sync count; each is put in the first
part below whose function appears in its call stack, so a sample of the momentum update is "rule", not
"compute_messages". Setup, evaluation, aggregation and the server update are not engine overhead. Printed per
file: the samples of forward/backward (FlatModel::loss_and_gradient, which includes flattening the gradient)
and every part as a percentage of them. Sampling counts CPU time only, so other processes on the machine
slow both sides alike instead of inflating whichever timer they interrupt.

    perf record --call-graph dwarf,16384 -F 500 -o p.data ./build/bin/phalanx run cell.yaml --out DIR
    perf script -i p.data -F comm,tid,ip,sym > cell.txt
    python3 tests/bench/engine_profile_shares.py cell.txt [more.txt ...]
"""
import collections
import sys

NOT_ENGINE = ("setup", "evaluation", "fb", "aggregation", "update")
PARTS = [  # (part, functions that put a sample in it), first match wins
    ("setup", ("prepare_run", "RunSetup::~RunSetup", "build_replicas", "make_plugins",
               "MetricsTracker::MetricsTracker", "RoundContextSource::RoundContextSource")),
    ("evaluation", ("MetricsTracker::evaluate",)),
    ("fb", ("FlatModel::loss_and_gradient",)),
    ("aggregation", ("aggregate_rows",)),
    ("update", ("::apply(", "Sgdnm::apply", "Sgdm::apply", "Optimizer::apply")),
    ("rule", ("WorkerRule::message",)),
    ("attack", ("::craft",)),
    ("honest_deviation", ("add_honest_comparison", "compare_with_honest_mean", "honest_block_sums")),
    ("batches", ("draw_batch",)),
    ("finiteness", ("diverged_on", "count_nonfinite_rows")),
    ("message_copy", ("compute_messages",)),  # what is left in compute_messages: the copy into the matrix
    ("round_context", ("RoundContextSource::context",)),
]


def stacks(path):
    frames = None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if frames is not None:
                yield frames
            frames = None
        elif line[0] in "\t ":
            if frames is not None:
                frames.append(line.strip().split(" ", 1)[-1])
        else:
            frames = []
    if frames:
        yield frames


def shares(path):
    counts = collections.Counter()
    for frames in stacks(path):
        if not any("run_sync" in f for f in frames):
            continue
        part = next((name for name, keys in PARTS if any(k in f for f in frames for k in keys)), "other")
        counts[part] += 1
    return counts


def main():
    for path in sys.argv[1:]:
        c = shares(path)
        fb = max(c["fb"], 1)
        engine = sum(v for k, v in c.items() if k not in NOT_ENGINE)
        parts = ", ".join(f"{k} {100 * c[k] / fb:.0f}" for k, _ in PARTS[5:] + [("other", ())])
        print(f"{path}: forward/backward {c['fb']} samples; engine / forward-backward {100 * engine / fb:.0f} % "
              f"({parts}); aggregation {100 * c['aggregation'] / fb:.0f}, update {100 * c['update'] / fb:.0f}")


if __name__ == "__main__":
    main()
