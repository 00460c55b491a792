"""Reference outputs of ByzFL's caf, smea and monna for tests/plugins/aggregator_references_test.cpp.

Runs ByzFL's own classes, unmodified, on fixed small inputs. Where ByzFL draws random start vectors
(numpy.random.randn), the draws are replaced by the ones the phalanx plugin makes: torch's CPU generator
seeded with the plugin's seed (1 in the tests, see tests/support.cpp: make_context), float64, one vector of d
normals per draw, in the plugin's order.

    git clone https://github.com/LPD-EPFL/byzfl && git -C byzfl checkout 69bd1ac
    python3 tests/reference/byzfl_reference.py byzfl

Needs numpy, scipy and torch (Debian: python3-numpy python3-scipy python3-torch). Not part of CI: the
numbers it prints are pasted into the C++ test.
"""
import importlib
import itertools
import sys
import types

import numpy as np
import torch


def load_byzfl(checkout):
    # Import byzfl.aggregators without byzfl/__init__.py, which also pulls in the training framework.
    package = types.ModuleType("byzfl")
    package.__path__ = [checkout + "/byzfl"]
    sys.modules["byzfl"] = package
    return importlib.import_module("byzfl.aggregators.aggregators")


class InjectedNormals:
    """Stands in for numpy.random.randn: hands out the plugin's draws in order."""

    def __init__(self, seed):
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.drawn = []

    def __call__(self, d):
        u = torch.randn(d, generator=self.generator, dtype=torch.float64).numpy()
        self.drawn.append(u)
        return u.copy()


def with_injected_normals(seed, call):
    saved = np.random.randn
    np.random.randn = InjectedNormals(seed)
    try:
        return call(), np.random.randn.drawn
    finally:
        np.random.randn = saved


def float32_rows(seed, n, d, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) * scale).astype(np.float32).astype(np.float64)


def show(name, value):
    print(f"{name}: {{" + ", ".join(f"{v:.9g}" for v in np.asarray(value).ravel()) + "}")


def smea_exact(x, f):
    # Brute force over subsets with numpy.linalg.eigvalsh (the first smallest wins).
    best, best_value = None, np.inf
    for subset in itertools.combinations(range(len(x)), len(x) - f):
        z = x[list(subset)] - x[list(subset)].mean(axis=0)
        value = np.linalg.eigvalsh(z.T @ z)[-1]
        if value < best_value:
            best, best_value = subset, value
    return x[list(best)].mean(axis=0), best


def caf_transcribed(x, f, over_active, exact, seed=1):
    """ByzFL's CAF loop (numpy branch) with tau_max_over and the exact mode added, for the modes ByzFL lacks.
    main() asserts that it agrees with ByzFL in ByzFL's own mode first."""
    normals = InjectedNormals(seed)
    n, d = x.shape
    c = np.ones(n)
    best, best_value = None, np.inf
    while c.sum() > n - 2 * f:
        mu = (c[:, None] * x).sum(axis=0) / c.sum()
        z = x - mu
        if exact:
            values, vectors = np.linalg.eigh((z.T * c) @ z / c.sum())
            value, v = values[-1], vectors[:, -1]
        else:
            u = normals(d)
            u = u / np.linalg.norm(u)
            w = (c[:, None] * z * (z @ u)[:, None]).sum(axis=0) / c.sum()
            value, v = np.linalg.norm(w), w / np.linalg.norm(w)
        if value < best_value:
            best, best_value = mu, value
        tau = (z @ v) ** 2
        tau_max = tau[c > 0].max() if over_active else tau.max()
        c = c * (1 - tau / tau_max)
    return best


def main(checkout):
    byzfl = load_byzfl(checkout)
    example = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])

    print("== smea")
    x = float32_rows(11, 7, 5)
    x[6] += 3.0  # one outlier, so the best subsets are well apart
    out, subset = smea_exact(x, 2)
    show("smea exact n=7 f=2 rows", x)
    show("smea exact n=7 f=2 out", out)
    print("smea exact subset", subset)
    out, drawn = with_injected_normals(1, lambda: byzfl.SMEA(f=2)(x.copy()))
    show("smea byzfl P=1 seed 1 out", out)
    show("first draw, first 3", drawn[0][:3])
    out, _ = with_injected_normals(1, lambda: byzfl.SMEA(f=1)(example.copy()))
    show("smea byzfl example P=1 seed 1 out", out)

    print("== caf")
    x = float32_rows(21, 7, 5)
    x[5] += 5.0
    x[6] -= 2.5
    show("caf n=7 f=2 rows", x)
    out, drawn = with_injected_normals(1, lambda: byzfl.CAF(f=2)(x.copy()))
    print("byzfl passes (draws)", len(drawn))
    show("caf byzfl all P=1 seed 1 out", out)
    assert np.allclose(out, caf_transcribed(x, 2, over_active=False, exact=False), rtol=1e-12)
    show("caf active P=1 seed 1 out", caf_transcribed(x, 2, over_active=True, exact=False))
    show("caf active exact out", caf_transcribed(x, 2, over_active=True, exact=True))
    show("caf all exact out", caf_transcribed(x, 2, over_active=False, exact=True))
    out, _ = with_injected_normals(1, lambda: byzfl.CAF(f=1)(example.copy()))
    show("caf byzfl example out", out)

    print("== monna")
    x = float32_rows(31, 7, 4)
    x[6] += 4.0
    show("monna n=7 rows", x)
    show("monna byzfl f=2 idx=0 out", byzfl.MoNNA(f=2, idx=0)(x.copy()))
    show("monna byzfl f=3 idx=2 out", byzfl.MoNNA(f=3, idx=2)(x.copy()))
    show("monna byzfl example f=1 idx=1 out", byzfl.MoNNA(f=1, idx=1)(example.copy()))


if __name__ == "__main__":
    main(sys.argv[1])
