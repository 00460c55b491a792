#!/usr/bin/env python3
"""Times ByzFL's aggregators and pre-aggregators, unmodified, on the input phalanx_bench uses.

Side by side with tests/bench/aggregators_bench.cpp (docs/BENCHMARKS.md, "Side by side with ByzFL"):
one thread, rows = torch.randn(n, d) float32, f = 15 at n = 64 (phalanx_bench's f = floor((n - 3) / 4)).
Each rule is called `--warmup` times (default once) untimed, then `--repeats` times; the median wall time is printed in ms.

    python3 tests/bench/byzfl_side_by_side.py --byzfl /path/to/byzfl-checkout [--rules krum,nnm] [--repeats 3]

Needs Python 3 with torch, numpy and scipy (Debian: python3-torch python3-scipy); CI does not run it.
Only byzfl/utils and byzfl/aggregators are imported: the package's own __init__ also imports its
training framework, which the aggregators do not use.
"""
import argparse
import importlib
import statistics
import sys
import time
import types

import torch


def load_byzfl(root):
    # A bare package object for `byzfl`, so that `byzfl.utils` and `byzfl.aggregators` import as in the
    # repository without running byzfl/__init__.py.
    package = types.ModuleType("byzfl")
    package.__path__ = [root + "/byzfl"]
    sys.modules["byzfl"] = package
    aggregators = importlib.import_module("byzfl.aggregators.aggregators")
    preaggregators = importlib.import_module("byzfl.aggregators.preaggregators")
    return aggregators, preaggregators


def rules(agg, pre, f):
    # phalanx name -> ByzFL object, each with the parameters phalanx_bench gives the phalanx rule where the
    # two share one (f, clip radius c = 1, bucket size s = 2); otherwise ByzFL's defaults.
    return {
        "mean": lambda: agg.Average(),
        "cm": lambda: agg.Median(),
        "tm": lambda: agg.TrMean(f=f),
        "gm": lambda: agg.GeometricMedian(),  # ByzFL defaults: nu = 0.1, T = 3 Weiszfeld steps
        "krum": lambda: agg.Krum(f=f),
        "multikrum": lambda: agg.MultiKrum(f=f),
        "cc": lambda: agg.CenteredClipping(),  # L = 1 iteration, tau = 100
        "meamed": lambda: agg.Meamed(f=f),
        "nnm": lambda: pre.NNM(f=f),
        "arc": lambda: pre.ARC(f=f),
        "bucketing": lambda: pre.Bucketing(s=2),
        "clip": lambda: pre.Clipping(c=1.0),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--byzfl", required=True, help="a checkout of github.com/LPD-EPFL/byzfl")
    parser.add_argument("--rules", default="", help="comma-separated phalanx names (default: all shared rules)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--d", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (0 for the slow rules)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    agg, pre = load_byzfl(args.byzfl)
    f = (args.n - 3) // 4
    table = rules(agg, pre, f)
    names = [r for r in args.rules.split(",") if r] or list(table)
    torch.manual_seed(0)
    rows = torch.randn(args.n, args.d)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, n {args.n}, d {args.d}, f {f}")
    for name in names:
        rule = table[name]()
        for _ in range(args.warmup):
            rule(rows)  # untimed, as phalanx_bench does
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            rule(rows)
            times.append(time.perf_counter() - start)
        print(f"byzfl/{name}/n{args.n}/d{args.d} {1e3 * statistics.median(times):.1f} ms "
              f"(min {1e3 * min(times):.1f}, {args.repeats} calls)", flush=True)


if __name__ == "__main__":
    main()
