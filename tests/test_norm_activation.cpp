// Group norm and the activations (SiLU, ReLU): kernels and modules against PyTorch float64
// goldens (tests/golden/gen_pointwise.py), against central differences, bitwise at 1 and 2
// threads, and with clear errors on bad shapes.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/nn/activation.hpp"
#include "ouro/nn/group_norm.hpp"
#include "support/common.hpp"
#include "support/cpu_strict.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using namespace ouro::testing;  // golden cases, gradient checks, random tensors

namespace {

using cpu_ops = ops<cpu>;

// Runs group norm forward and backward on a golden case's inputs in precision T.
template <class T>
struct group_norm_run {
    tensor<T> y, mean, rstd, dx, dgamma, dbeta;
};

template <class T>
group_norm_run<T> run_group_norm(const tensor<T>& x, const tensor<T>& gamma, const tensor<T>& beta, const tensor<T>& dy,
                                 std::int64_t groups, double eps) {
    group_norm_run<T> r;
    r.y = tensor<T>(x.dims());
    r.mean = tensor<T>(shape{x.dim(0), groups});
    r.rstd = tensor<T>(shape{x.dim(0), groups});
    r.dx = tensor<T>(x.dims());
    r.dgamma = tensor<T>(gamma.dims());
    r.dbeta = tensor<T>(gamma.dims());
    cpu_ops::group_norm_forward<T>(x, gamma, beta, r.y, r.mean, r.rstd, groups, eps);
    cpu_ops::group_norm_backward<T>(x, dy, gamma, r.mean, r.rstd, r.dx, r.dgamma, r.dbeta);
    return r;
}

struct group_norm_case {
    const char* name;
    std::int64_t groups;
    double eps;
};

const group_norm_case golden_group_norm_cases[] = {
    {"group_norm_c6_g3", 3, 1e-5},  // (2, 6, 5, 7), H·W = 35, mean 3
    {"group_norm_c8_g4", 4, 1e-5},  // (1, 8, 3, 5), batch 1, H·W = 15
    {"group_norm_bcl", 2, 1e-6},    // (3, 4, 9), (B, C, L)
};

}  // namespace

TEST_CASE("group_norm kernels match torch group_norm in float64", "[norm][golden]") {
    for (const auto& gc : golden_group_norm_cases) {
        INFO(gc.name);
        const auto x = load_golden(pointwise_golden(gc.name, "x")),
                   gamma = load_golden(pointwise_golden(gc.name, "weight")),
                   beta = load_golden(pointwise_golden(gc.name, "bias")),
                   dy = load_golden(pointwise_golden(gc.name, "dy"));
        const auto r = run_group_norm(x, gamma, beta, dy, gc.groups, gc.eps);
        require_close("y", r.y, load_golden(pointwise_golden(gc.name, "y")), 1e-10, 1e-12);
        require_close("mean", r.mean, load_golden(pointwise_golden(gc.name, "mean")), 1e-10, 1e-12);
        require_close("rstd", r.rstd, load_golden(pointwise_golden(gc.name, "rstd")), 1e-10, 1e-12);
        require_close("dx", r.dx, load_golden(pointwise_golden(gc.name, "dx")), 1e-10, 1e-12);
        require_close("dgamma", r.dgamma, load_golden(pointwise_golden(gc.name, "grad_weight")), 1e-10, 1e-12);
        require_close("dbeta", r.dbeta, load_golden(pointwise_golden(gc.name, "grad_bias")), 1e-10, 1e-12);
    }
}

TEST_CASE("group_norm kernels in float stay within float tolerance of the float64 goldens", "[norm][golden]") {
    for (const auto& gc : golden_group_norm_cases) {
        INFO(gc.name);
        const auto x = cast<float>(load_golden(pointwise_golden(gc.name, "x")));
        const auto gamma = cast<float>(load_golden(pointwise_golden(gc.name, "weight")));
        const auto beta = cast<float>(load_golden(pointwise_golden(gc.name, "bias")));
        const auto dy = cast<float>(load_golden(pointwise_golden(gc.name, "dy")));
        const auto r = run_group_norm(x, gamma, beta, dy, gc.groups, gc.eps);
        require_close("y", r.y, load_golden(pointwise_golden(gc.name, "y")), 1e-5, 1e-5);
        require_close("rstd", r.rstd, load_golden(pointwise_golden(gc.name, "rstd")), 1e-5, 1e-5);
        require_close("dx", r.dx, load_golden(pointwise_golden(gc.name, "dx")), 1e-5, 1e-5);
        require_close("dgamma", r.dgamma, load_golden(pointwise_golden(gc.name, "grad_weight")), 1e-5, 1e-5);
        require_close("dbeta", r.dbeta, load_golden(pointwise_golden(gc.name, "grad_bias")), 1e-5, 1e-5);
    }
}

// On cpu and on cpu_strict (a backend whose memory the host may not read: issue #14's seam).
TEMPLATE_TEST_CASE("nn::group_norm matches torch.nn.GroupNorm and accumulates parameter gradients",
                   "[norm][golden][module]", cpu, cpu_strict) {
    using B = TestType;
    static_assert(nn::unary_module<nn::group_norm<cpu, double>, double>);
    const char* c = "group_norm_c6_g3";
    const auto x = on_backend<B>(load_golden(pointwise_golden(c, "x")));
    const auto dy = on_backend<B>(load_golden(pointwise_golden(c, "dy")));
    parameter_store<double, B> store;
    nn::group_norm<B, double> gn(store, "block.norm", 3, 6);
    const parameter weight = store.find("block.norm.weight"), bias = store.find("block.norm.bias");
    CHECK(weight.valid());
    CHECK(bias.valid());
    CHECK(gn.eps() == 1e-5);
    // Fresh parameters are torch's init: weight 1, bias 0.
    for (double v : to_host(store.value(weight))) REQUIRE(v == 1.0);
    for (double v : to_host(store.value(bias))) REQUIRE(v == 0.0);

    copy_from_host(load_golden(pointwise_golden(c, "weight")).view(), store.value(weight));
    copy_from_host(load_golden(pointwise_golden(c, "bias")).view(), store.value(bias));

    const auto y = to_host(gn.forward(x.view()));
    require_close("y", y, load_golden(pointwise_golden(c, "y")), 1e-10, 1e-12);
    const auto dx = to_host(gn.backward(dy.view()));
    require_close("dx", dx, load_golden(pointwise_golden(c, "dx")), 1e-10, 1e-12);
    const auto dgamma = to_host(store.grad(weight));
    require_close("dgamma", dgamma, load_golden(pointwise_golden(c, "grad_weight")), 1e-10, 1e-12);
    require_close("dbeta", to_host(store.grad(bias)), load_golden(pointwise_golden(c, "grad_bias")), 1e-10, 1e-12);

    // A second backward adds the same gradients again.
    gn.backward(dy.view());
    const auto twice = to_host(store.grad(weight));
    for (std::int64_t i = 0; i < twice.numel(); ++i) REQUIRE(twice[i] == 2.0 * dgamma[i]);
}

TEST_CASE("group_norm backward agrees with central differences", "[norm][gradcheck]") {
    struct fd_case {
        shape dims;
        std::int64_t groups;
    };
    const fd_case cases[] = {
        {{1, 6, 5, 7}, 3},  // batch 1, H·W = 35
        {{2, 5, 3, 3}, 5},  // one channel per group (instance norm)
        {{2, 6, 4, 5}, 1},  // one group (layer norm over C, H, W)
        {{3, 4, 9}, 2},     // (B, C, L)
        {{3, 8}, 4},        // (B, C)
    };
    for (const auto& fc : cases) {
        INFO("x of shape " << fc.dims << ", groups " << fc.groups);
        auto x = random_tensor<double>(fc.dims, 11, 1.5);
        for (auto& v : x) v += 0.7;
        const std::int64_t c = fc.dims[1];
        auto gamma = random_tensor<double>(shape{c}, 12);
        auto beta = random_tensor<double>(shape{c}, 13);
        const auto r = random_tensor<double>(fc.dims, 14);  // L = Σ r·y, so dL/dy = r
        const auto run = run_group_norm(x, gamma, beta, r, fc.groups, 1e-5);

        auto loss = [&] {
            tensor<double> y(fc.dims), mean(shape{fc.dims[0], fc.groups}), rstd(shape{fc.dims[0], fc.groups});
            cpu_ops::group_norm_forward<double>(x, gamma, beta, y, mean, rstd, fc.groups, 1e-5);
            return dot(y, r);
        };
        check_gradient("dx", x.view(), run.dx.view(), loss, 1e-6, 1e-6);
        check_gradient("dgamma", gamma.view(), run.dgamma.view(), loss, 1e-6, 1e-6);
        check_gradient("dbeta", beta.view(), run.dbeta.view(), loss, 1e-6, 1e-6);
    }
}

TEST_CASE("group_norm gives the same bits at 1 and 2 threads", "[norm][threads]") {
    const shape dims{4, 32, 15, 17};
    const auto x = random_tensor<float>(dims, 21, 2.0);
    const auto gamma = random_tensor<float>(shape{32}, 22), beta = random_tensor<float>(shape{32}, 23);
    const auto dy = random_tensor<float>(dims, 24);
    const auto [one, two] = testing::at_one_and_two_threads([&] { return run_group_norm(x, gamma, beta, dy, 8, 1e-5); });
    CHECK(bitwise_equal(one.y, two.y));
    CHECK(bitwise_equal(one.mean, two.mean));
    CHECK(bitwise_equal(one.rstd, two.rstd));
    CHECK(bitwise_equal(one.dx, two.dx));
    CHECK(bitwise_equal(one.dgamma, two.dgamma));
    CHECK(bitwise_equal(one.dbeta, two.dbeta));
}

TEST_CASE("fused group_norm + silu gives the bits of group_norm then silu, at 1 and 2 threads",
          "[norm][activation][threads]") {
    // Planes of 7x7 and 15x17 leave tails past the SIMD width; (2, 6) is one with no spatial axis.
    const shape cases[] = {shape{3, 16, 7, 7}, shape{2, 12, 15, 17}, shape{2, 6}};
    for (const shape& dims : cases) {
        INFO("x " << dims);
        const std::int64_t c = dims[1];
        const auto x = random_tensor<float>(dims, 31, 3.0);
        const auto gamma = random_tensor<float>(shape{c}, 32), beta = random_tensor<float>(shape{c}, 33);
        tensor<float> normed(dims), mean(shape{dims[0], 2}), rstd(shape{dims[0], 2}), unfused(dims);
        cpu_ops::group_norm_forward<float>(x, gamma, beta, normed, mean, rstd, 2);
        cpu_ops::silu_forward<float>(normed, unfused);
        const int saved = max_threads();
        for (int threads : {1, 2}) {
            set_threads(threads);
            tensor<float> fused(dims);
            cpu_ops::group_norm_silu_forward<float>(x, gamma, beta, fused, 2);
            CHECK(bitwise_equal(fused, unfused));
        }
        set_threads(saved);
    }
    tensor<double> xd = random_tensor<double>(shape{2, 4, 5, 3}, 34), yd(shape{2, 4, 5, 3}), nd(yd.dims()),
                   ud(yd.dims());
    tensor<double> md(shape{2, 2}), rd(shape{2, 2});
    const tensor<double> g = random_tensor<double>(shape{4}, 35), b = random_tensor<double>(shape{4}, 36);
    cpu_ops::group_norm_forward<double>(xd, g, b, nd, md, rd, 2);
    cpu_ops::silu_forward<double>(nd, ud);
    cpu_ops::group_norm_silu_forward<double>(xd, g, b, yd, 2);
    CHECK(bitwise_equal(yd, ud));
    CHECK_THROWS_WITH(cpu_ops::group_norm_silu_forward<double>(xd, g, b, yd, 3),
                      Catch::Contains("not divisible by groups = 3"));
}

TEST_CASE("group_norm_silu for training: forward and backward give the bits of group_norm then silu",
          "[norm][activation][threads]") {
    const shape cases[] = {shape{3, 16, 7, 7}, shape{2, 12, 15, 17}, shape{2, 6}};
    for (const shape& dims : cases) {
        INFO("x " << dims);
        const std::int64_t b = dims[0], c = dims[1];
        const auto x = random_tensor<float>(dims, 41, 3.0);
        const auto gamma = random_tensor<float>(shape{c}, 42), beta = random_tensor<float>(shape{c}, 43);
        const auto dy = random_tensor<float>(dims, 44);
        // Unfused: group_norm, silu; silu's backward, group_norm's backward.
        tensor<float> normed(dims), mean(shape{b, 2}), rstd(shape{b, 2}), y(dims), dnormed(dims), dx(dims);
        tensor<float> dgamma(shape{c}), dbeta(shape{c});
        cpu_ops::group_norm_forward<float>(x, gamma, beta, normed, mean, rstd, 2);
        cpu_ops::silu_forward<float>(normed, y);
        cpu_ops::silu_backward<float>(normed, dy, dnormed);
        cpu_ops::group_norm_backward<float>(x, dnormed, gamma, mean, rstd, dx, dgamma, dbeta);
        const int saved = max_threads();
        for (int threads : {1, 2}) {
            set_threads(threads);
            tensor<float> fy(dims), fmean(shape{b, 2}), frstd(shape{b, 2}), coef(shape{b, c, 2}), fdx(dims);
            tensor<float> fdgamma(shape{c}), fdbeta(shape{c});
            cpu_ops::group_norm_silu_forward<float>(x, gamma, beta, fy, fmean, frstd, coef, 2);
            cpu_ops::group_norm_silu_backward<float>(x, dy, gamma, fmean, frstd, coef, fdx, fdgamma, fdbeta);
            CHECK(bitwise_equal(fy, y));
            CHECK(bitwise_equal(fmean, mean));
            CHECK(bitwise_equal(frstd, rstd));
            CHECK(bitwise_equal(fdx, dx));
            CHECK(bitwise_equal(fdgamma, dgamma));
            CHECK(bitwise_equal(fdbeta, dbeta));
        }
        set_threads(saved);
    }
}

TEST_CASE("nn::group_norm_silu is nn::group_norm then nn::silu, with the same parameters",
          "[norm][activation][module]") {
    parameter_store<float> fused_store, plain_store;
    nn::group_norm_silu<cpu> fused(fused_store, "n", 4, 8);
    nn::group_norm<cpu> norm(plain_store, "n", 4, 8);
    nn::silu<cpu> act;
    CHECK(fused_store.size() == plain_store.size());
    CHECK(fused_store.find("n.weight").valid());
    CHECK(fused_store.find("n.bias").valid());
    philox_stream rng(5, rng_purpose::user);
    for (std::int64_t i = 0; i < fused_store.size(); ++i)
        fused_store.values()[i] = plain_store.values()[i] = static_cast<float>(rng.normal());
    const auto x = random_tensor<float>(shape{2, 8, 5, 6}, 51), dy = random_tensor<float>(shape{2, 8, 5, 6}, 52);
    const tensor<float> y_fused = to_tensor(fused.forward(x, {}));
    const tensor<float> y_plain = to_tensor(act.forward(norm.forward(x, {}), {}));
    CHECK(bitwise_equal(y_fused, y_plain));
    const tensor<float> dx_fused = to_tensor(fused.backward(dy));
    const tensor<float> dx_plain = to_tensor(norm.backward(act.backward(dy)));
    CHECK(bitwise_equal(dx_fused, dx_plain));
    for (std::int64_t i = 0; i < fused_store.size(); ++i) CHECK(fused_store.grads()[i] == plain_store.grads()[i]);
    const tensor<float> y_inference = to_tensor(fused.forward(x, {.inference = true}));
    CHECK(bitwise_equal(y_inference, y_plain));
    CHECK_THROWS_WITH(fused.backward(dy), Catch::Contains("forward_context::inference"));
}

TEST_CASE("group_norm normalises each group to mean 0 and variance 1 before the affine map", "[norm]") {
    // With gamma = 1 and beta = 0, every (b, g) span of y has mean ~0 and biased variance ~1 − eps/var.
    const shape dims{2, 6, 7, 9};
    auto x = random_tensor<double>(dims, 31, 5.0);
    for (auto& v : x) v += 100.0;  // a large offset must not spoil the variance
    const tensor<double> gamma(shape{6}, 1.0), beta(shape{6}, 0.0);
    tensor<double> y(dims), mean(shape{2, 3}), rstd(shape{2, 3});
    cpu_ops::group_norm_forward<double>(x, gamma, beta, y, mean, rstd, 3, 0.0);
    const std::int64_t n = 2 * 7 * 9;
    for (std::int64_t item = 0; item < 6; ++item) {
        double s = 0, s2 = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            s += y[item * n + i];
            s2 += y[item * n + i] * y[item * n + i];
        }
        CHECK(std::abs(s / n) < 1e-12);
        CHECK(std::abs(s2 / n - 1.0) < 1e-12);
        CHECK(mean[item] == Approx(100.0).epsilon(0.05));
    }
}

TEST_CASE("group_norm refuses bad shapes and group counts, naming what it expected and found", "[norm][errors]") {
    const tensor<double> x(shape{2, 6, 4, 4}, 1.0), gamma(shape{6}, 1.0), beta(shape{6}, 0.0);
    tensor<double> y(shape{2, 6, 4, 4}), mean(shape{2, 3}), rstd(shape{2, 3});
    using Catch::Contains;

    tensor<double> mean4(shape{2, 4}), rstd4(shape{2, 4});
    CHECK_THROWS_WITH(cpu_ops::group_norm_forward<double>(x, gamma, beta, y, mean4, rstd4, 4),
                      Contains("C = 6") && Contains("groups = 4"));
    const tensor<double> gamma5(shape{5}, 1.0);
    CHECK_THROWS_WITH(cpu_ops::group_norm_forward<double>(x, gamma5, beta, y, mean, rstd, 3),
                      Contains("expected shape (6)") && Contains("found (5)"));
    tensor<double> y_bad(shape{2, 6, 4, 5});
    CHECK_THROWS_WITH(cpu_ops::group_norm_forward<double>(x, gamma, beta, y_bad, mean, rstd, 3),
                      Contains("(2, 6, 4, 4)") && Contains("(2, 6, 4, 5)"));
    const tensor<double> empty(shape{0, 6, 4, 4});
    tensor<double> y_empty(shape{0, 6, 4, 4}), m0(shape{0, 3}), r0(shape{0, 3});
    CHECK_THROWS_WITH(cpu_ops::group_norm_forward<double>(empty, gamma, beta, y_empty, m0, r0, 3),
                      Contains("non-empty batch") && Contains("(0, 6, 4, 4)"));
    const tensor<double> no_pixels(shape{2, 6, 0, 4});
    tensor<double> y_np(shape{2, 6, 0, 4});
    CHECK_THROWS_WITH(cpu_ops::group_norm_forward<double>(no_pixels, gamma, beta, y_np, mean, rstd, 3),
                      Contains("spatial") && Contains("(2, 6, 0, 4)"));
    const tensor<double> rank5(shape{1, 6, 2, 2, 2});
    tensor<double> y5(shape{1, 6, 2, 2, 2}), m1(shape{1, 3}), r1(shape{1, 3});
    CHECK_THROWS_WITH(cpu_ops::group_norm_forward<double>(rank5, gamma, beta, y5, m1, r1, 3),
                      Contains("(B, C, H, W)") && Contains("(1, 6, 2, 2, 2)"));

    tensor<double> dx(shape{2, 6, 4, 4}), dgamma(shape{6}), dbeta(shape{6});
    const tensor<double> dy_bad(shape{2, 6, 4, 3});
    cpu_ops::group_norm_forward<double>(x, gamma, beta, y, mean, rstd, 3);
    CHECK_THROWS_WITH(cpu_ops::group_norm_backward<double>(x, dy_bad, gamma, mean, rstd, dx, dgamma, dbeta),
                      Contains("(2, 6, 4, 4)") && Contains("(2, 6, 4, 3)"));

    parameter_store<double> store;
    CHECK_THROWS_WITH((nn::group_norm<cpu, double>(store, "norm", 4, 6)), Contains("6") && Contains("groups = 4"));
    nn::group_norm<cpu, double> gn(store, "norm", 3, 6);
    CHECK_THROWS_WITH(gn.backward(x), Contains("forward has not run"));
    const tensor<double> x8(shape{2, 8, 4, 4});
    CHECK_THROWS_WITH(gn.forward(x8), Contains("(B, 6, ...)") && Contains("(2, 8, 4, 4)"));
}

// ---------------------------------------------------------------------------------------------
// Activations

TEST_CASE("silu and relu kernels match torch in float64, including extremes and zeros", "[activation][golden]") {
    for (const char* c : {"silu", "relu"}) {
        INFO(c);
        const auto x = load_golden(pointwise_golden(c, "x")), dy = load_golden(pointwise_golden(c, "dy"));
        tensor<double> y(x.dims()), dx(x.dims());
        if (std::string(c) == "silu") {
            cpu_ops::silu_forward<double>(x, y);
            cpu_ops::silu_backward<double>(x, dy, dx);
        } else {
            cpu_ops::relu_forward<double>(x, y);
            cpu_ops::relu_backward<double>(y, dy, dx);
        }
        require_close("y", y, load_golden(pointwise_golden(c, "y")), 1e-13, 1e-300);
        require_close("dx", dx, load_golden(pointwise_golden(c, "dx")), 1e-13, 1e-300);
    }
}

TEST_CASE("silu and relu kernels in float stay within float tolerance of the goldens", "[activation][golden]") {
    for (const char* c : {"silu", "relu"}) {
        INFO(c);
        const auto x = cast<float>(load_golden(pointwise_golden(c, "x"))),
                   dy = cast<float>(load_golden(pointwise_golden(c, "dy")));
        tensor<float> y(x.dims()), dx(x.dims());
        if (std::string(c) == "silu") {
            cpu_ops::silu_forward<float>(x, y);
            cpu_ops::silu_backward<float>(x, dy, dx);
        } else {
            cpu_ops::relu_forward<float>(x, y);
            cpu_ops::relu_backward<float>(y, dy, dx);
        }
        // Inputs were rounded to float, so compare against float64 outputs with float tolerance.
        require_close("y", y, load_golden(pointwise_golden(c, "y")), 1e-6, 1e-6);
        require_close("dx", dx, load_golden(pointwise_golden(c, "dx")), 1e-6, 1e-6);
    }
}

TEST_CASE("silu and relu backward agree with central differences", "[activation][gradcheck]") {
    for (const shape& dims : {shape{1, 1}, shape{3, 37}, shape{2, 3, 5, 7}}) {
        INFO("x of shape " << dims);
        auto x = random_tensor<double>(dims, 41, 2.0);
        for (auto& v : x) v += v >= 0 ? 1e-2 : -1e-2;  // keep relu's kink out of the differences
        const auto r = random_tensor<double>(dims, 42);
        tensor<double> y(dims), dx(dims);

        cpu_ops::silu_backward<double>(x, r, dx);
        check_gradient(
            "silu dx", x.view(), dx.view(),
            [&] {
                cpu_ops::silu_forward<double>(x, y);
                return dot(y, r);
            },
            1e-6, 1e-7);

        cpu_ops::relu_forward<double>(x, y);
        cpu_ops::relu_backward<double>(y, r, dx);
        check_gradient(
            "relu dx", x.view(), dx.view(),
            [&] {
                cpu_ops::relu_forward<double>(x, y);
                return dot(y, r);
            },
            1e-6, 1e-7);
    }
}

TEST_CASE("silu gives the same bits for a value wherever it sits, tail included", "[activation]") {
    // 8 distinct values repeated over 101 elements: positions in SIMD bodies and in the padded tail.
    const double values[] = {-7.5, -1.25, -0.1, 0.0, 0.3, 1.0, 2.5, 9.0};
    for (std::int64_t n : {1, 7, 101, 4096 + 13}) {
        tensor<float> x(shape{n}), y(shape{n}), dy(shape{n}, 1.0f), dx(shape{n});
        for (std::int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(values[(i * 5) % 8]);
        cpu_ops::silu_forward<float>(x, y);
        cpu_ops::silu_backward<float>(x, dy, dx);
        tensor<float> one(shape{1}), y_one(shape{1}), dy_one(shape{1}, 1.0f), dx_one(shape{1});
        for (std::int64_t i = 0; i < n; ++i) {
            one[0] = x[i];
            cpu_ops::silu_forward<float>(one, y_one);
            cpu_ops::silu_backward<float>(one, dy_one, dx_one);
            REQUIRE(y[i] == y_one[0]);
            REQUIRE(dx[i] == dx_one[0]);
        }
    }
}

TEST_CASE("silu and relu give the same bits at 1 and 2 threads", "[activation][threads]") {
    const shape dims{3, 5003};  // several parallel chunks and a tail
    const auto x = random_tensor<float>(dims, 51, 3.0), dy = random_tensor<float>(dims, 52);
    auto run = [&] {
        std::vector<tensor<float>> out(4, tensor<float>(dims));
        cpu_ops::silu_forward<float>(x, out[0]);
        cpu_ops::silu_backward<float>(x, dy, out[1]);
        cpu_ops::relu_forward<float>(x, out[2]);
        cpu_ops::relu_backward<float>(out[2], dy, out[3]);
        return out;
    };
    const auto [one, two] = testing::at_one_and_two_threads([&] { return run(); });
    for (int k = 0; k < 4; ++k) CHECK(bitwise_equal(one[k], two[k]));
    // And the values are the activations (not, say, all zeros).
    CHECK(one[2][0] == std::max(x[0], 0.0f));
    CHECK(one[0][5] == Approx(x[5] / (1 + std::exp(-x[5]))).epsilon(1e-6));
}

TEST_CASE("nn::silu and nn::relu run the kernels and refuse a mismatched gradient", "[activation][module]") {
    static_assert(nn::unary_module<nn::silu<cpu, double>, double>);
    static_assert(nn::unary_module<nn::relu<cpu, double>, double>);
    const auto x = load_golden(pointwise_golden("silu", "x")), dy = load_golden(pointwise_golden("silu", "dy"));
    nn::silu<cpu, double> silu;
    require_close("silu y", to_tensor(silu.forward(x)), load_golden(pointwise_golden("silu", "y")), 1e-13, 1e-300);
    require_close("silu dx", to_tensor(silu.backward(dy)), load_golden(pointwise_golden("silu", "dx")), 1e-13, 1e-300);

    const auto xr = load_golden(pointwise_golden("relu", "x")), dyr = load_golden(pointwise_golden("relu", "dy"));
    nn::relu<cpu, double> relu;
    require_close("relu y", to_tensor(relu.forward(xr)), load_golden(pointwise_golden("relu", "y")), 0, 0);
    require_close("relu dx", to_tensor(relu.backward(dyr)), load_golden(pointwise_golden("relu", "dx")), 0, 0);

    using Catch::Contains;
    const tensor<double> wrong(shape{3, 36});
    CHECK_THROWS_WITH(silu.backward(wrong), Contains("(3, 37)") && Contains("(3, 36)"));
    CHECK_THROWS_WITH(relu.backward(wrong), Contains("(3, 37)") && Contains("(3, 36)"));
    nn::silu<cpu, double> fresh;
    CHECK_THROWS_WITH(fresh.backward(dy), Contains("forward has not run"));
    tensor<double> y_bad(shape{37, 3});
    CHECK_THROWS_WITH(cpu_ops::silu_forward<double>(x, y_bad), Contains("(3, 37)") && Contains("(37, 3)"));
}
