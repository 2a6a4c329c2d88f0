// Tests for cluster/knn_graph.hpp: nearest-neighbour graphs on hand-made point sets (edges, weights,
// ties), connected components and their eigenvalues, thread invariance, and errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/SparseCore>

#include "ouro/cluster/accuracy.hpp"
#include "ouro/cluster/knn_graph.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"

using namespace ouro;
using namespace ouro::cluster;
using Catch::Matchers::Contains;

namespace {

tensor<double> points_1d(const std::vector<double>& v) {
    tensor<double> x(shape{static_cast<std::int64_t>(v.size()), 1});
    for (std::size_t i = 0; i < v.size(); ++i) x[static_cast<std::int64_t>(i)] = v[i];
    return x;
}

// `count` Gaussian blobs of `per` points in R^dim, centres 20 apart on the axes, unit spread;
// point i belongs to blob i % count.
tensor<double> blobs(std::int64_t count, std::int64_t per, std::int64_t dim, std::vector<std::int64_t>& labels) {
    philox_stream rng(5, rng_purpose::user, 0);
    const std::int64_t n = count * per;
    tensor<double> x(shape{n, dim});
    labels.assign(static_cast<std::size_t>(n), 0);
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t c = i % count;
        for (std::int64_t j = 0; j < dim; ++j) x[i * dim + j] = (j == c ? 20.0 : 0.0) + rng.normal();
        labels[static_cast<std::size_t>(i)] = c;
    }
    return x;
}

}  // namespace

TEST_CASE("knn_affinity on four points of a line: either, mutual, binary and local scaling", "[cluster][knn]") {
    // x = 0, 1, 3, 10 with k = 1: nearest of 0 is 1, of 1 is 0, of 3 is 1 (2 < 3), of 10 is 3.
    const tensor<double> x = points_1d({0, 1, 3, 10});
    const Eigen::SparseMatrix<double> either = knn_affinity(x.view(), {.neighbours = 1});
    CHECK(either.nonZeros() == 6);  // edges 0-1, 1-3, 3-10, both directions
    CHECK(either.coeff(0, 1) == 1.0);
    CHECK(either.coeff(1, 0) == 1.0);
    CHECK(either.coeff(1, 2) == 1.0);
    CHECK(either.coeff(2, 3) == 1.0);
    CHECK(either.coeff(0, 2) == 0.0);
    CHECK(either.coeff(0, 0) == 0.0);
    const graph_components ce = connected_components(either);
    CHECK(ce.count == 1);
    CHECK(ce.isolated == 0);

    const Eigen::SparseMatrix<double> mutual =
        knn_affinity(x.view(), {.neighbours = 1, .symmetry = knn_symmetry::mutual});
    CHECK(mutual.nonZeros() == 2);  // only 0 and 1 are each other's nearest
    CHECK(mutual.coeff(0, 1) == 1.0);
    const graph_components cm = connected_components(mutual);
    CHECK(cm.count == 3);
    CHECK(cm.isolated == 2);
    CHECK(cm.component == std::vector<std::int64_t>{0, 0, 1, 2});

    // Local scaling: σ = distance to the 1st neighbour = 1, 1, 2, 7; w = exp(−d² / (σ_i σ_j)).
    const Eigen::SparseMatrix<double> scaled =
        knn_affinity(x.view(), {.neighbours = 1, .weight = knn_weight::local_scaling});
    CHECK(scaled.coeff(0, 1) == Approx(std::exp(-1.0)).epsilon(1e-15));
    CHECK(scaled.coeff(1, 2) == Approx(std::exp(-4.0 / 2.0)).epsilon(1e-15));
    CHECK(scaled.coeff(2, 3) == Approx(std::exp(-49.0 / 14.0)).epsilon(1e-15));
    CHECK(scaled.coeff(3, 2) == scaled.coeff(2, 3));
}

TEST_CASE("knn_affinity breaks equal distances by the lower index, and float input gives the same graph",
          "[cluster][knn]") {
    // 0 has 1 and 2 both at distance 1: it takes 1. 1 and 2 take 0.
    const tensor<double> x = points_1d({0, 1, -1});
    const Eigen::SparseMatrix<double> w = knn_affinity(x.view(), {.neighbours = 1, .symmetry = knn_symmetry::mutual});
    CHECK(w.coeff(0, 1) == 1.0);
    CHECK(w.coeff(0, 2) == 0.0);
    tensor<float> xf(shape{3, 1});
    for (int i = 0; i < 3; ++i) xf[i] = static_cast<float>(x[i]);
    const Eigen::SparseMatrix<double> wf = knn_affinity(xf.view(), {.neighbours = 1, .symmetry = knn_symmetry::mutual});
    CHECK(Eigen::MatrixXd(wf) == Eigen::MatrixXd(w));
}

TEST_CASE("kNN spectral clustering separates blobs; a disconnected graph has one unit eigenvalue per component",
          "[cluster][knn][spectral]") {
    std::vector<std::int64_t> truth;
    const tensor<double> x = blobs(4, 50, 6, truth);
    const Eigen::SparseMatrix<double> w = knn_affinity(x.view(), {.neighbours = 5});
    const graph_components c = connected_components(w);
    CHECK(c.count == 4);  // blobs 20 apart with unit spread never share a 5-NN edge
    CHECK(clustering_accuracy(c.component, truth) == 1.0);
    const spectral_result r =
        knn_spectral_clustering(x.view(), 4, {.graph = {.neighbours = 5}, .spectral = {.kmeans = {.seed = 3}}});
    CHECK(clustering_accuracy(r.labels, truth) == 1.0);
    CHECK(near_unit_eigenvalues(r.eigenvalues) == 4);
    // Asked for fewer clusters than components, the eigenvalues still say 4 of 4... and 3 of 3.
    const spectral_result r3 = spectral_clustering(w, 3);
    CHECK(near_unit_eigenvalues(r3.eigenvalues) == 3);
    // Joined into one component by a chain of points between blob 0 and blob 1, the graph keeps
    // one unit eigenvalue and the second falls below 1.
    tensor<double> joined(shape{x.dim(0) + 41, 6}, 0.0);
    std::copy(x.begin(), x.end(), joined.begin());
    for (std::int64_t s = 0; s <= 40; ++s) {
        joined[(x.dim(0) + s) * 6 + 0] = 20.0 * (40 - s) / 40.0;
        joined[(x.dim(0) + s) * 6 + 1] = 20.0 * s / 40.0;
    }
    const Eigen::SparseMatrix<double> wj = knn_affinity(joined.view(), {.neighbours = 5});
    CHECK(connected_components(wj).count == 3);
    const spectral_result rj = spectral_clustering(wj, 4);
    CHECK(near_unit_eigenvalues(rj.eigenvalues) == 3);
    CHECK(rj.eigenvalues[3] < 1 - 1e-6);
}

TEST_CASE("knn_affinity is the same at 1 and 2 threads", "[cluster][knn][threads]") {
    const int saved = max_threads();
    std::vector<std::int64_t> truth;
    const tensor<double> x = blobs(3, 100, 8, truth);
    set_threads(1);
    const Eigen::MatrixXd w1(knn_affinity(x.view(), {.neighbours = 7, .weight = knn_weight::local_scaling}));
    set_threads(2);
    const Eigen::MatrixXd w2(knn_affinity(x.view(), {.neighbours = 7, .weight = knn_weight::local_scaling}));
    set_threads(saved);
    CHECK(w1 == w2);
}

TEST_CASE("knn_affinity and connected_components refuse bad input, naming expected and found",
          "[cluster][knn][errors]") {
    const tensor<double> x = points_1d({0, 1, 3});
    CHECK_THROWS_WITH(knn_affinity(x.view(), {.neighbours = 3}),
                      Contains("1 <= neighbours <= N - 1 = 2") && Contains("found 3"));
    CHECK_THROWS_WITH(knn_affinity(x.view(), {.neighbours = 0}), Contains("found 0"));
    CHECK_THROWS_WITH(knn_affinity(points_1d({4}).view()), Contains("N >= 2") && Contains("found shape (1, 1)"));
    CHECK_THROWS_WITH(knn_affinity(tensor<double>(shape{5}).view()), Contains("(N, D)") && Contains("found shape (5)"));
    tensor<double> bad = x;
    bad[1] = NAN;
    CHECK_THROWS_WITH(knn_affinity(bad.view(), {.neighbours = 1}), Contains("finite") && Contains("(1, 0)"));
    CHECK_THROWS_WITH(knn_spectral_clustering(x.view(), 4), Contains("1 <= K <= N") && Contains("K = 4"));
    CHECK_THROWS_WITH(connected_components(Eigen::SparseMatrix<double>(2, 3)), Contains("found shape (2, 3)"));
}
