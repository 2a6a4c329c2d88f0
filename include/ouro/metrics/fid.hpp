// Fréchet distance between Gaussians fitted to two feature sets (FID when the features are
// Inception pool features: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge
// to a Local Nash Equilibrium", NeurIPS 2017), and the cached Gaussian statistics of a real set.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>

#include <Eigen/Dense>

#include "ouro/core/error.hpp"
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

// Fréchet distance between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982):
//   ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr((S1^½ S2 S1^½)^½).
// The trace term uses the symmetric product S1^½ S2 S1^½, whose square root has the same trace as
// (S1 S2)^½ but comes from a symmetric eigendecomposition (stable, real) instead of a square root
// of a non-symmetric matrix. Eigenvalues that rounding makes slightly negative are taken as 0.
// Requires both statistics of the same dimension. Ensures: the result is >= 0 (a tiny positive
// value, not exactly 0, is possible for two equal statistics).
inline double frechet_distance(const gaussian_stats& a, const gaussian_stats& b) {
    detail::check_stats(a, "frechet_distance: first statistics");
    detail::check_stats(b, "frechet_distance: second statistics");
    if (a.dim() != b.dim())
        fail("frechet_distance: expected statistics of the same dimension, found means of shape ", a.mean.dims(),
             " and ", b.mean.dims());
    const std::int64_t d = a.dim();
    const Eigen::Map<const row_matrix> s1_raw(a.covariance.data(), d, d), s2_raw(b.covariance.data(), d, d);
    // Symmetrise: loaded statistics may be symmetric only up to rounding.
    const Eigen::MatrixXd s1 = 0.5 * (s1_raw + s1_raw.transpose());
    const Eigen::MatrixXd s2 = 0.5 * (s2_raw + s2_raw.transpose());

    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig1(s1);
    require(eig1.info() == Eigen::Success, "frechet_distance: the eigendecomposition of the first covariance failed");
    const Eigen::VectorXd root_values = eig1.eigenvalues().cwiseMax(0.0).cwiseSqrt();
    const Eigen::MatrixXd s1_root = eig1.eigenvectors() * root_values.asDiagonal() * eig1.eigenvectors().transpose();
    const Eigen::MatrixXd product = s1_root * s2 * s1_root;
    const Eigen::MatrixXd middle = 0.5 * (product + product.transpose());
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig2(middle, Eigen::EigenvaluesOnly);
    require(eig2.info() == Eigen::Success, "frechet_distance: the eigendecomposition of S1^½ S2 S1^½ failed");
    double trace_sqrt = 0;
    for (Eigen::Index i = 0; i < eig2.eigenvalues().size(); ++i) trace_sqrt += std::sqrt(std::max(0.0, eig2.eigenvalues()[i]));

    double mean_term = 0;
    for (std::int64_t j = 0; j < d; ++j) {
        const double diff = a.mean[j] - b.mean[j];
        mean_term += diff * diff;
    }
    // The distance is a squared Wasserstein-2 distance, so >= 0; for (nearly) equal statistics the
    // sum cancels to round-off of the order of eps * (tr S1 + tr S2), which can be negative (-1e-14
    // to -1e-11 for a set against itself). Such a value means 0: a negative FID is never reported.
    return std::max(0.0, mean_term + s1.trace() + s2.trace() - 2.0 * trace_sqrt);
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
