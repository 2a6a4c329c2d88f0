// Manifold-based fidelity and diversity of generated samples: improved precision and recall
// (Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing Generative Models",
// NeurIPS 2019) and density and coverage (Naeem et al., "Reliable Fidelity and Diversity Metrics
// for Generative Models", ICML 2020). Pairwise distances are computed block by block through GEMM,
// so memory stays O(block × N), never N².
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/metrics/feature_matrix.hpp"

namespace ouro::metrics {

struct prdc_options {
    int k = 3;          // neighbours for precision/recall radii (Kynkäänniemi et al. use 3)
    int density_k = 5;  // neighbours for density/coverage radii (Naeem et al. use 5)
    std::int64_t block_rows = default_block_rows;
};

struct prdc_result {
    double precision = 0;  // share of fake samples inside the real manifold
    double recall = 0;     // share of real samples inside the fake manifold
    double density = 0;    // mean count of real balls holding a fake sample, divided by density_k
    double coverage = 0;   // share of real balls that hold at least one fake sample (balls are closed)
};

namespace detail {
inline void require_neighbours(const feature_matrix& x, int k, const char* what) {
    require(k >= 1, what, ": expected k >= 1, found k = ", k);
    if (x.rows() <= k)
        fail(what, ": k = ", k, " nearest neighbours need more than ", k, " samples in ", x.what(), ", found shape (",
             x.rows(), ", ", x.cols(), ")");
}

// Squared distance from each row of x to its k-th nearest neighbour in x, the point itself excluded
// (by index, so duplicates of a point still count as neighbours), for each k in ks.
// out[q][i] = radius² of row i for ks[q].
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline std::vector<aligned_vector<double>> knn_squared_radii(const feature_matrix& x,
                                                             const aligned_vector<double>& norms,
                                                             const std::vector<int>& ks, std::int64_t block_rows) {
    const int k_max = *std::max_element(ks.begin(), ks.end());
    const std::int64_t n = x.rows();
    std::vector<aligned_vector<double>> out(ks.size(), aligned_vector<double>(static_cast<std::size_t>(n)));
    for_each_row_block(n, block_rows, [&](std::int64_t begin, std::int64_t end, row_matrix& dist) {
        squared_distances(x, norms, begin, end, x, norms, dist);
        std::vector<double> best(static_cast<std::size_t>(k_max));
        for (std::int64_t i = begin; i < end; ++i) {
            // The k_max smallest distances, ascending, by insertion: k is small.
            std::fill(best.begin(), best.end(), std::numeric_limits<double>::infinity());
            const double* row = dist.data() + (i - begin) * n;
            for (std::int64_t j = 0; j < n; ++j) {
                const double v = row[j];
                if (v >= best[static_cast<std::size_t>(k_max - 1)] || j == i) continue;
                int p = k_max - 1;
                while (p > 0 && best[static_cast<std::size_t>(p - 1)] > v) {
                    best[static_cast<std::size_t>(p)] = best[static_cast<std::size_t>(p - 1)];
                    --p;
                }
                best[static_cast<std::size_t>(p)] = v;
            }
            for (std::size_t q = 0; q < ks.size(); ++q)
                out[q][static_cast<std::size_t>(i)] = best[static_cast<std::size_t>(ks[q] - 1)];
        }
    });
    return out;
}

template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline prdc_result prdc(const feature_matrix& real, const feature_matrix& fake, const prdc_options& opt) {
    require_same_dim(real, fake, "prdc");
    require_neighbours(real, opt.k, "prdc (precision/recall)");
    require_neighbours(fake, opt.k, "prdc (precision/recall)");
    require_neighbours(real, opt.density_k, "prdc (density/coverage)");
    require(opt.block_rows >= 1, "prdc: expected block_rows >= 1, found ", opt.block_rows);
    const aligned_vector<double> real_norms = real.squared_norms(), fake_norms = fake.squared_norms();
    const std::vector<aligned_vector<double>> real_radii =
        knn_squared_radii(real, real_norms, {opt.k, opt.density_k}, opt.block_rows);
    const aligned_vector<double>& real_r = real_radii[0];  // precision balls
    const aligned_vector<double>& real_d = real_radii[1];  // density/coverage balls
    const aligned_vector<double> fake_r = knn_squared_radii(fake, fake_norms, {opt.k}, opt.block_rows)[0];

    const std::int64_t n = real.rows(), m = fake.rows();
    // Per-fake results gather over all real rows, so blocks of real rows update them concurrently:
    // flags and integer counts, which add up to the same values in any order.
    std::vector<std::uint8_t> fake_inside_real(static_cast<std::size_t>(m), 0);
    std::vector<std::int64_t> fake_ball_count(static_cast<std::size_t>(m), 0);
    std::vector<std::uint8_t> real_inside_fake(static_cast<std::size_t>(n), 0),
        real_covered(static_cast<std::size_t>(n), 0);
    for_each_row_block(n, opt.block_rows, [&](std::int64_t begin, std::int64_t end, row_matrix& dist) {
        squared_distances(real, real_norms, begin, end, fake, fake_norms, dist);
        for (std::int64_t i = begin; i < end; ++i) {
            const double* row = dist.data() + (i - begin) * m;
            const double ri = real_r[static_cast<std::size_t>(i)], di = real_d[static_cast<std::size_t>(i)];
            bool inside = false, covered = false;
            for (std::int64_t j = 0; j < m; ++j) {
                const double v = row[j];
                // Kynkäänniemi et al.: inside when within some reference point's k-NN radius (<=).
                inside = inside || v <= fake_r[static_cast<std::size_t>(j)];
                if (v <= ri)
                    std::atomic_ref<std::uint8_t>(fake_inside_real[static_cast<std::size_t>(j)])
                        .store(1, std::memory_order_relaxed);
                // Naeem et al.'s B(X_i, NND_k(X_i)) as a closed ball (<=), like Kynkäänniemi et al.'s
                // above. Their reference code's strict < differs only on exact ties, but there it
                // leaves balls of radius 0 (k + 1 equal real rows) empty: constant features, or
                // duplicated images, would get density and coverage 0 against themselves.
                if (v <= di) {
                    covered = true;
                    std::atomic_ref<std::int64_t>(fake_ball_count[static_cast<std::size_t>(j)])
                        .fetch_add(1, std::memory_order_relaxed);
                }
            }
            real_inside_fake[static_cast<std::size_t>(i)] = inside;
            real_covered[static_cast<std::size_t>(i)] = covered;
        }
    });

    std::int64_t precise = 0, recalled = 0, covered = 0, ball_total = 0;
    for (std::int64_t j = 0; j < m; ++j) {
        precise += fake_inside_real[static_cast<std::size_t>(j)];
        ball_total += fake_ball_count[static_cast<std::size_t>(j)];
    }
    for (std::int64_t i = 0; i < n; ++i) {
        recalled += real_inside_fake[static_cast<std::size_t>(i)];
        covered += real_covered[static_cast<std::size_t>(i)];
    }
    prdc_result r;
    r.precision = static_cast<double>(precise) / static_cast<double>(m);
    r.recall = static_cast<double>(recalled) / static_cast<double>(n);
    // Naeem et al. eq. (2): (1 / kM) Σ_j Σ_i 1[Y_j ∈ B(X_i, NND_k(X_i))].
    r.density = static_cast<double>(ball_total) / (static_cast<double>(opt.density_k) * static_cast<double>(m));
    // Naeem et al. eq. (3): (1 / N) Σ_i 1[∃ j: Y_j ∈ B(X_i, NND_k(X_i))].
    r.coverage = static_cast<double>(covered) / static_cast<double>(n);
    return r;
}
}  // namespace detail

// Distance from each row of features (N, D) to its k-th nearest neighbour among the other rows.
// Requires N > k. Returns (N).
template <feature_view X>
tensor<double> knn_radii(const X& features, int k = 3, std::int64_t block_rows = default_block_rows) {
    const feature_matrix x(features, "knn_radii: features");
    detail::require_neighbours(x, k, "knn_radii");
    const aligned_vector<double> r2 = detail::knn_squared_radii(x, x.squared_norms(), {k}, block_rows)[0];
    tensor<double> out(shape{x.rows()});
    for (std::int64_t i = 0; i < x.rows(); ++i) out[i] = std::sqrt(r2[static_cast<std::size_t>(i)]);
    return out;
}

// Precision, recall, density and coverage of fake (M, D) against real (N, D) features, float or
// double, computed in double. Requires equal D, N > max(k, density_k), M > k, finite values.
// Every ball is closed: a sample on a radius, or equal to a real row whose radius is 0, is inside.
// So a set of N equal rows against itself has precision, recall and coverage 1 and density
// N / density_k (every sample lies in every ball: Naeem et al. eq. (2) as written).
// Results are identical at any thread count.
template <feature_view R, feature_view F>
prdc_result prdc(const R& real, const F& fake, const prdc_options& options = {}) {
    return detail::prdc(feature_matrix(real, "real features"), feature_matrix(fake, "fake features"), options);
}

}  // namespace ouro::metrics
