// Clustering: SSC-OMP on unions of random subspaces and against a numpy OMP reference, spectral
// clustering and the top-K eigensolver against numpy.linalg.eigh and Eigen's full solver, k-means++
// seeding frequencies and Lloyd against numpy, the Hungarian assignment against scipy and brute force,
// clustering accuracy on hand-made labels; thread-count determinism; bad input
// (tests/golden/gen_cluster.py writes the references).
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include <Eigen/Dense>
#include <Eigen/SparseCore>

#include "ouro/cluster/accuracy.hpp"
#include "ouro/cluster/kmeans.hpp"
#include "ouro/cluster/spectral.hpp"
#include "ouro/cluster/ssc_omp.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "support/common.hpp"
#include "support/golden.hpp"

using namespace ouro;
using ouro::testing::thread_guard;
using ouro::testing::to_float;
using namespace ouro::cluster;
using Catch::Matchers::Contains;

namespace {

struct labelled_points {
    tensor<double> x;                  // (N, D)
    std::vector<std::int64_t> labels;  // (N)
};

// `count` random subspaces of dimension `dim` in R^ambient (orthonormal bases: QR of Philox normals),
// `per` points on the unit sphere of each, then Gaussian noise of standard deviation `noise` per
// coordinate (as You et al.'s gen_union_of_subspaces). Point i lies in subspace i % count.
labelled_points union_of_subspaces(std::int64_t ambient, std::int64_t dim, std::int64_t count, std::int64_t per,
                                   double noise, std::uint64_t seed) {
    philox_stream rng(seed, rng_purpose::user, 0);
    std::vector<Eigen::MatrixXd> bases;
    for (std::int64_t s = 0; s < count; ++s) {
        Eigen::MatrixXd g(ambient, dim);
        for (std::int64_t i = 0; i < g.size(); ++i) g.data()[i] = rng.normal();
        const Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
        bases.push_back(qr.householderQ() * Eigen::MatrixXd::Identity(ambient, dim));
    }
    const std::int64_t n = count * per;
    labelled_points out{tensor<double>(shape{n, ambient}), std::vector<std::int64_t>(static_cast<std::size_t>(n))};
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t s = i % count;
        Eigen::VectorXd a(dim);
        for (std::int64_t j = 0; j < dim; ++j) a[j] = rng.normal();
        const Eigen::VectorXd p = bases[static_cast<std::size_t>(s)] * a.normalized();
        for (std::int64_t j = 0; j < ambient; ++j) out.x[i * ambient + j] = p[j] + noise * rng.normal();
        out.labels[static_cast<std::size_t>(i)] = s;
    }
    return out;
}

// `count` Gaussian blobs of unit variance in R^dim, centres `spread` apart along the axes.
labelled_points blobs(std::int64_t count, std::int64_t per, std::int64_t dim, double spread, std::uint64_t seed) {
    philox_stream rng(seed, rng_purpose::user, 1);
    const std::int64_t n = count * per;
    labelled_points out{tensor<double>(shape{n, dim}), std::vector<std::int64_t>(static_cast<std::size_t>(n))};
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t s = (i * 7) % count;  // classes interleaved
        for (std::int64_t j = 0; j < dim; ++j)
            out.x[i * dim + j] = (j == s % dim ? spread * (1 + s / dim) : 0.0) + rng.normal();
        out.labels[static_cast<std::size_t>(i)] = s;
    }
    return out;
}

Eigen::MatrixXd load_matrix(const std::string& name) {
    const tensor<double> t = testing::load_golden(name);
    if (t.rank() == 1) return Eigen::Map<const Eigen::VectorXd>(t.data(), t.dim(0));
    return Eigen::Map<const row_matrix>(t.data(), t.dim(0), t.dim(1));
}

// The subspace spanned by the columns of v, as the projector v vᵀ (v orthonormal).
Eigen::MatrixXd projector(const Eigen::MatrixXd& v) { return v * v.transpose(); }

Eigen::MatrixXd random_symmetric(std::int64_t n, std::uint64_t seed) {
    philox_stream rng(seed, rng_purpose::user, 2);
    Eigen::MatrixXd a(n, n);
    for (std::int64_t i = 0; i < a.size(); ++i) a.data()[i] = rng.normal();
    return 0.5 * (a + a.transpose());
}

// max_i ||A v_i - λ_i v_i|| and max |VᵀV - I|.
double eigen_residual(const Eigen::MatrixXd& a, const eigenpairs& p) {
    const Eigen::MatrixXd r = a * p.vectors - p.vectors * p.values.asDiagonal();
    return r.colwise().norm().maxCoeff();
}
double orthonormality_error(const Eigen::MatrixXd& v) {
    return (v.transpose() * v - Eigen::MatrixXd::Identity(v.cols(), v.cols())).cwiseAbs().maxCoeff();
}

bool same_sparse(const Eigen::SparseMatrix<double>& a, const Eigen::SparseMatrix<double>& b) {
    if (a.rows() != b.rows() || a.cols() != b.cols() || a.nonZeros() != b.nonZeros()) return false;
    for (Eigen::Index j = 0; j < a.outerSize(); ++j) {
        Eigen::SparseMatrix<double>::InnerIterator ia(a, j), ib(b, j);
        for (; ia && ib; ++ia, ++ib)
            if (ia.row() != ib.row() || ia.value() != ib.value()) return false;
        if (ia || ib) return false;
    }
    return true;
}

}  // namespace

// ==================================== SSC-OMP ====================================

TEST_CASE("SSC-OMP and spectral clustering separate a union of random subspaces", "[cluster][ssc]") {
    // 5 subspaces of dimension 6 in R^30, 100 points each, noise 0.01 per coordinate.
    const labelled_points data = union_of_subspaces(30, 6, 5, 100, 0.01, 7);
    for (std::int64_t k_max : {6, 10}) {
        const spectral_result r = ssc_omp_clustering(data.x, 5, {.ssc = {.k_max = k_max}});
        const double acc = clustering_accuracy(r.labels, data.labels);
        WARN("SSC-OMP + spectral, 5 subspaces of dim 6 in R^30, noise 0.01, k_max = " << k_max << ": accuracy " << acc);
        CHECK(acc >= 0.95);
        CHECK(r.eigenvalues.size() == 5);
        CHECK(r.isolated == 0);
    }
    // The same points in float: computed in double after one rounding of the input.
    const spectral_result rf = ssc_omp_clustering(to_float(data.x), 5);
    CHECK(clustering_accuracy(rf.labels, data.labels) >= 0.95);
}

TEST_CASE("SSC-OMP on noiseless independent subspaces gives subspace-preserving coefficients", "[cluster][ssc]") {
    // 5 x 6 = 30 = D: the random subspaces are independent. OMP may still pick an atom of another
    // subspace, but once x_j is spanned, independence forces the coefficients of such atoms to zero
    // (You et al. 2016, sec. 3: subspace-preserving representations for independent subspaces).
    const labelled_points data = union_of_subspaces(30, 6, 5, 40, 0.0, 11);
    const ssc_omp_result r = ssc_omp(data.x, {.k_max = 12, .epsilon = 1e-6});
    std::int64_t across = 0;
    double across_max = 0, within_min = INFINITY;
    for (Eigen::Index j = 0; j < r.coefficients.outerSize(); ++j) {
        CHECK(r.residual_norms[static_cast<std::size_t>(j)] <= 1e-6);
        std::int64_t support = 0;
        for (Eigen::SparseMatrix<double>::InnerIterator it(r.coefficients, j); it; ++it) {
            ++support;
            if (data.labels[static_cast<std::size_t>(it.row())] != data.labels[static_cast<std::size_t>(j)]) {
                ++across;
                across_max = std::max(across_max, std::abs(it.value()));
            } else {
                within_min = std::min(within_min, std::abs(it.value()));
            }
        }
        CHECK(support >= 6);  // a generic point of a 6-dimensional subspace needs 6 others
    }
    INFO(across << " atoms from other subspaces, largest |coefficient| " << across_max << "; smallest own "
                << within_min);
    CHECK(across_max < 1e-8);
    CHECK(within_min > 1e-4);
    const spectral_result s = spectral_clustering(ssc_affinity(r.coefficients), 5);
    CHECK(clustering_accuracy(s.labels, data.labels) == 1.0);
}

TEST_CASE("SSC-OMP never uses a point to express itself, not even when it has a duplicate", "[cluster][ssc]") {
    labelled_points data = union_of_subspaces(8, 2, 3, 10, 0.02, 3);
    // Point 5 is a copy of point 0 (scaled, so it is the same after normalisation).
    for (std::int64_t j = 0; j < 8; ++j) data.x[5 * 8 + j] = 3.0 * data.x[j];
    const ssc_omp_result r = ssc_omp(data.x, {.k_max = 4, .epsilon = 1e-9});
    for (Eigen::Index j = 0; j < r.coefficients.outerSize(); ++j)
        for (Eigen::SparseMatrix<double>::InnerIterator it(r.coefficients, j); it; ++it) CHECK(it.row() != j);
    // Each copy is exactly the other: one atom with coefficient 1 and no residual.
    for (std::int64_t j : {0, 5}) {
        const std::int64_t other = j == 0 ? 5 : 0;
        CHECK(r.coefficients.col(j).nonZeros() == 1);
        CHECK(r.coefficients.coeff(other, j) == Approx(1.0).epsilon(1e-12));
        CHECK(r.residual_norms[static_cast<std::size_t>(j)] < 1e-7);
    }
}

TEST_CASE("SSC-OMP coefficients match a numpy OMP reference", "[cluster][ssc][golden]") {
    const tensor<double> x = testing::load_golden("cluster/ssc_points.npy");
    for (const auto& [eps, suffix] : {std::pair{1e-3, ""}, std::pair{0.05, "_eps"}}) {
        INFO("epsilon = " << eps);
        const Eigen::MatrixXd expected = load_matrix(std::string("cluster/ssc_coefficients") + suffix + ".npy");
        const Eigen::MatrixXd residuals = load_matrix(std::string("cluster/ssc_residuals") + suffix + ".npy");
        const ssc_omp_result r = ssc_omp(x, {.k_max = 5, .epsilon = eps});
        const Eigen::MatrixXd c(r.coefficients);
        // Same supports (the sparsity patterns agree) and coefficients to rounding.
        CHECK(((c.array() != 0) == (expected.array() != 0)).all());
        CHECK((c - expected).cwiseAbs().maxCoeff() < 1e-10);
        double worst = 0;
        for (std::int64_t j = 0; j < x.dim(0); ++j)
            worst = std::max(worst, std::abs(r.residual_norms[static_cast<std::size_t>(j)] - residuals(j, 0)));
        CHECK(worst < 1e-9);
        // Float input: rounded once, so within float precision of the double result.
        const ssc_omp_result rf = ssc_omp(to_float(x), {.k_max = 5, .epsilon = eps});
        CHECK((Eigen::MatrixXd(rf.coefficients) - expected).cwiseAbs().maxCoeff() < 1e-4);
    }
}

TEST_CASE("ssc_affinity is |C| + |C|ᵀ, optionally with unit columns first", "[cluster][ssc]") {
    Eigen::MatrixXd c(3, 3);
    c << 0, -3, 0.5,  //
        4, 0, 0,      //
        0, 2, 0;
    const Eigen::SparseMatrix<double> cs = c.sparseView();
    const Eigen::MatrixXd w(ssc_affinity(cs));
    Eigen::MatrixXd expected(3, 3);
    expected << 0, 7, 0.5,  //
        7, 0, 2,            //
        0.5, 2, 0;
    CHECK((w - expected).cwiseAbs().maxCoeff() == 0.0);
    // Columns scaled to unit norm: (0, 4, 0)/4, (3, 0, 2)/√13, (0.5, 0, 0)/0.5; then halved.
    const Eigen::MatrixXd wn(ssc_affinity(cs, true));
    CHECK(wn(0, 1) == Approx(0.5 * (1.0 + 3.0 / std::sqrt(13.0))).epsilon(1e-15));
    CHECK(wn(0, 2) == Approx(0.5).epsilon(1e-15));
    CHECK(wn(1, 2) == Approx(0.5 * 2.0 / std::sqrt(13.0)).epsilon(1e-15));
    CHECK((wn - wn.transpose()).cwiseAbs().maxCoeff() == 0.0);
    CHECK_THROWS_WITH(ssc_affinity(Eigen::SparseMatrix<double>(3, 4)),
                      Contains("expected square coefficients (N, N)") && Contains("(3, 4)"));
}

TEST_CASE("SSC-OMP and spectral clustering give the same C and labels at 1 and 2 threads", "[cluster][ssc][threads]") {
    thread_guard guard;
    const labelled_points data = union_of_subspaces(20, 4, 4, 150, 0.005, 5);  // N = 600: several Gram blocks
    set_threads(1);
    const ssc_omp_result c1 = ssc_omp(data.x);
    const spectral_result s1 = spectral_clustering(ssc_affinity(c1.coefficients), 4);
    set_threads(2);
    const ssc_omp_result c2 = ssc_omp(data.x);
    const spectral_result s2 = spectral_clustering(ssc_affinity(c2.coefficients), 4);
    CHECK(same_sparse(c1.coefficients, c2.coefficients));
    CHECK(c1.residual_norms == c2.residual_norms);
    CHECK(s1.labels == s2.labels);
    CHECK(s1.embedding == s2.embedding);
    CHECK(s1.inertia == s2.inertia);
    CHECK(clustering_accuracy(s1.labels, data.labels) >= 0.95);
}

TEST_CASE("SSC-OMP handles zero points, a single point, and k_max above N - 1", "[cluster][ssc]") {
    tensor<double> x(shape{4, 3}, 0.0);
    x[0] = 1;                 // e0
    x[3 + 1] = 2;             // 2 e1
    x[6 + 0] = x[6 + 1] = 1;  // e0 + e1; row 3 is zero
    const ssc_omp_result r = ssc_omp(x, {.k_max = 10, .epsilon = 1e-9});
    CHECK(r.coefficients.col(3).nonZeros() == 0);                                   // a zero point is not expressed ...
    for (Eigen::Index j = 0; j < 3; ++j) CHECK(r.coefficients.coeff(3, j) == 0.0);  // ... nor used
    CHECK(r.residual_norms[3] == 0.0);
    // (e0 + e1)/√2 = (e0 + e1')/√2 with unit atoms e0 and e1' = e1: coefficients 1/√2 each.
    CHECK(r.coefficients.coeff(0, 2) == Approx(1 / std::sqrt(2.0)).epsilon(1e-14));
    CHECK(r.coefficients.coeff(1, 2) == Approx(1 / std::sqrt(2.0)).epsilon(1e-14));
    // e0 = √2 (e0 + e1)/√2 - e1: spanned by the other two, no residual.
    CHECK(r.residual_norms[0] < 1e-12);
    const ssc_omp_result one = ssc_omp(tensor<double>(shape{1, 3}, 1.0));
    CHECK(one.coefficients.nonZeros() == 0);
    CHECK(one.residual_norms[0] == Approx(1.0));
}

TEST_CASE("SSC-OMP rejects bad input with messages naming what was expected and found", "[cluster][ssc][errors]") {
    CHECK_THROWS_WITH(ssc_omp(tensor<double>(shape{0, 30})),
                      Contains("expected points (N, D) with N >= 1 and D >= 1") && Contains("(0, 30)"));
    CHECK_THROWS_WITH(ssc_omp(tensor<double>(shape{5, 0})), Contains("found shape (5, 0)"));
    CHECK_THROWS_WITH(ssc_omp(tensor<float>(shape{5})), Contains("found shape (5)"));
    tensor<double> x(shape{5, 3}, 1.0);
    x[7] = std::nan("");
    CHECK_THROWS_WITH(ssc_omp(x), Contains("expected finite points") && Contains("nan") && Contains("(2, 1)"));
    x[7] = 1.0;
    CHECK_THROWS_WITH(ssc_omp(x, {.k_max = 0}), Contains("expected k_max >= 1, found 0"));
    CHECK_THROWS_WITH(ssc_omp(x, {.epsilon = -1}), Contains("epsilon >= 0, found -1"));
    CHECK_THROWS_WITH(ssc_omp_clustering(x, 6),
                      Contains("expected 1 <= K <= N clusters for N = 5") && Contains("K = 6"));
    CHECK_THROWS_WITH(ssc_omp_clustering(x, 0), Contains("found K = 0"));
}

// ==================================== eigensolver and spectral clustering ====================================

TEST_CASE("top_eigenpairs matches numpy.linalg.eigh and Eigen's full solver", "[cluster][eigen][golden]") {
    const Eigen::MatrixXd a = load_matrix("cluster/eigen_matrix.npy");
    const Eigen::MatrixXd values = load_matrix("cluster/eigen_top_values.npy");
    const eigenpairs p = top_eigenpairs(a, 6);
    for (int i = 0; i < 6; ++i) CHECK(p.values[i] == Approx(values(i, 0)).epsilon(1e-12));
    CHECK(eigen_residual(a, p) < 1e-12);
    CHECK(orthonormality_error(p.vectors) < 1e-13);
    CHECK_FALSE(p.full_decomposition);

    // Random sizes and K, against the full decomposition (projectors: signs do not matter).
    for (const auto& [n, k] : {std::pair<std::int64_t, std::int64_t>{2, 1}, {3, 3}, {17, 4}, {64, 10}, {200, 7}}) {
        INFO("N = " << n << ", K = " << k);
        const Eigen::MatrixXd m = random_symmetric(n, static_cast<std::uint64_t>(n));
        const eigenpairs q = top_eigenpairs(m, k);
        const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> full(m);
        const Eigen::MatrixXd top = full.eigenvectors().rightCols(k);
        for (std::int64_t i = 0; i < k; ++i) CHECK(q.values[i] == Approx(full.eigenvalues()[n - 1 - i]).epsilon(1e-12));
        CHECK((projector(q.vectors) - projector(top)).cwiseAbs().maxCoeff() < 1e-9);
        CHECK(eigen_residual(m, q) < 1e-11 * n);
        CHECK(orthonormality_error(q.vectors) < 1e-13);
        CHECK_FALSE(q.full_decomposition);
        // The fallback path gives the same space.
        const eigenpairs f = cluster::detail::top_from_full(m, k);
        CHECK(f.full_decomposition);
        CHECK((projector(f.vectors) - projector(q.vectors)).cwiseAbs().maxCoeff() < 1e-9);
    }
    const eigenpairs one = top_eigenpairs(Eigen::MatrixXd::Constant(1, 1, -2.5), 1);
    CHECK(one.values[0] == -2.5);
    CHECK(std::abs(one.vectors(0, 0)) == 1.0);
}

TEST_CASE("top_eigenpairs returns an orthonormal basis of repeated eigenvalues", "[cluster][eigen]") {
    // Four identical disconnected blocks: every eigenvalue has multiplicity 4, and the top one is
    // exactly the graph's "one eigenvalue 1 per component" case of spectral clustering.
    const Eigen::MatrixXd block = random_symmetric(9, 42).cwiseAbs();
    Eigen::MatrixXd a = Eigen::MatrixXd::Zero(36, 36);
    for (int b = 0; b < 4; ++b) a.block(9 * b, 9 * b, 9, 9) = block;
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> full(a);
    for (std::int64_t k : {4, 6, 8}) {
        INFO("K = " << k);
        const eigenpairs p = top_eigenpairs(a, k);
        for (std::int64_t i = 0; i < k; ++i) CHECK(p.values[i] == Approx(full.eigenvalues()[35 - i]).epsilon(1e-12));
        CHECK(eigen_residual(a, p) < 1e-12);
        CHECK(orthonormality_error(p.vectors) < 1e-12);
        CHECK_FALSE(p.full_decomposition);  // inverse iteration separated the repeated eigenvalues
    }
    // The top-4 space is the span of the blocks' top eigenvector, block by block.
    const eigenpairs p = top_eigenpairs(a, 4);
    CHECK((projector(p.vectors) - projector(full.eigenvectors().rightCols(4))).cwiseAbs().maxCoeff() < 1e-10);
    // The zero matrix: any orthonormal basis, eigenvalues 0.
    const eigenpairs z = top_eigenpairs(Eigen::MatrixXd::Zero(5, 5), 3);
    CHECK(z.values.cwiseAbs().maxCoeff() == 0.0);
    CHECK(orthonormality_error(z.vectors) < 1e-14);
    CHECK_FALSE(z.full_decomposition);
}

TEST_CASE("spectral_clustering matches numpy's normalised-affinity embedding", "[cluster][spectral][golden]") {
    const Eigen::MatrixXd w = load_matrix("cluster/spectral_affinity.npy");
    const Eigen::MatrixXd values = load_matrix("cluster/spectral_eigenvalues.npy");
    const Eigen::MatrixXd embedding = load_matrix("cluster/spectral_embedding.npy");
    const spectral_result r = spectral_clustering(w, 3);
    for (int i = 0; i < 3; ++i) CHECK(r.eigenvalues[i] == Approx(values(i, 0)).epsilon(1e-12));
    // Distinct eigenvalues: the columns agree up to sign.
    for (int c = 0; c < 3; ++c) {
        const double sign = r.embedding.col(c).dot(embedding.col(c)) < 0 ? -1.0 : 1.0;
        CHECK((sign * r.embedding.col(c) - embedding.col(c)).cwiseAbs().maxCoeff() < 1e-10);
    }
    CHECK(r.isolated == 1);
    CHECK(r.embedding.row(25).norm() == 0.0);  // the isolated point
    // The three blocks (8, 10, 7 points) come out as the three clusters.
    std::vector<std::int64_t> blocks(8, 0), labels(r.labels.begin(), r.labels.begin() + 25);
    blocks.insert(blocks.end(), 10, 1);
    blocks.insert(blocks.end(), 7, 2);
    CHECK(clustering_accuracy(labels, blocks) == 1.0);
    // The sparse overload adds the same non-zeros in the same order: the same bits.
    const spectral_result rs = spectral_clustering(Eigen::SparseMatrix<double>(w.sparseView()), 3);
    CHECK(rs.labels == r.labels);
    CHECK(rs.embedding == r.embedding);
    CHECK(rs.eigenvalues == r.eigenvalues);
}

TEST_CASE("spectral_clustering separates disconnected components exactly", "[cluster][spectral]") {
    // Five components of random sizes and weights; the top eigenvalue 1 has multiplicity 5.
    philox_stream rng(3, rng_purpose::user, 0);
    std::vector<std::int64_t> truth;
    for (std::int64_t c = 0; c < 5; ++c) truth.insert(truth.end(), 5 + rng.below(20), c);
    const auto n = static_cast<std::int64_t>(truth.size());
    // Shuffle the order of the points.
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    for (std::int64_t i = n - 1; i > 0; --i)
        std::swap(order[static_cast<std::size_t>(i)], order[rng.below(static_cast<std::uint32_t>(i + 1))]);
    Eigen::MatrixXd w = Eigen::MatrixXd::Zero(n, n);
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < i; ++j)
            if (truth[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] ==
                truth[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])])
                w(i, j) = w(j, i) = 0.1 + rng.uniform();
    std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)
        labels[static_cast<std::size_t>(i)] = truth[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])];
    const spectral_result r = spectral_clustering(w, 5, {.kmeans = {.n_init = 3, .seed = 9}});
    CHECK(clustering_accuracy(r.labels, labels) == 1.0);
    for (int i = 0; i < 5; ++i) CHECK(r.eigenvalues[i] == Approx(1.0).epsilon(1e-12));
    CHECK(r.inertia < 1e-20);  // rows of one component coincide after row normalisation
}

TEST_CASE("spectral_clustering rejects bad affinities", "[cluster][spectral][errors]") {
    Eigen::MatrixXd w = Eigen::MatrixXd::Ones(4, 4);
    CHECK_THROWS_WITH(spectral_clustering(w, 5),
                      Contains("expected 1 <= K <= N clusters for N = 4") && Contains("K = 5"));
    CHECK_THROWS_WITH(spectral_clustering(w, 0), Contains("found K = 0"));
    CHECK_THROWS_WITH(spectral_clustering(Eigen::MatrixXd(0, 0), 1),
                      Contains("non-empty square affinity") && Contains("(0, 0)"));
    CHECK_THROWS_WITH(spectral_clustering(Eigen::MatrixXd::Ones(3, 4), 1), Contains("found shape (3, 4)"));
    w(1, 2) = std::nan("");
    CHECK_THROWS_WITH(spectral_clustering(w, 2),
                      Contains("expected a finite affinity") && Contains("nan") && Contains("(1, 2)"));
    w(1, 2) = -0.5;
    CHECK_THROWS_WITH(spectral_clustering(w, 2), Contains("expected a non-negative affinity, found -0.5 at (1, 2)"));
    w(1, 2) = 2;
    CHECK_THROWS_WITH(spectral_clustering(w, 2),
                      Contains("expected a symmetric affinity") && Contains("W(2, 1) = 1") && Contains("W(1, 2) = 2"));
    w(1, 2) = 1;
    CHECK_THROWS_WITH(spectral_clustering(w, 2, {.kmeans = {.n_init = 0}}), Contains("expected n_init >= 1, found 0"));
    // The sparse overload checks the same things.
    Eigen::SparseMatrix<double> s = w.sparseView();
    CHECK_THROWS_WITH(spectral_clustering(s, 5),
                      Contains("expected 1 <= K <= N clusters for N = 4") && Contains("K = 5"));
    CHECK_THROWS_WITH(spectral_clustering(Eigen::SparseMatrix<double>(3, 4), 1), Contains("found shape (3, 4)"));
    s.coeffRef(1, 2) = -0.5;
    CHECK_THROWS_WITH(spectral_clustering(s, 2), Contains("expected a non-negative affinity, found -0.5 at (1, 2)"));
    s.coeffRef(1, 2) = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(spectral_clustering(s, 2), Contains("expected a finite affinity, found inf at (1, 2)"));
    s.coeffRef(1, 2) = 2;
    CHECK_THROWS_WITH(spectral_clustering(s, 2),
                      Contains("expected a symmetric affinity") && Contains("W(2, 1) = 1") && Contains("W(1, 2) = 2"));
    Eigen::SparseMatrix<double> one_sided(3, 3);  // an entry without its mirror
    one_sided.insert(2, 0) = 0.5;
    CHECK_THROWS_WITH(spectral_clustering(one_sided, 1), Contains("W(2, 0) = 0.5 and W(0, 2) = 0"));
    CHECK_THROWS_WITH(top_eigenpairs(Eigen::MatrixXd::Ones(3, 2), 1),
                      Contains("square matrix (N, N), found shape (3, 2)"));
    CHECK_THROWS_WITH(top_eigenpairs(Eigen::MatrixXd::Ones(3, 3), 4),
                      Contains("expected 1 <= K <= N = 3") && Contains("K = 4"));
}

// ==================================== k-means ====================================

TEST_CASE("k-means++ and Lloyd recover well-separated blobs exactly", "[cluster][kmeans]") {
    const labelled_points data = blobs(6, 40, 5, 12.0, 1);
    for (int trials : {1, 3}) {
        INFO("local_trials = " << trials);
        const kmeans_result r = kmeans(data.x, 6, {.local_trials = trials});
        CHECK(clustering_accuracy(r.labels, data.labels) == 1.0);
        CHECK(r.converged);
        CHECK(r.centers.rows() == 6);
        // Inertia is the sum of squared distances to the centres of the labels.
        double s = 0;
        for (std::int64_t i = 0; i < 240; ++i)
            for (std::int64_t j = 0; j < 5; ++j) {
                const double t = data.x[i * 5 + j] - r.centers(r.labels[static_cast<std::size_t>(i)], j);
                s += t * t;
            }
        CHECK(r.inertia == Approx(s).epsilon(1e-12));
        // 240 points of unit variance in R^5: about 5 per point around the true means.
        CHECK(r.inertia / 240 == Approx(5.0).epsilon(0.15));
    }
    // K = 1 is the mean; K = N puts every point in its own cluster.
    const kmeans_result one = kmeans(data.x, 1);
    CHECK(one.inertia > 0);
    CHECK(std::all_of(one.labels.begin(), one.labels.end(), [](std::int64_t l) { return l == 0; }));
    const labelled_points few = blobs(3, 2, 2, 5.0, 4);
    const kmeans_result all = kmeans(few.x, 6);
    CHECK(all.inertia == 0.0);
    std::vector<std::int64_t> sorted = all.labels;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("k-means++ seeding draws the next centre with probability proportional to D²", "[cluster][kmeans]") {
    // Points 0, 1, 3 on a line, K = 2: the first centre is uniform; given it, D² weights are
    // {0: (1, 9)}, {1: (1, 4)}, {3: (9, 4)} for the other two.
    row_matrix x(3, 1);
    x << 0, 1, 3;
    const double p[3][3] = {{0, 1.0 / 10, 9.0 / 10}, {1.0 / 5, 0, 4.0 / 5}, {9.0 / 13, 4.0 / 13, 0}};
    const int trials = 30000;
    int count[3][3] = {};
    for (int t = 0; t < trials; ++t) {
        philox_stream rng(77, kmeans_purpose, static_cast<std::uint64_t>(t));
        const row_matrix c = kmeans_plus_plus(x, 2, rng);
        const auto first = static_cast<int>(c(0, 0)), second = static_cast<int>(c(1, 0));
        ++count[first == 3 ? 2 : first][second == 3 ? 2 : second];
    }
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) {
            const double expected = trials * p[a][b] / 3.0;
            const double sd = std::sqrt(trials * (p[a][b] / 3.0) * (1 - p[a][b] / 3.0));
            INFO("first " << a << ", second " << b << ": " << count[a][b] << " vs " << expected);
            CHECK(std::abs(count[a][b] - expected) <= 4.5 * sd + 1e-9);
        }
}

TEST_CASE("Lloyd's iterations match a numpy reference from the same centres", "[cluster][kmeans][golden]") {
    const row_matrix x = load_matrix("cluster/lloyd_points.npy");
    const row_matrix init = load_matrix("cluster/lloyd_init.npy");
    const tensor<std::int64_t> labels = io::read_npy<std::int64_t>(testing::golden_path("cluster/lloyd_labels.npy"));
    const Eigen::MatrixXd centers = load_matrix("cluster/lloyd_centers.npy");
    const Eigen::MatrixXd stats = load_matrix("cluster/lloyd_inertia_iterations.npy");
    const kmeans_result r = lloyd(x, init);
    CHECK(r.labels == std::vector<std::int64_t>(labels.begin(), labels.end()));
    CHECK((r.centers - centers).cwiseAbs().maxCoeff() < 1e-12);
    CHECK(r.inertia == Approx(stats(0, 0)).epsilon(1e-12));
    CHECK(r.iterations == static_cast<int>(stats(1, 0)));
    CHECK(r.converged);
    // Stopped early, it reports so.
    const kmeans_result early = lloyd(x, init, 2);
    CHECK(early.iterations == 2);
    CHECK_FALSE(early.converged);
}

TEST_CASE("Lloyd moves an empty cluster's centre to the farthest point", "[cluster][kmeans]") {
    row_matrix x(4, 1), init(3, 1);
    x << 0, 1, 10, 11;
    init << 0.5, 100, 10.5;  // centre 1 gets no point
    const kmeans_result r = lloyd(x, init);
    // Centre 1 moves to point 0 (all points tie at distance 0.25 from their centres; lowest index).
    CHECK(r.labels == std::vector<std::int64_t>{1, 0, 2, 2});
    CHECK(r.inertia == 0.5);
    CHECK(r.converged);
}

TEST_CASE("k-means is the same at 1 and 2 threads, and for float input", "[cluster][kmeans][threads]") {
    thread_guard guard;
    const labelled_points data = blobs(5, 300, 8, 3.0, 2);  // overlapping: restarts differ
    set_threads(1);
    const kmeans_result a = kmeans(data.x, 5, {.seed = 4});
    set_threads(2);
    const kmeans_result b = kmeans(data.x, 5, {.seed = 4});
    CHECK(a.labels == b.labels);
    CHECK(a.centers == b.centers);
    CHECK(a.inertia == b.inertia);
    CHECK(a.restart == b.restart);
    // Float input is converted to double once: the same clustering up to rounding.
    const kmeans_result f = kmeans(to_float(data.x), 5, {.seed = 4});
    CHECK(clustering_accuracy(f.labels, a.labels) > 0.99);
}

TEST_CASE("k-means rejects bad input with messages naming what was expected and found", "[cluster][kmeans][errors]") {
    const tensor<double> x(shape{4, 2}, 1.0);
    CHECK_THROWS_WITH(kmeans(x, 5), Contains("expected 1 <= K <= N clusters for N = 4 points, found K = 5"));
    CHECK_THROWS_WITH(kmeans(x, 0), Contains("found K = 0"));
    CHECK_THROWS_WITH(kmeans(tensor<double>(shape{0, 2}), 1),
                      Contains("expected points (N, D) with N >= 1") && Contains("(0, 2)"));
    CHECK_THROWS_WITH(kmeans(tensor<float>(shape{4}), 1), Contains("expected a rank-2 tensor (N, D), found shape (4)"));
    tensor<double> bad = x;
    bad[3] = std::nan("");
    CHECK_THROWS_WITH(kmeans(bad, 2), Contains("expected finite points, found nan at (1, 1)"));
    CHECK_THROWS_WITH(kmeans(x, 2, {.max_iter = 0}), Contains("expected max_iter >= 1, found 0"));
    CHECK_THROWS_WITH(kmeans(x, 2, {.local_trials = 0}), Contains("expected local_trials >= 1, found 0"));
    CHECK_THROWS_WITH(lloyd(row_matrix::Ones(4, 2), row_matrix::Ones(2, 3)),
                      Contains("expected centres of the points' dimension, (K, 2), found shape (2, 3)"));
}

// ==================================== assignment and accuracy ====================================

TEST_CASE("min_cost_assignment solves hand-made assignment problems", "[cluster][accuracy]") {
    Eigen::MatrixXd a(3, 3);
    a << 4, 1, 3,  //
        2, 0, 5,   //
        3, 2, 2;
    // Optimum 5: rows -> (1, 0, 2) (costs 1 + 2 + 2); the greedy diagonal-minimum pick is worse.
    CHECK(min_cost_assignment(a) == std::vector<std::int64_t>{1, 0, 2});
    // A permutation matrix of negated counts: the permutation itself.
    Eigen::MatrixXd perm = Eigen::MatrixXd::Zero(4, 4);
    const std::vector<std::int64_t> sigma{2, 0, 3, 1};
    for (int i = 0; i < 4; ++i) perm(i, sigma[static_cast<std::size_t>(i)]) = -10;
    CHECK(min_cost_assignment(perm) == sigma);
    // Wide (2 rows, 4 columns): each row gets its cheapest distinct column.
    Eigen::MatrixXd wide(2, 4);
    wide << 5, 1, 9, 9,  //
        5, 2, 9, 0;
    CHECK(min_cost_assignment(wide) == std::vector<std::int64_t>{1, 3});
    // Tall (3 rows, 2 columns): one row stays out.
    Eigen::MatrixXd tall(3, 2);
    tall << 1, 7,  //
        0, 8,      //
        9, 2;
    CHECK(min_cost_assignment(tall) == std::vector<std::int64_t>{-1, 0, 1});
    CHECK(min_cost_assignment(Eigen::MatrixXd::Constant(1, 1, 3.0)) == std::vector<std::int64_t>{0});
    CHECK(min_cost_assignment(Eigen::MatrixXd(0, 3)).empty());
    CHECK(min_cost_assignment(Eigen::MatrixXd(2, 0)) == std::vector<std::int64_t>{-1, -1});
    Eigen::MatrixXd bad = a;
    bad(2, 1) = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(min_cost_assignment(bad),
                      Contains("expected a finite cost (R, C) = (3, 3), found inf at (2, 1)"));
}

TEST_CASE("min_cost_assignment matches scipy and brute force", "[cluster][accuracy][golden]") {
    const Eigen::MatrixXd totals = load_matrix("cluster/assignment_totals.npy");
    for (int q = 0; q < 4; ++q) {
        INFO("case " << q);
        const Eigen::MatrixXd cost = load_matrix("cluster/assignment_cost_" + std::to_string(q) + ".npy");
        const std::vector<std::int64_t> r = min_cost_assignment(cost);
        double total = 0;
        std::vector<std::int64_t> cols;
        for (std::size_t i = 0; i < r.size(); ++i)
            if (r[i] >= 0) {
                total += cost(static_cast<Eigen::Index>(i), r[i]);
                cols.push_back(r[i]);
            }
        CHECK(static_cast<Eigen::Index>(cols.size()) == std::min(cost.rows(), cost.cols()));
        std::sort(cols.begin(), cols.end());
        CHECK(std::adjacent_find(cols.begin(), cols.end()) == cols.end());
        CHECK(total == Approx(totals(q, 0)).epsilon(1e-12));
    }
    // Every permutation of random 6 x 6 costs: the minimum equals ours.
    philox_stream rng(5, rng_purpose::user, 0);
    for (int t = 0; t < 20; ++t) {
        Eigen::MatrixXd cost(6, 6);
        for (Eigen::Index i = 0; i < cost.size(); ++i) cost.data()[i] = static_cast<double>(rng.below(10));  // ties too
        std::vector<std::int64_t> p{0, 1, 2, 3, 4, 5};
        double best = std::numeric_limits<double>::infinity();
        do {
            double s = 0;
            for (int i = 0; i < 6; ++i) s += cost(i, p[static_cast<std::size_t>(i)]);
            best = std::min(best, s);
        } while (std::next_permutation(p.begin(), p.end()));
        const std::vector<std::int64_t> r = min_cost_assignment(cost);
        double ours = 0;
        for (int i = 0; i < 6; ++i) ours += cost(i, r[static_cast<std::size_t>(i)]);
        CHECK(ours == best);
    }
}

TEST_CASE("match_clusters finds the best cluster-to-class map", "[cluster][accuracy]") {
    // Clusters are a relabelling of the classes: accuracy 1, the map is the relabelling.
    const std::vector<std::int64_t> classes{0, 0, 1, 1, 1, 2, 2, 3};
    const std::vector<int> clusters{2, 2, 0, 0, 0, 3, 3, 1};
    const label_matching m = match_clusters(clusters, classes);
    CHECK(m.accuracy == 1.0);
    CHECK(m.cluster_to_class == std::vector<std::int64_t>{1, 3, 0, 2});
    // Confusion (rows clusters 0..2, columns classes 0..2):
    //   [3 1 0]
    //   [2 0 2]      best: 0->0 (3), 1->2 (2), 2->1 (2) = 7 of 10;
    //   [0 2 0]      the greedy 0->0, 1->... gives the same, but 1->0 would lose.
    const std::vector<int> y{0, 0, 0, 1, 0, 0, 2, 2, 1, 1};
    const std::vector<int> c{0, 0, 0, 0, 1, 1, 1, 1, 2, 2};
    const label_matching p = match_clusters(c, y);
    CHECK(p.matched == 7);
    CHECK(p.total == 10);
    CHECK(p.accuracy == Approx(0.7));
    CHECK(p.cluster_to_class == std::vector<std::int64_t>{0, 2, 1});
    // More clusters than classes: cluster 2 stays unmatched and its points count as errors.
    const label_matching more = match_clusters(std::vector<int>{0, 0, 1, 1, 2}, std::vector<int>{5, 5, 9, 9, 9});
    CHECK(more.cluster_to_class == std::vector<std::int64_t>{5, 9, -1});
    CHECK(more.accuracy == Approx(0.8));
    // Fewer clusters than classes (sparse cluster values: the map is indexed by value).
    const label_matching fewer = match_clusters(std::vector<int>{4, 4, 4, 0}, std::vector<int>{1, 1, 2, 3});
    CHECK(fewer.cluster_to_class == std::vector<std::int64_t>{3, -1, -1, -1, 1});
    CHECK(fewer.accuracy == Approx(0.75));
    CHECK(clustering_accuracy(c, y) == Approx(0.7));
}

TEST_CASE("match_clusters rejects bad labels", "[cluster][accuracy][errors]") {
    CHECK_THROWS_WITH(
        match_clusters(std::vector<int>{0, 1}, std::vector<int>{0, 1, 1}),
        Contains("expected one class label per cluster label, found 2 cluster labels and 3 class labels"));
    CHECK_THROWS_WITH(match_clusters(std::vector<int>{}, std::vector<int>{}),
                      Contains("expected at least one labelled point"));
    CHECK_THROWS_WITH(match_clusters(std::vector<int>{0, -1}, std::vector<int>{0, 1}),
                      Contains("expected cluster labels >= 0, found -1 at index 1"));
    CHECK_THROWS_WITH(match_clusters(std::vector<int>{0, 1}, std::vector<int>{-3, 1}),
                      Contains("expected class labels >= 0, found -3 at index 0"));
}

// ==================================== scale ====================================

TEST_CASE("SSC-OMP and spectral clustering of 3000 points in R^300 take seconds", "[cluster][ssc][.slow]") {
    const labelled_points data = union_of_subspaces(300, 10, 10, 300, 0.01, 21);
    const auto t0 = std::chrono::steady_clock::now();
    const ssc_omp_result c = ssc_omp(data.x);
    const auto t1 = std::chrono::steady_clock::now();
    const spectral_result s = spectral_clustering(ssc_affinity(c.coefficients), 10);
    const auto t2 = std::chrono::steady_clock::now();
    const double acc = clustering_accuracy(s.labels, data.labels);
    WARN("N = 3000, D = 300, 10 subspaces of dim 10: SSC-OMP "
         << std::chrono::duration<double>(t1 - t0).count() << " s, spectral "
         << std::chrono::duration<double>(t2 - t1).count() << " s at " << max_threads() << " threads; accuracy "
         << acc);
    CHECK(acc >= 0.95);
}
