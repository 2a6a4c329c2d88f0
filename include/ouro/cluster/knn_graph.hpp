// Nearest-neighbour affinity graphs for spectral clustering (von Luxburg, "A Tutorial on Spectral
// Clustering", Statistics and Computing 2007, §2.2), with the local scaling of Zelnik-Manor & Perona
// ("Self-Tuning Spectral Clustering", NIPS 2004), and the connected components of an affinity: a
// graph of C components gives the normalised affinity the eigenvalue 1 C times (von Luxburg,
// Proposition 4), so spectral clustering into K < C clusters splits nothing but whole components.
// LSF's unlabelled path uses it to label real latents where SSC-OMP's affinity is too sparse
// (docs/part5_notes.md has the measurements).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include <Eigen/Dense>
#include <Eigen/SparseCore>

#include "ouro/cluster/kmeans.hpp"
#include "ouro/cluster/spectral.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cluster {

// How the directed relation "j is among i's k nearest" becomes a symmetric graph.
enum class knn_symmetry {
    either,  // W(i, j) = max(A(i, j), A(j, i)): i among j's neighbours or j among i's (von Luxburg's "k-NN graph")
    mutual,  // W(i, j) = min(A(i, j), A(j, i)): both (the "mutual k-NN graph"; sparser, may disconnect)
};

// The weight of an edge of the graph.
enum class knn_weight {
    binary,         // 1
    local_scaling,  // exp(−d(i, j)² / (σ_i σ_j)), σ_i the distance from i to its k-th neighbour (Zelnik-Manor & Perona
                    // eq. (2))
};

inline const char* to_string(knn_symmetry s) { return s == knn_symmetry::either ? "either" : "mutual"; }
inline const char* to_string(knn_weight w) { return w == knn_weight::binary ? "binary" : "local_scaling"; }

struct knn_graph_options {
    std::int64_t neighbours = 10;  // k: each point's nearest other points, by Euclidean distance
    knn_symmetry symmetry = knn_symmetry::either;
    knn_weight weight = knn_weight::binary;
};

namespace detail {

inline void check_knn_options(const knn_graph_options& o, std::int64_t n, const char* who) {
    require(o.neighbours >= 1 && o.neighbours <= n - 1, who, ": expected 1 <= neighbours <= N - 1 = ", n - 1,
            " for N = ", n, " points, found ", o.neighbours);
}

template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline Eigen::SparseMatrix<double> knn_affinity(const row_matrix& x, const knn_graph_options& o) {
    const std::int64_t n = x.rows(), d = x.cols(), k = o.neighbours;
    check_knn_options(o, n, "knn_affinity");
    // Row i: its k nearest other points, nearest first, the lower index first on equal distances,
    // with their squared distances. Each row is computed alone, so the graph does not depend on the
    // thread count.
    std::vector<std::int64_t> neighbour(static_cast<std::size_t>(n * k));
    std::vector<double> dist2(static_cast<std::size_t>(n * k));
    parallel_for(
        n,
        [&](std::int64_t i) {
            std::vector<std::pair<double, std::int64_t>> all;
            all.reserve(static_cast<std::size_t>(n - 1));
            for (std::int64_t j = 0; j < n; ++j)
                if (j != i) all.emplace_back(squared_distance(x.row(i).data(), x.row(j).data(), d), j);
            std::partial_sort(all.begin(), all.begin() + k, all.end());
            for (std::int64_t m = 0; m < k; ++m) {
                neighbour[static_cast<std::size_t>(i * k + m)] = all[static_cast<std::size_t>(m)].second;
                dist2[static_cast<std::size_t>(i * k + m)] = all[static_cast<std::size_t>(m)].first;
            }
        },
        3 * n * d);
    std::vector<double> sigma(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)
        sigma[static_cast<std::size_t>(i)] = std::sqrt(dist2[static_cast<std::size_t>(i * k + k - 1)]);
    // The directed relation as a sparse matrix, to ask "is i among j's neighbours" in O(log k).
    std::vector<Eigen::Triplet<double>> directed;
    directed.reserve(static_cast<std::size_t>(n * k));
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t m = 0; m < k; ++m)
            directed.emplace_back(neighbour[static_cast<std::size_t>(i * k + m)], i, 1.0);
    Eigen::SparseMatrix<double> a(n, n);  // column i: i's neighbours
    a.setFromTriplets(directed.begin(), directed.end());
    // Both directions of a pair get the same weight: d(i, j)² is summed from differences whose
    // squares do not depend on the order, and σ_i σ_j = σ_j σ_i.
    std::vector<Eigen::Triplet<double>> edges;
    edges.reserve(static_cast<std::size_t>(2 * n * k));
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t m = 0; m < k; ++m) {
            const std::int64_t j = neighbour[static_cast<std::size_t>(i * k + m)];
            const bool reverse = a.coeff(i, j) != 0;  // i among j's neighbours
            if (o.symmetry == knn_symmetry::mutual && !reverse) continue;
            double w = 1.0;
            if (o.weight == knn_weight::local_scaling) {
                const double s = sigma[static_cast<std::size_t>(i)] * sigma[static_cast<std::size_t>(j)];
                // Points at distance 0 from their k-th neighbour (duplicates): an edge of weight 1.
                w = s > 0 ? std::exp(-dist2[static_cast<std::size_t>(i * k + m)] / s) : 1.0;
            }
            edges.emplace_back(i, j, w);
            if (!reverse) edges.emplace_back(j, i, w);  // else j's own list adds (j, i)
        }
    Eigen::SparseMatrix<double> w(n, n);
    w.setFromTriplets(edges.begin(), edges.end());
    w.makeCompressed();
    return w;
}

}  // namespace detail

// The k-nearest-neighbour affinity W (N, N) of the points x (N, D), float or double, computed in
// double: W(i, j) > 0 iff j is among i's k nearest other points (Euclidean; the lower index first on
// equal distances) or i among j's (either), or both (mutual); the weight is 1 or the local scaling.
// Symmetric, zero diagonal, at most 2kN non-zeros. Cost: N² D flops (all pairs), O(N k) memory.
// Requires N >= 2, D >= 1, finite x and 1 <= k <= N − 1. The same graph at any thread count.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline Eigen::SparseMatrix<double> knn_affinity(tensor_view<const float> x, const knn_graph_options& options = {}) {
    require(x.rank() == 2 && x.dim(0) >= 2 && x.dim(1) >= 1,
            "knn_affinity: expected points (N, D) with N >= 2 and D >= 1, found shape ", x.dims());
    const row_matrix xs = detail::to_row_matrix(x.data(), x.dim(0), x.dim(1));
    detail::check_points(xs.data(), xs.rows(), xs.cols(), 1, "knn_affinity");
    return detail::knn_affinity(xs, options);
}
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline Eigen::SparseMatrix<double> knn_affinity(tensor_view<const double> x, const knn_graph_options& options = {}) {
    require(x.rank() == 2 && x.dim(0) >= 2 && x.dim(1) >= 1,
            "knn_affinity: expected points (N, D) with N >= 2 and D >= 1, found shape ", x.dims());
    const row_matrix xs = Eigen::Map<const row_matrix>(x.data(), x.dim(0), x.dim(1));
    detail::check_points(xs.data(), xs.rows(), xs.cols(), 1, "knn_affinity");
    return detail::knn_affinity(xs, options);
}

// The connected components of the graph of a square affinity w (N, N): component[i] in [0, C),
// numbered in order of their lowest point; an edge is a non-zero entry (either triangle).
struct graph_components {
    std::vector<std::int64_t> component;  // (N)
    std::int64_t count = 0;               // C; also the multiplicity of the eigenvalue 1 of D^-½ W D^-½
                                          // when every point has an edge (von Luxburg, Proposition 4)
    std::int64_t isolated = 0;            // points without any edge (each its own component)
};

template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline graph_components connected_components(const Eigen::SparseMatrix<double>& w) {
    if (w.rows() != w.cols() || w.rows() < 1)
        fail("connected_components: expected a non-empty square affinity (N, N), found shape ",
             shape{w.rows(), w.cols()});
    const std::int64_t n = w.rows();
    // Union-find over the non-zeros, then components numbered by their lowest point.
    std::vector<std::int64_t> parent(static_cast<std::size_t>(n));
    std::iota(parent.begin(), parent.end(), 0);
    auto find = [&](std::int64_t i) {
        while (parent[static_cast<std::size_t>(i)] != i) {
            parent[static_cast<std::size_t>(i)] = parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(i)])];
            i = parent[static_cast<std::size_t>(i)];
        }
        return i;
    };
    std::vector<char> has_edge(static_cast<std::size_t>(n), 0);
    for (Eigen::Index j = 0; j < w.outerSize(); ++j)
        for (Eigen::SparseMatrix<double>::InnerIterator it(w, j); it; ++it) {
            if (it.value() == 0 || it.row() == j) continue;
            has_edge[static_cast<std::size_t>(it.row())] = has_edge[static_cast<std::size_t>(j)] = 1;
            const std::int64_t a = find(it.row()), b = find(j);
            if (a != b) parent[static_cast<std::size_t>(std::max(a, b))] = std::min(a, b);
        }
    graph_components g;
    g.component.assign(static_cast<std::size_t>(n), -1);
    std::vector<std::int64_t> number(static_cast<std::size_t>(n), -1);
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t r = find(i);
        if (number[static_cast<std::size_t>(r)] < 0) number[static_cast<std::size_t>(r)] = g.count++;
        g.component[static_cast<std::size_t>(i)] = number[static_cast<std::size_t>(r)];
        g.isolated += has_edge[static_cast<std::size_t>(i)] ? 0 : 1;
    }
    return g;
}

// The eigenvalues of D^-½ W D^-½ within `tolerance` of 1, among the `top` largest that spectral
// clustering computed (spectral_result::eigenvalues): a numerical view of the component count.
inline std::int64_t near_unit_eigenvalues(const Eigen::VectorXd& eigenvalues, double tolerance = 1e-8) {
    std::int64_t c = 0;
    for (Eigen::Index i = 0; i < eigenvalues.size(); ++i) c += eigenvalues[i] >= 1 - tolerance ? 1 : 0;
    return c;
}

struct knn_spectral_options {
    knn_graph_options graph{};
    spectral_options spectral{};
};

// Labels for unlabelled points x (N, D): the k-NN affinity, then spectral clustering into K
// clusters (Ng, Jordan & Weiss 2001). Requires what knn_affinity and spectral_clustering require.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline spectral_result knn_spectral_clustering(tensor_view<const float> x, std::int64_t k,
                                               const knn_spectral_options& options = {}) {
    require(x.rank() == 2 && k >= 1 && k <= x.dim(0),
            "knn_spectral_clustering: expected 1 <= K <= N clusters for points of shape ", x.dims(), ", found K = ", k);
    return spectral_clustering(knn_affinity(x, options.graph), k, options.spectral);
}
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline spectral_result knn_spectral_clustering(tensor_view<const double> x, std::int64_t k,
                                               const knn_spectral_options& options = {}) {
    require(x.rank() == 2 && k >= 1 && k <= x.dim(0),
            "knn_spectral_clustering: expected 1 <= K <= N clusters for points of shape ", x.dims(), ", found K = ", k);
    return spectral_clustering(knn_affinity(x, options.graph), k, options.spectral);
}

}  // namespace ouro::cluster
