// Clustering accuracy: the share of points whose cluster, under the best one-to-one matching of
// clusters to classes, is their class; the matching comes from the Hungarian method on the
// confusion counts. Also the minimum-cost assignment itself.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <iterator>
#include <limits>
#include <ranges>
#include <vector>

#include <Eigen/Dense>

#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"

namespace ouro::cluster {

// Integer labels, one per point: std::vector<std::int64_t>, std::vector<int>, tensor<std::int64_t>, ...
template <class L>
concept label_range = std::ranges::random_access_range<const L> && std::ranges::sized_range<const L> &&
    std::integral<std::ranges::range_value_t<const L>>;

// Minimum-cost assignment: each row of cost (R, C) to a distinct column, minimising the sum of the
// chosen entries, over min(R, C) pairs. The Hungarian method (Kuhn, "The Hungarian method for the
// assignment problem", 1955; Munkres 1957) in its shortest-augmenting-path form with row and column
// potentials (as in Jonker & Volgenant 1987), O(min(R, C)² max(R, C)).
// Requires finite entries. Ensures: result[r] is the column of row r, or -1 for the R - C rows left
// out when R > C. Ties go the same way on every run.
inline std::vector<std::int64_t> min_cost_assignment(const Eigen::Ref<const Eigen::MatrixXd>& cost) {
    const std::int64_t rows = cost.rows(), cols = cost.cols();
    for (std::int64_t j = 0; j < cols; ++j)
        for (std::int64_t i = 0; i < rows; ++i)
            if (!std::isfinite(cost(i, j)))
                fail("min_cost_assignment: expected a finite cost (R, C) = ", shape{rows, cols}, ", found ", cost(i, j),
                     " at (", i, ", ", j, ")");
    std::vector<std::int64_t> result(static_cast<std::size_t>(rows), -1);
    if (rows == 0 || cols == 0) return result;
    // The algorithm assigns every row of an n <= m problem; a tall matrix is solved transposed.
    const bool transposed = rows > cols;
    const std::int64_t n = transposed ? cols : rows, m = transposed ? rows : cols;
    auto a = [&](std::int64_t i, std::int64_t j) { return transposed ? cost(j, i) : cost(i, j); };  // 0-based

    // 1-based: p[j] is the row matched to column j (0 = none), u and v the potentials, way[j] the
    // previous column on the shortest path to j.
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> u(static_cast<std::size_t>(n + 1), 0.0), v(static_cast<std::size_t>(m + 1), 0.0),
        minv(static_cast<std::size_t>(m + 1));
    std::vector<std::int64_t> p(static_cast<std::size_t>(m + 1), 0), way(static_cast<std::size_t>(m + 1), 0);
    std::vector<char> used(static_cast<std::size_t>(m + 1));
    for (std::int64_t i = 1; i <= n; ++i) {
        p[0] = i;
        std::int64_t j0 = 0;
        std::fill(minv.begin(), minv.end(), inf);
        std::fill(used.begin(), used.end(), 0);
        do {
            used[static_cast<std::size_t>(j0)] = 1;
            const std::int64_t i0 = p[static_cast<std::size_t>(j0)];
            double delta = inf;
            std::int64_t j1 = 0;
            for (std::int64_t j = 1; j <= m; ++j) {
                const auto sj = static_cast<std::size_t>(j);
                if (used[sj]) continue;
                const double cur = a(i0 - 1, j - 1) - u[static_cast<std::size_t>(i0)] - v[sj];
                if (cur < minv[sj]) {
                    minv[sj] = cur;
                    way[sj] = j0;
                }
                if (minv[sj] < delta) {
                    delta = minv[sj];
                    j1 = j;
                }
            }
            for (std::int64_t j = 0; j <= m; ++j) {
                const auto sj = static_cast<std::size_t>(j);
                if (used[sj]) {
                    u[static_cast<std::size_t>(p[sj])] += delta;
                    v[sj] -= delta;
                } else {
                    minv[sj] -= delta;
                }
            }
            j0 = j1;
        } while (p[static_cast<std::size_t>(j0)] != 0);
        do {
            const std::int64_t j1 = way[static_cast<std::size_t>(j0)];
            p[static_cast<std::size_t>(j0)] = p[static_cast<std::size_t>(j1)];
            j0 = j1;
        } while (j0 != 0);
    }
    for (std::int64_t j = 1; j <= m; ++j) {
        const std::int64_t i = p[static_cast<std::size_t>(j)];
        if (i == 0) continue;
        if (transposed) result[static_cast<std::size_t>(j - 1)] = i - 1;
        else
            result[static_cast<std::size_t>(i - 1)] = j - 1;
    }
    return result;
}

// The best one-to-one matching of clusters to classes and the accuracy it gives.
struct label_matching {
    std::vector<std::int64_t>
        cluster_to_class;      // indexed by cluster label 0..max: its class, -1 if unmatched or absent
    std::int64_t matched = 0;  // points whose cluster maps to their class
    std::int64_t total = 0;    // N
    double accuracy = 0;       // matched / total
};

// Matches the clusters of N points to their true classes so as to maximise the number of points
// whose cluster is matched to their class (the Hungarian method on the confusion counts), as in the
// clustering accuracy of You et al. 2016 and of most subspace-clustering papers. The numbers of
// clusters and of classes may differ; then the surplus clusters stay unmatched and their points
// count as errors. Requires one cluster label per class label, N >= 1, and labels >= 0 (the map is
// indexed by cluster label and uses -1 for "unmatched").
template <label_range P, label_range L>
label_matching match_clusters(const P& clusters, const L& classes) {
    const auto n = static_cast<std::int64_t>(std::ranges::size(clusters));
    const auto n_classes = static_cast<std::int64_t>(std::ranges::size(classes));
    if (n != n_classes)
        fail("match_clusters: expected one class label per cluster label, found ", n, " cluster labels and ", n_classes,
             " class labels");
    if (n < 1) fail("match_clusters: expected at least one labelled point, found 0");
    auto cluster_at = [&](std::int64_t i) { return static_cast<std::int64_t>(std::ranges::begin(clusters)[i]); };
    auto class_at = [&](std::int64_t i) { return static_cast<std::int64_t>(std::ranges::begin(classes)[i]); };

    // Distinct cluster and class values, ascending: the rows and columns of the confusion counts.
    std::vector<std::int64_t> cluster_values, class_values;
    for (std::int64_t i = 0; i < n; ++i) {
        if (cluster_at(i) < 0)
            fail("match_clusters: expected cluster labels >= 0, found ", cluster_at(i), " at index ", i);
        if (class_at(i) < 0) fail("match_clusters: expected class labels >= 0, found ", class_at(i), " at index ", i);
        cluster_values.push_back(cluster_at(i));
        class_values.push_back(class_at(i));
    }
    for (auto* values : {&cluster_values, &class_values}) {
        std::sort(values->begin(), values->end());
        values->erase(std::unique(values->begin(), values->end()), values->end());
    }
    const auto row_of = [&](std::int64_t c) {
        return std::lower_bound(cluster_values.begin(), cluster_values.end(), c) - cluster_values.begin();
    };
    const auto col_of = [&](std::int64_t y) {
        return std::lower_bound(class_values.begin(), class_values.end(), y) - class_values.begin();
    };
    Eigen::MatrixXd counts = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(cluster_values.size()),
                                                   static_cast<Eigen::Index>(class_values.size()));
    for (std::int64_t i = 0; i < n; ++i) counts(row_of(cluster_at(i)), col_of(class_at(i))) += 1;

    // Counts are integers below 2^53: the negated counts are exact costs.
    const std::vector<std::int64_t> assignment = min_cost_assignment(-counts);
    label_matching out;
    out.cluster_to_class.assign(static_cast<std::size_t>(cluster_values.back() + 1), -1);
    for (std::size_t r = 0; r < assignment.size(); ++r) {
        if (assignment[r] < 0) continue;
        out.cluster_to_class[static_cast<std::size_t>(cluster_values[r])] =
            class_values[static_cast<std::size_t>(assignment[r])];
        out.matched += static_cast<std::int64_t>(counts(static_cast<Eigen::Index>(r), assignment[r]));
    }
    out.total = n;
    out.accuracy = static_cast<double>(out.matched) / static_cast<double>(n);
    return out;
}

// Clustering accuracy under the best one-to-one matching of clusters to classes (match_clusters).
template <label_range P, label_range L>
double clustering_accuracy(const P& clusters, const L& classes) {
    return match_clusters(clusters, classes).accuracy;
}

}  // namespace ouro::cluster
