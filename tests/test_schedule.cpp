// Noise schedules and their tables, the ε/x_0/v parameterizations, and the forward process q(x_t | x_0):
// against NumPy references (tests/golden/gen_schedule.py), published values, exact identities,
// determinism across batch splits and thread counts, and bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/diffusion/forward_process.hpp"
#include "ouro/diffusion/parameterization.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using namespace ouro::diffusion;
using ouro::testing::load_golden;
using ouro::testing::random_tensor;
using ouro::testing::require_close;

namespace {

// The table's fields in the order of gen_schedule.py.
std::vector<const std::vector<double>*> fields(const schedule_table& t) {
    return {&t.betas(),
            &t.alphas(),
            &t.alphas_cumprod(),
            &t.alphas_cumprod_prev(),
            &t.sqrt_alphas_cumprod(),
            &t.sqrt_one_minus_alphas_cumprod(),
            &t.posterior_variance(),
            &t.posterior_log_variance_clipped(),
            &t.posterior_mean_coef1(),
            &t.posterior_mean_coef2()};
}

const char* const field_names[] = {"betas",
                                   "alphas",
                                   "alphas_cumprod",
                                   "alphas_cumprod_prev",
                                   "sqrt_alphas_cumprod",
                                   "sqrt_one_minus_alphas_cumprod",
                                   "posterior_variance",
                                   "posterior_log_variance_clipped",
                                   "posterior_mean_coef1",
                                   "posterior_mean_coef2"};

// Compares the table at timesteps `index` with the golden (10, K) array.
void check_table(const std::string& what, const schedule_table& table, const tensor<double>& golden,
                 const std::vector<std::int64_t>& index) {
    REQUIRE(golden.dims() == shape{10, static_cast<std::int64_t>(index.size())});
    const auto f = fields(table);
    for (std::size_t field = 0; field < f.size(); ++field) {
        tensor<double> got(shape{static_cast<std::int64_t>(index.size())});
        tensor<double> want(got.dims());
        for (std::size_t k = 0; k < index.size(); ++k) {
            got[static_cast<std::int64_t>(k)] = (*f[field])[static_cast<std::size_t>(index[k])];
            want[static_cast<std::int64_t>(k)] = golden[static_cast<std::int64_t>(field * index.size() + k)];
        }
        require_close(what + " " + field_names[field], got, want, 1e-12, 1e-300);
    }
}

template <class S>
void check_schedule_goldens(const S& schedule) {
    const std::string name = S::name;
    std::vector<std::int64_t> all(20);
    for (int i = 0; i < 20; ++i) all[static_cast<std::size_t>(i)] = i;
    check_table(name + " T=20", schedule_table(schedule, 20), load_golden("diffusion/schedule_" + name + "_T20.npy"),
                all);

    const tensor<std::int64_t> idx = load_golden<std::int64_t>("diffusion/schedule_T1000_index.npy");
    const std::vector<std::int64_t> index(idx.begin(), idx.end());
    check_table(name + " T=1000", schedule_table(schedule, 1000),
                load_golden("diffusion/schedule_" + name + "_T1000.npy"), index);
}

struct no_name_schedule {
    std::vector<double> betas(std::int64_t timesteps) const {
        return std::vector<double>(static_cast<std::size_t>(timesteps), 0.1);
    }
};
struct float_betas_schedule {
    static constexpr const char* name = "float_betas";
    std::vector<float> betas(std::int64_t) const { return {}; }
};

}  // namespace

// ---- Schedules --------------------------------------------------------------------------------

static_assert(noise_schedule<linear_ho2020> && noise_schedule<scaled_linear> &&
              noise_schedule<cosine_nichol_dhariwal> && noise_schedule<sigmoid_geodiff> && noise_schedule<user_betas>);
static_assert(!noise_schedule<no_name_schedule> && !noise_schedule<float_betas_schedule> && !noise_schedule<int>);

TEST_CASE("schedule tables match the NumPy reference for every schedule at T = 20 and T = 1000",
          "[diffusion][schedule]") {
    check_schedule_goldens(linear_ho2020{});
    check_schedule_goldens(scaled_linear{});
    check_schedule_goldens(cosine_nichol_dhariwal{});
    check_schedule_goldens(sigmoid_geodiff{});
}

TEST_CASE("the linear schedule of Ho et al. has the published posterior variances", "[diffusion][schedule]") {
    const schedule_table table(linear_ho2020{}, 1000);
    CHECK(table.timesteps() == 1000);
    CHECK(table.betas()[0] == 1e-4);
    CHECK(table.betas()[999] == 0.02);
    CHECK(table.posterior_variance()[0] == 0.0);
    CHECK(table.posterior_variance()[487] == Approx(0.00979).margin(5e-6));
    CHECK(table.posterior_variance()[999] == Approx(0.02).margin(1e-6));
    CHECK(table.posterior_variance()[999] < table.betas()[999]);
    // ᾱ_T ≈ 4.04e-5: x_T is nearly pure noise (Ho et al. 2020, §4).
    CHECK(table.alphas_cumprod()[999] == Approx(4.036e-5).epsilon(1e-3));
    // β̃_0 = 0 has no log; the clipped log repeats entry 1.
    CHECK(table.posterior_log_variance_clipped()[0] == table.posterior_log_variance_clipped()[1]);
    CHECK(table.posterior_log_variance_clipped()[1] == std::log(table.posterior_variance()[1]));
    // At t = 0 the posterior mean is x_0 itself.
    CHECK(table.posterior_mean_coef1()[0] == Approx(1.0).epsilon(1e-12));
    CHECK(table.posterior_mean_coef2()[0] == 0.0);
    CHECK(table.alpha_bar(-1) == 1.0);
    CHECK(table.alpha_bar(999) == table.alphas_cumprod()[999]);
}

TEST_CASE("the cosine schedule clips its last betas at 0.999 and stays in (0, 1)", "[diffusion][schedule]") {
    const schedule_table table(cosine_nichol_dhariwal{}, 1000);
    CHECK(table.betas()[999] == 0.999);
    for (double b : table.betas()) REQUIRE((b > 0 && b <= 0.999));
    // Nichol & Dhariwal's ᾱ(t) = f(t)/f(0) at t = 500 (half way: cos² of ~π/4).
    const double f0 = std::pow(std::cos(0.008 / 1.008 * std::numbers::pi / 2), 2);
    const double f500 = std::pow(std::cos((0.5 + 0.008) / 1.008 * std::numbers::pi / 2), 2);
    CHECK(table.alphas_cumprod()[499] == Approx(f500 / f0).epsilon(1e-12));
}

TEST_CASE("user betas give the same table as the schedule they came from", "[diffusion][schedule]") {
    const schedule_table linear(linear_ho2020{}, 100);
    const schedule_table user(user_betas{linear.betas()}, 100);
    const schedule_table from = schedule_table::from_betas(linear.betas());
    const auto a = fields(linear), b = fields(user), c = fields(from);
    for (std::size_t f = 0; f < a.size(); ++f) {
        CHECK(*a[f] == *b[f]);
        CHECK(*a[f] == *c[f]);
    }
    // T = 1: the clipped log falls back to log β_0.
    const schedule_table one = schedule_table::from_betas({0.25});
    CHECK(one.posterior_variance()[0] == 0.0);
    CHECK(one.posterior_log_variance_clipped()[0] == std::log(0.25));
}

TEST_CASE("bad schedules raise errors naming what was expected and found", "[diffusion][schedule]") {
    CHECK_THROWS_WITH(schedule_table(linear_ho2020{}, 0), Catch::Contains("expected at least 1 timestep, found T = 0"));
    CHECK_THROWS_WITH(schedule_table(cosine_nichol_dhariwal{}, -3), Catch::Contains("found T = -3"));
    CHECK_THROWS_WITH(schedule_table::from_betas({}), Catch::Contains("expected at least 1 timestep, found T = 0"));
    CHECK_THROWS_WITH(schedule_table::from_betas({0.1, 1.0}),
                      Catch::Contains("expected every beta in (0, 1), found beta[1] = 1"));
    CHECK_THROWS_WITH(schedule_table::from_betas({0.0, 0.1}), Catch::Contains("found beta[0] = 0"));
    CHECK_THROWS_WITH(schedule_table::from_betas({0.1, -0.2}), Catch::Contains("found beta[1] = -0.2"));
    CHECK_THROWS_WITH(schedule_table::from_betas({0.1, std::nan("")}), Catch::Contains("found beta[1] = nan"));
    CHECK_THROWS_WITH(schedule_table(linear_ho2020{.beta_start = 0.0, .beta_end = 0.02}, 10),
                      Catch::Contains("linear_ho2020: expected every beta in (0, 1), found beta[0] = 0"));
    CHECK_THROWS_WITH(schedule_table(linear_ho2020{.beta_start = 1e-4, .beta_end = 1.5}, 10),
                      Catch::Contains("expected every beta in (0, 1), found beta[6] = 1.00003"));
    CHECK_THROWS_WITH(schedule_table(user_betas{{0.1, 0.2}}, 3),
                      Catch::Contains("user_betas: expected T = 2 (the number of betas given), found T = 3"));
    const schedule_table table(linear_ho2020{}, 10);
    CHECK_THROWS_WITH(table.alpha_bar(10), Catch::Contains("expected a timestep 0 <= t < T = 10, found t = 10"));
    CHECK_THROWS_WITH(table.alpha_bar(-2), Catch::Contains("found t = -2"));
}

// ---- Parameterizations ------------------------------------------------------------------------

TEST_CASE("v is a·ε − s·x0 and every parameterization round-trips to (x0, ε)", "[diffusion][parameterization]") {
    const schedule_table table(cosine_nichol_dhariwal{}, 1000);
    philox_stream rng(5, rng_purpose::user, 0);
    for (std::int64_t t : {0, 1, 250, 500, 900, 998}) {
        const double a = table.sqrt_alphas_cumprod()[static_cast<std::size_t>(t)];
        const double s = table.sqrt_one_minus_alphas_cumprod()[static_cast<std::size_t>(t)];
        for (int k = 0; k < 50; ++k) {
            const double x0 = rng.normal(), eps = rng.normal();
            const double x_t = a * x0 + s * eps;
            CHECK(v_prediction::target(x0, eps, a, s) == a * eps - s * x0);
            CHECK(epsilon_prediction::target(x0, eps, a, s) == eps);
            CHECK(x0_prediction::target(x0, eps, a, s) == x0);
            // Each conversion divides at most by a or s; allow for that amplification.
            const double tol = 1e-14 / std::min(a, s);
            auto round_trip = [&]<class P>(P) {
                INFO(P::name << " at t = " << t);
                const double out = P::target(x0, eps, a, s);
                CHECK(std::abs(P::to_x0(out, x_t, a, s) - x0) <= tol);
                CHECK(std::abs(P::to_eps(out, x_t, a, s) - eps) <= tol);
            };
            round_trip(epsilon_prediction{});
            round_trip(x0_prediction{});
            round_trip(v_prediction{});
        }
    }
}

TEST_CASE("batched targets and splits agree with the scalar maps, in double and float",
          "[diffusion][parameterization]") {
    const schedule_table table(linear_ho2020{}, 1000);
    const shape dims{3, 2, 5, 3};
    const tensor<double> x0 = random_tensor<double>(dims, 1), eps = random_tensor<double>(dims, 2);
    tensor<std::int64_t> t(shape{3});
    t[0] = 0, t[1] = 417, t[2] = 999;
    tensor<double> x_t(dims), target(dims), x0_back(dims), eps_back(dims);
    q_sample<double>(table, x0.view(), t.view(), eps.view(), x_t.view());
    training_target<v_prediction, double>(table, x0.view(), eps.view(), t.view(), target.view());
    split_prediction<v_prediction, double>(table, target.view(), x_t.view(), t.view(), x0_back.view(), eps_back.view());
    const std::int64_t per_item = dims.numel() / 3;
    for (std::int64_t i = 0; i < dims.numel(); ++i) {
        const auto k = static_cast<std::size_t>(t[i / per_item]);
        const double a = table.sqrt_alphas_cumprod()[k], s = table.sqrt_one_minus_alphas_cumprod()[k];
        REQUIRE(x_t[i] == a * x0[i] + s * eps[i]);
        REQUIRE(target[i] == a * eps[i] - s * x0[i]);
    }
    require_close("v round trip x0", x0_back, x0, 1e-12, 1e-12);
    require_close("v round trip eps", eps_back, eps, 1e-12, 1e-12);

    // Float: rounded once from the double computation.
    tensor<float> x0f(dims), epsf(dims), targetf(dims);
    for (std::int64_t i = 0; i < dims.numel(); ++i)
        x0f[i] = static_cast<float>(x0[i]), epsf[i] = static_cast<float>(eps[i]);
    training_target<epsilon_prediction, float>(table, x0f.view(), epsf.view(), t.view(), targetf.view());
    for (std::int64_t i = 0; i < dims.numel(); ++i) REQUIRE(targetf[i] == epsf[i]);
    training_target<x0_prediction, float>(table, x0f.view(), epsf.view(), t.view(), targetf.view());
    for (std::int64_t i = 0; i < dims.numel(); ++i) REQUIRE(targetf[i] == x0f[i]);
}

TEST_CASE("parameterization helpers refuse mismatched shapes and timesteps", "[diffusion][parameterization]") {
    const schedule_table table(linear_ho2020{}, 100);
    tensor<double> a(shape{2, 3}), b(shape{2, 3}), c(shape{2, 4}), out(shape{2, 3});
    tensor<std::int64_t> t(shape{2}, 5), t3(shape{3}, 5), bad(shape{2}, 100);
    CHECK_THROWS_WITH((training_target<epsilon_prediction, double>(table, a.view(), c.view(), t.view(), out.view())),
                      Catch::Contains("training_target eps: expected shape (2, 3), found (2, 4)"));
    CHECK_THROWS_WITH((training_target<epsilon_prediction, double>(table, a.view(), b.view(), t3.view(), out.view())),
                      Catch::Contains("expected timesteps of shape (2) (one per item), found (3)"));
    CHECK_THROWS_WITH(
        (split_prediction<v_prediction, double>(table, a.view(), b.view(), bad.view(), out.view(), c.view())),
        Catch::Contains("split_prediction eps: expected shape (2, 3), found (2, 4)"));
    tensor<double> eps_out(shape{2, 3});
    CHECK_THROWS_WITH(
        (split_prediction<v_prediction, double>(table, a.view(), b.view(), bad.view(), out.view(), eps_out.view())),
        Catch::Contains("expected a timestep 0 <= t < T = 100, found t = 100"));
}

// ---- Forward process --------------------------------------------------------------------------

TEST_CASE("q_sample draws each item's noise from its own Philox stream", "[diffusion][forward]") {
    const schedule_table table(linear_ho2020{}, 1000);
    const shape dims{4, 3, 5, 7};
    const tensor<float> x0 = random_tensor<float>(dims, 11);
    tensor<std::int64_t> t(shape{4});
    t[0] = 0, t[1] = 10, t[2] = 500, t[3] = 999;
    tensor<float> eps(dims), x_t(dims);
    q_sample<float>(table, x0.view(), t.view(), 77, 1000, eps.view(), x_t.view());
    const std::int64_t per_item = 3 * 5 * 7;
    for (std::int64_t b = 0; b < 4; ++b) {
        philox_stream rng(77, rng_purpose::diffusion_noise, 1000 + static_cast<std::uint64_t>(b));
        const auto k = static_cast<std::size_t>(t[b]);
        for (std::int64_t i = b * per_item; i < (b + 1) * per_item; ++i) {
            REQUIRE(eps[i] == rng.normal());
            const double want =
                table.sqrt_alphas_cumprod()[k] * x0[i] + table.sqrt_one_minus_alphas_cumprod()[k] * eps[i];
            REQUIRE(x_t[i] == static_cast<float>(want));
        }
    }

    // Two batches of two with first_index offsets give the same items, bit for bit.
    for (std::int64_t half = 0; half < 2; ++half) {
        const shape hd{2, 3, 5, 7};
        tensor<float> x0h(hd), epsh(hd), x_th(hd);
        tensor<std::int64_t> th(shape{2});
        std::copy(x0.begin() + half * 2 * per_item, x0.begin() + (half + 1) * 2 * per_item, x0h.begin());
        th[0] = t[2 * half], th[1] = t[2 * half + 1];
        q_sample<float>(table, x0h.view(), th.view(), 77, 1000 + 2 * static_cast<std::uint64_t>(half), epsh.view(),
                        x_th.view());
        for (std::int64_t i = 0; i < 2 * per_item; ++i) {
            REQUIRE(epsh[i] == eps[half * 2 * per_item + i]);
            REQUIRE(x_th[i] == x_t[half * 2 * per_item + i]);
        }
    }
}

TEST_CASE("q_sample is bitwise identical at 1 and 2 threads and has the marginal of DDPM eq. (4)",
          "[diffusion][forward]") {
    const schedule_table table(cosine_nichol_dhariwal{}, 1000);
    const shape dims{16, 3, 32, 32};
    tensor<float> x0(dims, 0.5f);
    tensor<std::int64_t> t(shape{16}, 600);
    tensor<float> eps1(dims), x1(dims), eps2(dims), x2(dims);
    const int saved = max_threads();
    set_threads(1);
    q_sample<float>(table, x0.view(), t.view(), 3, 0, eps1.view(), x1.view());
    set_threads(2);
    q_sample<float>(table, x0.view(), t.view(), 3, 0, eps2.view(), x2.view());
    set_threads(saved);
    REQUIRE(std::equal(x1.begin(), x1.end(), x2.begin()));
    REQUIRE(std::equal(eps1.begin(), eps1.end(), eps2.begin()));

    double sum = 0, sum2 = 0;
    for (float v : x1) sum += v, sum2 += double(v) * v;
    const double n = static_cast<double>(x1.numel());
    const double mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
    const double a = table.sqrt_alphas_cumprod()[600], s = table.sqrt_one_minus_alphas_cumprod()[600];
    CHECK(std::abs(mean - 0.5 * a) < 4 * s / std::sqrt(n));
    CHECK(std::abs(sd - s) < 4 * s / std::sqrt(2 * n));
}

TEST_CASE("training timesteps are uniform, reproducible and keyed by item index", "[diffusion][forward]") {
    tensor<std::int64_t> t(shape{20000});
    draw_timesteps(t.view(), 1000, 9, 0);
    double sum = 0;
    for (std::int64_t v : t) {
        REQUIRE((v >= 0 && v < 1000));
        sum += static_cast<double>(v);
    }
    const double mean = sum / 20000.0, se = std::sqrt((1000.0 * 1000.0 - 1) / 12.0 / 20000.0);
    CHECK(std::abs(mean - 499.5) < 4 * se);
    tensor<std::int64_t> tail(shape{5});
    draw_timesteps(tail.view(), 1000, 9, 19995);
    for (int i = 0; i < 5; ++i) CHECK(tail[i] == t[19995 + i]);
    CHECK_THROWS_WITH(draw_timesteps(t.view(), 0, 1, 0), Catch::Contains("expected 1 <= T < 2^32, found T = 0"));
}

TEST_CASE("q_sample refuses mismatched shapes and out-of-range timesteps", "[diffusion][forward]") {
    const schedule_table table(linear_ho2020{}, 1000);
    tensor<float> x0(shape{2, 4}), eps(shape{2, 4}), x_t(shape{2, 5}), ok(shape{2, 4}), empty(shape{0, 4});
    tensor<std::int64_t> t(shape{2}, 3), t_bad(shape{2}, 1000), t1(shape{1}, 0), t0(shape{0});
    CHECK_THROWS_WITH(q_sample<float>(table, x0.view(), t.view(), eps.view(), x_t.view()),
                      Catch::Contains("q_sample x_t: expected shape (2, 4), found (2, 5)"));
    CHECK_THROWS_WITH(q_sample<float>(table, x0.view(), t_bad.view(), eps.view(), ok.view()),
                      Catch::Contains("q_sample: expected a timestep 0 <= t < T = 1000, found t = 1000"));
    CHECK_THROWS_WITH(q_sample<float>(table, x0.view(), t1.view(), 1, 0, eps.view(), ok.view()),
                      Catch::Contains("expected timesteps of shape (2) (one per item), found (1)"));
    CHECK_THROWS_WITH(q_sample<float>(table, empty.view(), t0.view(), empty.view(), empty.view()),
                      Catch::Contains("expected a non-empty batch (B, ...), found shape (0, 4)"));
}
