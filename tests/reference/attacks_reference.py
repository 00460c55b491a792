"""Reference outputs for tests/plugins/defence_attacks_test.cpp: ByzFL's Optimal_ALittleIsEnough and
Optimal_InnerProductManipulation, unmodified, and a transcription of the AGR-tailored search of Shejwalkar and
Houmansadr (NDSS 2021; the released notebooks' our_attack_trmean, with the min-max / min-sum tests of their
our_attack_dist / our_attack_score as the constraint), each on fixed small inputs against ByzFL's own
aggregators as the defence.

    git clone https://github.com/LPD-EPFL/byzfl
    git clone https://github.com/vrt1shjwlkr/NDSS21-Model-Poisoning ndss21   # f2879cd
    python3 tests/reference/attacks_reference.py byzfl ndss21

The second checkout is optional: with it, the paper's own our_attack_trmean, our_attack_dist (min-max) and
our_attack_score (min-sum) are extracted from cifar10/release-fedsgd-alexnet-trmean.ipynb, run on CPU (their
.cuda() calls removed) and checked against the transcription below: our_attack_trmean equals it with no
constraint, and with a stub defence whose k-th call returns mean_h + k e_1 (every evaluation improves) the
constrained search reduces to our_attack_dist / our_attack_score.

Needs numpy and torch (Debian: python3-numpy python3-torch). Not part of CI: the numbers it prints are pasted
into the C++ test. The Byzantine rows go after the honest ones, the order ByzFL's attacks and the phalanx
defence oracle use.
"""
import importlib
import sys
import types

import numpy as np


def load_byzfl(checkout):
    # Import byzfl.aggregators and byzfl.attacks without byzfl/__init__.py (it pulls in the training framework).
    package = types.ModuleType("byzfl")
    package.__path__ = [checkout + "/byzfl"]
    sys.modules["byzfl"] = package
    return importlib.import_module("byzfl.aggregators"), importlib.import_module("byzfl.attacks")


def float32_rows(seed, n, d, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) * scale + shift).astype(np.float32).astype(np.float64)


def show(name, value):
    print(f"{name}: {{" + ", ".join(f"{v:.9g}" for v in np.asarray(value).ravel()) + "}")


def defence(pre, agg):
    def run(rows):
        for p in pre:
            rows = p(rows)
        return agg(rows)
    return run


def tailored(honest, b, run, perturbation, constraint, gamma_init=10.0, tol=1e-5):
    """The halving search of our_attack_trmean (lamda, lamda_succ, lamda_fail, prev_loss), with the stealth
    test of our_attack_dist (minmax) or our_attack_score (minsum) required before the defence is queried."""
    mean = honest.mean(axis=0)
    if perturbation == "std":
        p = -honest.std(axis=0, ddof=1)
    elif perturbation == "unit":
        p = -mean / np.linalg.norm(mean)
    else:
        p = -np.sign(mean)
    dist = ((honest[:, None, :] - honest[None, :, :]) ** 2).sum(axis=2)

    def allowed(gamma):
        m = mean + gamma * p
        to_honest = ((honest - m) ** 2).sum(axis=1)
        if constraint == "minmax":
            return to_honest.max() <= dist.max()
        if constraint == "minsum":
            return to_honest.sum() <= dist.sum(axis=1).min()
        return True

    gamma, step, succ, prev = gamma_init, gamma_init, 0.0, -1.0
    while abs(succ - gamma) > tol:
        ok = allowed(gamma)
        if ok:
            rows = np.concatenate([honest, np.tile(mean + gamma * p, (b, 1))])
            loss = np.linalg.norm(run(rows) - mean)
            ok = loss > prev
            prev = loss
        if ok:
            succ = gamma
            gamma = gamma + step / 2
        else:
            gamma = gamma - step / 2
        step = step / 2
    return mean + succ * p, succ


def load_paper_functions(checkout):
    # The notebook's cells that define the functions, run as they are apart from .cuda().
    import json
    import torch
    cells = json.load(open(checkout + "/cifar10/release-fedsgd-alexnet-trmean.ipynb"))["cells"]
    namespace = {"torch": torch, "np": np}
    for cell in cells:
        source = "".join(cell["source"])
        if any(f"def {name}(" in source for name in ("tr_mean", "our_attack_trmean", "our_attack_dist", "our_attack_score")):
            exec(source.replace(".cuda()", ""), namespace)
    return namespace


class Stub:
    """A defence whose k-th call returns mean_h + k e_1: every evaluation improves on the previous one."""

    def __init__(self, mean):
        self.mean, self.calls = mean, 0

    def __call__(self, rows):
        self.calls += 1
        out = self.mean.copy()
        out[0] += self.calls
        return out


def check_against_paper(checkout, honest, agg):
    import torch
    paper = load_paper_functions(checkout)
    updates = torch.tensor(honest)
    mean = updates.mean(0)
    for dev in ("std", "unit_vec", "sign"):
        perturbation = {"std": "std", "unit_vec": "unit", "sign": "sign"}[dev]
        rows = paper["our_attack_trmean"](updates, mean, 2, dev_type=dev)
        mine, _ = tailored(honest, 2, defence([], agg.TrMean(f=2)), perturbation, "none")
        assert np.allclose(rows[0].numpy(), mine, rtol=1e-6), (dev, rows[0], mine)
        for constraint, function in (("minmax", "our_attack_dist"), ("minsum", "our_attack_score")):
            want = paper[function](updates, mean, 2, dev_type=dev).numpy()
            mine, _ = tailored(honest, 2, Stub(honest.mean(axis=0)), perturbation, constraint)
            assert np.allclose(want, mine, rtol=1e-6), (dev, constraint, want, mine)
    print("the paper's own functions agree with the transcription (no constraint; min-max, min-sum with the stub)")


def main(checkout, paper_checkout=None):
    agg, att = load_byzfl(checkout)
    example = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    documented = dict(agg=agg.TrMean(f=1), pre_agg_list=[agg.NNM(f=1), agg.Clipping(c=2.0)], f=1)

    print("== ByzFL's documented examples: TrMean(f=1) after [NNM(f=1), Clipping(2)], b = 1")
    show("opt_alie example", att.Optimal_ALittleIsEnough(**documented)(example.copy()))
    show("opt_ipm example", att.Optimal_InnerProductManipulation(**documented)(example.copy()))

    honest = float32_rows(41, 6, 5, shift=0.5)
    show("honest 6x5 rows", honest)
    print("== b = 2, defence Median")
    show("opt_alie median", att.Optimal_ALittleIsEnough(agg=agg.Median(), pre_agg_list=[], f=2)(honest.copy()))
    show("opt_ipm median", att.Optimal_InnerProductManipulation(agg=agg.Median(), pre_agg_list=[], f=2)(honest.copy()))
    print("== b = 2, defence TrMean(f=2) after NNM(f=2), evals 30, delta 3.0, ratio 0.7")
    search = dict(agg=agg.TrMean(f=2), pre_agg_list=[agg.NNM(f=2)], f=2, evals=30, delta=3.0, ratio=0.7)
    show("opt_alie nnm+tm", att.Optimal_ALittleIsEnough(**search)(honest.copy()))
    show("opt_ipm nnm+tm", att.Optimal_InnerProductManipulation(**search)(honest.copy()))

    print("== AGR-tailored, b = 2, defence TrMean(f=2)")
    run = defence([], agg.TrMean(f=2))
    for perturbation, constraint in [("std", "none"), ("std", "minmax"), ("std", "minsum"), ("unit", "minmax"),
                                     ("sign", "minsum")]:
        row, gamma = tailored(honest, 2, run, perturbation, constraint)
        print(f"gamma {perturbation} {constraint}: {gamma:.9g}")
        show(f"agr {perturbation} {constraint}", row)

    print("== AGR-tailored with the stub defence (k-th call: mean_h + k e_1), b = 2")
    for perturbation, constraint in [("std", "minmax"), ("std", "minsum")]:
        row, gamma = tailored(honest, 2, Stub(honest.mean(axis=0)), perturbation, constraint)
        print(f"gamma stub {perturbation} {constraint}: {gamma:.9g}")
        show(f"agr stub {perturbation} {constraint}", row)
    if paper_checkout:
        check_against_paper(paper_checkout, honest, agg)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "byzfl", sys.argv[2] if len(sys.argv) > 2 else None)
