// OLE score and OLÉ loss: numpy/torch references (tests/golden/gen_metrics.py), hand-computed
// nuclear norms, orthogonal subspaces, the subgradient against central finite differences, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "ouro/core/parallel.hpp"
#include "ouro/loop/scores.hpp"
#include "ouro/ole/ole.hpp"
#include "support/common.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using Catch::Matchers::Contains;
using ouro::testing::labels_of;

namespace {

tensor<double> from_rows(const std::vector<std::vector<double>>& rows) {
    tensor<double> t(shape{static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows[0].size())});
    std::int64_t k = 0;
    for (const auto& r : rows)
        for (double v : r) t[k++] = v;
    return t;
}

}  // namespace

TEST_CASE("nuclear_norm sums the singular values", "[ole]") {
    CHECK(ole::nuclear_norm(Eigen::Vector2d(3.0, 4.0).asDiagonal().toDenseMatrix()) == Approx(7.0).epsilon(1e-15));
    // A rank-1 outer product u vᵀ has the single singular value ||u|| ||v|| = 5 · 13.
    const Eigen::MatrixXd outer = Eigen::Vector2d(3.0, 4.0) * Eigen::Vector3d(3.0, 4.0, 12.0).transpose();
    CHECK(ole::nuclear_norm(outer) == Approx(65.0).epsilon(1e-14));
    CHECK(ole::nuclear_norm(Eigen::MatrixXd(0, 3)) == 0.0);
}

TEST_CASE("ole::score matches numpy.linalg.svd with and without row normalisation and division by N", "[ole]") {
    const tensor<double> x = testing::load_golden("ole/latents.npy");
    const std::vector<std::int64_t> y = labels_of(io::read_npy<std::int64_t>(testing::golden_path("ole/labels.npy")));
    const tensor<double> e = testing::load_golden("ole/score.npy");
    int q = 0;
    for (bool normalize : {false, true})
        for (bool divide : {false, true}) {
            INFO("normalize_rows = " << normalize << ", divide_by_n = " << divide);
            CHECK(ole::score(x, y, {.normalize_rows = normalize, .divide_by_n = divide}) ==
                  Approx(e[q]).epsilon(1e-11));
            ++q;
        }
    // Float latents, computed in double: within float rounding of the inputs.
    tensor<float> xf(x.dims());
    for (std::int64_t i = 0; i < x.numel(); ++i) xf[i] = static_cast<float>(x[i]);
    CHECK(ole::score(xf, y) == Approx(e[0]).epsilon(1e-5));
    // int labels and num_classes given: the same classes.
    const std::vector<int> yi(y.begin(), y.end());
    CHECK(ole::score(x, yi, {.num_classes = 4}) == Approx(e[0]).epsilon(1e-11));
}

TEST_CASE("ole::score is 0 for classes in orthogonal subspaces and >= 0 otherwise", "[ole]") {
    // Class 0 in span(e1, e2), class 1 in span(e3, e4, e5) of R^6, then both rotated by one random
    // orthogonal Q: ||M||_* = ||M_0||_* + ||M_1||_* exactly when the row spaces are orthogonal.
    const tensor<double> g = testing::random_tensor<double>(shape{6, 6}, 1);
    const Eigen::MatrixXd q =
        Eigen::Map<const Eigen::Matrix<double, 6, 6, Eigen::RowMajor>>(g.data()).householderQr().householderQ();
    const tensor<double> c0 = testing::random_tensor<double>(shape{9, 2}, 2),
                         c1 = testing::random_tensor<double>(shape{7, 3}, 3);
    Eigen::MatrixXd m = Eigen::MatrixXd::Zero(16, 6);
    std::vector<int> y(16);
    for (int i = 0; i < 9; ++i) {
        m(i, 0) = c0[i * 2];
        m(i, 1) = c0[i * 2 + 1];
        y[i] = 0;
    }
    for (int i = 0; i < 7; ++i) {
        for (int j = 0; j < 3; ++j) m(9 + i, 2 + j) = c1[i * 3 + j];
        y[9 + i] = 1;
    }
    const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rotated = m * q;
    const tensor_view<const double> v(rotated.data(), shape{16, 6});
    CHECK(std::abs(ole::score(v, y)) < 1e-12);
    CHECK(std::abs(ole::score(v, y, {.normalize_rows = true})) < 1e-12);
    // Random latents: the nuclear norm's triangle inequality makes the score positive.
    const tensor<double> r = testing::random_tensor<double>(shape{40, 5}, 4);
    std::vector<int> yr(40);
    for (int i = 0; i < 40; ++i) yr[i] = i % 3;
    CHECK(ole::score(r, yr) > 0.1);
}

TEST_CASE("ole::score of two classes along one direction is ||a|| + ||b|| - ||[a; b]||", "[ole]") {
    // Rows are multiples of u = (0.6, 0.8, 0): class 0 coefficients a = (3, 4), class 1 b = (6, 8).
    // Each class matrix is a uᵀ (rank 1): ||M_0||_* = ||a|| = 5, ||M_1||_* = ||b|| = 10, and
    // ||M||_* = ||(3, 4, 6, 8)|| = sqrt(125). Score = 15 - sqrt(125) = 3.819660112501051.
    const tensor<double> x = from_rows({{1.8, 2.4, 0.0}, {3.6, 4.8, 0.0}, {2.4, 3.2, 0.0}, {4.8, 6.4, 0.0}});
    const std::vector<int> y{0, 1, 0, 1};
    CHECK(ole::score(x, y) == Approx(15.0 - std::sqrt(125.0)).epsilon(1e-14));
    CHECK(ole::score(x, y, {.divide_by_n = true}) == Approx((15.0 - std::sqrt(125.0)) / 4).epsilon(1e-14));
    // Normalised, every row is u: sqrt(2) + sqrt(2) - sqrt(4) = 2 sqrt(2) - 2.
    CHECK(ole::score(x, y, {.normalize_rows = true}) == Approx(2 * std::sqrt(2.0) - 2).epsilon(1e-14));
}

TEST_CASE("ole::loss and its subgradient match the authors' OLE.py and torch autograd", "[ole][loss]") {
    const tensor<double> x = testing::load_golden("ole/latents.npy");
    const std::vector<std::int64_t> y = labels_of(io::read_npy<std::int64_t>(testing::golden_path("ole/labels.npy")));
    tensor<double> grad(x.dims());
    const double plain = ole::loss(x.view(), y, grad.view(), {.margin = 1.0, .weight = 0.25});
    CHECK(plain == Approx(testing::load_golden("ole/loss.npy")[0]).epsilon(1e-11));
    testing::require_close("OLE.py gradient", grad, testing::load_golden("ole/loss_grad.npy"), 1e-9, 1e-12);
    const double normalized =
        ole::loss(x.view(), y, grad.view(), {.margin = 1.0, .weight = 0.25, .normalize_rows = true});
    CHECK(normalized == Approx(testing::load_golden("ole/loss_normalized.npy")[0]).epsilon(1e-11));
    testing::require_close("autograd gradient through normalisation", grad,
                           testing::load_golden("ole/loss_normalized_grad.npy"), 1e-9, 1e-12);
    // Float latents and gradient.
    tensor<float> xf(x.dims()), gf(x.dims());
    for (std::int64_t i = 0; i < x.numel(); ++i) xf[i] = static_cast<float>(x[i]);
    CHECK(ole::loss(xf.view(), y, gf.view(), {.margin = 1.0, .weight = 0.25}) == Approx(plain).epsilon(1e-5));
    testing::require_close("float gradient", gf, testing::load_golden("ole/loss_grad.npy"), 1e-3, 1e-6);
}

TEST_CASE("ole::loss subgradient agrees with central finite differences", "[ole][loss][gradcheck]") {
    // Odd shapes: a class of one latent (a row vector), one with fewer latents than features, one
    // with more; class 3 scaled under the margin, so only the -||M||_* term moves its rows.
    const std::int64_t n = 1 + 3 + 9 + 4, d = 5;
    tensor<double> x = testing::random_tensor<double>(shape{n, d}, 41);
    std::vector<int> y;
    for (int i = 0; i < 1; ++i) y.push_back(0);
    for (int i = 0; i < 3; ++i) y.push_back(1);
    for (int i = 0; i < 9; ++i) y.push_back(2);
    for (int i = 0; i < 4; ++i) y.push_back(3);
    for (std::int64_t i = n - 4; i < n; ++i)
        for (std::int64_t j = 0; j < d; ++j) x[i * d + j] *= 0.05;
    for (bool normalize : {false, true})
        for (bool divide : {false, true}) {
            // Normalised, class 3's rows have unit norm and its nuclear norm (~3.7) is above Δ;
            // then the one-latent class 0 (nuclear norm exactly 1) sits under Δ = 1.5 instead,
            // while classes 1-3 (~2.8, ~6.7, ~3.7) stay above.
            const ole::loss_options opt{
                .margin = normalize ? 1.5 : 1.0, .weight = 0.7, .normalize_rows = normalize, .divide_by_n = divide};
            INFO("normalize_rows = " << normalize << ", divide_by_n = " << divide);
            tensor<double> grad(x.dims()), scratch(x.dims());
            ole::loss(x.view(), y, grad.view(), opt);
            testing::check_gradient(
                "ole::loss", x.view(), grad.view(), [&] { return ole::loss(x.view(), y, scratch.view(), opt); }, 1e-6,
                1e-6);
        }
}

TEST_CASE("ole::loss uses the margin for small classes and scales by weight and N", "[ole][loss]") {
    // The hand case above: class norms 5 and 10, ||M||_* = sqrt(125).
    const tensor<double> x = from_rows({{1.8, 2.4, 0.0}, {3.6, 4.8, 0.0}, {2.4, 3.2, 0.0}, {4.8, 6.4, 0.0}});
    const std::vector<int> y{0, 1, 0, 1};
    tensor<double> grad(x.dims());
    CHECK(ole::loss(x.view(), y, grad.view(), {.margin = 1.0, .weight = 2.0, .divide_by_n = false}) ==
          Approx(2.0 * (15.0 - std::sqrt(125.0))).epsilon(1e-14));
    // Δ = 7 lifts class 0 (norm 5) to 7: (7 + 10 - sqrt(125)) / 4.
    CHECK(ole::loss(x.view(), y, grad.view(), {.margin = 7.0}) == Approx((17.0 - std::sqrt(125.0)) / 4).epsilon(1e-14));
    // Class 0's rows then move only through -||M||_*: gradient -U Vᵀ / 4 = -(a_i / sqrt(125)) u / 4.
    CHECK(grad[0] == Approx(-(3.0 / std::sqrt(125.0)) * 0.6 / 4).epsilon(1e-12));
    CHECK(grad[1] == Approx(-(3.0 / std::sqrt(125.0)) * 0.8 / 4).epsilon(1e-12));
    // Class 1 is above: (b_i / 10 - b_i / sqrt(125)) u / 4 for its first row b_1 = 6.
    CHECK(grad[3] == Approx((6.0 / 10.0 - 6.0 / std::sqrt(125.0)) * 0.6 / 4).epsilon(1e-12));
}

TEST_CASE("ole is bitwise identical at 1 and 2 threads", "[ole][threads]") {
    const tensor<double> x = testing::random_tensor<double>(shape{300, 16}, 51);
    std::vector<int> y(300);
    for (int i = 0; i < 300; ++i) y[i] = (i * 7) % 5;
    tensor<double> g1(x.dims()), g2(x.dims());
    set_threads(1);
    const double s1 = ole::score(x, y), l1 = ole::loss(x.view(), y, g1.view());
    set_threads(2);
    const double s2 = ole::score(x, y), l2 = ole::loss(x.view(), y, g2.view());
    set_threads(max_threads());
    CHECK(s1 == s2);
    CHECK(l1 == l2);
    for (std::int64_t i = 0; i < g1.numel(); ++i) REQUIRE(g1[i] == g2[i]);
}

TEST_CASE("ole refuses empty classes, label mismatches, NaN and bad shapes", "[ole][errors]") {
    const tensor<double> x = testing::random_tensor<double>(shape{6, 3}, 61);
    const std::vector<int> y{0, 1, 0, 1, 0, 1};
    CHECK_THROWS_WITH(ole::score(x, y, {.num_classes = 3}), Contains("class 2 of 3 has no latents"));
    CHECK_THROWS_WITH(ole::score(x, std::vector<int>{0, 1, 0}),
                      Contains("6 labels") && Contains("(6, 3)") && Contains("found 3 labels"));
    CHECK_THROWS_WITH(ole::score(x, std::vector<int>{0, 1, 0, 1, 0, 5}, {.num_classes = 3}),
                      Contains("labels in [0, 3)") && Contains("label 5 at index 5"));
    CHECK_THROWS_WITH(ole::score(tensor<double>(shape{0, 3}), std::vector<int>{}),
                      Contains("at least one latent") && Contains("(0, 3)"));
    CHECK_THROWS_WITH(ole::score(x.view().reshaped(shape{18}), std::vector<int>(18)),
                      Contains("rank 2") && Contains("(18)"));
    tensor<double> bad = x;
    bad[4] = std::nan("");
    CHECK_THROWS_WITH(ole::score(bad, y), Contains("finite") && Contains("(1, 1)"));
    tensor<double> grad(shape{6, 4});
    CHECK_THROWS_WITH(ole::loss(x.view(), y, grad.view()), Contains("expected shape (6, 3), found (6, 4)"));
    tensor<double> grad_ok(x.dims());
    CHECK_THROWS_WITH(ole::loss(x.view(), y, grad_ok.view(), {.margin = -1.0}), Contains("margin >= 0"));
}

TEST_CASE("class_subspace_fit scores the share of a unit latent inside its class's real subspace", "[ole][loop]") {
    // Class 0 spans (e0, e1), class 1 spans e2, in R^4.
    tensor<float> real(shape{6, 4});
    const float rows[6][4] = {{1, 0, 0, 0}, {0, 2, 0, 0}, {1, 1, 0, 0}, {0, 0, 3, 0}, {0, 0, -1, 0}, {0, 0, 2, 0}};
    for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 4; ++j) real[i * 4 + j] = rows[i][j];
    const std::vector<std::int64_t> labels{0, 0, 0, 1, 1, 1};
    loop::class_subspace_fit s;
    s.rank = 2;
    CHECK_THROWS_WITH(s.score(0, real.view(), labels), Catch::Contains("score before fit"));
    s.fit(real.view(), labels, 2);

    tensor<float> pool(shape{4, 4});
    const float items[4][4] = {{3, -4, 0, 0}, {0, 0, 5, 0}, {1, 0, 1, 0}, {0, 0, 0, 7}};
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) pool[i * 4 + j] = items[i][j];
    const tensor<double> score = s.score(0, pool.view(), {0, 0, 0, 1});
    CHECK(score[0] == Approx(1.0));                // inside class 0's plane, whatever its length
    CHECK(score[1] == Approx(0.0).margin(1e-12));  // class 1's direction, labelled 0
    CHECK(score[2] == Approx(0.5));                // half its energy in class 0's plane
    CHECK(score[3] == Approx(0.0).margin(1e-12));  // orthogonal to class 1's line
    CHECK_THROWS_WITH(s.fit(real.view(), labels, 3), Catch::Contains("class 2 of 3 has no real latents"));
}
