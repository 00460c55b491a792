#!/usr/bin/env python3
"""The quick start's cm / bit-flipping cell as a plain PyTorch loop with ByzFL's median, timed against `phalanx run`.

Side by side with `phalanx run` of the same cell (docs/BENCHMARKS.md, "Training side by side with PyTorch and
ByzFL"). The cell, as configs/quickstart.yaml sets it: Fashion-MNIST (standardised with the training set's mean
and standard deviation), iid split over 8 workers of which the last 3 are Byzantine, the MLP 784-200-10 with
ReLU, batch 32 per worker, ByzSGDnm (worker momentum beta = 0.9, u = g on a worker's first step; server
w <- w - lr_t * u / max(||u||, 1e-12), lr = 0.1 on a cosine schedule), the coordinate-wise median (ByzFL's
`Median`, unmodified) and bit-flipping with scale 10 (each Byzantine worker sends -10 times its own momentum),
a test evaluation every 100 steps and at the end, in batches of 1000. The loop is what a user writes: one model,
`loss.backward()`, the gradients concatenated, the parameters written back with `vector_to_parameters`.

Each round runs, for every thread count T, `phalanx run` of the cell with `training.threads: T` and then this
loop in a fresh Python process with `torch.set_num_threads(T)`, alternately, and prints for both the wall time
of the whole process and of the training loop alone (phalanx: summary.json's `time.total_s`; the loop: from its
first step to its last evaluation), and their ratios.

    /usr/bin/python3 tests/bench/pytorch_side_by_side.py --phalanx build/bin/phalanx --byzfl BYZFL_CHECKOUT \\
        [--threads 1,2] [--rounds 2] [--steps 469]

Needs Python 3 with torch and numpy (Debian: python3-torch); only byzfl/utils and byzfl/aggregators are
imported, as in tests/bench/byzfl_side_by_side.py. CI does not run it.
"""
import argparse
import gzip
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import types

WORKERS, BYZANTINE, BATCH, LR, BETA, SCALE, EVAL_EVERY, EVAL_BATCH = 8, 3, 32, 0.1, 0.9, 10.0, 100, 1000
QUICKSTART_STEPS = math.ceil(2 * 60000 / (WORKERS * BATCH))  # budget: {epochs: 2} as the engine counts it

CELL = """name: cm_bitflip
seed: 1
data: {{name: fashion_mnist, partition: iid, path: {data}}}
model: {{name: mlp, hidden: [200]}}
workers: {{count: 8, byzantine: 3}}
optimizer: {{name: byzsgdnm, lr: 0.1, beta: 0.9, schedule: cosine}}
aggregator: {{name: cm}}
attack: {{name: bitflip, scale: 10}}
training:
  batch_size: 32
  budget: {{steps: {steps}}}
  eval_every: 100
  threads: {threads}
"""


def load_byzfl_median(root):
    package = types.ModuleType("byzfl")  # as tests/bench/byzfl_side_by_side.py: skip byzfl/__init__.py
    package.__path__ = [root + "/byzfl"]
    sys.modules["byzfl"] = package
    return importlib.import_module("byzfl.aggregators.aggregators").Median()


def read_idx(path, header):
    import numpy as np
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def training_loop(args):
    import torch
    import torch.nn.functional as F
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    torch.set_num_threads(args.threads)
    median = load_byzfl_median(args.byzfl)
    torch.manual_seed(1)
    load = lambda stem, header: torch.from_numpy(read_idx(f"{args.data}/{stem}.gz", header).copy())
    train_x = load("train-images-idx3-ubyte", 16).float().div_(255).view(-1, 784)
    train_y = load("train-labels-idx1-ubyte", 8).long()
    test_x = load("t10k-images-idx3-ubyte", 16).float().div_(255).view(-1, 784)
    test_y = load("t10k-labels-idx1-ubyte", 8).long()
    mean, std = train_x.mean().item(), train_x.std().item()
    train_x.sub_(mean).div_(std)
    test_x.sub_(mean).div_(std)

    order = torch.randperm(train_x.size(0))
    parts = [order[w::WORKERS] for w in range(WORKERS)]
    cursors = [len(p) for p in parts]  # each worker reshuffles its own samples when it has used them all

    def next_batch(w):
        nonlocal parts
        if cursors[w] + BATCH > len(parts[w]):
            parts[w] = parts[w][torch.randperm(len(parts[w]))]
            cursors[w] = 0
        batch = parts[w][cursors[w]:cursors[w] + BATCH]
        cursors[w] += BATCH
        return batch

    model = torch.nn.Sequential(torch.nn.Linear(784, 200), torch.nn.ReLU(), torch.nn.Linear(200, 10))
    params = list(model.parameters())
    momentum = [None] * WORKERS
    honest = WORKERS - BYZANTINE
    accuracy = float("nan")
    started = time.perf_counter()
    for step in range(args.steps):
        lr = 0.5 * LR * (1 + math.cos(math.pi * step / args.steps))
        rows = []
        for w in range(WORKERS):
            batch = next_batch(w)
            model.zero_grad()
            F.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
            g = torch.cat([p.grad.reshape(-1) for p in params])
            momentum[w] = g.clone() if momentum[w] is None else momentum[w].mul_(BETA).add_(g, alpha=1 - BETA)
            rows.append(momentum[w] if w < honest else -SCALE * momentum[w])
        update = median(torch.stack(rows))
        with torch.no_grad():
            flat = parameters_to_vector(params)
            flat.sub_(update, alpha=lr / max(update.norm().item(), 1e-12))
            vector_to_parameters(flat, params)
        if (step + 1) % EVAL_EVERY == 0 or step + 1 == args.steps:
            with torch.no_grad():
                correct = sum((model(test_x[i:i + EVAL_BATCH]).argmax(1) == test_y[i:i + EVAL_BATCH]).sum().item()
                              for i in range(0, test_x.size(0), EVAL_BATCH))
            accuracy = correct / test_x.size(0)
    print(json.dumps({"loop_s": time.perf_counter() - started, "test_accuracy": accuracy}))


def timed(command, env=None):
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, done.stdout


def run_phalanx(args, threads, folder):
    config = os.path.join(folder, f"cell_t{threads}.yaml")
    with open(config, "w") as f:
        f.write(CELL.format(data=args.data, steps=args.steps, threads=threads))
    out = os.path.join(folder, f"run_t{threads}")
    wall, _ = timed([args.phalanx, "run", config, "--out", out])
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    return wall, summary["time"]["total_s"], summary["test_accuracy"]


def run_loop(args, threads):
    command = [sys.executable, os.path.abspath(__file__), "--loop", "--byzfl", args.byzfl, "--data", args.data,
               "--steps", str(args.steps), "--threads", str(threads)]
    wall, out = timed(command)
    result = json.loads(out.strip().splitlines()[-1])
    return wall, result["loop_s"], result["test_accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phalanx", default="build/bin/phalanx")
    parser.add_argument("--byzfl", required=True, help="a checkout of github.com/LPD-EPFL/byzfl")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--steps", type=int, default=QUICKSTART_STEPS)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (--loop: one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loop", action="store_true", help="run only the PyTorch loop (used by the timer)")
    args = parser.parse_args()
    if args.loop:
        args.threads = int(args.threads)
        return training_loop(args)
    print(f"{args.steps} steps; wall s (process / training loop), test accuracy at the end", flush=True)
    print("| round | threads | phalanx process | phalanx loop | PyTorch process | PyTorch loop | "
          "PyTorch / phalanx (process) | (loop) | accuracy phalanx / PyTorch |", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for r in range(args.rounds):
            for threads in [int(t) for t in args.threads.split(",")]:
                p_wall, p_loop, p_acc = run_phalanx(args, threads, folder)
                t_wall, t_loop, t_acc = run_loop(args, threads)
                print(f"| {r + 1} | {threads} | {p_wall:.2f} | {p_loop:.2f} | {t_wall:.2f} | {t_loop:.2f} | "
                      f"{t_wall / p_wall:.2f} | {t_loop / p_loop:.2f} | {p_acc:.4f} / {t_acc:.4f} |", flush=True)


if __name__ == "__main__":
    main()
