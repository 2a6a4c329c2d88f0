// k-means: k-means++ seeding (Arthur & Vassilvitskii, "k-means++: The Advantages of Careful
// Seeding", SODA 2007) and Lloyd's iterations (Lloyd, "Least squares quantization in PCM", 1982),
// restarted n_init times from Philox streams keyed by (seed, purpose, restart); the restart of lowest
// inertia is kept. Computed in double; the same result at any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cluster {

using row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The Philox purpose of k-means++ seeding.
inline constexpr rng_purpose kmeans_purpose = rng_purpose::kmeans_seeding;

struct kmeans_options {
    int n_init = 10;       // restarts; restart r seeds from philox_stream(seed, purpose, r)
    int max_iter = 300;    // most Lloyd iterations (assignment + update) per restart
    int local_trials = 1;  // k-means++ candidates per new centre: 1 is Arthur & Vassilvitskii's rule;
                           // more keeps the candidate that lowers the potential most ("greedy
                           // k-means++", their sec. 6; scikit-learn uses 2 + ln K)
    std::uint64_t seed = 0;
    rng_purpose purpose = kmeans_purpose;
};

struct kmeans_result {
    std::vector<std::int64_t> labels;  // (N), each in [0, K): the nearest centre (lowest index on ties)
    row_matrix centers;                // (K, D)
    double inertia = 0;                // Σ_i ||x_i - c_{label_i}||²
    int iterations = 0;                // Lloyd iterations of the kept restart
    bool converged = false;            // the kept restart stopped because no label changed
    int restart = 0;                   // index of the kept restart
};

namespace detail {

// ||a - b||² by explicit differences (no cancellation), in four interleaved partial sums: a fixed
// order the compiler can vectorise, the same at any alignment or thread count.
inline double squared_distance(const double* a, const double* b, std::int64_t d) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::int64_t j = 0;
    for (; j + 4 <= d; j += 4) {
        const double t0 = a[j] - b[j], t1 = a[j + 1] - b[j + 1], t2 = a[j + 2] - b[j + 2], t3 = a[j + 3] - b[j + 3];
        s0 += t0 * t0;
        s1 += t1 * t1;
        s2 += t2 * t2;
        s3 += t3 * t3;
    }
    for (; j < d; ++j) {
        const double t = a[j] - b[j];
        s0 += t * t;
    }
    return (s0 + s1) + (s2 + s3);
}

// Requires (N, D) with N >= 1, D >= 1, finite entries, and 1 <= k <= N.
inline void check_points(const double* x, std::int64_t n, std::int64_t d, std::int64_t k, const char* what) {
    if (n < 1 || d < 1) fail(what, ": expected points (N, D) with N >= 1 and D >= 1, found shape ", shape{n, d});
    for (std::int64_t i = 0; i < n * d; ++i)
        if (!std::isfinite(x[i]))
            fail(what, ": expected finite points, found ", x[i], " at (", i / d, ", ", i % d, ")");
    if (k < 1 || k > n) fail(what, ": expected 1 <= K <= N clusters for N = ", n, " points, found K = ", k);
}

inline void check_options(const kmeans_options& o, const char* what) {
    require(o.n_init >= 1, what, ": expected n_init >= 1, found ", o.n_init);
    require(o.max_iter >= 1, what, ": expected max_iter >= 1, found ", o.max_iter);
    require(o.local_trials >= 1, what, ": expected local_trials >= 1, found ", o.local_trials);
}

// Nearest centre of every point (lowest index on ties), parallel over points. Returns whether any
// label changed.
inline bool assign(const row_matrix& x, const row_matrix& centers, std::vector<std::int64_t>& labels) {
    const std::int64_t n = x.rows(), d = x.cols(), k = centers.rows();
    std::vector<char> changed(static_cast<std::size_t>(n), 0);
    parallel_for(
        n,
        [&](std::int64_t i) {
            std::int64_t best = 0;
            double best_d = squared_distance(x.row(i).data(), centers.row(0).data(), d);
            for (std::int64_t c = 1; c < k; ++c) {
                const double dc = squared_distance(x.row(i).data(), centers.row(c).data(), d);
                if (dc < best_d) {
                    best_d = dc;
                    best = c;
                }
            }
            auto& l = labels[static_cast<std::size_t>(i)];
            changed[static_cast<std::size_t>(i)] = l != best;
            l = best;
        },
        3 * k * d);
    return std::find(changed.begin(), changed.end(), char{1}) != changed.end();
}

// Centres as the means of their points, summed in index order. An empty cluster's centre moves to
// the point farthest from its own centre (lowest index on ties), one distinct point per empty
// cluster, so every restart keeps K live clusters while there are K distinct points.
inline void update(const row_matrix& x, const std::vector<std::int64_t>& labels, row_matrix& centers) {
    const std::int64_t n = x.rows(), k = centers.rows();
    std::vector<std::int64_t> count(static_cast<std::size_t>(k), 0);
    row_matrix sums = row_matrix::Zero(k, x.cols());
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t c = labels[static_cast<std::size_t>(i)];
        sums.row(c) += x.row(i);
        ++count[static_cast<std::size_t>(c)];
    }
    for (std::int64_t c = 0; c < k; ++c)
        if (count[static_cast<std::size_t>(c)] > 0)
            centers.row(c) = sums.row(c) / static_cast<double>(count[static_cast<std::size_t>(c)]);
    if (std::find(count.begin(), count.end(), std::int64_t{0}) == count.end()) return;
    // Distances to the new centres; a point's own cluster is never empty.
    std::vector<double> far(static_cast<std::size_t>(n));
    std::vector<char> taken(static_cast<std::size_t>(n), 0);
    for (std::int64_t i = 0; i < n; ++i)
        far[static_cast<std::size_t>(i)] =
            squared_distance(x.row(i).data(), centers.row(labels[static_cast<std::size_t>(i)]).data(), x.cols());
    for (std::int64_t c = 0; c < k; ++c) {
        if (count[static_cast<std::size_t>(c)] > 0) continue;
        std::int64_t pick = -1;
        for (std::int64_t i = 0; i < n; ++i)
            if (!taken[static_cast<std::size_t>(i)] &&
                (pick < 0 || far[static_cast<std::size_t>(i)] > far[static_cast<std::size_t>(pick)]))
                pick = i;
        if (pick < 0) return;  // more empty clusters than points: cannot happen for K <= N
        taken[static_cast<std::size_t>(pick)] = 1;
        centers.row(c) = x.row(pick);
    }
}

inline double inertia(const row_matrix& x, const row_matrix& centers, const std::vector<std::int64_t>& labels) {
    double s = 0;
    for (std::int64_t i = 0; i < x.rows(); ++i)
        s += squared_distance(x.row(i).data(), centers.row(labels[static_cast<std::size_t>(i)]).data(), x.cols());
    return s;
}

inline kmeans_result lloyd(const row_matrix& x, row_matrix centers, int max_iter) {
    kmeans_result r;
    r.labels.assign(static_cast<std::size_t>(x.rows()), -1);
    assign(x, centers, r.labels);
    for (int it = 1; it <= max_iter; ++it) {
        update(x, r.labels, centers);
        r.iterations = it;
        if (!assign(x, centers, r.labels)) {
            r.converged = true;
            break;
        }
    }
    r.inertia = inertia(x, centers, r.labels);
    r.centers = std::move(centers);
    return r;
}

inline row_matrix to_row_matrix(const double* x, std::int64_t n, std::int64_t d) {
    return Eigen::Map<const row_matrix>(x, n, d);
}
inline row_matrix to_row_matrix(const float* x, std::int64_t n, std::int64_t d) {
    return Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(x, n, d)
        .cast<double>();
}

}  // namespace detail

// k-means++ seeding (Arthur & Vassilvitskii 2007, sec. 2.2): the first centre uniformly at random,
// each next one drawn with probability proportional to D(x)², the squared distance to the nearest
// centre chosen so far. With local_trials > 1, that many candidates are drawn and the one giving the
// lowest potential Σ D(x)² is kept. When every point already coincides with a centre, the next one is
// drawn uniformly. Requires finite points (N, D), 1 <= k <= N, local_trials >= 1.
// Ensures: k rows of x, in the order chosen.
inline row_matrix kmeans_plus_plus(const Eigen::Ref<const row_matrix>& x, std::int64_t k, philox_stream& rng,
                                   int local_trials = 1) {
    const std::int64_t n = x.rows(), d = x.cols();
    const row_matrix xs = x;
    detail::check_points(xs.data(), n, d, k, "kmeans_plus_plus");
    require(local_trials >= 1, "kmeans_plus_plus: expected local_trials >= 1, found ", local_trials);
    require(n <= std::int64_t{std::numeric_limits<std::uint32_t>::max()},
            "kmeans_plus_plus: expected at most 2^32 - 1 points, found N = ", n);

    row_matrix centers(k, d);
    auto pick_first = static_cast<std::int64_t>(rng.below(static_cast<std::uint32_t>(n)));
    centers.row(0) = xs.row(pick_first);
    std::vector<double> d2(static_cast<std::size_t>(n)), prefix(static_cast<std::size_t>(n)),
        trial(static_cast<std::size_t>(n)), best_d2;
    for (std::int64_t i = 0; i < n; ++i)
        d2[static_cast<std::size_t>(i)] = detail::squared_distance(xs.row(i).data(), centers.row(0).data(), d);

    for (std::int64_t c = 1; c < k; ++c) {
        double total = 0;
        for (std::int64_t i = 0; i < n; ++i)
            prefix[static_cast<std::size_t>(i)] = total += d2[static_cast<std::size_t>(i)];
        std::int64_t chosen = -1;
        double chosen_potential = std::numeric_limits<double>::infinity();
        for (int t = 0; t < local_trials; ++t) {
            std::int64_t cand;
            if (total > 0) {
                // The first i with prefix_i > u·total; u in (0, 1), so that point has D(x)² > 0.
                const double u = rng.uniform_double() * total;
                cand = std::upper_bound(prefix.begin(), prefix.end(), u) - prefix.begin();
                cand = std::min(cand, n - 1);
            } else {
                cand = static_cast<std::int64_t>(rng.below(static_cast<std::uint32_t>(n)));
            }
            if (local_trials == 1) {
                chosen = cand;
                break;
            }
            double potential = 0;
            for (std::int64_t i = 0; i < n; ++i) {
                const double di = detail::squared_distance(xs.row(i).data(), xs.row(cand).data(), d);
                trial[static_cast<std::size_t>(i)] = std::min(d2[static_cast<std::size_t>(i)], di);
                potential += trial[static_cast<std::size_t>(i)];
            }
            if (potential < chosen_potential) {
                chosen_potential = potential;
                chosen = cand;
                best_d2 = trial;
            }
        }
        centers.row(c) = xs.row(chosen);
        if (local_trials == 1) {
            for (std::int64_t i = 0; i < n; ++i) {
                const double di = detail::squared_distance(xs.row(i).data(), centers.row(c).data(), d);
                d2[static_cast<std::size_t>(i)] = std::min(d2[static_cast<std::size_t>(i)], di);
            }
        } else {
            d2.swap(best_d2);
        }
    }
    return centers;
}

// Lloyd's iterations from the given centres (no randomness): assign every point to its nearest
// centre, move each centre to the mean of its points, until no label changes or max_iter updates.
// Requires finite x (N, D), finite centers (K, D) with 1 <= K <= N, max_iter >= 1.
inline kmeans_result lloyd(const Eigen::Ref<const row_matrix>& x, const Eigen::Ref<const row_matrix>& centers,
                           int max_iter = 300) {
    const row_matrix xs = x, cs = centers;
    detail::check_points(xs.data(), xs.rows(), xs.cols(), cs.rows(), "lloyd");
    if (cs.cols() != xs.cols())
        fail("lloyd: expected centres of the points' dimension, (K, ", xs.cols(), "), found shape ",
             shape{cs.rows(), cs.cols()});
    for (std::int64_t i = 0; i < cs.size(); ++i)
        require(std::isfinite(cs.data()[i]), "lloyd: expected finite centres, found ", cs.data()[i]);
    require(max_iter >= 1, "lloyd: expected max_iter >= 1, found ", max_iter);
    return detail::lloyd(xs, cs, max_iter);
}

// k-means of the rows of x (N, D): n_init restarts of k-means++ seeding then Lloyd; the restart of
// lowest inertia is kept (the lowest index on ties). Restarts run in parallel; each is a pure
// function of (x, k, options, restart index), so the result does not depend on the thread count.
// Requires finite x with N >= 1, D >= 1, and 1 <= k <= N.
inline kmeans_result kmeans(const Eigen::Ref<const row_matrix>& x, std::int64_t k, const kmeans_options& options = {}) {
    const row_matrix xs = x;
    detail::check_points(xs.data(), xs.rows(), xs.cols(), k, "kmeans");
    detail::check_options(options, "kmeans");
    std::vector<kmeans_result> runs(static_cast<std::size_t>(options.n_init));
    parallel_for(
        options.n_init,
        [&](std::int64_t r) {
            philox_stream rng(options.seed, options.purpose, static_cast<std::uint64_t>(r));
            row_matrix seeds = kmeans_plus_plus(xs, k, rng, options.local_trials);
            runs[static_cast<std::size_t>(r)] = detail::lloyd(xs, std::move(seeds), options.max_iter);
            runs[static_cast<std::size_t>(r)].restart = static_cast<int>(r);
        },
        xs.rows() * k * xs.cols() * 16);
    std::size_t best = 0;
    for (std::size_t r = 1; r < runs.size(); ++r)
        if (runs[r].inertia < runs[best].inertia) best = r;
    return std::move(runs[best]);
}

// The same for (N, D) float or double tensors (computed in double).
inline kmeans_result kmeans(tensor_view<const float> x, std::int64_t k, const kmeans_options& options = {}) {
    require_rank(x.dims(), 2, "kmeans", "(N, D)");
    return kmeans(detail::to_row_matrix(x.data(), x.dim(0), x.dim(1)), k, options);
}
inline kmeans_result kmeans(tensor_view<const double> x, std::int64_t k, const kmeans_options& options = {}) {
    require_rank(x.dims(), 2, "kmeans", "(N, D)");
    return kmeans(Eigen::Map<const row_matrix>(x.data(), x.dim(0), x.dim(1)), k, options);
}

}  // namespace ouro::cluster
