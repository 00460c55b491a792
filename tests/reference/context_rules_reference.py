"""Reference outputs for tests/plugins/context_rules_test.cpp: FLTrust and FoolsGold written independently from their
papers (Cao, Fang, Liu, Gong, NDSS 2021, Algorithm 2; Fung, Yoon, Beschastnikh, RAID 2020, Algorithm 1), the
FoolsGold weights transcribed from the original code's foolsgold(grads) (DistributedML/FoolsGold,
deep-fg/fg/foolsgold.py) with sklearn's cosine_similarity, on fixed small inputs.

    python3 tests/reference/context_rules_reference.py

Needs numpy and scikit-learn (Debian: python3-numpy python3-sklearn). Not part of CI: the numbers it prints are
pasted into the C++ test.
"""
import numpy as np
import sklearn.metrics.pairwise as smp


def float32_rows(seed, n, d, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) * scale + shift).astype(np.float32).astype(np.float64)


def show(name, value):
    print(f"{name}: {{" + ", ".join(f"{v:.9g}" for v in np.asarray(value).ravel()) + "}")


def fltrust(rows, g0):
    # Algorithm 2 of the paper: TS_i = ReLU(cos), gbar_i = ||g0|| / ||g_i|| g_i, g = sum TS_i gbar_i / sum TS_i.
    norm0 = np.linalg.norm(g0)
    ts = np.array([max(0.0, r @ g0 / (np.linalg.norm(r) * norm0)) for r in rows])
    scaled = np.array([norm0 / np.linalg.norm(r) * r for r in rows])
    return (ts[:, None] * scaled).sum(axis=0) / ts.sum(), ts


def foolsgold_code(grads):
    # The original code's function, verbatim apart from the print.
    n_clients = grads.shape[0]
    cs = smp.cosine_similarity(grads) - np.eye(n_clients)
    maxcs = np.max(cs, axis=1)
    for i in range(n_clients):
        for j in range(n_clients):
            if i == j:
                continue
            if maxcs[i] < maxcs[j]:
                cs[i][j] = cs[i][j] * maxcs[i] / maxcs[j]
    wv = 1 - (np.max(cs, axis=1))
    wv[wv > 1] = 1
    wv[wv < 0] = 0
    wv = wv / np.max(wv)
    wv[(wv == 1)] = .99
    wv = (np.log(wv / (1 - wv)) + 0.5)
    wv[(np.isinf(wv) + wv > 1)] = 1
    wv[(wv < 0)] = 0
    return wv


def main():
    print("== fltrust")
    rows = float32_rows(51, 6, 5, shift=0.3)
    rows[4] = -3.0 * rows[4]          # points away: score 0
    rows[5] = 20.0 * rows[5]          # huge: rescaled to ||g0||
    g0 = float32_rows(52, 1, 5, shift=0.3)[0]
    show("fltrust rows", rows)
    show("fltrust g0", g0)
    out, ts = fltrust(rows, g0)
    show("fltrust scores", ts)
    show("fltrust out", out)

    print("== foolsgold: two rounds, 5 workers; ids 3 and 4 are sybils pushing one direction")
    d = 6
    rounds = [float32_rows(61, 5, d, scale=0.5, shift=0.3), float32_rows(62, 5, d, scale=0.5, shift=0.3)]
    poison = float32_rows(63, 1, d)[0]
    for r, x in enumerate(rounds):
        x[3] = poison + 0.3 * x[3]
        x[4] = poison + 0.3 * x[4]
        show(f"foolsgold round {r} rows", x)
    history = np.zeros((5, d))
    for r, x in enumerate(rounds):
        history += x
        w = foolsgold_code(history.copy())
        show(f"foolsgold round {r} weights", w)
        show(f"foolsgold round {r} out mean", (w[:, None] * x).sum(axis=0) / len(x))
        show(f"foolsgold round {r} out weighted", (w[:, None] * x).sum(axis=0) / w.sum())
    kappa = 0.5
    history = rounds[0] + rounds[1]
    base = foolsgold_code(history.copy())
    # kappa multiplies the logit before the clipping: recompute with the code's steps and kappa.
    n = len(history)
    cs = smp.cosine_similarity(history) - np.eye(n)
    maxcs = cs.max(axis=1)
    for i in range(n):
        for j in range(n):
            if i != j and maxcs[i] < maxcs[j]:
                cs[i][j] *= maxcs[i] / maxcs[j]
    wv = np.clip(1 - cs.max(axis=1), 0, 1)
    wv = wv / wv.max()
    wv[wv == 1] = .99
    wv = np.clip(kappa * (np.log(wv / (1 - wv)) + 0.5), 0, 1)
    w = foolsgold_code(history[:, 1:4].copy())
    show("foolsgold coords [1, 4) weights", w)
    show("foolsgold coords [1, 4) round 1 out mean", (w[:, None] * rounds[1]).sum(axis=0) / n)
    show("foolsgold kappa 1 weights (code)", base)
    show("foolsgold kappa 0.5 weights", wv)


if __name__ == "__main__":
    main()
