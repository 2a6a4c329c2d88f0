#!/usr/bin/python3
"""Golden data for tests/test_cluster.cpp, from numpy/scipy references.

Run with Debian's interpreter (it has numpy and scipy):
    /usr/bin/python3 tests/golden/gen_cluster.py        # writes tests/golden/cluster/*.npy

References, written independently of ouro's algorithms:
  assignment   scipy.optimize.linear_sum_assignment (a Jonker-Volgenant variant) on random costs,
               square and rectangular.
  SSC-OMP      OMP as You et al. write it in their Python code: the residual itself is kept,
               correlations are X r (self excluded by zeroing), coefficients by numpy.linalg.lstsq on
               the support; stopping at k_max atoms or ||r|| <= epsilon (ouro's rule).
  Lloyd        numpy: nearest centre by explicit differences (first index on ties), centres as the
               means of their points, until no label changes.
  spectral     numpy.linalg.eigh of D^-1/2 W D^-1/2, the top-K eigenvectors, rows scaled to unit length.
"""
import os

import numpy as np
from scipy.optimize import linear_sum_assignment

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, a):
    path = os.path.join(HERE, "cluster", name + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(a))


def omp_reference(x, k_max, epsilon):
    """x: (N, D) points; returns C (N, N) with column j the coefficients of x_j, and residual norms."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = x.shape[0]
    c = np.zeros((n, n))
    res = np.zeros(n)
    for j in range(n):
        r = x[j].copy()
        supp = []
        coef = np.zeros(0)
        while len(supp) < min(k_max, n - 1) and np.linalg.norm(r) > epsilon:
            corr = np.abs(x @ r)
            corr[j] = -1.0
            corr[supp] = -1.0
            supp.append(int(np.argmax(corr)))
            coef = np.linalg.lstsq(x[supp].T, x[j], rcond=None)[0]
            r = x[j] - coef @ x[supp]
        c[supp, j] = coef
        res[j] = np.linalg.norm(r)
    return c, res


def lloyd_reference(x, centers, max_iter):
    def assign(cs):
        d = ((x[:, None, :] - cs[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(d, axis=1)

    labels = assign(centers)
    it = 0
    for it in range(1, max_iter + 1):
        centers = np.stack([x[labels == k].mean(axis=0) for k in range(centers.shape[0])])
        new = assign(centers)
        if np.array_equal(new, labels):
            break
        labels = new
    inertia = ((x - centers[labels]) ** 2).sum()
    return labels, centers, inertia, it


def main():
    rng = np.random.default_rng(20250611)

    # ---- minimum-cost assignment: square, wide, tall; one integer-valued (a negated confusion matrix)
    shapes = [(6, 6), (5, 8), (8, 5), (10, 10)]
    totals = []
    for q, (r, c) in enumerate(shapes):
        cost = rng.normal(size=(r, c))
        if q == 3:
            cost = -rng.integers(0, 50, size=(r, c)).astype(np.float64)
        rows, cols = linear_sum_assignment(cost)
        save(f"assignment_cost_{q}", cost)
        totals.append(cost[rows, cols].sum())
    save("assignment_totals", np.array(totals))

    # ---- SSC-OMP: 3 subspaces of dimension 3 in R^12, 14 points each, a little noise
    d, dim, per, k = 12, 3, 14, 3
    pts = []
    for _ in range(k):
        basis, _ = np.linalg.qr(rng.normal(size=(d, dim)))
        pts.append((basis @ rng.normal(size=(dim, per))).T)
    x = np.concatenate(pts) + 0.01 * rng.normal(size=(k * per, d))
    x = x[rng.permutation(x.shape[0])]
    c, res = omp_reference(x, k_max=5, epsilon=1e-3)
    save("ssc_points", x)
    save("ssc_coefficients", c)
    save("ssc_residuals", res)
    # The same with a loose threshold, so that some points stop before k_max.
    c2, res2 = omp_reference(x, k_max=5, epsilon=0.05)
    save("ssc_coefficients_eps", c2)
    save("ssc_residuals_eps", res2)

    # ---- Lloyd from given centres: 4 overlapping blobs in R^3
    means = rng.normal(scale=2.0, size=(4, 3))
    xl = np.concatenate([m + rng.normal(size=(15, 3)) for m in means])
    init = xl[[0, 1, 2, 3]]  # four points of the first blob: many iterations
    labels, centers, inertia, it = lloyd_reference(xl, init, 300)
    save("lloyd_points", xl)
    save("lloyd_init", init)
    save("lloyd_labels", labels.astype(np.int64))
    save("lloyd_centers", centers)
    save("lloyd_inertia_iterations", np.array([inertia, it], dtype=np.float64))

    # ---- spectral embedding: 3 noisy blocks of a non-negative symmetric affinity, one isolated point
    sizes = [8, 10, 7]
    n = sum(sizes) + 1
    w = 0.05 * rng.random((n, n))
    start = 0
    for s in sizes:
        w[start:start + s, start:start + s] += rng.random((s, s))
        start += s
    w = 0.5 * (w + w.T)
    np.fill_diagonal(w, 0.0)
    w[n - 1, :] = 0.0
    w[:, n - 1] = 0.0
    deg = w.sum(axis=1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
    m = inv[:, None] * w * inv[None, :]
    vals, vecs = np.linalg.eigh(m)
    top = vecs[:, ::-1][:, :3]
    norms = np.linalg.norm(top, axis=1, keepdims=True)
    emb = np.where(norms > 0, top / np.where(norms > 0, norms, 1.0), 0.0)
    save("spectral_affinity", w)
    save("spectral_eigenvalues", vals[::-1][:3].copy())
    save("spectral_embedding", emb)

    # ---- top eigenpairs of a random symmetric matrix (both signs in the spectrum)
    a = rng.normal(size=(40, 40))
    a = 0.5 * (a + a.T)
    save("eigen_matrix", a)
    save("eigen_top_values", np.linalg.eigh(a)[0][::-1][:6].copy())


if __name__ == "__main__":
    main()
