// Kernel Inception Distance (Bińkowski et al., "Demystifying MMD GANs", ICLR 2018): the unbiased
// squared MMD between two feature sets under the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³,
// averaged over random subsets (as clean-fid and torch-fidelity report it) or over all samples once.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/metrics/feature_matrix.hpp"

namespace ouro::metrics {

// The Philox purpose of KID's subset choice.
inline constexpr rng_purpose kid_subset_purpose = rng_purpose::metrics_subset;

struct kid_options {
    std::int64_t subsets = 100;       // 0: one estimate over all samples of both sets
    std::int64_t subset_size = 1000;  // m samples drawn without replacement from each set, per subset
    std::uint64_t seed = 0;           // subset s draws from Philox (seed, kid_subset_purpose, 2s + set)
    std::int64_t block_rows = default_block_rows;
};

struct kid_result {
    double mean = 0;    // KID: the mean of the per-subset estimates (the single estimate when subsets = 0)
    double stddev = 0;  // population standard deviation over subsets (0 when there is one estimate)
    std::int64_t estimates = 0;
};

namespace detail {
// Σ_ij k(a_i, b_j), or Σ_{i≠j} k(a_i, a_j) when same_set (a and b the same rows): the strict lower
// triangle is computed and doubled, since the kernel is symmetric. Row blocks in parallel; block
// sums added in block order.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline double polynomial_kernel_sum(const const_row_map& a, const const_row_map& b, bool same_set,
                                    std::int64_t block_rows) {
    const std::int64_t n = a.rows(), m = b.rows();
    const double inv_d = 1.0 / static_cast<double>(a.cols());
    std::vector<double> partial(static_cast<std::size_t>((n + block_rows - 1) / block_rows), 0.0);
    for_each_row_block(n, block_rows, [&](std::int64_t begin, std::int64_t end, row_matrix& g) {
        const std::int64_t cols = same_set ? end : m;
        g.resize(end - begin, cols);
        g.noalias() = a.middleRows(begin, end - begin) * b.topRows(cols).transpose();
        double s = 0;
        for (std::int64_t i = begin; i < end; ++i) {
            const double* row = g.data() + (i - begin) * cols;
            const std::int64_t stop = same_set ? i : cols;
            for (std::int64_t j = 0; j < stop; ++j) {
                const double t = row[j] * inv_d + 1.0;
                s += t * t * t;
            }
        }
        partial[static_cast<std::size_t>(begin / block_rows)] = s;
    });
    const double total = std::accumulate(partial.begin(), partial.end(), 0.0);
    return same_set ? 2.0 * total : total;
}

// Unbiased MMD² (Gretton et al. 2012, eq. (3); Bińkowski et al. 2018, eq. (5)) with sets of
// sizes n and m:  Σ_{i≠j} k(x_i,x_j) / n(n-1) + Σ_{i≠j} k(y_i,y_j) / m(m-1) - 2 Σ_ij k(x_i,y_j) / nm.
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline double mmd2_unbiased(const const_row_map& x, const const_row_map& y, std::int64_t block_rows) {
    const double n = static_cast<double>(x.rows()), m = static_cast<double>(y.rows());
    const double kxx = polynomial_kernel_sum(x, x, true, block_rows);
    const double kyy = polynomial_kernel_sum(y, y, true, block_rows);
    const double kxy = polynomial_kernel_sum(x, y, false, block_rows);
    return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2.0 * kxy / (n * m);
}

// The first `count` entries of a Philox-driven Fisher–Yates shuffle of [0, n): `count` distinct
// indices, uniformly chosen, in draw order.
inline std::vector<std::int64_t> draw_subset(std::int64_t n, std::int64_t count, std::uint64_t seed,
                                             std::uint64_t index) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), std::int64_t{0});
    philox_stream rng(seed, kid_subset_purpose, index);
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t j = i + static_cast<std::int64_t>(rng.below(static_cast<std::uint32_t>(n - i)));
        std::swap(idx[static_cast<std::size_t>(i)], idx[static_cast<std::size_t>(j)]);
    }
    idx.resize(static_cast<std::size_t>(count));
    return idx;
}

inline row_matrix gather_rows(const feature_matrix& x, const std::vector<std::int64_t>& idx) {
    row_matrix out(static_cast<Eigen::Index>(idx.size()), x.cols());
    for (std::size_t i = 0; i < idx.size(); ++i)
        std::copy(x.row(idx[i]), x.row(idx[i]) + x.cols(), out.data() + static_cast<std::int64_t>(i) * x.cols());
    return out;
}

template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline kid_result kid(const feature_matrix& real, const feature_matrix& fake, const kid_options& opt) {
    require_same_dim(real, fake, "kid");
    require(opt.subsets >= 0, "kid: expected subsets >= 0, found ", opt.subsets);
    require(opt.block_rows >= 1, "kid: expected block_rows >= 1, found ", opt.block_rows);
    kid_result r;
    if (opt.subsets == 0) {
        r.mean = mmd2_unbiased(real.map(), fake.map(), opt.block_rows);
        r.estimates = 1;
        return r;
    }
    const std::int64_t most = std::min(real.rows(), fake.rows());
    if (opt.subset_size < 2 || opt.subset_size > most)
        fail("kid: expected 2 <= subset_size <= min(N_real, N_fake) = ", most, " (real features (", real.rows(), ", ",
             real.cols(), "), fake features (", fake.rows(), ", ", fake.cols(),
             ")), found subset_size = ", opt.subset_size);
    std::vector<double> estimates(static_cast<std::size_t>(opt.subsets));
    // One subset per work item; each item's blocks then run serially inside it.
    const double cost = 3.0 * static_cast<double>(opt.subset_size) * static_cast<double>(opt.subset_size) *
                        static_cast<double>(real.cols());
    parallel_for(
        opt.subsets,
        [&](std::int64_t s) {
            const auto su = static_cast<std::uint64_t>(s);
            const row_matrix xs = gather_rows(real, draw_subset(real.rows(), opt.subset_size, opt.seed, 2 * su));
            const row_matrix ys = gather_rows(fake, draw_subset(fake.rows(), opt.subset_size, opt.seed, 2 * su + 1));
            estimates[static_cast<std::size_t>(s)] =
                mmd2_unbiased(const_row_map(xs.data(), xs.rows(), xs.cols()),
                              const_row_map(ys.data(), ys.rows(), ys.cols()), opt.block_rows);
        },
        static_cast<std::int64_t>(std::min(cost, 1e15)));
    const double count = static_cast<double>(opt.subsets);
    r.mean = std::accumulate(estimates.begin(), estimates.end(), 0.0) / count;
    double sq = 0;
    for (double e : estimates) sq += (e - r.mean) * (e - r.mean);
    r.stddev = std::sqrt(sq / count);
    r.estimates = opt.subsets;
    return r;
}
}  // namespace detail

// KID of fake (M, D) against real (N, D) features, float or double, computed in double.
// Requires equal D, finite values, N and M >= 2, and 2 <= subset_size <= min(N, M) when subsets > 0.
// Results are identical at any thread count.
template <feature_view R, feature_view F>
kid_result kid(const R& real, const F& fake, const kid_options& options = {}) {
    return detail::kid(feature_matrix(real, "kid: real features", 2), feature_matrix(fake, "kid: fake features", 2),
                       options);
}

}  // namespace ouro::metrics
