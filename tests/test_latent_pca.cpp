// Tests for latent/pca.hpp: principal directions and variances of sets whose axes are known by
// construction, whitening, the sign convention, save/load, and errors naming expected vs found.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/latent/pca.hpp"

using namespace ouro;
using Catch::Matchers::Contains;

namespace {

// Four points m ± 3u, m ± v in the plane, u = (cos 30°, sin 30°), v = (−sin 30°, cos 30°),
// m = (5, −2): mean m, variance 9·2/4 = 4.5 along u and 1·2/4 = 0.5 along v, total 5.
constexpr double c30 = 0.86602540378443865, s30 = 0.5;
tensor<double> rotated_cross() {
    tensor<double> x(shape{4, 2});
    const double m[2] = {5, -2}, u[2] = {c30, s30}, v[2] = {-s30, c30};
    for (int j = 0; j < 2; ++j) {
        x[0 * 2 + j] = m[j] + 3 * u[j];
        x[1 * 2 + j] = m[j] - 3 * u[j];
        x[2 * 2 + j] = m[j] + v[j];
        x[3 * 2 + j] = m[j] - v[j];
    }
    return x;
}

}  // namespace

TEST_CASE("pca finds the known axes, variances and mean of a rotated cross", "[latent][pca]") {
    const tensor<double> x = rotated_cross();
    const auto p = latent::pca::fit(x.view(), 1);
    REQUIRE(p.fitted());
    CHECK(p.input_dim() == 2);
    CHECK(p.dim() == 1);
    CHECK(p.reference_rows() == 4);
    CHECK(p.mean()[0] == Approx(5).margin(1e-12));
    CHECK(p.mean()[1] == Approx(-2).margin(1e-12));
    // u's entry of largest magnitude (cos 30°) is positive, so u itself, not −u.
    CHECK(p.components()[0] == Approx(c30).margin(1e-12));
    CHECK(p.components()[1] == Approx(s30).margin(1e-12));
    CHECK(p.variances()[0] == Approx(4.5).epsilon(1e-12));
    CHECK(p.total_variance() == Approx(5.0).epsilon(1e-12));
    CHECK(p.explained_variance_ratio() == Approx(0.9).epsilon(1e-12));

    // x = m + 2u + 0.5v has coordinate 2 along u, and (2, 0.5) with both directions.
    tensor<double> probe(shape{1, 2});
    probe[0] = 5 + 2 * c30 - 0.5 * s30;
    probe[1] = -2 + 2 * s30 + 0.5 * c30;
    CHECK(p.apply(probe.view())[0] == Approx(2).margin(1e-12));
    const auto both = latent::pca::fit(x.view(), 2);
    // v = (−sin 30°, cos 30°): its largest entry in magnitude, cos 30°, is already positive.
    CHECK(both.components()[2] == Approx(-s30).margin(1e-12));
    CHECK(both.components()[3] == Approx(c30).margin(1e-12));
    CHECK(both.variances()[1] == Approx(0.5).epsilon(1e-12));
    CHECK(both.explained_variance_ratio() == Approx(1.0).epsilon(1e-12));
    const tensor<double> z = both.apply(probe.view());
    CHECK(z[0] == Approx(2).margin(1e-12));
    CHECK(z[1] == Approx(0.5).margin(1e-12));

    // Whitened: each coordinate over the standard deviation along its direction.
    const auto white = latent::pca::fit(x.view(), 2, /*whiten=*/true);
    CHECK(white.whitened());
    const tensor<double> w = white.apply(probe.view());
    CHECK(w[0] == Approx(2 / std::sqrt(4.5)).margin(1e-12));
    CHECK(w[1] == Approx(0.5 / std::sqrt(0.5)).margin(1e-12));
    // The reference set itself comes out with unit variance along every kept direction.
    const tensor<double> wr = white.apply(x.view());
    for (int k = 0; k < 2; ++k) {
        double s = 0;
        for (int i = 0; i < 4; ++i) s += wr[i * 2 + k] * wr[i * 2 + k];
        CHECK(s / 4 == Approx(1.0).epsilon(1e-12));
    }
}

TEST_CASE("pca of a 3-D set on a plane: the plane's directions, zero variance off it, an isometry on it",
          "[latent][pca]") {
    // Points 1 + (±a)·e1 + (±b)·e2, all four signs of each draw, with e1 = (1, 2, 2)/3 and
    // e2 = (−4, −1, 3)/√26 (orthonormal), a of standard deviation 4, b of 1: the signs make the
    // sample covariance of the two coordinates exactly 0, so e1 and e2 are the principal axes.
    philox_stream rng(11, rng_purpose::user, 0);
    const double r26 = std::sqrt(26.0);
    const double e1[3] = {1 / 3.0, 2 / 3.0, 2 / 3.0}, e2[3] = {-4 / r26, -1 / r26, 3 / r26};
    const std::int64_t n = 400;
    tensor<double> x(shape{n, 3});
    for (std::int64_t i = 0; i < n; i += 4) {
        const double a = 4 * rng.normal(), b = rng.normal();
        for (std::int64_t s = 0; s < 4; ++s) {
            const double sa = s & 1 ? -a : a, sb = s & 2 ? -b : b;
            for (int j = 0; j < 3; ++j) x[(i + s) * 3 + j] = 1.0 + sa * e1[j] + sb * e2[j];
        }
    }
    const auto p = latent::pca::fit(x.view(), 2);
    // The first direction is ±e1 with its largest entries (2/3 twice, of one sign) positive; the
    // second is −e2, whose largest entry in magnitude (index 0) is then positive.
    CHECK(std::abs(p.components()[0] * e1[0] + p.components()[1] * e1[1] + p.components()[2] * e1[2]) ==
          Approx(1).epsilon(1e-9));
    CHECK(p.components()[1] > 0);
    CHECK(std::abs(p.components()[3] * e2[0] + p.components()[4] * e2[1] + p.components()[5] * e2[2]) ==
          Approx(1).epsilon(1e-9));
    CHECK(p.components()[3] == Approx(4 / r26).epsilon(1e-9));
    CHECK(p.variances()[0] > 10);
    CHECK(p.variances()[1] < 2);
    CHECK(p.explained_variance_ratio() == Approx(1.0).epsilon(1e-12));  // nothing off the plane
    // On the plane, z keeps distances: ||z_i − z_j|| = ||x_i − x_j||.
    const tensor<double> z = p.apply(x.view());
    for (std::int64_t i = 0; i + 1 < 20; ++i) {
        double dx = 0, dz = 0;
        for (int j = 0; j < 3; ++j) dx += (x[i * 3 + j] - x[(i + 1) * 3 + j]) * (x[i * 3 + j] - x[(i + 1) * 3 + j]);
        for (int k = 0; k < 2; ++k) dz += (z[i * 2 + k] - z[(i + 1) * 2 + k]) * (z[i * 2 + k] - z[(i + 1) * 2 + k]);
        CHECK(std::sqrt(dz) == Approx(std::sqrt(dx)).epsilon(1e-10));
    }
    // float input: the same directions, output rounded once from the double result.
    tensor<float> xf(shape{n, 3});
    for (std::int64_t i = 0; i < xf.numel(); ++i) xf[i] = static_cast<float>(x[i]);
    const auto pf = latent::pca::fit(xf.view(), 2);
    for (int i = 0; i < 6; ++i) CHECK(pf.components()[i] == Approx(p.components()[i]).margin(1e-5));
    const tensor<float> zf = pf.apply(xf.view());
    CHECK(zf.dims() == shape{n, 2});
}

TEST_CASE("pca and centred_unit_rows are the same at 1 and 2 threads", "[latent][pca][threads]") {
    const int saved = max_threads();
    philox_stream rng(3, rng_purpose::user, 0);
    tensor<float> x(shape{300, 40});
    for (float& v : x) v = static_cast<float>(rng.normal());
    set_threads(1);
    const auto p1 = latent::pca::fit(x.view(), 10, true);
    const tensor<float> z1 = p1.apply(x.view());
    const tensor<float> u1 = latent::centred_unit_rows::fit(x.view()).apply(x.view());
    set_threads(2);
    const auto p2 = latent::pca::fit(x.view(), 10, true);
    const tensor<float> z2 = p2.apply(x.view());
    const tensor<float> u2 = latent::centred_unit_rows::fit(x.view()).apply(x.view());
    set_threads(saved);
    CHECK(std::equal(z1.begin(), z1.end(), z2.begin()));
    CHECK(std::equal(u1.begin(), u1.end(), u2.begin()));
}

TEST_CASE("pca is saved and loaded, and refuses files of another kind", "[latent][pca]") {
    const tensor<double> x = rotated_cross();
    const auto p = latent::pca::fit(x.view(), 2, true);
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "ouro_test_latent_pca";
    std::filesystem::create_directories(dir);
    p.save(dir / "pca.safetensors");
    const auto back = latent::pca::load(dir / "pca.safetensors");
    CHECK(back.whitened());
    CHECK(back.reference_rows() == 4);
    CHECK(back.total_variance() == p.total_variance());
    CHECK(std::equal(back.components().begin(), back.components().end(), p.components().begin()));
    CHECK(std::equal(back.variances().begin(), back.variances().end(), p.variances().begin()));
    CHECK(std::equal(back.mean().begin(), back.mean().end(), p.mean().begin()));
    {
        io::safetensors_writer w;
        const tensor<double> m(shape{3}, 0.0);
        w.add("mean", m);
        w.add("std", m);
        w.set_metadata(
            {{"format", "ouro.standardizer"}, {"version", "1"}, {"min_std", "1e-6"}, {"reference_rows", "3"}});
        w.write(dir / "standardizer.safetensors");
    }
    CHECK_THROWS_WITH(latent::pca::load(dir / "standardizer.safetensors"), Contains("ouro.pca"));
    {
        io::safetensors_writer w;
        const tensor<double> mean(shape{2}, 0.0), components(shape{1, 3}, 0.0), variances(shape{1}, 1.0);
        w.add("mean", mean);
        w.add("components", components);
        w.add("variances", variances);
        w.set_metadata({{"format", "ouro.pca"},
                        {"version", "1"},
                        {"total_variance", "1"},
                        {"whiten", "0"},
                        {"reference_rows", "3"}});
        w.write(dir / "misfit.safetensors");
    }
    CHECK_THROWS_WITH(latent::pca::load(dir / "misfit.safetensors"),
                      Contains("misfit.safetensors") && Contains("D = 2") && Contains("(1, 3)"));
    std::filesystem::remove_all(dir);
    CHECK_THROWS_WITH(latent::pca().save(dir / "never.safetensors"), Contains("never fitted"));
}

TEST_CASE("pca refuses bad shapes, dimensions and values, naming expected and found", "[latent][pca][errors]") {
    const tensor<double> x = rotated_cross();
    CHECK_THROWS_WITH(latent::pca::fit(tensor<double>(shape{1, 3}).view(), 1),
                      Contains("N >= 2") && Contains("found shape (1, 3)"));
    CHECK_THROWS_WITH(latent::pca::fit(tensor<double>(shape{6}).view(), 1),
                      Contains("(N, D)") && Contains("found shape (6)"));
    CHECK_THROWS_WITH(latent::pca::fit(x.view(), 3),
                      Contains("1 <= dims <= min(N - 1, D) = 2") && Contains("dims = 3"));
    CHECK_THROWS_WITH(latent::pca::fit(x.view(), 0), Contains("dims = 0"));
    // N − 1 binds when N <= D: three points span two directions of R^5.
    CHECK_THROWS_WITH(latent::pca::fit(tensor<double>(shape{3, 5}, 1.0).view(), 3), Contains("min(N - 1, D) = 2"));
    tensor<double> bad = x;
    bad[5] = NAN;
    CHECK_THROWS_WITH(latent::pca::fit(bad.view(), 1), Contains("finite") && Contains("nan") && Contains("(2, 1)"));
    const auto p = latent::pca::fit(x.view(), 1);
    CHECK_THROWS_WITH(p.apply(tensor<double>(shape{3, 3}).view()), Contains("D = 2") && Contains("found shape (3, 3)"));
    tensor<double> inf_row(shape{1, 2}, 0.0);
    inf_row[1] = INFINITY;
    CHECK_THROWS_WITH(p.apply(inf_row.view()), Contains("finite") && Contains("inf") && Contains("(0, 1)"));
    CHECK_THROWS_WITH(latent::pca().apply(x.view()), Contains("not fitted"));
    // Whitening a direction without variance: a point set on a line has none along the second axis.
    tensor<double> line(shape{3, 2}, 0.0);
    line[0] = 1, line[2] = 2, line[4] = 3;
    CHECK_THROWS_WITH(latent::pca::fit(line.view(), 2, true),
                      Contains("whitening needs variances > 0") && Contains("component 1"));
    CHECK_THROWS_WITH(
        latent::pca(tensor<double>(shape{2}, 0.0), tensor<double>(shape{1, 2}, 0.0), tensor<double>(shape{2}, 1.0), 1),
        Contains("variances (d)"));
    tensor<double> rising(shape{2});
    rising[0] = 1, rising[1] = 2;
    CHECK_THROWS_WITH(latent::pca(tensor<double>(shape{2}, 0.0), tensor<double>(shape{2, 2}, 0.0), rising, 3),
                      Contains("non-increasing") && Contains("1 then 2"));
}

TEST_CASE("centred_unit_rows puts rows on the unit sphere around the reference mean", "[latent][pca]") {
    // Reference mean (1, 1); rows (4, 5) -> (3, 4)/5, (1, 1) -> 0, (1, −1) -> (0, −1).
    tensor<double> ref(shape{2, 2});
    ref[0] = 0, ref[1] = 0, ref[2] = 2, ref[3] = 2;
    const auto u = latent::centred_unit_rows::fit(ref.view());
    CHECK(u.dim() == 2);
    CHECK(u.mean()[0] == 1.0);
    tensor<double> x(shape{3, 2});
    x[0] = 4, x[1] = 5, x[2] = 1, x[3] = 1, x[4] = 1, x[5] = -1;
    const tensor<double> y = u.apply(x.view());
    CHECK(y[0] == Approx(0.6).margin(1e-15));
    CHECK(y[1] == Approx(0.8).margin(1e-15));
    CHECK(y[2] == 0.0);
    CHECK(y[3] == 0.0);
    CHECK(y[4] == 0.0);
    CHECK(y[5] == -1.0);
    tensor<float> xf(shape{1, 2});
    xf[0] = 4, xf[1] = 5;
    CHECK(u.apply(xf.view())[1] == Approx(0.8f));
    CHECK_THROWS_WITH(u.apply(tensor<double>(shape{2, 3}).view()), Contains("D = 2") && Contains("found shape (2, 3)"));
    CHECK_THROWS_WITH(latent::centred_unit_rows::fit(tensor<double>(shape{0, 2}).view()),
                      Contains("found shape (0, 2)"));
    tensor<double> bad = ref;
    bad[0] = NAN;
    CHECK_THROWS_WITH(latent::centred_unit_rows::fit(bad.view()), Contains("finite") && Contains("(0, 0)"));
    CHECK_THROWS_WITH(latent::centred_unit_rows().apply(x.view()), Contains("not fitted"));
}
