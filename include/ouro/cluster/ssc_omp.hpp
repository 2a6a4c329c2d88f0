// Sparse subspace clustering by orthogonal matching pursuit, SSC-OMP (You, Robinson & Vidal,
// "Scalable Sparse Subspace Clustering by Orthogonal Matching Pursuit", CVPR 2016): every point is
// written as a sparse combination of the other points, found greedily by OMP; the coefficients give
// an affinity W = |C| + |C|ᵀ that spectral clustering cuts into subspaces. LSF uses it to label data
// that comes without labels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include <Eigen/Dense>
#include <Eigen/SparseCore>

#include "ouro/cluster/spectral.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cluster {

struct ssc_omp_options {
    std::int64_t k_max = 10;  // most atoms per point (You et al.'s code: n_nonzero = 10)
    double epsilon = 1e-3;    // stop once ||x_j - X c_j|| <= epsilon; points have unit norm (their
                              // code stops at ||r||² < 1e-6 ||x_j||, the same for unit x_j)
};

struct ssc_omp_result {
    Eigen::SparseMatrix<double> coefficients;  // C (N, N): x_j ≈ Σ_i C(i, j) x_i, C(j, j) = 0, at most k_max per column
    std::vector<double> residual_norms;        // (N): ||x_j - X c_j|| of the unit-norm x_j
};

namespace detail {

// Columns of the Gram matrix per block: fixed, so the blocks and their results never depend on the
// thread count.
inline constexpr std::int64_t gram_block = 256;

// The points as unit-norm columns X (D, N) in double; a zero point stays zero.
template <real_scalar T>
Eigen::MatrixXd unit_columns(tensor_view<const T> x, const ssc_omp_options& options) {
    if (x.rank() != 2 || x.dim(0) < 1 || x.dim(1) < 1)
        fail("ssc_omp: expected points (N, D) with N >= 1 and D >= 1, found shape ", x.dims());
    if (options.k_max < 1) fail("ssc_omp: expected k_max >= 1, found ", options.k_max);
    if (!(options.epsilon >= 0) || !std::isfinite(options.epsilon))
        fail("ssc_omp: expected a finite residual threshold epsilon >= 0, found ", options.epsilon);
    const std::int64_t n = x.dim(0), d = x.dim(1);
    Eigen::MatrixXd xs(d, n);  // (D, N)
    for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t j = 0; j < d; ++j) {
            const double v = static_cast<double>(x[i * d + j]);
            if (!std::isfinite(v)) fail("ssc_omp: expected finite points, found ", v, " at (", i, ", ", j, ")");
            xs(j, i) = v;
        }
        const double norm = xs.col(i).norm();
        if (norm > 0) xs.col(i) /= norm;
    }
    return xs;
}

// G = Xᵀ X (N, N): lower-triangle blocks by GEMM in parallel, then mirrored, so G is exactly symmetric.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline Eigen::MatrixXd gram(const Eigen::MatrixXd& x) {
    const std::int64_t n = x.cols(), blocks = (n + gram_block - 1) / gram_block;
    std::vector<std::pair<std::int64_t, std::int64_t>> tasks;
    for (std::int64_t bj = 0; bj < blocks; ++bj)
        for (std::int64_t bi = bj; bi < blocks; ++bi) tasks.emplace_back(bi, bj);
    Eigen::MatrixXd g(n, n);
    parallel_for(
        static_cast<std::int64_t>(tasks.size()),
        [&](std::int64_t t) {
            const auto [bi, bj] = tasks[static_cast<std::size_t>(t)];
            const std::int64_t r0 = bi * gram_block, c0 = bj * gram_block;
            const std::int64_t rows = std::min(n, r0 + gram_block) - r0, cols = std::min(n, c0 + gram_block) - c0;
            g.block(r0, c0, rows, cols).noalias() = x.middleCols(r0, rows).transpose() * x.middleCols(c0, cols);
        },
        gram_block * gram_block * x.rows());
    for (std::int64_t j = 1; j < n; ++j)
        for (std::int64_t i = 0; i < j; ++i) g(i, j) = g(j, i);
    return g;
}

// OMP for point j over the dictionary of all other points, from the Gram matrix alone (Batch-OMP:
// Rubinstein, Zibulevsky & Elad, "Efficient Implementation of the K-SVD Algorithm using Batch
// Orthogonal Matching Pursuit", 2008): the correlations α = Xᵀ r = G(:, j) - G(:, T) c and the
// least-squares coefficients c = G(T, T)⁻¹ G(T, j) through a Cholesky factor L of G(T, T) grown by
// one row per atom. With z = L⁻¹ G(T, j), ||r||² = G(j, j) - ||z||².
// Stops at k_max atoms, at ||r|| <= epsilon, when every correlation is below 1e-12 (the residual is
// orthogonal to all atoms), or when the best atom lies in the span of the support (its new Cholesky
// pivot² below 1e-10 of its squared norm), since it would make the least squares singular.
struct omp_point_result {
    std::vector<std::int64_t> support;
    std::vector<double> coef;
    double residual = 0;
};

template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline omp_point_result omp_point(const Eigen::MatrixXd& g, std::int64_t j, std::int64_t k_max, double epsilon) {
    const std::int64_t n = g.rows(), k_cap = std::min(k_max, n - 1);
    omp_point_result out;
    const double gjj = g(j, j);
    double r2 = gjj;  // ||r||²
    out.residual = std::sqrt(std::max(r2, 0.0));
    if (!(gjj > 0) || k_cap < 1) return out;

    Eigen::VectorXd alpha = g.col(j);  // (N) correlations of the atoms with the residual
    std::vector<double> l;             // L, lower triangular, packed by rows: row m starts at m(m+1)/2
    std::vector<double> z, w, c;
    std::vector<char> excluded(static_cast<std::size_t>(n), 0);
    excluded[static_cast<std::size_t>(j)] = 1;
    std::vector<std::int64_t>& t = out.support;
    auto lij = [&](std::int64_t row, std::int64_t col) {
        return l[static_cast<std::size_t>(row * (row + 1) / 2 + col)];
    };
    std::int64_t k = 0;
    while (k < k_cap && std::sqrt(std::max(r2, 0.0)) > epsilon) {
        std::int64_t best = -1;
        double best_value = 1e-12;
        for (std::int64_t i = 0; i < n; ++i) {
            const double v = std::abs(alpha[i]);
            if (v > best_value && !excluded[static_cast<std::size_t>(i)]) {
                best_value = v;
                best = i;
            }
        }
        if (best < 0) break;
        // w = L⁻¹ G(T, best); the new row of L is (wᵀ, √(G(best, best) - ||w||²)).
        w.resize(static_cast<std::size_t>(k));
        double w2 = 0;
        for (std::int64_t m = 0; m < k; ++m) {
            double s = g(t[static_cast<std::size_t>(m)], best);
            for (std::int64_t q = 0; q < m; ++q) s -= lij(m, q) * w[static_cast<std::size_t>(q)];
            w[static_cast<std::size_t>(m)] = s / lij(m, m);
            w2 += w[static_cast<std::size_t>(m)] * w[static_cast<std::size_t>(m)];
        }
        const double gbb = g(best, best), pivot2 = gbb - w2;
        if (!(pivot2 > 1e-10 * gbb)) break;
        const double pivot = std::sqrt(pivot2);
        l.insert(l.end(), w.begin(), w.end());
        l.push_back(pivot);
        double zk = g(best, j);
        for (std::int64_t m = 0; m < k; ++m) zk -= w[static_cast<std::size_t>(m)] * z[static_cast<std::size_t>(m)];
        z.push_back(zk / pivot);
        r2 -= z.back() * z.back();
        t.push_back(best);
        excluded[static_cast<std::size_t>(best)] = 1;
        ++k;
        // c = L⁻ᵀ z, then α = G(:, j) - G(:, T) c.
        c.resize(static_cast<std::size_t>(k));
        for (std::int64_t m = k - 1; m >= 0; --m) {
            double s = z[static_cast<std::size_t>(m)];
            for (std::int64_t q = m + 1; q < k; ++q) s -= lij(q, m) * c[static_cast<std::size_t>(q)];
            c[static_cast<std::size_t>(m)] = s / lij(m, m);
        }
        if (k == k_cap || std::sqrt(std::max(r2, 0.0)) <= epsilon) break;  // no next atom to choose
        alpha = g.col(j);
        for (std::int64_t m = 0; m < k; ++m)
            alpha -= c[static_cast<std::size_t>(m)] * g.col(t[static_cast<std::size_t>(m)]);
    }
    out.coef = std::move(c);
    out.residual = std::sqrt(std::max(r2, 0.0));
    return out;
}

template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline ssc_omp_result ssc_omp(const Eigen::MatrixXd& x, const ssc_omp_options& options) {
    const std::int64_t n = x.cols();
    const Eigen::MatrixXd g = gram(x);  // (N, N)
    std::vector<omp_point_result> points(static_cast<std::size_t>(n));
    parallel_for(
        n,
        [&](std::int64_t j) { points[static_cast<std::size_t>(j)] = omp_point(g, j, options.k_max, options.epsilon); },
        n * std::min(options.k_max, n) * 4);
    ssc_omp_result r;
    r.coefficients.resize(n, n);
    std::vector<Eigen::Triplet<double>> entries;
    r.residual_norms.resize(static_cast<std::size_t>(n));
    for (std::int64_t j = 0; j < n; ++j) {
        const omp_point_result& p = points[static_cast<std::size_t>(j)];
        for (std::size_t m = 0; m < p.support.size(); ++m) entries.emplace_back(p.support[m], j, p.coef[m]);
        r.residual_norms[static_cast<std::size_t>(j)] = p.residual;
    }
    r.coefficients.setFromTriplets(entries.begin(), entries.end());
    r.coefficients.makeCompressed();
    return r;
}

}  // namespace detail

// SSC-OMP coefficients of the points x (N, D), float or double, computed in double (You et al. 2016,
// Algorithm 1, with Batch-OMP's Gram-matrix updates). Each point is scaled to unit norm; then, for
// every point x_j, OMP over the dictionary of all other points (never x_j itself) picks at most
// k_max atoms, stopping early once the residual norm is <= epsilon; the coefficients are the least
// squares fit on the chosen atoms. A zero point gets no coefficients and is never chosen.
// Cost: one Gram matrix (N² D flops, N² doubles of memory), then O(N k_max²) per point; points run
// in parallel, each independent of the others, so the result is the same at any thread count.
// Requires N >= 1, D >= 1, finite entries, k_max >= 1 and a finite epsilon >= 0.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline ssc_omp_result ssc_omp(tensor_view<const float> x, const ssc_omp_options& options = {}) {
    return detail::ssc_omp(detail::unit_columns(x, options), options);
}
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline ssc_omp_result ssc_omp(tensor_view<const double> x, const ssc_omp_options& options = {}) {
    return detail::ssc_omp(detail::unit_columns(x, options), options);
}

// The SSC affinity W = |C| + |C|ᵀ (N, N) of coefficients C (You et al. 2016, sec. 2). With
// normalize_columns, each column c_j is first scaled to unit ℓ2 norm, as the authors' Python code
// does, so that every point weighs the same; the result is then halved, as there.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline Eigen::SparseMatrix<double> ssc_affinity(const Eigen::SparseMatrix<double>& c, bool normalize_columns = false) {
    if (c.rows() != c.cols())
        fail("ssc_affinity: expected square coefficients (N, N), found shape ", shape{c.rows(), c.cols()});
    Eigen::SparseMatrix<double> a = c.cwiseAbs();
    if (normalize_columns) {
        for (Eigen::Index j = 0; j < a.outerSize(); ++j) {
            double s = 0;
            for (Eigen::SparseMatrix<double>::InnerIterator it(a, j); it; ++it) s += it.value() * it.value();
            if (s > 0)
                for (Eigen::SparseMatrix<double>::InnerIterator it(a, j); it; ++it) it.valueRef() /= std::sqrt(s);
        }
    }
    Eigen::SparseMatrix<double> at = a.transpose();
    Eigen::SparseMatrix<double> w = a + at;
    if (normalize_columns) w *= 0.5;
    for (Eigen::Index j = 0; j < w.outerSize(); ++j)
        for (Eigen::SparseMatrix<double>::InnerIterator it(w, j); it; ++it)
            if (!std::isfinite(it.value())) fail("ssc_affinity: expected finite coefficients, found ", it.value());
    return w;
}

struct ssc_omp_clustering_options {
    ssc_omp_options ssc{};
    bool normalize_columns = false;  // passed to ssc_affinity
    spectral_options spectral{};
};

namespace detail {
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline spectral_result ssc_omp_clustering(const Eigen::MatrixXd& x, std::int64_t k,
                                          const ssc_omp_clustering_options& options) {
    // Checked before the costly part, with spectral_clustering's message.
    if (k < 1 || k > x.cols())
        fail("ssc_omp_clustering: expected 1 <= K <= N clusters for N = ", x.cols(), " points, found K = ", k);
    const ssc_omp_result c = ssc_omp(x, options.ssc);
    return spectral_clustering(ssc_affinity(c.coefficients, options.normalize_columns), k, options.spectral);
}
}  // namespace detail

// Labels for unlabelled points x (N, D), float or double: SSC-OMP coefficients, the affinity
// |C| + |C|ᵀ, then spectral clustering into k clusters. Requires what ssc_omp and
// spectral_clustering require (1 <= k <= N among them).
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline spectral_result ssc_omp_clustering(tensor_view<const float> x, std::int64_t k,
                                          const ssc_omp_clustering_options& options = {}) {
    return detail::ssc_omp_clustering(detail::unit_columns(x, options.ssc), k, options);
}
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline spectral_result ssc_omp_clustering(tensor_view<const double> x, std::int64_t k,
                                          const ssc_omp_clustering_options& options = {}) {
    return detail::ssc_omp_clustering(detail::unit_columns(x, options.ssc), k, options);
}

}  // namespace ouro::cluster
