// Metrics: FID (Gaussian fit, Fréchet distance, cached statistics), improved precision/recall,
// density/coverage and KID, against numpy/scipy references (tests/golden/gen_metrics.py), known
// closed forms and hand-counted cases; thread-count determinism; bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <vector>

#include <Eigen/Dense>

#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/metrics/fid.hpp"
#include "ouro/metrics/kid.hpp"
#include "ouro/metrics/precision_recall.hpp"
#include "support/common.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using ouro::testing::to_float;
using namespace ouro::metrics;
using Catch::Matchers::Contains;

namespace {

tensor<double> column(const std::vector<double>& v) {
    tensor<double> t(shape{static_cast<std::int64_t>(v.size()), 1});
    for (std::size_t i = 0; i < v.size(); ++i) t[static_cast<std::int64_t>(i)] = v[i];
    return t;
}

tensor<double> to_double(const tensor<float>& x) {
    tensor<double> out(x.dims());
    for (std::int64_t i = 0; i < x.numel(); ++i) out[i] = x[i];
    return out;
}

// 1-D samples with exactly the given mean and unbiased variance (up to rounding).
tensor<double> exact_moments(std::int64_t n, double mean, double variance, std::uint64_t seed) {
    tensor<double> z = testing::random_tensor<double>(shape{n, 1}, seed);
    double m = 0;
    for (double v : z) m += v;
    m /= static_cast<double>(n);
    double ss = 0;
    for (double v : z) ss += (v - m) * (v - m);
    const double sd = std::sqrt(ss / static_cast<double>(n - 1));
    for (double& v : z) v = mean + std::sqrt(variance) * (v - m) / sd;
    return z;
}

gaussian_stats stats_from(const Eigen::VectorXd& mean, const Eigen::MatrixXd& cov) {
    const std::int64_t d = mean.size();
    gaussian_stats s{tensor<double>(shape{d}), tensor<double>(shape{d, d})};
    for (std::int64_t i = 0; i < d; ++i) {
        s.mean[i] = mean[i];
        for (std::int64_t j = 0; j < d; ++j) s.covariance[i * d + j] = cov(i, j);
    }
    return s;
}

}  // namespace

// ----------------------------------------------------------------------------------------- FID

TEST_CASE("fit_gaussian matches numpy's mean and unbiased covariance", "[metrics][fid]") {
    const tensor<double> real = testing::load_golden("metrics/real.npy");
    const gaussian_stats s = fit_gaussian(real);
    testing::require_close("mean", s.mean, testing::load_golden("metrics/real_mean.npy"), 1e-12, 1e-14);
    testing::require_close("covariance", s.covariance, testing::load_golden("metrics/real_cov.npy"), 1e-12, 1e-14);
    for (std::int64_t i = 0; i < 16; ++i)
        for (std::int64_t j = 0; j < 16; ++j) REQUIRE(s.covariance[i * 16 + j] == s.covariance[j * 16 + i]);
}

TEST_CASE("fid matches the pytorch-fid reference (scipy sqrtm of the non-symmetric product)", "[metrics][fid]") {
    const tensor<double> real = testing::load_golden("metrics/real.npy"),
                         fake = testing::load_golden("metrics/fake.npy");
    const double expected = testing::load_golden("metrics/fid.npy")[0];
    CHECK(fid(real, fake) == Approx(expected).epsilon(1e-10));
    // Float input is converted to double exactly, so it must give the double result of the same values.
    const tensor<float> real_f = to_float(real), fake_f = to_float(fake);
    CHECK(fid(real_f, fake_f) == fid(to_double(real_f), to_double(fake_f)));
    CHECK(fid(real_f, fake_f) == Approx(expected).epsilon(1e-5));
}

TEST_CASE("fid of N(1, 4) against N(3, 9) is (1-3)^2 + 4 + 9 - 2 sqrt(36) = 5", "[metrics][fid]") {
    // Samples with exactly these moments: the population value up to rounding.
    CHECK(fid(exact_moments(1000, 1.0, 4.0, 1), exact_moments(777, 3.0, 9.0, 2)) == Approx(5.0).epsilon(1e-12));
    // Plain samples: 1-D FID = (m1-m2)^2 + (s1-s2)^2; its sampling standard deviation at N = 200,000
    // is about 0.034 (mostly from the mean term 4 sqrt(4/N + 9/N)), so 0.15 is ~4.5 sigma.
    const std::int64_t n = 200000;
    tensor<double> a = testing::random_tensor<double>(shape{n, 1}, 11),
                   b = testing::random_tensor<double>(shape{n, 1}, 12);
    for (double& v : a) v = 1.0 + 2.0 * v;
    for (double& v : b) v = 3.0 + 3.0 * v;
    CHECK(std::abs(fid(a, b) - 5.0) < 0.15);
}

TEST_CASE("frechet_distance has the closed forms of commuting and singular covariances", "[metrics][fid]") {
    // S1 = I, S2 = Q diag(l) Qᵀ with Q a random rotation: tr((S1^½ S2 S1^½)^½) = Σ sqrt(l).
    const int d = 5;
    const tensor<double> g = testing::random_tensor<double>(shape{d, d}, 3);
    const Eigen::MatrixXd q = Eigen::Map<const row_matrix>(g.data(), d, d).householderQr().householderQ();
    const Eigen::VectorXd l = (Eigen::VectorXd(d) << 0.5, 1.0, 2.0, 4.0, 9.0).finished();
    const Eigen::VectorXd mu1 = Eigen::VectorXd::Zero(d), mu2 = Eigen::VectorXd::Constant(d, 0.5);
    const Eigen::MatrixXd s2 = q * l.asDiagonal() * q.transpose();
    const double expected = 5 * 0.25 + d + l.sum() - 2 * l.cwiseSqrt().sum();
    CHECK(frechet_distance(stats_from(mu1, Eigen::MatrixXd::Identity(d, d)), stats_from(mu2, s2)) ==
          Approx(expected).epsilon(1e-12));
    CHECK(frechet_distance(stats_from(mu2, s2), stats_from(mu1, Eigen::MatrixXd::Identity(d, d))) ==
          Approx(expected).epsilon(1e-12));
    // Diagonal and singular: Σ (sqrt(a_i) - sqrt(b_i))^2 = (1-2)^2 + (0-3)^2 + (2-1)^2 = 11; the zero
    // eigenvalue comes out of the solver as ±rounding and must be clamped, not turned into NaN.
    // The square root of a rounding-sized eigenvalue is O(sqrt(ε)) ≈ 1e-8, hence the tolerance.
    const Eigen::Vector3d a(1.0, 0.0, 4.0), b(4.0, 9.0, 1.0);
    const Eigen::Matrix3d r = Eigen::Map<const row_matrix>(testing::random_tensor<double>(shape{3, 3}, 4).data(), 3, 3)
                                  .householderQr()
                                  .householderQ();
    const double fd = frechet_distance(stats_from(Eigen::Vector3d::Zero(), r * a.asDiagonal() * r.transpose()),
                                       stats_from(Eigen::Vector3d::Zero(), r * b.asDiagonal() * r.transpose()));
    CHECK(fd == Approx(11.0).epsilon(1e-6));
}

TEST_CASE("fid of a set with itself is 0 and fid is symmetric", "[metrics][fid]") {
    const tensor<double> real = testing::load_golden("metrics/real.npy"),
                         fake = testing::load_golden("metrics/fake.npy");
    CHECK(fid(real, real) >= 0.0);
    CHECK(fid(real, real) < 1e-9);
    CHECK(fid(real, fake) == Approx(fid(fake, real)).epsilon(1e-11));
}

TEST_CASE("fid of a set with itself is never negative, though the sum cancels to round-off", "[metrics][fid]") {
    // Unclamped, these came out between -7e-12 and -1e-13 (the trace terms cancel).
    const tensor<double> fake = testing::load_golden("metrics/fake.npy");
    CHECK(fid(fake, fake) >= 0.0);
    CHECK(fid(fake, fake) < 1e-9);
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        INFO("seed " << seed);
        const tensor<double> x = testing::random_tensor<double>(shape{200, 64}, seed);
        const gaussian_stats s = fit_gaussian(x);
        CHECK(frechet_distance(s, s) >= 0.0);
        CHECK(frechet_distance(s, s) < 1e-9);
        CHECK(fid(s, x) >= 0.0);
    }
}

TEST_CASE("cached real statistics round-trip through .npy and give the same fid", "[metrics][fid]") {
    const tensor<double> real = testing::load_golden("metrics/real.npy"),
                         fake = testing::load_golden("metrics/fake.npy");
    const auto dir = std::filesystem::temp_directory_path() / "ouro_test_metrics";
    std::filesystem::create_directories(dir);
    const auto stem = dir / "real_stats";
    save_gaussian_stats(fit_gaussian(real), stem);
    const gaussian_stats loaded = load_gaussian_stats(stem);
    CHECK(loaded.dim() == 16);
    CHECK(fid(loaded, fake) == fid(real, fake));  // the same computation on the same numbers: bitwise
    const tensor<float> fake8(shape{10, 8});
    CHECK_THROWS_WITH(fid(loaded, fake8), Contains("dimension 16") && Contains("(10, 8)"));
    // A covariance file of the wrong shape is refused by name.
    io::write_npy(stats_covariance_path(stem), tensor<double>(shape{16, 15}).view());
    CHECK_THROWS_WITH(load_gaussian_stats(stem), Contains("expected shape (16, 16), found (16, 15)"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("fid is bitwise identical at 1 and 2 threads", "[metrics][fid][threads]") {
    const tensor<double> a = testing::random_tensor<double>(shape{500, 150}, 21);
    const tensor<double> b = testing::random_tensor<double>(shape{400, 150}, 22, 1.1);
    set_threads(1);
    const double one = fid(a, b);
    set_threads(2);
    const double two = fid(a, b);
    set_threads(max_threads());
    CHECK(one == two);
}

TEST_CASE("fid refuses a single sample, NaN, empty sets and mismatched dimensions", "[metrics][fid][errors]") {
    const tensor<double> ok = testing::random_tensor<double>(shape{10, 4}, 1);
    CHECK_THROWS_WITH(fid(ok, tensor<double>(shape{1, 4})), Contains("at least 2 samples") && Contains("(1, 4)"));
    CHECK_THROWS_WITH(fit_gaussian(tensor<float>(shape{0, 4})), Contains("at least 2 samples") && Contains("(0, 4)"));
    CHECK_THROWS_WITH(fid(ok, testing::random_tensor<double>(shape{10, 5}, 2)),
                      Contains("same dimension") && Contains("(10, 4)") && Contains("(10, 5)"));
    tensor<double> bad = ok;
    bad[6] = std::nan("");
    CHECK_THROWS_WITH(fid(ok, bad), Contains("finite") && Contains("(1, 2)"));
    CHECK_THROWS_WITH(fid(ok, tensor<double>(shape{10, 4, 1})), Contains("rank-2") && Contains("(10, 4, 1)"));
}

// ------------------------------------------------------------------------ FID bootstrap

namespace {
// n samples of N(shift, scale^2 I) in d dimensions.
tensor<double> shifted_normal(std::int64_t n, std::int64_t d, double shift, double scale, std::uint64_t seed) {
    tensor<double> x = testing::random_tensor<double>(shape{n, d}, seed, scale);
    for (double& v : x) v += shift;
    return x;
}
}  // namespace

TEST_CASE("one fid bootstrap replicate equals fid of the explicitly resampled rows", "[metrics][fid][bootstrap]") {
    const tensor<double> real = shifted_normal(3000, 6, 0.0, 1.0, 31), fake = shifted_normal(400, 6, 0.2, 1.3, 32);
    const gaussian_stats reference = fit_gaussian(real);
    const std::vector<std::int32_t> counts = metrics::detail::bootstrap_counts(400, 7, 3);
    tensor<double> resampled(shape{400, 6});
    std::int64_t row = 0, distinct = 0;
    for (std::int64_t i = 0; i < 400; ++i) {
        distinct += counts[static_cast<std::size_t>(i)] > 0;
        for (std::int32_t c = 0; c < counts[static_cast<std::size_t>(i)]; ++c, ++row)
            for (std::int64_t j = 0; j < 6; ++j) resampled[row * 6 + j] = fake[i * 6 + j];
    }
    REQUIRE(row == 400);
    CHECK(distinct > 200);  // ~63% distinct rows (1 - 1/e), not a degenerate draw
    CHECK(distinct < 300);

    const gaussian_stats fitted = fit_gaussian(fake);
    metrics::row_matrix centred(400, 6);
    for (std::int64_t i = 0; i < 400; ++i)
        for (std::int64_t j = 0; j < 6; ++j) centred(i, j) = fake[i * 6 + j] - fitted.mean[j];
    const auto prepared = metrics::detail::prepare_frechet_reference(reference);
    const double replicate = metrics::detail::resampled_fid(prepared, centred, fitted.mean, counts);
    CHECK(replicate == Approx(fid(reference, resampled)).epsilon(1e-11));
}

TEST_CASE("fid_bootstrap_interval is a function of the seed, bitwise at 1 and 2 threads",
          "[metrics][fid][bootstrap][threads]") {
    const gaussian_stats reference = fit_gaussian(shifted_normal(2000, 12, 0.0, 1.0, 41));
    const tensor<float> fake = to_float(shifted_normal(600, 12, 0.1, 1.1, 42));
    set_threads(1);
    const fid_interval one = fid_bootstrap_interval(reference, fake, 50, 5);
    set_threads(2);
    const fid_interval two = fid_bootstrap_interval(reference, fake, 50, 5);
    const fid_interval again = fid_bootstrap_interval(reference, fake, 50, 5);
    const fid_interval other_seed = fid_bootstrap_interval(reference, fake, 50, 6);
    set_threads(max_threads());
    CHECK(one.low == two.low);
    CHECK(one.high == two.high);
    CHECK(again.low == two.low);
    CHECK(again.high == two.high);
    CHECK(other_seed.low != one.low);
    CHECK(one.low < one.high);
}

TEST_CASE("fid_bootstrap_interval holds the point fid and is as wide as fid's spread over fresh samples",
          "[metrics][fid][bootstrap]") {
    // Fake N(0.5, 1.1^2 I) against the exact N(0, I) in 4-D: FID = 4 (0.25 + 0.01) = 1.04, dominated
    // by the mean term, whose spread over fresh sets of N is 2 sqrt(Δμᵀ Σ Δμ / N) (delta method).
    const std::int64_t d = 4, n = 500;
    const gaussian_stats reference = stats_from(Eigen::VectorXd::Zero(d), Eigen::MatrixXd::Identity(d, d));
    const tensor<double> fake = shifted_normal(n, d, 0.5, 1.1, 51);
    const double point = fid(reference, fake);
    const fid_interval interval = fid_bootstrap_interval(reference, fake, 400, 1);
    CHECK(interval.low < point);
    CHECK(point < interval.high);
    CHECK(point == Approx(1.04).margin(0.25));

    std::vector<double> fresh;
    for (std::uint64_t s = 0; s < 200; ++s) fresh.push_back(fid(reference, shifted_normal(n, d, 0.5, 1.1, 1000 + s)));
    double mean = 0, sq = 0;
    for (double v : fresh) mean += v / 200.0;
    for (double v : fresh) sq += (v - mean) * (v - mean) / 199.0;
    // A normal 95% interval is 2 * 1.96 standard deviations wide.
    CHECK((interval.high - interval.low) / 3.92 == Approx(std::sqrt(sq)).epsilon(0.25));
}

TEST_CASE("fid_bootstrap_interval narrows as the fake set grows", "[metrics][fid][bootstrap]") {
    const gaussian_stats reference = fit_gaussian(shifted_normal(4000, 8, 0.0, 1.0, 61));
    const fid_interval small = fid_bootstrap_interval(reference, shifted_normal(250, 8, 0.3, 1.2, 62), 200, 2);
    const fid_interval large = fid_bootstrap_interval(reference, shifted_normal(4000, 8, 0.3, 1.2, 63), 200, 2);
    // The spread falls as 1/sqrt(N): 16 times the samples, about a quarter of the width.
    CHECK(large.high - large.low < 0.5 * (small.high - small.low));
    CHECK(large.high - large.low > 0.1 * (small.high - small.low));
    // A wider level gives a wider interval from the same resamples.
    const fid_interval wide = fid_bootstrap_interval(reference, shifted_normal(250, 8, 0.3, 1.2, 62), 200, 2, 0.99);
    CHECK(wide.low <= small.low);
    CHECK(wide.high >= small.high);
}

TEST_CASE("fid_bootstrap_interval refuses few replicates, levels outside (0, 1) and mismatched features",
          "[metrics][fid][bootstrap][errors]") {
    const gaussian_stats reference = fit_gaussian(shifted_normal(100, 4, 0.0, 1.0, 71));
    const tensor<double> fake = shifted_normal(50, 4, 0.0, 1.0, 72);
    CHECK_THROWS_WITH(fid_bootstrap_interval(reference, fake, 9), Contains("replicates >= 10, found 9"));
    CHECK_THROWS_WITH(fid_bootstrap_interval(reference, fake, 200, 0, 0.0), Contains("0 < level < 1, found 0"));
    CHECK_THROWS_WITH(fid_bootstrap_interval(reference, fake, 200, 0, 1.0), Contains("0 < level < 1, found 1"));
    CHECK_THROWS_WITH(fid_bootstrap_interval(reference, shifted_normal(50, 5, 0.0, 1.0, 73)),
                      Contains("dimension 4") && Contains("(50, 5)"));
    CHECK_THROWS_WITH(fid_bootstrap_interval(reference, tensor<double>(shape{1, 4})),
                      Contains("at least 2 samples") && Contains("(1, 4)"));
    tensor<double> bad = fake;
    bad[9] = std::nan("");
    CHECK_THROWS_WITH(fid_bootstrap_interval(reference, bad), Contains("finite") && Contains("(2, 1)"));
}

// --------------------------------------------------------------------- precision, recall, D/C

TEST_CASE("prdc matches the brute-force numpy references for several k", "[metrics][prdc]") {
    const tensor<double> real = testing::load_golden("metrics/real.npy"),
                         fake = testing::load_golden("metrics/fake.npy");
    struct option_case {
        int k, density_k;
        const char* file;
    };
    for (const option_case c :
         {option_case{3, 5, "metrics/prdc_k3_d5.npy"}, option_case{1, 2, "metrics/prdc_k1_d2.npy"},
          option_case{7, 9, "metrics/prdc_k7_d9.npy"}}) {
        INFO("k = " << c.k << ", density_k = " << c.density_k);
        const tensor<double> e = testing::load_golden(c.file);
        const prdc_result r = prdc(real, fake, {.k = c.k, .density_k = c.density_k, .block_rows = 64});
        CHECK(r.precision == Approx(e[0]).epsilon(1e-12));
        CHECK(r.recall == Approx(e[1]).epsilon(1e-12));
        CHECK(r.density == Approx(e[2]).epsilon(1e-12));
        CHECK(r.coverage == Approx(e[3]).epsilon(1e-12));
    }
    testing::require_close("k = 3 radii", knn_radii(real, 3, 37), testing::load_golden("metrics/real_radii_k3.npy"),
                           1e-10, 1e-12);
}

TEST_CASE("prdc counts a hand-made 1-D case", "[metrics][prdc]") {
    // k = 1 radii of real {0, 1, 2, 3, 10, 60, 61}: 1, 1, 1, 1, 7, 1, 1.
    // Fake {0.5, 2.4, 5.2, 25, 26}, k = 1 radii: 1.9, 1.9, 2.8, 1, 1.
    //  precision: 0.5 (in ball of 0), 2.4 (of 2), 5.2 (of 10: 4.8 <= 7) inside; 25, 26 not: 3/5.
    //  recall: 0, 1, 2, 3 inside fake balls; 10 (4.8 > 2.8 from 5.2), 60, 61 not: 4/7.
    //  density (k = 1): 0.5 in balls of 0 and 1, 2.4 in 2 and 3, 5.2 in 10: 5 / (1 · 5) = 1.
    //  coverage: balls of 0, 1, 2, 3, 10 hold a fake; 60, 61 do not: 5/7.
    const tensor<double> real = column({0, 1, 2, 3, 10, 60, 61}), fake = column({0.5, 2.4, 5.2, 25, 26});
    const prdc_result r = prdc(real, fake, {.k = 1, .density_k = 1});
    CHECK(r.precision == Approx(3.0 / 5.0).epsilon(1e-15));
    CHECK(r.recall == Approx(4.0 / 7.0).epsilon(1e-15));
    CHECK(r.density == Approx(1.0).epsilon(1e-15));
    CHECK(r.coverage == Approx(5.0 / 7.0).epsilon(1e-15));
}

TEST_CASE("precision, density and coverage count a point on the radius (closed balls)", "[metrics][prdc]") {
    // Fake 17 is exactly 7 = the k = 1 radius of real 10 (integers: the GEMM expansion is exact).
    // Fake radii are 23, so every real point is within one: recall 1. Only the ball of 10 holds a
    // fake (17, on its edge): density 1 / (1 · 2), coverage 1/7.
    const tensor<double> real = column({0, 1, 2, 3, 10, 60, 61}), fake = column({17, 40});
    const prdc_result r = prdc(real, fake, {.k = 1, .density_k = 1});
    CHECK(r.precision == 0.5);
    CHECK(r.recall == 1.0);
    CHECK(r.density == 0.5);
    CHECK(r.coverage == 1.0 / 7.0);
}

TEST_CASE("prdc of constant features: balls of radius 0 hold the equal rows", "[metrics][prdc]") {
    // Every k-NN radius is 0. Values whose squares and products round (0.1234, -12.345678) and
    // D = 64 made the GEMM expansion leave different round-off in different entries.
    for (double c : {0.5, 0.1234, -12.345678})
        for (std::int64_t d : {1, 3, 64}) {
            INFO("value " << c << ", D = " << d);
            const tensor<double> x(shape{12, d}, c);
            const prdc_result same = prdc(x, x);  // k = 3, density_k = 5
            CHECK(same.precision == 1.0);
            CHECK(same.recall == 1.0);
            CHECK(same.coverage == 1.0);
            CHECK(same.density == 12.0 / 5.0);  // each fake in all 12 balls: 12 · 12 / (5 · 12)

            // Half the fakes elsewhere: they are in no ball, and the real rows are not in theirs.
            tensor<double> half(shape{12, d}, c);
            for (std::int64_t i = 6 * d; i < 12 * d; ++i) half[i] = c + 1.0;
            const prdc_result r = prdc(x, half);
            CHECK(r.precision == 0.5);
            CHECK(r.recall == 1.0);  // every real row equals fakes 0..5, whose radius is 0
            CHECK(r.coverage == 1.0);
            CHECK(r.density == 6.0 * 12.0 / (5.0 * 12.0));

            const tensor<double> other(shape{12, d}, c + 1.0);
            const prdc_result none = prdc(x, other);
            CHECK(none.precision == 0.0);
            CHECK(none.recall == 0.0);
            CHECK(none.density == 0.0);
            CHECK(none.coverage == 0.0);
        }
}

TEST_CASE("knn_radii of duplicated rows are exactly 0, whatever the GEMM round-off", "[metrics][prdc]") {
    // Rows 2i and 2i + 1 are equal, far from the origin, so ||a||^2 + ||b||^2 - 2 a·b cancels.
    const tensor<double> r = testing::random_tensor<double>(shape{40, 64}, 11);
    tensor<double> x(shape{80, 64});
    for (std::int64_t i = 0; i < 40; ++i)
        for (std::int64_t j = 0; j < 64; ++j) x[(2 * i) * 64 + j] = x[(2 * i + 1) * 64 + j] = 10.0 + r[i * 64 + j];
    const tensor<double> radii = knn_radii(x, 1);
    for (std::int64_t i = 0; i < 80; ++i) CHECK(radii[i] == 0.0);
    // Beyond the duplicate, the radius is a real distance: the k = 2 radius of row 0 is its
    // distance to the nearest other pair, as summed from differences.
    double best = std::numeric_limits<double>::infinity();
    for (std::int64_t i = 1; i < 40; ++i) {
        double s = 0;
        for (std::int64_t j = 0; j < 64; ++j) s += (r[j] - r[i * 64 + j]) * (r[j] - r[i * 64 + j]);
        best = std::min(best, s);
    }
    CHECK(knn_radii(x, 2)[0] == Approx(std::sqrt(best)).epsilon(1e-12));
}

TEST_CASE("prdc of a set against itself has precision, recall and coverage 1", "[metrics][prdc]") {
    const tensor<double> x = testing::random_tensor<double>(shape{300, 20}, 5);
    const prdc_result r = prdc(x, x);
    CHECK(r.precision == 1.0);
    CHECK(r.recall == 1.0);
    CHECK(r.coverage == 1.0);
    CHECK(r.density > 0.5);
}

TEST_CASE("prdc does not depend on the block size and is bitwise identical at 1 and 2 threads",
          "[metrics][prdc][threads]") {
    const tensor<float> a = to_float(testing::random_tensor<double>(shape{700, 32}, 6));
    const tensor<float> b = to_float(testing::random_tensor<double>(shape{650, 32}, 7, 1.2));
    set_threads(1);
    const prdc_result one = prdc(a, b, {.block_rows = 64});
    set_threads(2);
    const prdc_result two = prdc(a, b, {.block_rows = 64});
    const prdc_result big = prdc(a, b, {.block_rows = 1000});
    const tensor<double> r1 = knn_radii(a, 3, 50), r2 = knn_radii(a, 3, 50);
    set_threads(1);
    const tensor<double> r0 = knn_radii(a, 3, 50);
    set_threads(max_threads());
    CHECK(one.precision == two.precision);
    CHECK(one.recall == two.recall);
    CHECK(one.density == two.density);
    CHECK(one.coverage == two.coverage);
    CHECK(big.precision == one.precision);
    CHECK(big.recall == one.recall);
    CHECK(big.density == one.density);
    CHECK(big.coverage == one.coverage);
    CHECK(one.precision > 0.0);
    CHECK(one.precision < 1.0);
    for (std::int64_t i = 0; i < r0.numel(); ++i) REQUIRE(r0[i] == r1[i]);
}

TEST_CASE("prdc refuses N <= k, NaN and mismatched dimensions", "[metrics][prdc][errors]") {
    const tensor<double> x = testing::random_tensor<double>(shape{5, 3}, 8);
    CHECK_THROWS_WITH(prdc(x, testing::random_tensor<double>(shape{10, 3}, 9), {.k = 3, .density_k = 5}),
                      Contains("k = 5") && Contains("more than 5 samples") && Contains("(5, 3)"));
    CHECK_THROWS_WITH(prdc(testing::random_tensor<double>(shape{10, 3}, 9), x.view().reshaped(shape{3, 5}), {.k = 3}),
                      Contains("same dimension") && Contains("(10, 3)") && Contains("(3, 5)"));
    CHECK_THROWS_WITH(
        prdc(testing::random_tensor<double>(shape{10, 3}, 9), testing::random_tensor<double>(shape{3, 3}, 2)),
        Contains("k = 3") && Contains("fake features") && Contains("(3, 3)"));
    tensor<double> bad = testing::random_tensor<double>(shape{10, 3}, 9);
    bad[29] = INFINITY;
    CHECK_THROWS_WITH(prdc(bad, bad), Contains("finite") && Contains("(9, 2)"));
    CHECK_THROWS_WITH(knn_radii(x, 0), Contains("k >= 1"));
}

// ------------------------------------------------------------------------------------------ KID

TEST_CASE("kid matches the numpy polynomial-kernel reference over all samples and over Philox subsets",
          "[metrics][kid]") {
    const tensor<double> real = testing::load_golden("metrics/real.npy"),
                         fake = testing::load_golden("metrics/fake.npy");
    const kid_result all = kid(real, fake, {.subsets = 0, .block_rows = 48});
    CHECK(all.mean == Approx(testing::load_golden("metrics/kid_all.npy")[0]).epsilon(1e-11));
    CHECK(all.estimates == 1);
    const tensor<double> e = testing::load_golden("metrics/kid_subsets10_m50_seed7.npy");
    const kid_result sub = kid(real, fake, {.subsets = 10, .subset_size = 50, .seed = 7});
    CHECK(sub.mean == Approx(e[0]).epsilon(1e-11));
    CHECK(sub.stddev == Approx(e[1]).epsilon(1e-9));
    CHECK(sub.estimates == 10);
    CHECK(kid(real, fake, {.subsets = 10, .subset_size = 50, .seed = 8}).mean != sub.mean);
}

TEST_CASE("kid of a hand-made 1-D case is 7", "[metrics][kid]") {
    // d = 1: k(0, 0) = 1, k(1, 1) = 8, k(0, 1) = 1. X = {0, 0}, Y = {1, 1}:
    // Σ_{i≠j} kxx / 2 + Σ_{i≠j} kyy / 2 - 2 Σ kxy / 4 = 1 + 8 - 2 = 7.
    CHECK(kid(column({0, 0}), column({1, 1}), {.subsets = 0}).mean == Approx(7.0).epsilon(1e-15));
    // One subset of every sample is a permutation of the whole sets.
    CHECK(kid(column({0, 0, 1}), column({1, 1, 0}), {.subsets = 1, .subset_size = 3}).mean ==
          Approx(kid(column({0, 0, 1}), column({1, 1, 0}), {.subsets = 0}).mean).epsilon(1e-14));
}

TEST_CASE("kid is bitwise identical at 1 and 2 threads", "[metrics][kid][threads]") {
    const tensor<double> a = testing::random_tensor<double>(shape{600, 24}, 31);
    const tensor<double> b = testing::random_tensor<double>(shape{500, 24}, 32, 1.1);
    set_threads(1);
    const kid_result s1 = kid(a, b, {.subsets = 6, .subset_size = 100}),
                     a1 = kid(a, b, {.subsets = 0, .block_rows = 64});
    set_threads(2);
    const kid_result s2 = kid(a, b, {.subsets = 6, .subset_size = 100}),
                     a2 = kid(a, b, {.subsets = 0, .block_rows = 64});
    set_threads(max_threads());
    CHECK(s1.mean == s2.mean);
    CHECK(s1.stddev == s2.stddev);
    CHECK(a1.mean == a2.mean);
    CHECK(a1.mean > 0.0);
}

TEST_CASE("kid refuses subsets larger than a set, single samples and mismatched dimensions", "[metrics][kid][errors]") {
    const tensor<double> a = testing::random_tensor<double>(shape{30, 4}, 1),
                         b = testing::random_tensor<double>(shape{20, 4}, 2);
    CHECK_THROWS_WITH(kid(a, b, {.subsets = 5, .subset_size = 25}),
                      Contains("subset_size <= min(N_real, N_fake) = 20") && Contains("(30, 4)") &&
                          Contains("(20, 4)") && Contains("found subset_size = 25"));
    CHECK_THROWS_WITH(kid(a, tensor<double>(shape{1, 4}), {.subsets = 0}), Contains("at least 2 samples"));
    CHECK_THROWS_WITH(kid(a, testing::random_tensor<double>(shape{20, 3}, 2)),
                      Contains("(30, 4)") && Contains("(20, 3)"));
    CHECK_THROWS_WITH(kid(a, b, {.subsets = -1}), Contains("subsets >= 0"));
}
