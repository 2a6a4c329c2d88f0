#!/usr/bin/python3
"""Golden data for tests/test_metrics.cpp and tests/test_ole.cpp, from numpy/scipy references.

Run with Debian's interpreter (it has numpy, scipy and torch):
    /usr/bin/python3 tests/golden/gen_metrics.py            # writes tests/golden/metrics/*.npy, tests/golden/ole/*.npy
    /usr/bin/python3 tests/golden/gen_metrics.py reference REAL.npy FAKE.npy [--k K] [--density-k K]
        [--kid-subsets S] [--kid-subset-size M] [--seed S]
The second form prints the same lines as examples/compute_metrics, from the references below, so
the two can be compared on any data.

References, written independently of ouro's algorithms:
  FID        pytorch-fid's calculate_frechet_distance: np.cov (unbiased) and scipy.linalg.sqrtm of the
             non-symmetric product sigma1 @ sigma2.
  P/R        Kynkäänniemi et al. 2019: brute-force distances (differences, not the GEMM expansion),
             k-th neighbour radius with the point itself excluded, "inside" when distance <= radius.
  D/C        Naeem et al. 2020 (the prdc package), but with closed balls ("<=") as ouro: the package's
             strict "<" differs only on exact ties, e.g. radius-0 balls of duplicated rows.
  KID        clean-fid/torch-fidelity's polynomial-kernel unbiased MMD², averaged over subsets. The
             subsets are drawn by a Python port of ouro's Philox4x32-10 stream (partial Fisher–Yates
             with Lemire's bounded integers), so the subset mode is checked too.
  OLE        numpy.linalg.svd nuclear norms; the loss gradient as the authors' OLE.py (U_r V_rᵀ per
             class above the margin minus U_r V_rᵀ of all latents), and torch autograd through the
             row normalisation.
"""
import argparse
import os
import sys
import time

import numpy as np
import scipy.linalg

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- Philox4x32-10 (ouro/core/philox.hpp)
sys.path.insert(0, HERE)
from philox_ref import PhiloxStream  # noqa: E402

KID_SUBSET_PURPOSE = 101  # ouro::metrics::kid_subset_purpose


def draw_subset(n, count, seed, index):
    idx = list(range(n))
    rng = PhiloxStream(seed, KID_SUBSET_PURPOSE, index)
    for i in range(count):
        j = i + rng.below(n - i)
        idx[i], idx[j] = idx[j], idx[i]
    return np.array(idx[:count])


# ---------------------------------------------------------------- references
def fid_reference(real, fake):
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def brute_distances(a, b):
    """Euclidean distances by explicit differences, chunked over rows of a (~256 MB of differences)."""
    chunk = max(1, (1 << 25) // (b.shape[0] * a.shape[1]))
    out = np.empty((a.shape[0], b.shape[0]))
    for s in range(0, a.shape[0], chunk):
        diff = a[s:s + chunk, None, :] - b[None, :, :]
        out[s:s + chunk] = np.sqrt((diff * diff).sum(axis=-1))
    return out


def knn_radii(x, k):
    d = brute_distances(x, x)
    np.fill_diagonal(d, np.inf)  # exclude the point itself
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def prdc_reference(real, fake, k=3, density_k=5):
    real_r, fake_r, real_d = knn_radii(real, k), knn_radii(fake, k), knn_radii(real, density_k)
    d = brute_distances(real, fake)  # (N, M)
    precision = (d <= real_r[:, None]).any(axis=0).mean()
    recall = (d <= fake_r[None, :]).any(axis=1).mean()
    density = (1.0 / density_k) * (d <= real_d[:, None]).sum(axis=0).mean()
    coverage = (d.min(axis=1) <= real_d).mean()
    return np.array([precision, recall, density, coverage], dtype=np.float64)


def mmd2_unbiased(x, y):
    d = x.shape[1]
    n, m = x.shape[0], y.shape[0]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.sum() / (n * m))


def kid_reference(real, fake, subsets, subset_size, seed):
    if subsets == 0:
        return mmd2_unbiased(real, fake), 0.0
    est = []
    for s in range(subsets):
        xs = real[draw_subset(real.shape[0], subset_size, seed, 2 * s)]
        ys = fake[draw_subset(fake.shape[0], subset_size, seed, 2 * s + 1)]
        est.append(mmd2_unbiased(xs, ys))
    est = np.array(est)
    return float(est.mean()), float(est.std())


def nuclear(a):
    return np.linalg.svd(a, compute_uv=False).sum()


def ole_score_reference(x, y, normalize_rows=False, divide_by_n=False):
    if normalize_rows:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    v = sum(nuclear(x[y == c]) for c in np.unique(y)) - nuclear(x)
    return v / x.shape[0] if divide_by_n else v


def ole_loss_reference(x, y, margin, weight):
    """The authors' OLE.py forward, with Δ and λ as parameters (divide by N as they do)."""
    n, d = x.shape
    obj_c, dx_c = 0.0, np.zeros((n, d))
    for c in np.unique(y):
        a = x[y == c]
        u, s, vt = np.linalg.svd(a, full_matrices=False)
        nuc = s.sum()
        if nuc > margin:
            obj_c += nuc
            r = int((s > max(a.shape) * np.finfo(float).eps * s[0]).sum())
            dx_c[y == c] += u[:, :r] @ vt[:r]
        else:
            obj_c += margin
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    r = int((s > max(x.shape) * np.finfo(float).eps * s[0]).sum())
    obj = (obj_c - s.sum()) / n * weight
    grad = (dx_c - u[:, :r] @ vt[:r]) / n * weight
    return obj, grad


def ole_loss_normalized_torch(x, y, margin, weight):
    import torch
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    z = torch.nn.functional.normalize(t, dim=1, eps=1e-12)
    yt = torch.tensor(y)
    total = 0
    for c in np.unique(y):
        total = total + torch.clamp(torch.linalg.matrix_norm(z[yt == int(c)], ord="nuc"), min=margin)
    loss = (total - torch.linalg.matrix_norm(z, ord="nuc")) / x.shape[0] * weight
    loss.backward()
    return float(loss), t.grad.numpy()


# ---------------------------------------------------------------- golden files
def save(family, name, a):
    path = os.path.join(HERE, family, name + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(a))


def write_golden():
    rng = np.random.default_rng(20240611)
    # Real: a correlated Gaussian; fake: shifted, rescaled and with a different correlation, so that
    # precision, recall, density and coverage all land strictly between 0 and 1.
    d = 16
    mix = np.eye(d) + 0.3 * rng.standard_normal((d, d))
    real = rng.standard_normal((200, d)) @ mix
    fake = 0.25 + 1.15 * rng.standard_normal((150, d)) @ (np.eye(d) + 0.3 * rng.standard_normal((d, d)))
    save("metrics", "real", real)
    save("metrics", "fake", fake)
    save("metrics", "real_mean", real.mean(axis=0))
    save("metrics", "real_cov", np.cov(real, rowvar=False))
    save("metrics", "fid", np.array([fid_reference(real, fake)]))
    save("metrics", "real_radii_k3", knn_radii(real, 3))
    save("metrics", "prdc_k3_d5", prdc_reference(real, fake, 3, 5))
    save("metrics", "prdc_k1_d2", prdc_reference(real, fake, 1, 2))
    save("metrics", "prdc_k7_d9", prdc_reference(real, fake, 7, 9))
    save("metrics", "kid_all", np.array([kid_reference(real, fake, 0, 0, 0)[0]]))
    save("metrics", "kid_subsets10_m50_seed7", np.array(kid_reference(real, fake, 10, 50, 7)))

    # OLE: four classes in 8-D; class 3 is tiny (nuclear norm under the margin Δ = 1).
    sizes = [25, 20, 15, 5]
    xs, ys = [], []
    for c, n in enumerate(sizes):
        basis = rng.standard_normal((3, 8))  # a 3-D subspace per class, plus noise
        scale = 0.01 if c == 3 else 1.0
        xs.append(scale * (rng.standard_normal((n, 3)) @ basis + 0.2 * rng.standard_normal((n, 8))))
        ys.append(np.full(n, c, dtype=np.int64))
    order = rng.permutation(sum(sizes))
    x = np.concatenate(xs)[order]
    y = np.concatenate(ys)[order]
    assert nuclear(x[y == 3]) < 1.0 < min(nuclear(x[y == c]) for c in range(3))
    save("ole", "latents", x)
    save("ole", "labels", y)
    save("ole", "score", np.array([ole_score_reference(x, y, nr, dn) for nr in (False, True) for dn in (False, True)]))
    obj, grad = ole_loss_reference(x, y, margin=1.0, weight=0.25)
    save("ole", "loss", np.array([obj]))
    save("ole", "loss_grad", grad)
    obj, grad = ole_loss_normalized_torch(x, y, margin=1.0, weight=0.25)
    save("ole", "loss_normalized", np.array([obj]))
    save("ole", "loss_normalized_grad", grad)


def reference_main(argv):
    p = argparse.ArgumentParser(prog="gen_metrics.py reference")
    p.add_argument("real")
    p.add_argument("fake")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--density-k", type=int, default=5)
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--kid-subset-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    real = np.load(a.real).astype(np.float64)
    fake = np.load(a.fake).astype(np.float64)
    m = a.kid_subset_size if a.kid_subset_size is not None else min(1000, real.shape[0], fake.shape[0])
    t0 = time.perf_counter()
    fid = fid_reference(real, fake)
    t1 = time.perf_counter()
    p_, r_, d_, c_ = prdc_reference(real, fake, a.k, a.density_k)
    t2 = time.perf_counter()
    kid = kid_reference(real, fake, a.kid_subsets, m, a.seed)[0]
    t3 = time.perf_counter()
    for name, v in (("fid", fid), ("precision", p_), ("recall", r_), ("density", d_), ("coverage", c_), ("kid", kid)):
        print(f"{name} {v:.12g}")
    print(f"seconds fid {t1 - t0:.3f} prdc {t2 - t1:.3f} kid {t3 - t2:.3f}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "reference":
        reference_main(sys.argv[2:])
    else:
        write_golden()
