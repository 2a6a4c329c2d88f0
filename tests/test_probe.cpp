// The softmax-regression probe: L-BFGS on known problems, the objective's gradient against central
// finite differences, fits against scipy's L-BFGS-B (tests/golden/gen_probe.py), accuracy against
// the Bayes rate on Gaussian classes, confidences, save/load, thread-count determinism, bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "ouro/core/parallel.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/latent/pca.hpp"
#include "ouro/probe/centroid_probe.hpp"
#include "ouro/probe/probe.hpp"
#include "ouro/probe/softmax_probe.hpp"
#include "support/common.hpp"
#include "support/files.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using Catch::Matchers::Contains;
using ouro::testing::labels_of;

namespace {

// Classes y_i = i mod K with means μ_k ~ N(0, separation² I) (fixed by means_seed), x_i = μ_{y_i} + N(0, I).
struct gaussian_classes {
    tensor<double> x;             // (N, D)
    std::vector<std::int64_t> y;  // (N)
    tensor<double> means;         // (K, D)
};

gaussian_classes make_gaussian(std::int64_t n, std::int64_t d, std::int64_t k, double separation,
                               std::uint64_t means_seed, std::uint64_t noise_seed) {
    gaussian_classes g{testing::random_tensor<double>(shape{n, d}, noise_seed), std::vector<std::int64_t>(n),
                       testing::random_tensor<double>(shape{k, d}, means_seed, separation)};
    for (std::int64_t i = 0; i < n; ++i) {
        g.y[static_cast<std::size_t>(i)] = i % k;
        for (std::int64_t j = 0; j < d; ++j) g.x[i * d + j] += g.means[(i % k) * d + j];
    }
    return g;
}

// The Bayes classifier of equal-prior, identity-covariance classes: the nearest mean.
double bayes_accuracy(const gaussian_classes& g) {
    const std::int64_t n = g.x.dim(0), d = g.x.dim(1), k = g.means.dim(0);
    std::int64_t hits = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        std::int64_t best = 0;
        double best_d = INFINITY;
        for (std::int64_t c = 0; c < k; ++c) {
            double s = 0;
            for (std::int64_t j = 0; j < d; ++j) s += std::pow(g.x[i * d + j] - g.means[c * d + j], 2);
            if (s < best_d) best_d = s, best = c;
        }
        hits += best == g.y[static_cast<std::size_t>(i)];
    }
    return static_cast<double>(hits) / static_cast<double>(n);
}

template <class A, class B>
bool bitwise_equal(const A& a, const B& b) {
    return a.dims() == b.dims() && std::equal(a.begin(), a.end(), b.begin());
}

// Records every iteration it sees; asks to stop after `stop_after` iterations when that is >= 0.
struct recorder {
    std::vector<probe::lbfgs_iteration> seen;
    std::int64_t stop_after = -1;
    bool on_step(const probe::lbfgs_iteration& it) {
        seen.push_back(it);
        return stop_after >= 0 && it.iteration >= stop_after;
    }
};

}  // namespace

// ---- L-BFGS ---------------------------------------------------------------------------------------

TEST_CASE("lbfgs minimises an ill-conditioned quadratic to a gradient norm of 1e-8", "[probe][lbfgs]") {
    // f(x) = ½ Σ_i a_i (x_i - i)², a_i log-spaced from 1 to 1e3 (condition number 1e3), n = 20.
    const int n = 20;
    auto f = [&](std::span<const double> x, std::span<double> g) {
        double v = 0;
        for (int i = 0; i < n; ++i) {
            const double a = std::pow(1e3, i / (n - 1.0)), r = x[i] - i;
            v += 0.5 * a * r * r;
            g[i] = a * r;
        }
        return v;
    };
    std::vector<double> x(n, 0.0);
    probe::lbfgs_options o;
    o.gradient_tolerance = 1e-8;
    o.max_iterations = 1000;
    const probe::lbfgs_result r = probe::lbfgs_minimize(f, std::span<double>(x), o);
    INFO("status " << probe::to_string(r.status) << " after " << r.iterations << " iterations");
    CHECK(r.status == probe::lbfgs_status::gradient_tolerance);
    CHECK(r.gradient_norm < 1e-8);
    CHECK(r.iterations < 300);  // scipy's L-BFGS-B (m = 10) needs 248 iterations to ||g||_inf <= 1e-9
    for (int i = 0; i < n; ++i) CHECK(x[i] == Approx(i).margin(1e-8));
    for (std::size_t k = 1; k < r.history.size(); ++k) CHECK(r.history[k].loss <= r.history[k - 1].loss);
}

TEST_CASE("lbfgs finds the minimum of the Rosenbrock function", "[probe][lbfgs]") {
    // f = 100 (y - x²)² + (1 - x)², minimum 0 at (1, 1), from the classic start (-1.2, 1).
    auto f = [](std::span<const double> p, std::span<double> g) {
        const double x = p[0], y = p[1];
        g[0] = -400 * x * (y - x * x) - 2 * (1 - x);
        g[1] = 200 * (y - x * x);
        return 100 * (y - x * x) * (y - x * x) + (1 - x) * (1 - x);
    };
    std::vector<double> p{-1.2, 1.0};
    probe::lbfgs_options o;
    o.gradient_tolerance = 1e-9;
    const probe::lbfgs_result r = probe::lbfgs_minimize(f, std::span<double>(p), o);
    CHECK(r.converged());
    CHECK(p[0] == Approx(1.0).margin(1e-8));
    CHECK(p[1] == Approx(1.0).margin(1e-8));
    CHECK(r.loss < 1e-16);
    for (std::size_t k = 1; k < r.history.size(); ++k) CHECK(r.history[k].loss <= r.history[k - 1].loss);
    CHECK(r.history.back().evaluations == r.evaluations);
}

TEST_CASE("lbfgs reports max_iterations, callbacks and their stop requests", "[probe][lbfgs]") {
    auto f = [](std::span<const double> p, std::span<double> g) {
        g[0] = 4 * p[0] * p[0] * p[0];  // x⁴: slow, never within 1e-300 in a few steps
        return p[0] * p[0] * p[0] * p[0];
    };
    std::vector<double> p{3.0};
    probe::lbfgs_options o;
    o.max_iterations = 5;
    o.gradient_tolerance = 1e-300;
    recorder all;
    probe::lbfgs_result r = probe::lbfgs_minimize(f, std::span<double>(p), o, all);
    CHECK(r.status == probe::lbfgs_status::max_iterations);
    CHECK(r.iterations == 5);
    REQUIRE(r.history.size() == 6);
    REQUIRE(all.seen.size() == 6);
    for (std::size_t k = 0; k < 6; ++k) {
        CHECK(all.seen[k].iteration == static_cast<std::int64_t>(k));
        CHECK(all.seen[k].loss == r.history[k].loss);
    }
    CHECK(r.history[0].loss == 81.0);
    CHECK(r.history[0].gradient_norm == 108.0);
    CHECK(p[0] == Approx(std::pow(r.loss, 0.25)).epsilon(1e-12));

    p = {3.0};
    recorder stopper{{}, 2};
    r = probe::lbfgs_minimize(f, std::span<double>(p), o, stopper);
    CHECK(r.status == probe::lbfgs_status::stopped_by_callback);
    CHECK(r.iterations == 2);
    CHECK(r.history.size() == 3);
    CHECK_FALSE(r.converged());
}

TEST_CASE("lbfgs rejects bad options and a start point where the objective is not finite", "[probe][lbfgs]") {
    auto f = [](std::span<const double> p, std::span<double> g) {
        g[0] = 2 * p[0];
        return p[0] * p[0];
    };
    std::vector<double> p{1.0};
    probe::lbfgs_options o;
    o.c1 = 0.95;
    CHECK_THROWS_WITH(probe::lbfgs_minimize(f, std::span<double>(p), o),
                      Contains("0 < c1 < c2 < 1") && Contains("0.95"));
    o = {};
    o.history = 0;
    CHECK_THROWS_WITH(probe::lbfgs_minimize(f, std::span<double>(p), o), Contains("history m >= 1, found 0"));
    auto nan_f = [](std::span<const double>, std::span<double> g) {
        g[0] = 0;
        return NAN;
    };
    CHECK_THROWS_WITH(probe::lbfgs_minimize(nan_f, std::span<double>(p)), Contains("not finite at the start point"));
    std::vector<double> none;
    CHECK_THROWS_WITH(probe::lbfgs_minimize(f, std::span<double>(none)), Contains("at least one parameter"));
}

// ---- The objective ----------------------------------------------------------------------------

TEST_CASE("softmax objective at zero is log K with gradient (1/K - class share) for b", "[probe]") {
    // 5 rows, K = 3, labels 0, 0, 1, 2, 0: at W = 0, b = 0 every p = 1/3.
    tensor<double> x = testing::random_tensor<double>(shape{5, 2}, 3);
    const std::vector<std::int64_t> y{0, 0, 1, 2, 0};
    const probe::softmax_objective<double> obj(x, y, 3, 0.5);
    std::vector<double> params(9, 0.0), grad(9);
    CHECK(obj(params, grad) == Approx(std::log(3.0)).epsilon(1e-15));
    CHECK(grad[6] == Approx(1.0 / 3 - 3.0 / 5).epsilon(1e-14));
    CHECK(grad[7] == Approx(1.0 / 3 - 1.0 / 5).epsilon(1e-14));
    CHECK(grad[8] == Approx(1.0 / 3 - 1.0 / 5).epsilon(1e-14));
    // ∂L/∂W_c = (1/n) Σ_i (1/3 - [y_i = c]) x_i.
    for (int c = 0; c < 3; ++c)
        for (int j = 0; j < 2; ++j) {
            double s = 0;
            for (int i = 0; i < 5; ++i) s += (1.0 / 3 - (y[static_cast<std::size_t>(i)] == c)) * x[i * 2 + j];
            CHECK(grad[static_cast<std::size_t>(c * 2 + j)] == Approx(s / 5).margin(1e-15));
        }
}

TEST_CASE("softmax objective gradient matches central finite differences", "[probe][gradcheck]") {
    // Odd sizes: N = 301 (two blocks, the second of 45 rows), D = 7, K = 4; a subset of rows;
    // standardised and plain; double and float features.
    const gaussian_classes g = make_gaussian(301, 7, 4, 1.0, 11, 12);
    probe::standardization stdz;
    for (int j = 0; j < 7; ++j) {
        stdz.mean.push_back(0.1 * j);
        stdz.scale.push_back(0.5 + 0.25 * j);
    }
    std::vector<std::int64_t> rows;
    for (std::int64_t i = 300; i >= 0; i -= 2) rows.push_back(i);
    tensor<float> xf(g.x.dims());
    std::copy(g.x.begin(), g.x.end(), xf.begin());

    tensor<double> params = testing::random_tensor<double>(shape{4 * 8}, 13, 0.7);
    tensor<double> grad(shape{4 * 8});
    auto check = [&](const auto& obj, const char* what) {
        auto loss = [&] {
            std::vector<double> scratch(32);
            return obj(std::span<const double>(params.data(), 32), std::span<double>(scratch));
        };
        obj(std::span<const double>(params.data(), 32), std::span<double>(grad.data(), 32));
        testing::check_gradient(what, params.view(), grad.view(), loss, 1e-6, 1e-8);
    };
    check(probe::softmax_objective<double>(g.x, g.y, 4, 0.3), "plain, all rows");
    check(probe::softmax_objective<double>(g.x, g.y, 4, 0.3, stdz, rows), "standardised, every other row");
    check(probe::softmax_objective<float>(xf, g.y, 4, 0.0, stdz), "float features, no penalty");
}

// ---- Fits against scipy -----------------------------------------------------------------------

TEST_CASE("probe fits match scipy's L-BFGS-B solutions", "[probe][golden]") {
    const tensor<double> x = testing::load_golden<double>("probe/features.npy");
    const std::vector<std::int64_t> y = labels_of(testing::load_golden<std::int64_t>("probe/labels.npy"));
    struct golden_case {
        const char* name;
        double l2;
        bool standardize;
        double holdout;
        std::uint64_t seed;
    };
    for (const golden_case& c :
         {golden_case{"plain_l2_0.1", 0.1, false, 0.0, 0}, golden_case{"std_l2_0.01", 0.01, true, 0.0, 0},
          golden_case{"split_l2_0.05", 0.05, true, 0.25, 5}}) {
        SECTION(c.name) {
            const std::string stem = std::string("probe/") + c.name;
            probe::fit_options o;
            o.l2 = c.l2;
            o.standardize = c.standardize;
            o.holdout_fraction = c.holdout;
            o.split_seed = c.seed;
            o.lbfgs.gradient_tolerance = 1e-12;  // below the rounding floor: the run goes as far as f resolves
            o.lbfgs.max_iterations = 5000;
            probe::softmax_probe p;
            const probe::fit_report r = p.fit(x, y, 3, o);
            // The decrease g²/λ falls below the rounding of f at ||g|| ~ 1e-9 (Release) to ~ 1e-8
            // (Debug, other rounding); the run stops there, with f unchanged or a failed search.
            INFO("status " << probe::to_string(r.optimization.status) << ", ||g|| " << r.optimization.gradient_norm);
            CHECK(r.optimization.gradient_norm < 1e-7);
            CHECK(r.optimization.status != probe::lbfgs_status::max_iterations);

            // W is unique (λ > 0) and within ~ ||g|| / λ of the reference; b only up to a common
            // shift, and both fits keep Σ b = 0. Entries are of order 1.
            testing::require_close(stem + " weight", p.weight(), testing::load_golden(stem + "_weight.npy"), 0, 1e-6);
            const tensor<double> b_ref = testing::load_golden(stem + "_bias.npy");
            CHECK(std::abs(p.bias()[0] + p.bias()[1] + p.bias()[2]) < 1e-12);
            testing::require_close(stem + " bias", p.bias(), b_ref, 0, 1e-6);
            testing::require_close(stem + " probabilities", p.probabilities(x),
                                   testing::load_golden(stem + "_probabilities.npy"), 0, 1e-7);
            CHECK(r.optimization.loss == Approx(testing::load_golden(stem + "_loss.npy")[0]).epsilon(1e-13));
            if (c.standardize) {
                const auto& s = p.standardization_stats();
                tensor<double> mean(shape{5}), scale(shape{5});
                std::copy(s.mean.begin(), s.mean.end(), mean.begin());
                std::copy(s.scale.begin(), s.scale.end(), scale.begin());
                testing::require_close(stem + " mean", mean, testing::load_golden(stem + "_mean.npy"), 1e-14, 1e-15);
                testing::require_close(stem + " scale", scale, testing::load_golden(stem + "_scale.npy"), 1e-14, 0);
            } else {
                CHECK_FALSE(p.standardization_stats().enabled());
            }
            if (c.holdout > 0) {
                CHECK(r.holdout_rows == labels_of(testing::load_golden<std::int64_t>(stem + "_holdout.npy")));
                CHECK(r.holdout_count == 10);
                CHECK(r.train_count == 30);
                REQUIRE(std::isfinite(r.holdout_accuracy));
            } else {
                CHECK(r.holdout_rows.empty());
                CHECK(r.train_count == 40);
                CHECK(std::isnan(r.holdout_accuracy));
            }
            // The reported accuracies are those of the fitted probe on its rows.
            std::int64_t train_hits = 0, hold_hits = 0;
            const probe::prediction pred = p.predict(x);
            for (std::int64_t i = 0; i < 40; ++i) {
                const bool held = std::binary_search(r.holdout_rows.begin(), r.holdout_rows.end(), i);
                (held ? hold_hits : train_hits) += pred.label[i] == y[static_cast<std::size_t>(i)];
            }
            CHECK(r.train_accuracy == static_cast<double>(train_hits) / static_cast<double>(r.train_count));
            if (c.holdout > 0) CHECK(r.holdout_accuracy == static_cast<double>(hold_hits) / 10.0);
        }
    }
}

// ---- Behaviour on Gaussian classes ------------------------------------------------------------

TEST_CASE("probe reaches the Bayes rate on Gaussian classes and its confidences are calibrated", "[probe]") {
    // Equal priors and covariances: the Bayes classifier is linear, so softmax regression can match it.
    const gaussian_classes train = make_gaussian(4000, 8, 4, 0.8, 21, 22);
    const gaussian_classes test = make_gaussian(20000, 8, 4, 0.8, 21, 23);
    probe::softmax_probe p;
    probe::fit_options o;
    o.holdout_fraction = 0.2;
    o.split_seed = 3;
    const probe::fit_report r = p.fit(train.x, train.y, 4, o);
    CHECK(r.optimization.converged());
    CHECK(r.holdout_count == 800);
    const double bayes = bayes_accuracy(test), acc = p.accuracy(test.x, test.y);
    INFO("Bayes accuracy " << bayes << ", probe " << acc << ", held out " << r.holdout_accuracy << ", train "
                           << r.train_accuracy);
    CHECK(bayes > 0.6);
    CHECK(bayes < 0.95);
    CHECK(acc >= bayes - 0.01);
    CHECK(acc <= bayes + 0.005);
    CHECK(std::abs(r.holdout_accuracy - bayes) < 0.05);  // 800 rows: standard error ~ 0.015

    // The model is well specified, so the mean top probability matches the accuracy.
    const probe::prediction pred = p.predict(test.x);
    double mean_conf = 0;
    for (double c : pred.confidence) mean_conf += c;
    mean_conf /= 20000;
    CHECK(std::abs(mean_conf - acc) < 0.02);
}

TEST_CASE("L-BFGS on the probe objective reaches ||g|| < 1e-6 with a loss that never increases", "[probe][lbfgs]") {
    const gaussian_classes g = make_gaussian(1000, 6, 3, 1.0, 31, 32);
    probe::softmax_probe p;
    probe::fit_options o;
    o.l2 = 1e-2;  // strongly convex in W (and in b on Σ b = 0, where the iterates stay)
    recorder rec;
    const probe::fit_report r = p.fit(g.x, g.y, 3, o, rec);
    CHECK(r.optimization.status == probe::lbfgs_status::gradient_tolerance);
    CHECK(r.optimization.gradient_norm < 1e-6);
    const auto& h = r.optimization.history;
    REQUIRE(h.size() >= 3);
    CHECK(h.front().loss == Approx(std::log(3.0)).epsilon(1e-14));  // W = 0, b = 0
    CHECK(h.back().gradient_norm == r.optimization.gradient_norm);
    CHECK(static_cast<std::int64_t>(h.size()) == r.optimization.iterations + 1);
    for (std::size_t k = 1; k < h.size(); ++k) {
        CHECK(h[k].loss <= h[k - 1].loss);
        CHECK(h[k].step > 0);
    }
    REQUIRE(rec.seen.size() == h.size());
    CHECK(rec.seen.back().loss == h.back().loss);
}

TEST_CASE("probe confidences are probabilities of the label, predictions their maxima", "[probe]") {
    const gaussian_classes g = make_gaussian(200, 5, 3, 1.0, 41, 42);
    probe::softmax_probe p;
    p.fit(g.x, g.y, 3);
    const tensor<double> prob = p.probabilities(g.x);
    REQUIRE(prob.dims() == shape{200, 3});
    for (std::int64_t i = 0; i < 200; ++i) {
        double s = 0;
        for (int c = 0; c < 3; ++c) {
            CHECK(prob[i * 3 + c] >= 0.0);
            CHECK(prob[i * 3 + c] <= 1.0);
            s += prob[i * 3 + c];
        }
        CHECK(s == Approx(1.0).epsilon(1e-14));
    }
    // Labels of another integer type; the confidence is exactly the probability of the label.
    std::vector<int> other(200);
    for (int i = 0; i < 200; ++i) other[static_cast<std::size_t>(i)] = (i * 7) % 3;
    const tensor<double> xi = p.confidence(g.x, other);
    const probe::prediction pred = p.predict(g.x);
    for (std::int64_t i = 0; i < 200; ++i) {
        CHECK(xi[i] == prob[i * 3 + other[static_cast<std::size_t>(i)]]);
        const double* row = prob.data() + i * 3;
        CHECK(pred.confidence[i] == *std::max_element(row, row + 3));
        CHECK(row[pred.label[i]] == pred.confidence[i]);
    }
    // A probe that knows nothing: every class at 1/K, ties resolved to class 0.
    const probe::softmax_probe blank(tensor<double>(shape{4, 5}), tensor<double>(shape{4}));
    const probe::prediction flat = blank.predict(g.x);
    CHECK(flat.label[17] == 0);
    CHECK(flat.confidence[17] == 0.25);
}

TEST_CASE("probe standardisation centres constant features without scaling them", "[probe]") {
    gaussian_classes g = make_gaussian(90, 3, 3, 1.0, 51, 52);
    for (std::int64_t i = 0; i < 90; ++i) g.x[i * 3 + 1] = 4.0;  // a constant feature
    probe::softmax_probe p;
    p.fit(g.x, g.y, 3);
    const auto& s = p.standardization_stats();
    REQUIRE(s.enabled());
    CHECK(s.mean[1] == 4.0);
    CHECK(s.scale[1] == 1.0);
    for (double v : p.weight()) CHECK(std::isfinite(v));
    CHECK(p.weight()[1] == 0.0);  // a centred constant feature is 0: it gets no weight
}

TEST_CASE("probe fits are bitwise identical at 1 and 2 threads and for float or double input", "[probe][threads]") {
    // 1300 rows: 6 blocks, so both threads get work; float-representable values in both inputs.
    gaussian_classes g = make_gaussian(1300, 9, 5, 0.7, 61, 62);
    tensor<float> xf(g.x.dims());
    for (std::int64_t i = 0; i < g.x.numel(); ++i) g.x[i] = xf[i] = static_cast<float>(g.x[i]);
    probe::fit_options o;
    o.holdout_fraction = 0.1;
    o.lbfgs.max_iterations = 60;

    set_threads(1);
    probe::softmax_probe one;
    const probe::fit_report r1 = one.fit(g.x, g.y, 5, o);
    const tensor<double> p1 = one.probabilities(g.x);
    set_threads(2);
    probe::softmax_probe two, from_float;
    const probe::fit_report r2 = two.fit(g.x, g.y, 5, o);
    const tensor<double> p2 = two.probabilities(g.x);
    from_float.fit(xf, g.y, 5, o);
    const tensor<double> p3 = from_float.probabilities(xf);
    set_threads(max_threads());

    CHECK(bitwise_equal(one.weight(), two.weight()));
    CHECK(bitwise_equal(one.bias(), two.bias()));
    CHECK(bitwise_equal(p1, p2));
    REQUIRE(r1.optimization.history.size() == r2.optimization.history.size());
    for (std::size_t k = 0; k < r1.optimization.history.size(); ++k)
        CHECK(r1.optimization.history[k].loss == r2.optimization.history[k].loss);
    CHECK(r1.holdout_accuracy == r2.holdout_accuracy);
    CHECK(bitwise_equal(one.weight(), from_float.weight()));
    CHECK(bitwise_equal(p1, p3));
}

TEST_CASE("probe save and load round-trip W, b and the standardisation as safetensors", "[probe][io]") {
    const gaussian_classes g = make_gaussian(120, 4, 3, 1.0, 71, 72);
    probe::softmax_probe p;
    p.fit(g.x, g.y, 3);
    const auto dir = std::filesystem::temp_directory_path() / "ouro_test_probe";
    std::filesystem::remove_all(dir);
    const auto file = dir / "probe.safetensors";
    p.save(file);
    CHECK(testing::count_temporaries(dir) == 0);
    {
        io::safetensors_reader reader(file);
        CHECK(reader.metadata().at("format") == "ouro.softmax_probe");
        CHECK(reader.read<double>("weight").dims() == shape{3, 4});
        CHECK(reader.read<double>("standardization.scale").dims() == shape{4});
    }
    const probe::softmax_probe q = probe::softmax_probe::load(file);
    CHECK(bitwise_equal(p.weight(), q.weight()));
    CHECK(bitwise_equal(p.bias(), q.bias()));
    CHECK(p.standardization_stats().mean == q.standardization_stats().mean);
    CHECK(p.standardization_stats().scale == q.standardization_stats().scale);
    CHECK(bitwise_equal(p.probabilities(g.x), q.probabilities(g.x)));

    // Without standardisation the statistics are absent and the probe loads as unstandardised.
    probe::fit_options plain;
    plain.standardize = false;
    p.fit(g.x, g.y, 3, plain);
    p.save(file);
    CHECK_FALSE(io::safetensors_reader(file).contains("standardization.mean"));
    CHECK_FALSE(probe::softmax_probe::load(file).standardization_stats().enabled());

    // Damaged or foreign files are refused with the reason and the file's name.
    std::string bytes;
    {
        std::ifstream in(file, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    auto write = [&](const std::string& b) {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out << b;
    };
    write(bytes.substr(0, bytes.size() - 8));
    CHECK_THROWS_WITH(probe::softmax_probe::load(file), Contains(file.string()));
    std::string flipped = bytes;
    flipped[flipped.size() - 3] ^= 0x10;  // a bit of the bias
    write(flipped);
    CHECK_THROWS_WITH(probe::softmax_probe::load(file), Contains("CRC"));
    latent::pca::fit(tensor_view<const double>(g.x), 2).save(file);  // another ouro file
    CHECK_THROWS_WITH(probe::softmax_probe::load(file), Contains("ouro.softmax_probe"));
    io::safetensors_writer bad;  // a bias of the wrong size
    const tensor<double> w0(shape{3, 4}, 0.0), b0(shape{2}, 0.0);
    bad.add("weight", w0);
    bad.add("bias", b0);
    bad.set_metadata({{"format", "ouro.softmax_probe"}, {"version", "1"}, {"standardized", "0"}});
    bad.set_data_checksum();
    bad.write(file);
    CHECK_THROWS_WITH(probe::softmax_probe::load(file), Contains(file.string()) && Contains("bias"));
    CHECK_THROWS_WITH(probe::softmax_probe::load(dir / "missing.safetensors"), Contains("missing.safetensors"));
    CHECK_THROWS_WITH(probe::softmax_probe().save(file), Contains("unfitted"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("fit_progress shows each L-BFGS iteration with loss and gradient norm", "[probe]") {
    const gaussian_classes g = make_gaussian(60, 3, 2, 1.0, 81, 82);
    std::ostringstream log;
    probe::fit_progress bar(500, {.label = "probe fit", .log_every = 1, .style = progress_style::log, .out = &log});
    probe::softmax_probe p;
    const probe::fit_report r = p.fit(g.x, g.y, 2, {}, bar);
    bar.finish();
    const std::string text = log.str();
    CHECK_THAT(text, Contains("probe fit 1/500") && Contains("loss=") && Contains("grad="));
    CHECK(std::count(text.begin(), text.end(), '\n') == r.optimization.iterations);
}

TEST_CASE("probe rejects bad input with messages naming shapes and values", "[probe][errors]") {
    const gaussian_classes g = make_gaussian(30, 4, 3, 1.0, 91, 92);
    probe::softmax_probe p;
    CHECK_THROWS_WITH(p.fit(tensor<double>(shape{0, 4}), std::vector<std::int64_t>{}, 3),
                      Contains("at least one sample") && Contains("(0, 4)"));
    CHECK_THROWS_WITH(p.fit(tensor<double>(shape{30}), g.y, 3), Contains("rank 2") && Contains("(30)"));
    std::vector<std::int64_t> bad = g.y;
    bad[7] = 3;
    CHECK_THROWS_WITH(p.fit(g.x, bad, 3), Contains("labels in [0, 3)") && Contains("found label 3 at index 7"));
    bad[7] = -1;
    CHECK_THROWS_WITH(p.fit(g.x, bad, 3), Contains("found label -1 at index 7"));
    CHECK_THROWS_WITH(p.fit(g.x, std::vector<std::int64_t>(29), 3), Contains("29 labels") && Contains("(30, 4)"));
    tensor<double> nan_x = g.x;
    nan_x[2 * 4 + 1] = NAN;
    CHECK_THROWS_WITH(p.fit(nan_x, g.y, 3), Contains("finite") && Contains("(2, 1)"));
    CHECK_THROWS_WITH(p.fit(g.x, g.y, 1), Contains("at least 2 classes"));
    probe::fit_options o;
    o.holdout_fraction = 1.0;
    CHECK_THROWS_WITH(p.fit(g.x, g.y, 3, o), Contains("holdout_fraction in [0, 1)"));
    o.holdout_fraction = 0.99;  // floor(0.99 · 30) = 29 held out: one training row is enough
    CHECK_NOTHROW(p.fit(g.x, g.y, 3, o));
    o = {};
    o.l2 = -1;
    CHECK_THROWS_WITH(p.fit(g.x, g.y, 3, o), Contains("l2 >= 0"));

    CHECK_THROWS_WITH(probe::softmax_probe().predict(g.x), Contains("not fitted"));
    p.fit(g.x, g.y, 3);
    CHECK_THROWS_WITH(p.predict(tensor<float>(shape{3, 5})),
                      Contains("expected features of shape (N, 4), found (3, 5)"));
    CHECK_THROWS_WITH(p.probabilities(nan_x), Contains("finite"));
    CHECK_THROWS_WITH(p.confidence(g.x, std::vector<int>(30, 3)), Contains("labels in [0, 3)"));
    CHECK_THROWS_WITH(p.confidence(g.x, std::vector<int>(31, 0)), Contains("31 labels") && Contains("(30, 4)"));
    CHECK_THROWS_WITH(probe::softmax_probe(tensor<double>(shape{3, 4}), tensor<double>(shape{4})),
                      Contains("expected shape (3), found (4)"));
    CHECK_THROWS_WITH(probe::softmax_probe(tensor<double>(shape{1, 4}), tensor<double>(shape{1})),
                      Contains("K >= 2") && Contains("(1, 4)"));
}

TEST_CASE("centroid_probe is the Gaussian classifier of its centroids and one shared variance", "[probe][centroid]") {
    static_assert(probe::latent_probe<probe::centroid_probe>);
    // Identity covariance, equal priors: the nearest centroid is the Bayes rule, so with enough
    // rows the closed-form probe reaches the Bayes accuracy without an optimiser.
    const gaussian_classes train = make_gaussian(4000, 8, 4, 0.8, 21, 22);
    const gaussian_classes test = make_gaussian(20000, 8, 4, 0.8, 21, 23);
    probe::centroid_probe p;
    probe::fit_options o;
    o.standardize = false;
    o.holdout_fraction = 0.2;
    o.split_seed = 3;
    const probe::fit_report r = p.fit(train.x, train.y, 4, o);
    CHECK(r.optimization.iterations == 0);
    CHECK(r.holdout_count == 800);
    const double bayes = bayes_accuracy(test);
    const probe::prediction pred = p.predict(test.x);
    std::int64_t hits = 0;
    for (std::int64_t i = 0; i < 20000; ++i) hits += pred.label[i] == test.y[static_cast<std::size_t>(i)];
    const double acc = static_cast<double>(hits) / 20000;
    INFO("Bayes accuracy " << bayes << ", centroid probe " << acc << ", σ² " << p.variance());
    CHECK(acc >= bayes - 0.01);
    CHECK(std::abs(p.variance() - 1.0) < 0.05);  // the classes' own variance per feature
    CHECK(std::abs(r.holdout_accuracy - bayes) < 0.05);

    // Its probabilities are the posterior of its own centroids and variance, computed here directly.
    const std::int64_t d = 8;
    std::vector<double> mu(4 * d, 0.0);
    std::vector<std::int64_t> count(4, 0);
    probe::fit_report split;
    const std::vector<std::int64_t> rows = probe::detail::split_rows(4000, o, split, "test");
    for (std::int64_t r_ : rows) {
        const std::int64_t c = train.y[static_cast<std::size_t>(r_)];
        ++count[static_cast<std::size_t>(c)];
        for (std::int64_t j = 0; j < d; ++j) mu[static_cast<std::size_t>(c * d + j)] += train.x[r_ * d + j];
    }
    for (std::int64_t c = 0; c < 4; ++c)
        for (std::int64_t j = 0; j < d; ++j)
            mu[static_cast<std::size_t>(c * d + j)] /= static_cast<double>(count[static_cast<std::size_t>(c)]);
    const tensor<double> probs = p.probabilities(test.x);
    double worst = 0;
    for (std::int64_t i = 0; i < 50; ++i) {
        double e[4], total = 0;
        for (std::int64_t c = 0; c < 4; ++c) {
            double dist = 0;
            for (std::int64_t j = 0; j < d; ++j)
                dist += std::pow(test.x[i * d + j] - mu[static_cast<std::size_t>(c * d + j)], 2);
            e[c] = std::exp(-dist / (2 * p.variance()));
            total += e[c];
        }
        for (std::int64_t c = 0; c < 4; ++c) worst = std::max(worst, std::abs(probs[i * 4 + c] - e[c] / total));
    }
    CHECK(worst < 1e-9);
    // The same held-out rows as the softmax probe's for the same options.
    probe::softmax_probe s;
    CHECK(s.fit(train.x, train.y, 4, o).holdout_rows == r.holdout_rows);
}

TEST_CASE("centroid_probe refuses a class without training rows and bad input, naming them",
          "[probe][centroid][errors]") {
    tensor<double> x = testing::random_tensor<double>(shape{6, 2}, 5);
    probe::centroid_probe p;
    CHECK_THROWS_WITH(p.fit(x, std::vector<std::int64_t>{0, 1, 0, 1, 0, 1}, 3),
                      Catch::Contains("class 2 has no training row"));
    CHECK_THROWS_WITH(p.fit(x, std::vector<std::int64_t>{0, 1, 0}, 2), Catch::Contains("centroid_probe::fit"));
    x[3] = NAN;
    CHECK_THROWS_WITH(p.fit(x, std::vector<std::int64_t>{0, 1, 0, 1, 0, 1}, 2), Catch::Contains("finite"));
    CHECK_FALSE(p.fitted());
}
