"""Reference outputs of fedlib's DnC, Signguard and Clippedclustering for tests/plugins/aggregator_references_test.cpp.

Current Blades (lishenghui/blades) takes its aggregators from fedlib (fedlib/fedlib); this runs fedlib's own
classes, unmodified, on fixed small inputs. fedlib/utils/torch_utils.py imports ray only for type names and
decorators, so those are stubbed. Where DnC draws coordinate permutations (torch.randperm), the script hands
it the permutations the phalanx plugin draws: torch's CPU generator seeded with the plugin's seed (1 in the
tests, see tests/support.cpp: make_context), one permutation of d per iteration.

    git clone https://github.com/fedlib/fedlib && git -C fedlib checkout 8428019
    /usr/bin/python3 tests/reference/fedlib_reference.py fedlib/fedlib

Needs Debian's python3-numpy, python3-torch and python3-sklearn (1.2, whose KMeans runs n_init = 10). Not
part of CI: the numbers it prints are pasted into the C++ test.
"""
import importlib
import sys
import types

import numpy as np
import torch


def stub(name, **attributes):
    module = types.ModuleType(name)
    module.__path__ = []
    module.__dict__.update(attributes)
    sys.modules[name] = module


def load_fedlib(package_dir):
    stub("ray")
    stub("ray.rllib")
    stub("ray.rllib.utils")
    stub("ray.rllib.utils.annotations", PublicAPI=lambda f: f, Deprecated=lambda **_: (lambda f: f))
    stub("ray.rllib.utils.framework", try_import_torch=lambda: (torch, torch.nn))
    stub("ray.rllib.utils.typing", LocalOptimizer=object, TensorStructType=object, TensorType=object)
    # Skip fedlib/__init__.py and fedlib/utils/__init__.py (the training framework and its actor pool).
    for name, path in (("fedlib", package_dir), ("fedlib.utils", package_dir + "/utils")):
        stub(name)
        sys.modules[name].__path__ = [path]
    return importlib.import_module("fedlib.aggregators")


class InjectedPermutations:
    """Stands in for torch.randperm: hands out the plugin's permutations in order."""

    def __init__(self, seed):
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.saved = torch.randperm

    def __call__(self, d, **_):
        return self.saved(d, generator=self.generator)


def float32_rows(seed, n, d, scale=1.0):
    rng = np.random.default_rng(seed)
    return torch.tensor((rng.standard_normal((n, d)) * scale).astype(np.float32))


def show(name, value):
    print(f"{name}: {{" + ", ".join(f"{v:.9g}" for v in np.asarray(value).ravel()) + "}")


def rows_list(x):
    return [row.clone() for row in x]  # fedlib clips in place: pass copies


def main(package_dir):
    fedlib = load_fedlib(package_dir)

    print("== dnc")
    x = float32_rows(41, 7, 12)
    x[5] += 3.0
    x[6, :6] -= 4.0
    show("dnc n=7 d=12 rows", x)
    show("dnc f=2 full out", fedlib.DnC(2)(rows_list(x)))
    show("dnc f=2 filter_frac 0.5 out", fedlib.DnC(2, filter_frac=0.5)(rows_list(x)))
    saved = torch.randperm
    torch.randperm = InjectedPermutations(1)
    try:
        show("dnc f=2 sub_dim 1 niters 2 seed 1 out", fedlib.DnC(2, sub_dim=1, num_iters=2)(rows_list(x)))
    finally:
        torch.randperm = saved

    print("== signguard")
    rng = np.random.default_rng(51)
    magnitude = rng.uniform(0.5, 1.5, (7, 20))
    signs = np.where(rng.uniform(size=(7, 20)) < 0.8, 1.0, -1.0)  # honest: mostly positive
    signs[5:] *= -1.0  # two rows mostly negative
    x = torch.tensor((magnitude * signs).astype(np.float32))
    x[2, :3] = 0.0
    show("signguard n=7 d=20 rows", x)
    norms = x.norm(dim=1)
    print("norms / median", (norms / norms.median()).tolist())
    out = fedlib.Signguard()(rows_list(x))
    show("signguard out", out)
    show("signguard median out", fedlib.Signguard(agg="median")(rows_list(x)))

    print("== clippedclustering")
    unit = [torch.tensor(r, dtype=torch.float32) for r in [[1, 2, 3], [-1, 4, -1], [2, 2, 3], [3, 1, 3]]]
    show("fedlib unit test out", fedlib.Clippedclustering()([r.clone() for r in unit]))
    x = float32_rows(61, 7, 6)
    x[:5] += 1.0
    x[5:] -= 1.0
    x[6] *= 5.0
    show("clippedclustering n=7 d=6 rows", x)
    agg = fedlib.Clippedclustering()
    show("clippedclustering call 1 out", agg(rows_list(x)))
    show("clippedclustering call 2 (rows * 3) out", agg(rows_list(x * 3.0)))
    show("clippedclustering single median out", fedlib.Clippedclustering(agg="median", linkage="single")(rows_list(x)))


if __name__ == "__main__":
    main(sys.argv[1])
