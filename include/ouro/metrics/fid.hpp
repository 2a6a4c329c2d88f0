// Fréchet distance between Gaussians fitted to two feature sets (FID when the features are
// Inception pool features: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge
// to a Local Nash Equilibrium", NeurIPS 2017), and the cached Gaussian statistics of a real set.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ouro/core/eigen_decompositions.hpp"  // before any use of the decompositions
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/npy.hpp"
#include "ouro/metrics/feature_matrix.hpp"

namespace ouro::metrics {

// Mean and unbiased covariance of a feature set: what FID needs of the real set, so it can be
// computed once and cached (save/load below).
struct gaussian_stats {
    tensor<double> mean;        // (D)
    tensor<double> covariance;  // (D, D), symmetric
    std::int64_t dim() const { return mean.numel(); }
};

namespace detail {
// Columns per block of the covariance GEMM: a fixed width, so the blocks (and their results) do
// not depend on the thread count.
inline constexpr std::int64_t covariance_block_cols = 64;

inline void check_stats(const gaussian_stats& s, const char* what) {
    require(s.mean.rank() == 1, what, ": expected a rank-1 mean (D), found shape ", s.mean.dims());
    require(s.mean.numel() >= 1, what, ": expected a mean of at least one feature, found shape ", s.mean.dims());
    require_shape(s.covariance.dims(), shape{s.dim(), s.dim()}, (std::string(what) + " covariance").c_str());
    for (double v : s.mean) require(std::isfinite(v), what, ": expected a finite mean, found ", v);
    for (double v : s.covariance) require(std::isfinite(v), what, ": expected a finite covariance, found ", v);
}

template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline gaussian_stats fit_gaussian(const feature_matrix& x) {
    const std::int64_t n = x.rows(), d = x.cols();
    gaussian_stats s{tensor<double>(shape{d}), tensor<double>(shape{d, d})};
    // Mean by rows in order; then centre (two passes: no cancellation from E[x^2] - E[x]^2).
    for (std::int64_t i = 0; i < n; ++i) {
        const double* r = x.row(i);
        for (std::int64_t j = 0; j < d; ++j) s.mean[j] += r[j];
    }
    for (std::int64_t j = 0; j < d; ++j) s.mean[j] /= static_cast<double>(n);
    row_matrix centred(n, d);  // (N, D)
    for (std::int64_t i = 0; i < n; ++i) {
        const double* r = x.row(i);
        double* c = centred.data() + i * d;
        for (std::int64_t j = 0; j < d; ++j) c[j] = r[j] - s.mean[j];
    }
    // Covariance = centredᵀ centred / (N - 1), one fixed-width column block per task.
    row_matrix cov(d, d);
    const std::int64_t blocks = (d + covariance_block_cols - 1) / covariance_block_cols;
#pragma omp parallel for schedule(static) if (blocks > 1)
    for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t c0 = b * covariance_block_cols, w = std::min(d, c0 + covariance_block_cols) - c0;
        cov.middleCols(c0, w).noalias() = centred.transpose() * centred.middleCols(c0, w);
    }
    // (i, j) and (j, i) come from different blocks; average them so the result is exactly symmetric.
    const double scale = 0.5 / static_cast<double>(n - 1);
    for (std::int64_t i = 0; i < d; ++i)
        for (std::int64_t j = 0; j <= i; ++j) {
            const double v = scale * (cov(i, j) + cov(j, i));
            s.covariance[i * d + j] = v;
            s.covariance[j * d + i] = v;
        }
    return s;
}
}  // namespace detail

// Fits a Gaussian to features (N, D), float or double: the mean and the unbiased covariance
// (divided by N - 1), computed in double. Requires N >= 2 (one sample has no covariance) and
// finite values.
template <feature_view X>
gaussian_stats fit_gaussian(const X& features) {
    return detail::fit_gaussian(feature_matrix(features, "fit_gaussian: features", 2));
}

namespace detail {
// What the Fréchet distance needs of its first statistics alone: S1 (symmetrised: loaded
// statistics may be symmetric only up to rounding) and its square root. A bootstrap against a
// fixed reference prepares it once instead of once per replicate.
struct frechet_reference {
    const gaussian_stats* stats;  // not owned: the statistics outlive the reference
    Eigen::MatrixXd covariance;   // (D, D)
    Eigen::MatrixXd root;         // (D, D), S1^½
};

template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline frechet_reference prepare_frechet_reference(const gaussian_stats& a) {
    const std::int64_t d = a.dim();
    const Eigen::Map<const row_matrix> s1_raw(a.covariance.data(), d, d);
    frechet_reference r{&a, 0.5 * (s1_raw + s1_raw.transpose()), {}};
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig1(r.covariance);
    require(eig1.info() == Eigen::Success, "frechet_distance: the eigendecomposition of the first covariance failed");
    const Eigen::VectorXd root_values = eig1.eigenvalues().cwiseMax(0.0).cwiseSqrt();
    r.root = eig1.eigenvectors() * root_values.asDiagonal() * eig1.eigenvectors().transpose();
    return r;
}

// The distance from a prepared reference to N(mean2, s2); s2 symmetric, mean2 of length D.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline double frechet_distance(const frechet_reference& ref, const double* mean2, const Eigen::MatrixXd& s2) {
    const Eigen::MatrixXd product = ref.root * s2 * ref.root;
    const Eigen::MatrixXd middle = 0.5 * (product + product.transpose());
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig2(middle, Eigen::EigenvaluesOnly);
    require(eig2.info() == Eigen::Success, "frechet_distance: the eigendecomposition of S1^½ S2 S1^½ failed");
    double trace_sqrt = 0;
    for (Eigen::Index i = 0; i < eig2.eigenvalues().size(); ++i)
        trace_sqrt += std::sqrt(std::max(0.0, eig2.eigenvalues()[i]));

    double mean_term = 0;
    for (std::int64_t j = 0; j < ref.stats->dim(); ++j) {
        const double diff = ref.stats->mean[j] - mean2[j];
        mean_term += diff * diff;
    }
    // The distance is a squared Wasserstein-2 distance, so >= 0; for (nearly) equal statistics the
    // sum cancels to round-off of the order of eps * (tr S1 + tr S2), which can be negative (-1e-14
    // to -1e-11 for a set against itself). Such a value means 0: a negative FID is never reported.
    return std::max(0.0, mean_term + ref.covariance.trace() + s2.trace() - 2.0 * trace_sqrt);
}
}  // namespace detail

// Fréchet distance between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982):
//   ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr((S1^½ S2 S1^½)^½).
// The trace term uses the symmetric product S1^½ S2 S1^½, whose square root has the same trace as
// (S1 S2)^½ but comes from a symmetric eigendecomposition (stable, real) instead of a square root
// of a non-symmetric matrix. Eigenvalues that rounding makes slightly negative are taken as 0.
// Requires both statistics of the same dimension. Ensures: the result is >= 0 (a tiny positive
// value, not exactly 0, is possible for two equal statistics).
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline double frechet_distance(const gaussian_stats& a, const gaussian_stats& b) {
    detail::check_stats(a, "frechet_distance: first statistics");
    detail::check_stats(b, "frechet_distance: second statistics");
    if (a.dim() != b.dim())
        fail("frechet_distance: expected statistics of the same dimension, found means of shape ", a.mean.dims(),
             " and ", b.mean.dims());
    const std::int64_t d = b.dim();
    const Eigen::Map<const row_matrix> s2_raw(b.covariance.data(), d, d);
    const Eigen::MatrixXd s2 = 0.5 * (s2_raw + s2_raw.transpose());
    return detail::frechet_distance(detail::prepare_frechet_reference(a), b.mean.data(), s2);
}

// Fréchet distance between Gaussians fitted to real (N1, D) and fake (N2, D) features.
template <feature_view R, feature_view F>
double fid(const R& real, const F& fake) {
    const feature_matrix r(real, "fid: real features", 2), f(fake, "fid: fake features", 2);
    require_same_dim(r, f, "fid");
    return frechet_distance(detail::fit_gaussian(r), detail::fit_gaussian(f));
}

// Fréchet distance between cached real statistics and Gaussians fitted to fake features (N, D).
template <feature_view F>
double fid(const gaussian_stats& real, const F& fake) {
    const feature_matrix f(fake, "fid: fake features", 2);
    if (f.cols() != real.dim())
        fail("fid: expected fake features of dimension ", real.dim(), " (as the real statistics), found shape (",
             f.rows(), ", ", f.cols(), ")");
    return frechet_distance(real, detail::fit_gaussian(f));
}

// The Philox purpose of the bootstrap resamples of fid_bootstrap_interval.
inline constexpr rng_purpose fid_bootstrap_purpose = rng_purpose::metrics_bootstrap;

// A two-sided bootstrap interval of FID.
struct fid_interval {
    double low = 0;   // the (1 - level) / 2 quantile of the bootstrap FIDs
    double high = 0;  // the (1 + level) / 2 quantile
};

namespace detail {
// How often each of n rows appears in bootstrap resample `replicate`: n draws with replacement,
// each below(n) from Philox (seed, fid_bootstrap_purpose, replicate), so resample r is the same
// whatever thread computes it.
inline std::vector<std::int32_t> bootstrap_counts(std::int64_t n, std::uint64_t seed, std::uint64_t replicate) {
    std::vector<std::int32_t> counts(static_cast<std::size_t>(n), 0);
    philox_stream rng(seed, fid_bootstrap_purpose, replicate);
    for (std::int64_t i = 0; i < n; ++i) ++counts[rng.below(static_cast<std::uint32_t>(n))];
    return counts;
}

// FID against `ref` of the resample of x (N, D) with row multiplicities `counts`, from x's mean and
// centred rows x̃ = x - mean. With δ = Σ c_i x̃_i / N the resample's mean is mean + δ and its
// unbiased covariance (Σ c_i x̃_i x̃_iᵀ - N δδᵀ) / (N - 1): what fit_gaussian of the resampled rows
// gives, computed from the distinct rows alone (about 63% of N), with no large cancellation
// since the rows are centred first.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline double resampled_fid(const frechet_reference& ref, const row_matrix& centred, const tensor<double>& mean,
                            const std::vector<std::int32_t>& counts) {
    const std::int64_t n = centred.rows(), d = centred.cols();
    const auto distinct =
        static_cast<std::int64_t>(std::count_if(counts.begin(), counts.end(), [](std::int32_t c) { return c > 0; }));
    row_matrix rows(distinct, d), weighted(distinct, d);  // (K, D): x̃_i, and c_i x̃_i
    for (std::int64_t i = 0, k = 0; i < n; ++i) {
        const std::int32_t c = counts[static_cast<std::size_t>(i)];
        if (c == 0) continue;
        rows.row(k) = centred.row(i);
        weighted.row(k) = static_cast<double>(c) * centred.row(i);
        ++k;
    }
    const Eigen::RowVectorXd delta = weighted.colwise().sum() / static_cast<double>(n);  // (D)
    const Eigen::MatrixXd scatter = weighted.transpose() * rows;                         // (D, D)
    const Eigen::MatrixXd covariance =
        (0.5 * (scatter + scatter.transpose()) - static_cast<double>(n) * delta.transpose() * delta) /
        static_cast<double>(n - 1);
    std::vector<double> resampled_mean(static_cast<std::size_t>(d));
    for (std::int64_t j = 0; j < d; ++j) resampled_mean[static_cast<std::size_t>(j)] = mean[j] + delta[j];
    return frechet_distance(ref, resampled_mean.data(), covariance);
}

// The p-quantile of sorted values, linearly interpolated between order statistics (Hyndman & Fan
// 1996, definition 7, numpy's default).
inline double sorted_quantile(const std::vector<double>& sorted, double p) {
    const double h = p * static_cast<double>(sorted.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(h));
    const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}
}  // namespace detail

// Percentile bootstrap interval of fid(reference, fake) (Efron & Tibshirani, "An Introduction to
// the Bootstrap", 1993, ch. 13): `replicates` resamples of fake's N rows, drawn with replacement,
// are each refitted and compared with the fixed reference, and the interval is the
// ((1 - level) / 2, (1 + level) / 2) quantiles of those FIDs. It measures the spread that the fake
// sample alone causes; the reference is taken as exact. FID is biased upward by about b / N
// (Chong & Forsyth 2020), and the resamples carry that bias once more on top of the point FID's,
// so the point sits in the lower part of the interval (LeNet features of MNIST samples, N = 2,000:
// 44.4 in [42.0, 49.9], examples/fid_vs_count), and below it when the distance is not large next
// to b / N (about 0.5 for those 84-d features at N = 2,000).
// Requires replicates >= 10, 0 < level < 1, and fake (N, D) with 2 <= N < 2^32, D =
// reference.dim() and finite values. Ensures low <= high; the result is a pure function of
// (reference, fake, replicates, seed, level), bitwise identical at any thread count.
template <feature_view F>
fid_interval fid_bootstrap_interval(const gaussian_stats& reference, const F& fake, std::int64_t replicates = 200,
                                    std::uint64_t seed = 0, double level = 0.95) {
    require(replicates >= 10, "fid_bootstrap_interval: expected replicates >= 10, found ", replicates);
    require(level > 0.0 && level < 1.0, "fid_bootstrap_interval: expected 0 < level < 1, found ", level);
    detail::check_stats(reference, "fid_bootstrap_interval: reference statistics");
    const feature_matrix f(fake, "fid_bootstrap_interval: fake features", 2);
    if (f.cols() != reference.dim())
        fail("fid_bootstrap_interval: expected fake features of dimension ", reference.dim(),
             " (as the reference statistics), found shape (", f.rows(), ", ", f.cols(), ")");
    require(f.rows() <= std::int64_t{0xFFFFFFFF}, "fid_bootstrap_interval: expected fewer than 2^32 fake rows, found ",
            f.rows());

    const gaussian_stats fitted = detail::fit_gaussian(f);
    const std::int64_t n = f.rows(), d = f.cols();
    row_matrix centred(n, d);  // (N, D)
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < d; ++j) centred(i, j) = f.row(i)[j] - fitted.mean[j];
    const detail::frechet_reference ref = detail::prepare_frechet_reference(reference);

    std::vector<double> fids(static_cast<std::size_t>(replicates));
    parallel_for(
        replicates,
        [&](std::int64_t r) {
            const auto counts = detail::bootstrap_counts(n, seed, static_cast<std::uint64_t>(r));
            fids[static_cast<std::size_t>(r)] = detail::resampled_fid(ref, centred, fitted.mean, counts);
        },
        2 * n * d * d);
    std::sort(fids.begin(), fids.end());
    return {detail::sorted_quantile(fids, 0.5 * (1.0 - level)), detail::sorted_quantile(fids, 0.5 * (1.0 + level))};
}

// Cached statistics as a pair of float64 .npy files: <stem>.mean.npy (D) and <stem>.cov.npy (D, D),
// each written atomically.
inline std::filesystem::path stats_mean_path(const std::filesystem::path& stem) {
    return std::filesystem::path(stem.string() + ".mean.npy");
}
inline std::filesystem::path stats_covariance_path(const std::filesystem::path& stem) {
    return std::filesystem::path(stem.string() + ".cov.npy");
}

inline void save_gaussian_stats(const gaussian_stats& s, const std::filesystem::path& stem) {
    detail::check_stats(s, "save_gaussian_stats");
    io::write_npy(stats_mean_path(stem), s.mean.view());
    io::write_npy(stats_covariance_path(stem), s.covariance.view());
}

// Loads what save_gaussian_stats wrote; requires a (D) mean and a (D, D) covariance, finite.
inline gaussian_stats load_gaussian_stats(const std::filesystem::path& stem) {
    gaussian_stats s{io::read_npy<double>(stats_mean_path(stem)), io::read_npy<double>(stats_covariance_path(stem))};
    detail::check_stats(s, ("load_gaussian_stats " + stem.string()).c_str());
    return s;
}

}  // namespace ouro::metrics
