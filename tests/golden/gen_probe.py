#!/usr/bin/python3
"""Golden data for tests/test_probe.cpp: softmax-regression probes fitted by scipy.

Run with Debian's interpreter (it has numpy and scipy):
    /usr/bin/python3 tests/golden/gen_probe.py        # writes tests/golden/probe/*.npy

Reference, written independently of ouro's algorithms: the objective
    L(W, b) = mean_i [logsumexp(W x_i + b) - (W x_i + b)_{y_i}] + (lambda / 2) ||W||_F^2
in numpy (scipy.special.logsumexp), minimised from W = 0, b = 0 by scipy.optimize.minimize
(L-BFGS-B, gtol 1e-13, ftol 0); the script asserts the reference reached ||grad||_2 < 1e-9.
Standardisation uses the training rows' mean and population std (ddof 0). The held-out rows are
drawn by a Python port of ouro's Philox4x32-10 stream (Fisher-Yates, Lemire's bounded integers)
keyed by (split_seed, ouro::probe::holdout_split_purpose = 111, 0): the first floor(f N) rows of
the permutation are held out.

Cases (features (40, 5) float64, labels in [0, 3), written once as features.npy / labels.npy):
  plain_l2_0.1     lambda 0.1,  no standardisation, all rows
  std_l2_0.01      lambda 0.01, standardised,       all rows
  split_l2_0.05    lambda 0.05, standardised,       holdout_fraction 0.25, split_seed 5
Each case writes <case>_weight.npy (K, D), <case>_bias.npy (K), <case>_probabilities.npy (N, K)
for all 40 rows, <case>_loss.npy (1,); standardised cases also <case>_mean.npy, <case>_scale.npy;
the split case <case>_holdout.npy (the held-out rows, ascending, int64).
"""
import os
import sys

import numpy as np
import scipy.optimize
import scipy.special

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "probe")

# ---------------------------------------------------------------- Philox4x32-10 (ouro/core/philox.hpp)
sys.path.insert(0, HERE)
from philox_ref import PhiloxStream  # noqa: E402

HOLDOUT_SPLIT_PURPOSE = 111  # ouro::probe::holdout_split_purpose


def holdout_rows(n, fraction, seed):
    perm = list(range(n))
    n_hold = int(np.floor(fraction * n))
    if n_hold == 0:
        return np.array([], dtype=np.int64)
    rng = PhiloxStream(seed, HOLDOUT_SPLIT_PURPOSE, 0)
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return np.sort(np.array(perm[:n_hold], dtype=np.int64))


# ---------------------------------------------------------------- the reference fit
def objective(params, x, y, k, l2):
    n, d = x.shape
    w, b = params[:k * d].reshape(k, d), params[k * d:]
    z = x @ w.T + b
    lse = scipy.special.logsumexp(z, axis=1)
    loss = np.mean(lse - z[np.arange(n), y]) + 0.5 * l2 * np.sum(w * w)
    p = np.exp(z - lse[:, None])
    p[np.arange(n), y] -= 1.0
    gw = p.T @ x / n + l2 * w
    gb = p.sum(axis=0) / n
    return loss, np.concatenate([gw.ravel(), gb])


def fit(x, y, k, l2):
    d = x.shape[1]
    res = scipy.optimize.minimize(objective, np.zeros(k * (d + 1)), args=(x, y, k, l2), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-13, "ftol": 0.0, "maxiter": 100000, "maxcor": 20})
    loss, grad = objective(res.x, x, y, k, l2)
    assert np.linalg.norm(grad) < 1e-9, (res.message, np.linalg.norm(grad))
    return res.x[:k * d].reshape(k, d), res.x[k * d:], loss


def probabilities(x, w, b):
    z = x @ w.T + b
    return np.exp(z - scipy.special.logsumexp(z, axis=1)[:, None])


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20251128)
    n, d, k = 40, 5, 3
    y = np.arange(n, dtype=np.int64) % k
    rng.shuffle(y)
    means = rng.normal(0.0, 1.5, size=(k, d))
    # Features of different scales and offsets, so standardisation matters.
    x = (means[y] + rng.normal(size=(n, d))) * np.array([1.0, 3.0, 0.5, 2.0, 1.0]) + np.array([0, 2, -1, 0, 5])
    save("features", x)
    save("labels", y)

    for case, l2, standardize, fraction, seed in [("plain_l2_0.1", 0.1, False, 0.0, 0),
                                                  ("std_l2_0.01", 0.01, True, 0.0, 0),
                                                  ("split_l2_0.05", 0.05, True, 0.25, 5)]:
        hold = holdout_rows(n, fraction, seed)
        train = np.setdiff1d(np.arange(n), hold)
        xt = x[train]
        if standardize:
            mean, scale = xt.mean(axis=0), xt.std(axis=0)
            save(case + "_mean", mean)
            save(case + "_scale", scale)
            xs = (x - mean) / scale
        else:
            xs = x
        w, b, loss = fit(xs[train], y[train], k, l2)
        save(case + "_weight", w)
        save(case + "_bias", b)
        save(case + "_probabilities", probabilities(xs, w, b))
        save(case + "_loss", np.array([loss]))
        if fraction > 0:
            save(case + "_holdout", hold)
        print(f"{case}: loss {loss:.12f}, |sum b| {abs(b.sum()):.2e}, held out {hold.tolist()}")


if __name__ == "__main__":
    main()
