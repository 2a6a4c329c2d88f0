// Optimisation on a whole parameter store: AdamW against torch.optim.AdamW, gradient clipping
// against torch.nn.utils.clip_grad_norm_, learning-rate schedules and the weight EMA against their
// formulas, thread-count independence, and the errors bad input gets.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"  // the optimisers run ops<cpu>
#include "ouro/core/parallel.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/clip.hpp"
#include "ouro/optim/ema.hpp"
#include "ouro/optim/lr_schedule.hpp"
#include "ouro/optim/optimizer.hpp"
#include "ouro/optim/sgd.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using ouro::testing::load_golden;
using ouro::testing::random_tensor;
using ouro::testing::require_close;

namespace {

constexpr int golden_params = 3;

// "p0", "p1", ... (built with += : GCC 12 warns falsely (-Wrestrict) on "literal" + std::string).
std::string indexed_name(std::string prefix, std::int64_t k) {
    prefix += std::to_string(k);
    return prefix;
}

// The arrays of one AdamW golden case written by tests/golden/gen_optim.py.
struct adamw_golden {
    std::array<tensor<double>, golden_params> init, grads, values, exp_avg, exp_avg_sq;
    tensor<double> lrs, hyper;  // hyper = [beta1, beta2, eps, weight_decay]

    explicit adamw_golden(const std::string& c) {
        for (int k = 0; k < golden_params; ++k) {
            const std::string p = "optim/" + c + "/p" + std::to_string(k) + "_";
            init[k] = load_golden(p + "init.npy");
            grads[k] = load_golden(p + "grads.npy");
            values[k] = load_golden(p + "values.npy");
            exp_avg[k] = load_golden(p + "exp_avg.npy");
            exp_avg_sq[k] = load_golden(p + "exp_avg_sq.npy");
        }
        lrs = load_golden("optim/" + c + "/lrs.npy");
        hyper = load_golden("optim/" + c + "/hyper.npy");
    }
    std::int64_t steps() const { return lrs.numel(); }
    optim::adamw_options options() const {
        return {.lr = lrs[0], .beta1 = hyper[0], .beta2 = hyper[1], .eps = hyper[2], .weight_decay = hyper[3]};
    }
};

// Step `step` of a (steps, ...) golden array, seen with the parameter's shape.
tensor_view<const double> at_step(const tensor<double>& stacked, std::int64_t step, const shape& dims) {
    REQUIRE(stacked.numel() % dims.numel() == 0);
    return {stacked.data() + step * dims.numel(), dims};
}

template <class T>
void copy_into(tensor_view<T> dst, tensor_view<const double> src) {
    REQUIRE(dst.numel() == src.numel());
    for (std::int64_t i = 0; i < src.numel(); ++i) dst[i] = static_cast<T>(src[i]);
}

// Runs the golden case through ouro's AdamW in T and compares values after every step and the
// final moments.
template <class T>
void check_adamw_against_torch(const std::string& c, double rtol, double atol) {
    const adamw_golden g(c);
    parameter_store<T> store;
    std::array<parameter, golden_params> p;
    for (int k = 0; k < golden_params; ++k) {
        p[k] = store.add(indexed_name("p", k), g.init[k].dims());
        copy_into(store.value(p[k]), g.init[k].view());
    }
    optim::adamw<T> opt(store, g.options());
    for (std::int64_t s = 0; s < g.steps(); ++s) {
        opt.set_lr(g.lrs[s]);
        for (int k = 0; k < golden_params; ++k)
            copy_into(store.grad(p[k]), at_step(g.grads[k], s, store.at(p[k]).dims));
        opt.step(store);
        for (int k = 0; k < golden_params; ++k)
            require_close(c + " p" + std::to_string(k) + " after step " + std::to_string(s + 1), store.value(p[k]),
                          at_step(g.values[k], s, store.at(p[k]).dims), rtol, atol);
    }
    CHECK(opt.step_count() == g.steps());
    for (int k = 0; k < golden_params; ++k) {
        const auto& e = store.at(p[k]);
        require_close(c + " exp_avg p" + std::to_string(k), tensor_view<const T>(opt.exp_avg() + e.offset, e.dims),
                      g.exp_avg[k], rtol, atol * 1e-2);
        require_close(c + " exp_avg_sq p" + std::to_string(k),
                      tensor_view<const T>(opt.exp_avg_sq() + e.offset, e.dims), g.exp_avg_sq[k], rtol, atol * 1e-4);
    }
}

template <class T>
bool bitwise_equal(const T* a, const T* b, std::int64_t n) {
    return std::memcmp(a, b, static_cast<std::size_t>(n) * sizeof(T)) == 0;
}

// A store of three parameters, sizes chosen to span several parallel chunks with odd tails.
template <class T>
parameter_store<T> large_store(std::uint64_t seed) {
    parameter_store<T> store;
    const std::array<shape, 3> dims{shape{97, 211}, shape{7}, shape{3, 5001}};
    for (std::size_t k = 0; k < dims.size(); ++k) {
        const parameter p = store.add(indexed_name("w", k), dims[k]);
        const tensor<T> v = random_tensor<T>(dims[k], seed + 2 * k);
        const tensor<T> g = random_tensor<T>(dims[k], seed + 2 * k + 1, 0.1);
        std::copy(v.begin(), v.end(), store.value(p).begin());
        std::copy(g.begin(), g.end(), store.grad(p).begin());
    }
    return store;
}

// Σ g² in double, one element after another: the reference for grad_norm.
template <class T>
double serial_sum_of_squares(const parameter_store<T>& store) {
    double s = 0;
    for (std::int64_t i = 0; i < store.size(); ++i) s += static_cast<double>(store.grads()[i]) * store.grads()[i];
    return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------- AdamW

TEST_CASE("adamw matches torch.optim.AdamW step by step, with weight decay and lr changes (double)", "[optim][adamw]") {
    check_adamw_against_torch<double>("adamw_decay_lr_changes", 1e-12, 1e-14);
    check_adamw_against_torch<double>("adamw_small_grads", 1e-12, 1e-14);
}

TEST_CASE("adamw in float follows torch.optim.AdamW's float64 trajectory to float precision", "[optim][adamw]") {
    check_adamw_against_torch<float>("adamw_decay_lr_changes", 1e-5, 1e-6);
    check_adamw_against_torch<float>("adamw_small_grads", 1e-5, 1e-6);
}

TEST_CASE("adamw's first step moves each weight by lr against its gradient's sign, after decay", "[optim][adamw]") {
    // At t = 1, m̂ = g and sqrt(v̂) = |g|, so the step is lr · g / (|g| + eps): a closed form.
    parameter_store<double> store;
    const parameter p = store.add("w", shape{4});
    const double w0[4] = {1.0, -2.0, 0.5, 3.0}, g0[4] = {0.3, -4.0, 1e-3, 0.0};
    std::copy(w0, w0 + 4, store.value(p).begin());
    std::copy(g0, g0 + 4, store.grad(p).begin());
    const optim::adamw_options o{.lr = 0.1, .eps = 1e-8, .weight_decay = 0.5};
    optim::adamw<double> opt(store, o);
    opt.step(store);
    for (int i = 0; i < 4; ++i) {
        const double expected = w0[i] * (1 - o.lr * o.weight_decay) - o.lr * g0[i] / (std::abs(g0[i]) + o.eps);
        CHECK(store.value(p)[i] == Approx(expected).epsilon(1e-12));
    }
}

TEST_CASE("adamw resumed from its step count and moment buffers continues exactly", "[optim][adamw]") {
    parameter_store<float> a = large_store<float>(10);
    parameter_store<float> b = a;
    optim::adamw<float> whole(a, {.lr = 3e-3});
    for (int s = 0; s < 5; ++s) whole.step(a);

    optim::adamw<float> first(b, {.lr = 3e-3});
    for (int s = 0; s < 3; ++s) first.step(b);
    // What a checkpoint keeps: the weights (b), the step count and the two moment buffers.
    optim::adamw<float> resumed(b, {.lr = 3e-3});
    resumed.set_step_count(first.step_count());
    std::copy(first.exp_avg(), first.exp_avg() + first.size(), resumed.exp_avg());
    std::copy(first.exp_avg_sq(), first.exp_avg_sq() + first.size(), resumed.exp_avg_sq());
    for (int s = 0; s < 2; ++s) resumed.step(b);

    CHECK(resumed.step_count() == 5);
    CHECK(bitwise_equal(a.values(), b.values(), a.size()));
    CHECK(bitwise_equal(whole.exp_avg_sq(), resumed.exp_avg_sq(), a.size()));

    resumed.reset();
    CHECK(resumed.step_count() == 0);
    CHECK(resumed.exp_avg()[5] == 0.0f);
}

TEST_CASE("adamw minimises a quadratic loss", "[optim][adamw]") {
    // f(w) = ½ Σ a_i (w_i − c_i)², ∇f = a ⊙ (w − c); minimum 0 at w = c.
    parameter_store<double> store;
    const parameter w = store.add("w", shape{5, 3});
    const parameter b = store.add("b", shape{5});
    const tensor<double> target = random_tensor<double>(shape{store.size()}, 5);
    std::vector<double> curvature(static_cast<std::size_t>(store.size()));
    for (std::size_t i = 0; i < curvature.size(); ++i) curvature[i] = 0.5 + static_cast<double>(i % 7);
    auto loss_and_grad = [&] {
        double loss = 0;
        for (const parameter p : {w, b}) {
            const auto& e = store.at(p);
            for (std::int64_t i = e.offset; i < e.offset + e.dims.numel(); ++i) {
                const double d = store.values()[i] - target[i];
                loss += 0.5 * curvature[static_cast<std::size_t>(i)] * d * d;
                store.grads()[i] = curvature[static_cast<std::size_t>(i)] * d;
            }
        }
        return loss;
    };
    optim::adamw<double> opt(store, {.lr = 0.05, .weight_decay = 0.0});
    const double initial = loss_and_grad();
    double loss = initial;
    for (int s = 0; s < 400; ++s) {
        opt.step(store);
        loss = loss_and_grad();
    }
    INFO("initial loss " << initial << ", final " << loss);
    CHECK(initial > 1.0);
    CHECK(loss < 1e-6 * initial);
}

TEST_CASE("adamw is bitwise identical at 1 and 2 threads", "[optim][adamw][threads]") {
    auto run = [](int threads) {
        set_threads(threads);
        parameter_store<float> store = large_store<float>(30);
        optim::adamw<float> opt(store, {.lr = 1e-2});
        for (int s = 0; s < 3; ++s) opt.step(store);
        return std::vector<float>(store.values(), store.values() + store.size());
    };
    const int saved = max_threads();
    const std::vector<float> one = run(1), two = run(2);
    set_threads(saved);
    REQUIRE(one.size() == two.size());
    CHECK(bitwise_equal(one.data(), two.data(), static_cast<std::int64_t>(one.size())));
}

TEST_CASE("adamw refuses NaN and Inf gradients, names the parameter and changes nothing", "[optim][adamw][errors]") {
    parameter_store<float> store = large_store<float>(40);
    optim::adamw<float> opt(store);
    opt.step(store);
    const std::vector<float> values(store.values(), store.values() + store.size());
    const std::vector<float> m(opt.exp_avg(), opt.exp_avg() + opt.size());

    const parameter w2 = store.find("w2");
    store.grad(w2)[4321] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(opt.step(store), Catch::Contains("'w2' (3, 5001) is not finite") &&
                                           Catch::Contains("nan at element 4321") && Catch::Contains("no step taken"));
    store.grad(w2)[4321] = 0.0f;
    store.grad(store.find("w1"))[6] = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(opt.step(store), Catch::Contains("'w1' (7) is not finite (-inf at element 6)"));

    CHECK(opt.step_count() == 1);
    CHECK(bitwise_equal(values.data(), store.values(), store.size()));
    CHECK(bitwise_equal(m.data(), opt.exp_avg(), opt.size()));

    // Without the check the NaN goes through, as in torch: the option is what stops it.
    optim::adamw<float> unchecked(store, {.check_finite = false});
    store.grad(store.find("w1"))[6] = std::numeric_limits<float>::quiet_NaN();
    unchecked.step(store);
    CHECK(std::isnan(store.value(store.find("w1"))[6]));
}

TEST_CASE("adamw rejects a store of another size and invalid hyper-parameters", "[optim][adamw][errors]") {
    parameter_store<double> small, big;
    small.add("w", shape{3, 4});
    big.add("w", shape{3, 4});
    big.add("b", shape{100});
    optim::adamw<double> opt(small);
    CHECK(opt.size() == small.size());
    CHECK_THROWS_WITH(opt.step(big), Catch::Contains("the store has " + std::to_string(big.size()) +
                                                     " elements, expected " + std::to_string(small.size())));
    CHECK(opt.step_count() == 0);

    CHECK_THROWS_WITH(optim::adamw<double>(small, {.lr = -1e-3}), Catch::Contains("lr must be >= 0, found -0.001"));
    CHECK_THROWS_WITH(optim::adamw<double>(small, {.beta1 = 1.0}), Catch::Contains("beta1 must be in [0, 1), found 1"));
    CHECK_THROWS_WITH(optim::adamw<double>(small, {.beta2 = -0.5}),
                      Catch::Contains("beta2 must be in [0, 1), found -0.5"));
    CHECK_THROWS_WITH(optim::adamw<double>(small, {.eps = -1.0}), Catch::Contains("eps must be >= 0, found -1"));
    CHECK_THROWS_WITH(optim::adamw<double>(small, {.weight_decay = -0.1}),
                      Catch::Contains("weight_decay must be >= 0, found -0.1"));
    CHECK_THROWS_WITH(opt.set_lr(std::nan("")), Catch::Contains("lr must be >= 0, found nan"));
    CHECK_THROWS_WITH(opt.set_step_count(-2), Catch::Contains("step count must be >= 0, found -2"));
}

// ------------------------------------------------------------------------------------- clipping

static_assert(optim::optimizer<optim::adamw<float>>);
static_assert(optim::optimizer<optim::adamw<double>, double>);
static_assert(optim::optimizer<optim::sgd<float>>);

TEST_CASE("sgd follows torch.optim.SGD: g + wd p into the momentum buffer, p -= lr b, the lr set per step",
          "[optim][sgd]") {
    parameter_store<double> store;
    const parameter a = store.add("a", shape{5});
    const parameter b = store.add("b", shape{2, 3});
    const tensor<double> init = random_tensor<double>(shape{11}, 3);
    for (std::int64_t i = 0; i < 11; ++i) store.values()[i] = init[i];
    (void)a;
    (void)b;
    const double mu = 0.8, wd = 0.1;
    optim::sgd<double> opt(store, {.lr = 0.1, .momentum = mu, .weight_decay = wd});
    std::vector<double> p(init.begin(), init.end()), buf(11, 0.0);
    for (int step = 0; step < 3; ++step) {
        const double lr = 0.1 / (step + 1);
        const tensor<double> g = random_tensor<double>(shape{11}, 10 + static_cast<std::uint64_t>(step));
        for (std::int64_t i = 0; i < 11; ++i) store.grads()[i] = g[i];
        opt.set_lr(lr);
        opt.step(store);
        for (std::size_t i = 0; i < 11; ++i) {
            const double d = g[static_cast<std::int64_t>(i)] + wd * p[i];
            buf[i] = step == 0 ? d : mu * buf[i] + d;  // torch: the first buffer is a clone of d
            p[i] -= lr * buf[i];
        }
    }
    CHECK(opt.step_count() == 3);
    for (std::size_t i = 0; i < 11; ++i) {
        CHECK(store.values()[i] == Approx(p[i]).epsilon(1e-14));
        CHECK(opt.state(0)[i] == Approx(buf[i]).epsilon(1e-14));
    }
}

TEST_CASE("optimisers are built from the trainer's settings; sgd refuses bad settings and NaN gradients",
          "[optim][sgd][errors]") {
    parameter_store<float> store;
    store.add("w", shape{4});
    const optim::optimizer_settings s{.lr = 0.2, .beta1 = 0.5, .beta2 = 0.9, .eps = 1e-6, .weight_decay = 0.03};
    const auto adam = optim::adamw<float>::from_settings(store, s);
    CHECK(adam.options().lr == 0.2);
    CHECK(adam.options().beta1 == 0.5);
    CHECK(adam.options().beta2 == 0.9);
    CHECK(adam.options().eps == 1e-6);
    CHECK(adam.options().weight_decay == 0.03);
    const auto sgd = optim::sgd<float>::from_settings(store, s);
    CHECK(sgd.options().lr == 0.2);
    CHECK(sgd.options().momentum == 0.5);
    CHECK(sgd.options().weight_decay == 0.03);
    // The trajectory text changes with each setting that changes the trajectory, and only then.
    CHECK(optim::sgd<float>::from_settings(store, s).trajectory() == sgd.trajectory());
    optim::optimizer_settings other = s;
    other.beta1 = 0.6;
    CHECK(optim::sgd<float>::from_settings(store, other).trajectory() != sgd.trajectory());
    CHECK(optim::adamw<float>::from_settings(store, other).trajectory() != adam.trajectory());

    CHECK_THROWS_WITH(optim::sgd<float>(store, {.momentum = 1.0}),
                      Catch::Contains("momentum must be in [0, 1), found 1"));
    CHECK_THROWS_WITH(optim::sgd<float>(store, {.lr = -1.0}), Catch::Contains("lr must be >= 0, found -1"));
    CHECK_THROWS_WITH(optim::sgd<float>(store, {.weight_decay = -0.5}), Catch::Contains("weight_decay must be >= 0"));
    optim::sgd<float> opt(store, {.lr = 0.1});
    store.grads()[2] = std::numeric_limits<float>::quiet_NaN();
    const float before = store.values()[0];
    CHECK_THROWS_WITH(opt.step(store), Catch::Contains("not finite at element 2; no step taken"));
    CHECK(store.values()[0] == before);
    CHECK(opt.step_count() == 0);
    parameter_store<float> bigger;
    bigger.add("w", shape{5});
    CHECK_THROWS_WITH(opt.step(bigger), Catch::Contains("the store has 5 elements, expected 4"));
}

TEST_CASE("clip_grad_norm matches torch.nn.utils.clip_grad_norm_", "[optim][clip]") {
    for (const std::string c : {"clip_scaled", "clip_unchanged"}) {
        INFO(c);
        parameter_store<double> store;
        std::array<parameter, golden_params> p;
        for (int k = 0; k < golden_params; ++k) {
            const tensor<double> g = load_golden("optim/" + c + "/p" + std::to_string(k) + "_grad.npy");
            p[k] = store.add(indexed_name("p", k), g.dims());
            copy_into(store.grad(p[k]), g.view());
        }
        const double max_norm = load_golden("optim/" + c + "/max_norm.npy")[0];
        const double expected_norm = load_golden("optim/" + c + "/total_norm.npy")[0];
        CHECK(optim::grad_norm(store) == Approx(expected_norm).epsilon(1e-14));
        const std::vector<double> before(store.grads(), store.grads() + store.size());
        CHECK(optim::clip_grad_norm(store, max_norm) == Approx(expected_norm).epsilon(1e-14));
        for (int k = 0; k < golden_params; ++k)
            require_close(c + " p" + std::to_string(k), store.grad(p[k]),
                          load_golden("optim/" + c + "/p" + std::to_string(k) + "_clipped.npy"), 1e-14, 1e-16);
        if (expected_norm < max_norm) {
            CHECK(bitwise_equal(before.data(), store.grads(), store.size()));
        } else {
            CHECK(optim::grad_norm(store) == Approx(max_norm).epsilon(1e-6));
        }
    }
}

TEST_CASE("grad_norm sums in double in a fixed order, the same at 1 and 2 threads", "[optim][clip][threads]") {
    const parameter_store<float> store = large_store<float>(50);
    const int saved = max_threads();
    set_threads(1);
    const double one = optim::grad_norm(store);
    set_threads(2);
    const double two = optim::grad_norm(store);
    parameter_store<float> clipped1 = store, clipped2 = store;
    optim::clip_grad_norm(clipped2, 1.0);
    set_threads(1);
    optim::clip_grad_norm(clipped1, 1.0);
    set_threads(saved);
    CHECK(std::memcmp(&one, &two, sizeof(double)) == 0);
    CHECK(one == Approx(std::sqrt(serial_sum_of_squares(store))).epsilon(1e-13));
    CHECK(one > 1.0);  // so clipping to 1 scaled
    CHECK(bitwise_equal(clipped1.grads(), clipped2.grads(), store.size()));
    CHECK(optim::grad_norm(clipped1) == Approx(1.0).epsilon(1e-5));
}

TEST_CASE("clip_grad_norm reports a NaN or Inf norm and leaves the gradients alone", "[optim][clip][errors]") {
    parameter_store<float> store = large_store<float>(60);
    const parameter w0 = store.find("w0");
    store.grad(w0)[17] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> before(store.grads(), store.grads() + store.size());
    CHECK(std::isnan(optim::clip_grad_norm(store, 1.0)));
    CHECK(bitwise_equal(before.data(), store.grads(), store.size()));

    store.grad(w0)[17] = std::numeric_limits<float>::infinity();
    before.assign(store.grads(), store.grads() + store.size());
    CHECK(optim::clip_grad_norm(store, 1.0) == std::numeric_limits<double>::infinity());
    CHECK(bitwise_equal(before.data(), store.grads(), store.size()));

    CHECK_THROWS_WITH(optim::clip_grad_norm(store, 0.0), Catch::Contains("max_norm must be positive, found 0"));
    CHECK_THROWS_WITH(optim::clip_grad_norm(store, std::nan("")),
                      Catch::Contains("max_norm must be positive, found nan"));
}

// ------------------------------------------------------------------------------------ schedules

TEST_CASE("linear warm-up ramps as lr * min(1, (step + 1) / warmup) into a constant rate", "[optim][schedule]") {
    const optim::linear_warmup<optim::constant_lr> s{.steps = 4, .base = {2.0}};
    const double expected[] = {0.5, 1.0, 1.5, 2.0, 2.0, 2.0};
    for (int step = 0; step < 6; ++step) CHECK(s(step) == expected[step]);
    CHECK(s(1000000) == 2.0);

    const optim::linear_warmup<optim::constant_lr> none{.steps = 0, .base = {3e-4}};
    CHECK(none(0) == 3e-4);
    const optim::linear_warmup<optim::constant_lr> three{.steps = 3, .base = {1.0}};
    CHECK(three(0) == Approx(1.0 / 3.0).epsilon(1e-15));
    CHECK(three(1) == Approx(2.0 / 3.0).epsilon(1e-15));
    CHECK(three(2) == 1.0);
}

TEST_CASE("cosine decay follows SGDR's half cosine from lr to min_lr", "[optim][schedule]") {
    const optim::cosine_decay c{.lr = 1.0, .min_lr = 0.0, .begin = 0, .end = 4};
    // 0.5 (1 + cos(π k / 4)) for k = 0..4, then min_lr.
    CHECK(c(0) == 1.0);
    CHECK(c(1) == Approx(0.8535533905932737).epsilon(1e-15));
    CHECK(c(2) == Approx(0.5).epsilon(1e-15));
    CHECK(c(3) == Approx(0.1464466094067262).epsilon(1e-14));
    CHECK(c(4) == 0.0);
    CHECK(c(9) == 0.0);

    const optim::cosine_decay shifted{.lr = 3.0, .min_lr = 1.0, .begin = 10, .end = 20};
    CHECK(shifted(5) == 3.0);
    CHECK(shifted(15) == Approx(2.0).epsilon(1e-15));
    CHECK(shifted(25) == 1.0);
}

TEST_CASE("warmup_cosine warms up, then decays from lr at the end of warm-up to min_lr at the last step",
          "[optim][schedule]") {
    const auto s = optim::warmup_cosine(1e-3, 10, 110, 1e-5);
    static_assert(optim::lr_schedule<decltype(s)>);
    CHECK(s(0) == Approx(1e-4).epsilon(1e-14));
    CHECK(s(4) == Approx(5e-4).epsilon(1e-14));
    CHECK(s(9) == Approx(1e-3).epsilon(1e-14));
    CHECK(s(10) == 1e-3);
    CHECK(s(60) == Approx(1e-5 + (1e-3 - 1e-5) * 0.5).epsilon(1e-14));
    CHECK(s(110) == 1e-5);
    CHECK(s(500) == 1e-5);
    for (std::int64_t step = 11; step <= 110; ++step) CHECK(s(step) < s(step - 1));
}

namespace {
struct halving_every_ten {
    double operator()(std::int64_t step) const { return std::ldexp(1.0, -static_cast<int>(step / 10)); }
};
}  // namespace

TEST_CASE("lr_schedule accepts any step-to-rate function object and warm-up composes with it", "[optim][schedule]") {
    static_assert(optim::lr_schedule<halving_every_ten>);
    static_assert(!optim::lr_schedule<double>);
    static_assert(!optim::lr_schedule<optim::adamw_options>);
    const optim::linear_warmup<halving_every_ten> s{.steps = 2};
    CHECK(s(0) == 0.5);
    CHECK(s(1) == 1.0);
    CHECK(s(25) == 0.25);
}

TEST_CASE("schedules reject negative steps and empty decay ranges", "[optim][schedule][errors]") {
    CHECK_THROWS_WITH(optim::constant_lr{}(-1), Catch::Contains("step must be >= 0, found -1"));
    CHECK_THROWS_WITH((optim::linear_warmup<>{.steps = -3}(0)), Catch::Contains("steps must be >= 0, found -3"));
    CHECK_THROWS_WITH((optim::cosine_decay{.begin = 5, .end = 5}(0)),
                      Catch::Contains("end must be after begin, found begin 5, end 5"));
}

// ------------------------------------------------------------------------------------------ EMA

TEST_CASE("ema decay warms up as diffusers' EMAModel: 0, then (1 + t) / (10 + t) up to max_decay", "[optim][ema]") {
    parameter_store<double> store;
    store.add("w", shape{2});
    const optim::ema<double> e(store, {.max_decay = 0.5});
    CHECK(e.decay(1) == 0.0);
    CHECK(e.decay(2) == 2.0 / 11.0);
    CHECK(e.decay(3) == 3.0 / 12.0);
    CHECK(e.decay(8) == 8.0 / 17.0);
    CHECK(e.decay(9) == 0.5);  // 9 / 18 reaches max_decay
    CHECK(e.decay(1000) == 0.5);

    const optim::ema<double> late(store, {.max_decay = 0.9999, .min_decay = 0.2, .update_after_step = 3});
    for (int u = 1; u <= 4; ++u) CHECK(late.decay(u) == 0.0);
    CHECK(late.decay(5) == 0.2);  // 2 / 11 raised to min_decay
    CHECK(late.decay(6) == 3.0 / 12.0);

    const optim::ema<double> fixed(store, {.max_decay = 0.999, .warmup = false});
    CHECK(fixed.decay(1) == 0.999);
    CHECK(fixed.decay(77) == 0.999);
}

TEST_CASE("ema averages the weights as e = d e + (1 - d) p with the warmed-up decay", "[optim][ema]") {
    parameter_store<double> store;
    const parameter w = store.add("w", shape{3, 7});
    const parameter b = store.add("b", shape{5});
    auto set_weights = [&](std::uint64_t seed) {
        for (const parameter p : {w, b}) {
            const tensor<double> v =
                random_tensor<double>(store.at(p).dims, seed + static_cast<std::uint64_t>(p.index));
            std::copy(v.begin(), v.end(), store.value(p).begin());
        }
    };
    set_weights(100);
    optim::ema<double> e(store, {.max_decay = 0.9});
    std::vector<double> reference(store.values(), store.values() + store.size());
    for (int u = 1; u <= 30; ++u) {
        set_weights(100 + 10 * static_cast<std::uint64_t>(u));
        const double t = u - 1;
        const double d = u == 1 ? 0.0 : std::min(0.9, (1 + t) / (10 + t));
        for (std::size_t i = 0; i < reference.size(); ++i)
            reference[i] = d * reference[i] + (1 - d) * store.values()[i];
        CHECK(e.update(store) == d);
        if (u == 1) CHECK(bitwise_equal(e.values(), store.values(), store.size()));  // decay 0 copies
    }
    CHECK(e.update_count() == 30);
    for (std::size_t i = 0; i < reference.size(); ++i)
        REQUIRE(e.values()[i] == Approx(reference[i]).epsilon(1e-13).margin(1e-15));
}

TEST_CASE("ema swap and copy_to put the average into the store for evaluation", "[optim][ema]") {
    parameter_store<float> store = large_store<float>(70);
    optim::ema<float> e(store);
    const std::vector<float> start(store.values(), store.values() + store.size());
    for (std::int64_t i = 0; i < store.size(); ++i) store.values()[i] += 1.0f;
    e.update(store);  // first update copies
    e.update(store);  // d = 2/11
    const std::vector<float> trained(store.values(), store.values() + store.size());
    const std::vector<float> average(e.values(), e.values() + e.size());
    CHECK(average[100] == Approx(trained[100]).epsilon(1e-6));

    // Weights change after the update so that average and weights differ.
    for (std::int64_t i = 0; i < store.size(); ++i) store.values()[i] = start[static_cast<std::size_t>(i)];
    const std::vector<float> now(store.values(), store.values() + store.size());
    e.swap(store);
    CHECK(bitwise_equal(store.values(), average.data(), store.size()));
    CHECK(bitwise_equal(e.values(), now.data(), store.size()));
    e.swap(store);
    CHECK(bitwise_equal(store.values(), now.data(), store.size()));
    CHECK(bitwise_equal(e.values(), average.data(), store.size()));

    e.copy_to(store);
    CHECK(bitwise_equal(store.values(), average.data(), store.size()));

    e.reset(store);
    CHECK(e.update_count() == 0);
}

TEST_CASE("ema is bitwise identical at 1 and 2 threads", "[optim][ema][threads]") {
    auto run = [](int threads) {
        set_threads(threads);
        parameter_store<float> store = large_store<float>(80);
        optim::ema<float> e(store, {.max_decay = 0.99});
        for (int u = 0; u < 4; ++u) {
            for (std::int64_t i = 0; i < store.size(); ++i) store.values()[i] += 0.01f * static_cast<float>(u + i % 13);
            e.update(store);
        }
        return std::vector<float>(e.values(), e.values() + e.size());
    };
    const int saved = max_threads();
    const std::vector<float> one = run(1), two = run(2);
    set_threads(saved);
    REQUIRE(one.size() == two.size());
    CHECK(bitwise_equal(one.data(), two.data(), static_cast<std::int64_t>(one.size())));
}

TEST_CASE("ema rejects a store of another size and invalid settings", "[optim][ema][errors]") {
    parameter_store<float> small, big;
    small.add("w", shape{4});
    big.add("w", shape{4});
    big.add("b", shape{40});
    optim::ema<float> e(small);
    const std::string sizes =
        "the store has " + std::to_string(big.size()) + " elements, expected " + std::to_string(small.size());
    CHECK_THROWS_WITH(e.update(big), Catch::Contains("ema update: " + sizes));
    CHECK_THROWS_WITH(e.copy_to(big), Catch::Contains("ema copy_to: " + sizes));
    CHECK_THROWS_WITH(e.swap(big), Catch::Contains("ema swap: " + sizes));
    CHECK(e.update_count() == 0);

    CHECK_THROWS_WITH(optim::ema<float>(small, {.max_decay = 1.5}),
                      Catch::Contains("max_decay must be in [0, 1], found 1.5"));
    CHECK_THROWS_WITH(optim::ema<float>(small, {.max_decay = 0.9, .min_decay = 0.95}),
                      Catch::Contains("min_decay must be in [0, max_decay = 0.9], found 0.95"));
    CHECK_THROWS_WITH(optim::ema<float>(small, {.update_after_step = -1}),
                      Catch::Contains("update_after_step must be >= 0, found -1"));
    CHECK_THROWS_WITH(e.decay(0), Catch::Contains("updates are counted from 1, found 0"));
}
