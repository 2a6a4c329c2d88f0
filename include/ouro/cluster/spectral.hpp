// Spectral clustering of an affinity matrix by the algorithm of Ng, Jordan & Weiss, "On Spectral
// Clustering: Analysis and an algorithm" (NIPS 2001): the top-K eigenvectors of the normalised
// affinity D^-½ W D^-½, rows scaled to unit length, then k-means. Also the dense top-K symmetric
// eigensolver it uses (tridiagonalisation, then inverse iteration for the wanted eigenvectors only).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include <Eigen/SparseCore>

#include "ouro/cluster/kmeans.hpp"
#include "ouro/core/eigen_decompositions.hpp"  // before any use of the decompositions
#include "ouro/core/error.hpp"
#include "ouro/core/philox.hpp"

namespace ouro::cluster {

// The Philox purpose of the inverse-iteration start vectors.
inline constexpr rng_purpose eigen_start_purpose = rng_purpose::eigen_start;

struct eigenpairs {
    Eigen::VectorXd values;           // (K), descending
    Eigen::MatrixXd vectors;          // (N, K), orthonormal columns, column i for values[i]
    bool full_decomposition = false;  // the inverse-iteration vectors failed their residual check, and
                                      // Eigen's full eigendecomposition supplied these instead
};

namespace detail {

// LU with partial pivoting of the tridiagonal T - shift·I (diagonal d, off-diagonal e), as LAPACK's
// dlagtf: U has three diagonals, L one multiplier per row. Pivots below `tiny` in magnitude become
// ±tiny, so the factor of a (nearly) singular matrix stays usable for inverse iteration.
struct tridiagonal_lu {
    std::vector<double> u0, u1, u2, mult;
    std::vector<char> swapped;

    void factor(const Eigen::VectorXd& d, const Eigen::VectorXd& e, double shift, double tiny) {
        const std::int64_t n = d.size();
        u0.assign(static_cast<std::size_t>(n), 0.0);
        u1.assign(static_cast<std::size_t>(n), 0.0);
        u2.assign(static_cast<std::size_t>(n), 0.0);
        mult.assign(static_cast<std::size_t>(n), 0.0);
        swapped.assign(static_cast<std::size_t>(n), 0);
        // Working row k: entries (p0, p1, p2) in columns k, k+1, k+2.
        double p0 = d[0] - shift, p1 = n > 1 ? e[0] : 0.0, p2 = 0.0;
        for (std::int64_t k = 0; k + 1 < n; ++k) {
            const auto s = static_cast<std::size_t>(k);
            const double q0 = e[k], q1 = d[k + 1] - shift, q2 = k + 2 < n ? e[k + 1] : 0.0;
            if (std::abs(p0) >= std::abs(q0)) {
                if (std::abs(p0) < tiny) p0 = std::copysign(tiny, p0);
                const double m = q0 / p0;
                u0[s] = p0, u1[s] = p1, u2[s] = p2, mult[s] = m;
                p0 = q1 - m * p1;
                p1 = q2 - m * p2;
            } else {
                const double m = p0 / q0;
                u0[s] = q0, u1[s] = q1, u2[s] = q2, mult[s] = m, swapped[s] = 1;
                p0 = p1 - m * q1;
                p1 = p2 - m * q2;
            }
            p2 = 0.0;
        }
        if (std::abs(p0) < tiny) p0 = std::copysign(tiny, p0);
        u0[static_cast<std::size_t>(n - 1)] = p0;
    }

    // Overwrites b with (T - shift·I)⁻¹ b.
    void solve(Eigen::VectorXd& b) const {
        const std::int64_t n = b.size();
        for (std::int64_t k = 0; k + 1 < n; ++k) {
            const auto s = static_cast<std::size_t>(k);
            if (swapped[s]) std::swap(b[k], b[k + 1]);
            b[k + 1] -= mult[s] * b[k];
        }
        for (std::int64_t k = n - 1; k >= 0; --k) {
            const auto s = static_cast<std::size_t>(k);
            double v = b[k];
            if (k + 1 < n) v -= u1[s] * b[k + 1];
            if (k + 2 < n) v -= u2[s] * b[k + 2];
            b[k] = v / u0[s];
        }
    }
};

// Residual check of a computed eigenbasis: max_i ||A v_i - λ_i v_i|| <= tol.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline bool eigenpairs_accurate(const Eigen::Ref<const Eigen::MatrixXd>& a, const eigenpairs& p, double tol) {
    const Eigen::MatrixXd r = a.selfadjointView<Eigen::Lower>() * p.vectors - p.vectors * p.values.asDiagonal();
    for (Eigen::Index i = 0; i < r.cols(); ++i)
        if (!(r.col(i).norm() <= tol)) return false;
    return true;
}

template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline eigenpairs top_from_full(const Eigen::Ref<const Eigen::MatrixXd>& a, std::int64_t k) {
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es{Eigen::MatrixXd(a)};
    if (es.info() != Eigen::Success) fail("top_eigenpairs: the symmetric eigensolver did not converge");
    const std::int64_t n = a.rows();
    eigenpairs p{Eigen::VectorXd(k), Eigen::MatrixXd(n, k), true};
    for (std::int64_t i = 0; i < k; ++i) {
        p.values[i] = es.eigenvalues()[n - 1 - i];
        p.vectors.col(i) = es.eigenvectors().col(n - 1 - i);
    }
    return p;
}

}  // namespace detail

// The k largest eigenvalues of a symmetric matrix a (N, N) (its lower triangle is read) and
// orthonormal eigenvectors for them. Householder tridiagonalisation (Eigen::Tridiagonalization,
// 4/3 N³ flops), eigenvalues of the tridiagonal by implicit QR (O(N²)), eigenvectors of the
// tridiagonal by inverse iteration with partial-pivoting LU (as LAPACK's dstein: eigenvalues closer
// than 1e-3 ||T|| form a cluster, their shifts are kept apart and their vectors re-orthogonalised),
// back-transformation, then one Rayleigh–Ritz step on the k vectors. This costs a fraction of a full
// eigendecomposition, whose eigenvector accumulation dominates for large N. Should the residual
// ||A v - λ v|| exceed √ε ||A||, the full decomposition is used instead. Requires finite entries and
// 1 <= k <= N. Deterministic (no thread-dependent work).
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline eigenpairs top_eigenpairs(const Eigen::Ref<const Eigen::MatrixXd>& a, std::int64_t k) {
    const std::int64_t n = a.rows();
    if (a.cols() != n || n < 1)
        fail("top_eigenpairs: expected a non-empty square matrix (N, N), found shape ", shape{a.rows(), a.cols()});
    if (k < 1 || k > n) fail("top_eigenpairs: expected 1 <= K <= N = ", n, " eigenpairs, found K = ", k);
    for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t i = j; i < n; ++i)
            if (!std::isfinite(a(i, j)))
                fail("top_eigenpairs: expected finite entries, found ", a(i, j), " at (", i, ", ", j, ")");
    if (n == 1) return {Eigen::VectorXd::Constant(1, a(0, 0)), Eigen::MatrixXd::Ones(1, 1)};

    const Eigen::Tridiagonalization<Eigen::MatrixXd> tri(a);
    const Eigen::VectorXd d = tri.diagonal();
    const Eigen::VectorXd e = tri.subDiagonal();
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es;
    es.computeFromTridiagonal(d, e, Eigen::EigenvaluesOnly);
    if (es.info() != Eigen::Success) fail("top_eigenpairs: the tridiagonal QR iteration did not converge");

    // ||T||_inf, the scale of the pivot floor, the cluster gap and the shift separation.
    double tnorm = 0;
    for (std::int64_t i = 0; i < n; ++i)
        tnorm =
            std::max(tnorm, std::abs(d[i]) + (i > 0 ? std::abs(e[i - 1]) : 0.0) + (i + 1 < n ? std::abs(e[i]) : 0.0));
    const double eps = std::numeric_limits<double>::epsilon();
    if (tnorm == 0) tnorm = 1;  // the zero matrix: any orthonormal vectors are eigenvectors
    const double tiny = eps * tnorm, cluster_gap = 1e-3 * tnorm, separation = 10 * eps * tnorm;

    Eigen::MatrixXd y(n, k);  // eigenvectors of T
    detail::tridiagonal_lu lu;
    Eigen::VectorXd b(n);
    std::int64_t cluster_begin = 0;
    double previous_shift = 0;
    for (std::int64_t i = 0; i < k; ++i) {
        const double lambda = es.eigenvalues()[n - 1 - i];
        double shift = lambda;
        if (i > 0 && es.eigenvalues()[n - i] - lambda <= cluster_gap) {
            shift = std::min(shift, previous_shift - separation);  // descending shifts, kept apart
        } else {
            cluster_begin = i;
        }
        previous_shift = shift;
        lu.factor(d, e, shift, tiny);
        philox_stream rng(0, eigen_start_purpose, static_cast<std::uint64_t>(i));
        for (std::int64_t t = 0; t < n; ++t) b[t] = rng.normal();
        b.normalize();
        // Inverse iteration converges in one or two steps from an accurate eigenvalue; three, each
        // followed by Gram-Schmidt against the cluster's earlier vectors, also separate close ones.
        for (int it = 0; it < 3; ++it) {
            lu.solve(b);
            for (int pass = 0; pass < 2; ++pass)
                for (std::int64_t j = cluster_begin; j < i; ++j) b -= y.col(j).dot(b) * y.col(j);
            const double norm = b.norm();
            if (!(norm > 0) || !std::isfinite(norm)) {
                for (std::int64_t t = 0; t < n; ++t) b[t] = rng.normal();
                for (std::int64_t j = cluster_begin; j < i; ++j) b -= y.col(j).dot(b) * y.col(j);
                b.normalize();
            } else {
                b /= norm;
            }
        }
        y.col(i) = b;
    }

    // Back to A's basis (A = Q T Qᵀ), then Rayleigh–Ritz: orthonormalise and diagonalise Vᵀ A V.
    const Eigen::MatrixXd v = tri.matrixQ() * y;
    const Eigen::HouseholderQR<Eigen::MatrixXd> qr(v);
    const Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(n, k);
    const Eigen::MatrixXd aq = a.selfadjointView<Eigen::Lower>() * q;
    Eigen::MatrixXd h = q.transpose() * aq;
    h = (0.5 * (h + h.transpose())).eval();
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> small(h);
    if (small.info() != Eigen::Success) fail("top_eigenpairs: the Rayleigh-Ritz eigensolver did not converge");
    eigenpairs p{Eigen::VectorXd(k), Eigen::MatrixXd(n, k)};
    const Eigen::MatrixXd qz = q * small.eigenvectors();
    for (std::int64_t i = 0; i < k; ++i) {
        p.values[i] = small.eigenvalues()[k - 1 - i];
        p.vectors.col(i) = qz.col(k - 1 - i);
    }
    if (!detail::eigenpairs_accurate(a, p, std::sqrt(eps) * tnorm)) return detail::top_from_full(a, k);
    return p;
}

struct spectral_options {
    kmeans_options kmeans{};  // k-means on the embedding: restarts, iterations, seed, Philox purpose
};

struct spectral_result {
    std::vector<std::int64_t> labels;  // (N), each in [0, K)
    row_matrix embedding;              // (N, K): rows of the top-K eigenvectors, scaled to unit length
    Eigen::VectorXd eigenvalues;       // (K): the largest eigenvalues of D^-½ W D^-½, descending
    double inertia = 0;                // k-means inertia in the embedding
    std::int64_t isolated = 0;         // points of zero degree (their embedding row is zero)
};

namespace detail {

inline void check_affinity_shape(std::int64_t rows, std::int64_t cols, std::int64_t k) {
    if (rows < 1 || cols != rows)
        fail("spectral_clustering: expected a non-empty square affinity (N, N), found shape ", shape{rows, cols});
    if (k < 1 || k > rows)
        fail("spectral_clustering: expected 1 <= K <= N clusters for N = ", rows, " points, found K = ", k);
}

inline void check_affinity_entry(double v, std::int64_t i, std::int64_t j) {
    if (!std::isfinite(v)) fail("spectral_clustering: expected a finite affinity, found ", v, " at (", i, ", ", j, ")");
    if (v < 0) fail("spectral_clustering: expected a non-negative affinity, found ", v, " at (", i, ", ", j, ")");
}

inline void check_symmetric_pair(double wij, double wji, double scale, std::int64_t i, std::int64_t j) {
    if (std::abs(wij - wji) > 1e-12 * scale)
        fail("spectral_clustering: expected a symmetric affinity, found W(", i, ", ", j, ") = ", wij, " and W(", j,
             ", ", i, ") = ", wji);
}

// The common part: m holds the lower triangle of D^-½ W D^-½, inv_sqrt the D^-½ diagonal.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline spectral_result spectral(const Eigen::MatrixXd& m, const Eigen::VectorXd& inv_sqrt, std::int64_t k,
                                const spectral_options& options) {
    const std::int64_t n = m.rows();
    spectral_result r;
    for (std::int64_t i = 0; i < n; ++i) r.isolated += inv_sqrt[i] > 0 ? 0 : 1;
    const eigenpairs top = top_eigenpairs(m, k);
    r.eigenvalues = top.values;
    r.embedding = top.vectors;
    for (std::int64_t i = 0; i < n; ++i) {
        // An isolated point's row is zero in exact arithmetic; rounding must not scale it up.
        const double norm = r.embedding.row(i).norm();
        if (inv_sqrt[i] > 0 && norm > 0) r.embedding.row(i) /= norm;
        else
            r.embedding.row(i).setZero();
    }
    kmeans_result km = kmeans(r.embedding, k, options.kmeans);
    r.labels = std::move(km.labels);
    r.inertia = km.inertia;
    return r;
}

inline Eigen::VectorXd inverse_sqrt_degrees(const Eigen::VectorXd& degrees) {
    Eigen::VectorXd out(degrees.size());
    for (Eigen::Index i = 0; i < degrees.size(); ++i) out[i] = degrees[i] > 0 ? 1.0 / std::sqrt(degrees[i]) : 0.0;
    return out;
}

}  // namespace detail

// Spectral clustering of N points given their affinity W (N, N): symmetric, non-negative, finite
// (Ng, Jordan & Weiss 2001). M = D^-½ W D^-½ with D = diag(W 1); points of zero degree get a zero
// row and column in M instead of a division by zero, and a zero embedding row (k-means puts them
// with the centre nearest the origin). The top-K eigenvectors of M (top_eigenpairs, dense: O(N²)
// memory, O(N³) time) form the embedding (N, K), each row scaled to unit length; k-means with
// k-means++ seeding labels the rows. Requires 1 <= K <= N; symmetry is checked to 1e-12 of the
// largest entry, and W(i, j) with i >= j is what is used. Deterministic at any thread count.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline spectral_result spectral_clustering(const Eigen::Ref<const Eigen::MatrixXd>& w, std::int64_t k,
                                           const spectral_options& options = {}) {
    const std::int64_t n = w.rows();
    detail::check_affinity_shape(n, w.cols(), k);
    detail::check_options(options.kmeans, "spectral_clustering");
    double scale = 0;
    for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t i = 0; i < n; ++i) {
            detail::check_affinity_entry(w(i, j), i, j);
            scale = std::max(scale, w(i, j));
        }
    for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t i = j + 1; i < n; ++i) detail::check_symmetric_pair(w(i, j), w(j, i), scale, i, j);
    // Degrees as column sums, in row order (the sparse overload adds the same non-zeros in the same
    // order, so both give the same bits).
    Eigen::VectorXd degrees = Eigen::VectorXd::Zero(n);
    for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t i = 0; i < n; ++i) degrees[j] += w(i, j);
    const Eigen::VectorXd inv_sqrt = detail::inverse_sqrt_degrees(degrees);
    Eigen::MatrixXd m = Eigen::MatrixXd::Zero(n, n);  // lower triangle of D^-½ W D^-½
    for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t i = j; i < n; ++i) m(i, j) = inv_sqrt[i] * w(i, j) * inv_sqrt[j];
    return detail::spectral(m, inv_sqrt, k, options);
}

// The same for a sparse affinity, such as ssc_affinity's; only M is dense.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline spectral_result spectral_clustering(const Eigen::SparseMatrix<double>& w, std::int64_t k,
                                           const spectral_options& options = {}) {
    using inner = Eigen::SparseMatrix<double>::InnerIterator;
    const std::int64_t n = w.rows();
    detail::check_affinity_shape(n, w.cols(), k);
    detail::check_options(options.kmeans, "spectral_clustering");
    double scale = 0;
    for (std::int64_t j = 0; j < n; ++j)
        for (inner it(w, j); it; ++it) {
            detail::check_affinity_entry(it.value(), it.row(), j);
            scale = std::max(scale, it.value());
        }
    for (std::int64_t j = 0; j < n; ++j)
        for (inner it(w, j); it; ++it)
            if (it.row() != j) detail::check_symmetric_pair(it.value(), w.coeff(j, it.row()), scale, it.row(), j);
    Eigen::VectorXd degrees = Eigen::VectorXd::Zero(n);
    for (std::int64_t j = 0; j < n; ++j)
        for (inner it(w, j); it; ++it) degrees[j] += it.value();
    const Eigen::VectorXd inv_sqrt = detail::inverse_sqrt_degrees(degrees);
    Eigen::MatrixXd m = Eigen::MatrixXd::Zero(n, n);
    for (std::int64_t j = 0; j < n; ++j)
        for (inner it(w, j); it; ++it)
            if (it.row() >= j) m(it.row(), j) = inv_sqrt[it.row()] * it.value() * inv_sqrt[j];
    return detail::spectral(m, inv_sqrt, k, options);
}

}  // namespace ouro::cluster
