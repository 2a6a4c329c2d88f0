// DDPM and DDIM samplers: timestep spacings and single steps against NumPy references written from
// diffusers' schedulers (tests/golden/gen_schedule.py), the DDIM(η = 1) = DDPM identity, x_0
// clipping and dynamic thresholding, classifier-free guidance, independence from batch size and
// thread count, and the distribution of samples drawn with the exact denoiser of Gaussian data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ouro/core/parallel.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "support/cpu_strict.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using namespace ouro::diffusion;
using ouro::testing::load_golden;
using ouro::testing::random_tensor;
using ouro::testing::require_close;

namespace {

// The exact ε (or x_0, or v) of data x_0 ~ N(μ, σ²) per pixel: with x_t = a x_0 + s ε,
// E[ε | x_t] = (x_t − a μ)·s/(a²σ² + s²), E[x_0 | x_t] = (x_t − s E[ε | x_t])/a.
template <class P = epsilon_prediction>
struct gaussian_denoiser {
    const schedule_table* table;
    double mu, sigma;
    tensor<float> out;

    tensor_view<const float> predict(tensor_view<const float> x, tensor_view<const std::int64_t> t,
                                     tensor_view<const std::int64_t> /*y*/) {
        out.resize(x.dims());
        const std::int64_t per_item = x.numel() / x.dim(0);
        for (std::int64_t b = 0; b < x.dim(0); ++b) {
            const double ab = table->alphas_cumprod()[static_cast<std::size_t>(t[b])];
            const double a = std::sqrt(ab), s = std::sqrt(1.0 - ab);
            for (std::int64_t i = b * per_item; i < (b + 1) * per_item; ++i) {
                const double eps = (x[i] - a * mu) * s / (ab * sigma * sigma + 1.0 - ab);
                const double x0 = (x[i] - s * eps) / a;
                out[i] = static_cast<float>(P::target(x0, eps, a, s));
            }
        }
        return out.view();
    }
};
static_assert(denoiser<gaussian_denoiser<>>);
static_assert(!denoiser<int>);

// A label-dependent toy model, deterministic per item; out = base(x, t) + w_y·shift(y) with the null
// class shifting by 0, so classifier-free guidance has a closed form. Records the last call.
struct labelled_denoiser {
    std::int64_t null_class = 3;
    double scale = 1.0;  // multiplies the label shift (a "pre-guided" model uses the guidance scale)
    tensor<float> out;
    std::vector<std::int64_t> last_labels;
    std::int64_t last_batch = 0;

    static double shift(std::int64_t y, std::int64_t null_class) { return y == null_class ? 0.0 : 0.2 * double(y + 1); }

    tensor_view<const float> predict(tensor_view<const float> x, tensor_view<const std::int64_t> t,
                                     tensor_view<const std::int64_t> y) {
        out.resize(x.dims());
        last_batch = x.dim(0);
        last_labels.assign(y.begin(), y.end());
        const std::int64_t per_item = x.numel() / x.dim(0);
        for (std::int64_t b = 0; b < x.dim(0); ++b) {
            const double lab = y.numel() > 0 ? scale * shift(y[b], null_class) : 0.0;
            for (std::int64_t i = b * per_item; i < (b + 1) * per_item; ++i)
                out[i] = static_cast<float>(0.8 * std::tanh(x[i]) + 1e-4 * double(t[b]) * 0.01 + lab);
        }
        return out.view();
    }
};

// Returns an output of the wrong shape.
struct truncating_denoiser {
    tensor<float> out;
    tensor_view<const float> predict(tensor_view<const float> x, tensor_view<const std::int64_t>,
                                     tensor_view<const std::int64_t>) {
        out.resize(shape{x.dim(0), x.dim(1), x.dim(2), x.dim(3) - 1});
        out.zero();
        return out.view();
    }
};

// A host denoiser run as a model on backend B would be: its input arrives in B's memory and its
// output must be left there (for cpu_strict, memory the host may not read; issue #14's seam).
template <backend B, class Inner>
struct on_backend_denoiser {
    using backend_type = B;
    Inner inner;
    tensor<float, B> out;

    tensor_view<const float, B> predict(tensor_view<const float, B> x, tensor_view<const std::int64_t> t,
                                        tensor_view<const std::int64_t> y) {
        const tensor<float> host_x = to_host(x);
        const tensor<float> host_out = to_host(inner.predict(host_x.view(), t, y));
        out.resize(host_out.dims());
        copy_from_host(host_out.view(), out.view());
        return out.view();
    }
};

tensor<std::int64_t> labels_of(std::initializer_list<std::int64_t> v) {
    tensor<std::int64_t> t(shape{static_cast<std::int64_t>(v.size())});
    std::copy(v.begin(), v.end(), t.begin());
    return t;
}

const tensor_view<const std::int64_t> no_labels{};

// The exact law N(mean, sd²) of one pixel after the discrete chain `ts`, started from N(0, 1), with
// the Gaussian denoiser: every step is affine in x_t plus independent noise, so the mean and the
// variance propagate in closed form (written here apart from the sampler's code).
struct law {
    double mean, sd;
};
law chain_law(const schedule_table& table, const std::vector<std::int64_t>& ts, double mu, double sigma, bool ddim,
              double eta, variance var) {
    double m = 0.0, v = 1.0;
    for (std::size_t i = 0; i < ts.size(); ++i) {
        const double A = table.alphas_cumprod()[static_cast<std::size_t>(ts[i])];
        const double Ap = i + 1 < ts.size() ? table.alphas_cumprod()[static_cast<std::size_t>(ts[i + 1])] : 1.0;
        const double k = std::sqrt(1 - A) / (A * sigma * sigma + 1 - A);
        const double e1 = k, e0 = -k * std::sqrt(A) * mu;              // ε̂ = e1 x + e0
        const double c1 = (1 - std::sqrt(1 - A) * e1) / std::sqrt(A);  // x̂0 = c1 x + c0
        const double c0 = -std::sqrt(1 - A) * e0 / std::sqrt(A);
        double g1, g0, added;
        if (ddim) {
            added = eta * eta * (1 - Ap) / (1 - A) * (1 - A / Ap);
            const double d = std::sqrt(std::max(0.0, 1 - Ap - added));
            g1 = std::sqrt(Ap) * c1 + d * e1;
            g0 = std::sqrt(Ap) * c0 + d * e0;
        } else {
            const double beta = 1 - A / Ap;
            const double co1 = std::sqrt(Ap) * beta / (1 - A), co2 = std::sqrt(1 - beta) * (1 - Ap) / (1 - A);
            added = i + 1 == ts.size() ? 0.0 : (var == variance::fixed_small ? beta * (1 - Ap) / (1 - A) : beta);
            g1 = co1 * c1 + co2;
            g0 = co1 * c0;
        }
        m = g0 + g1 * m;
        v = g1 * g1 * v + added;
    }
    return {m, std::sqrt(v)};
}

law sample_law(const tensor<float>& x) {
    double sum = 0, sum2 = 0;
    for (float v : x) sum += v;
    const double n = static_cast<double>(x.numel()), mean = sum / n;
    for (float v : x) sum2 += (v - mean) * (v - mean);
    return {mean, std::sqrt(sum2 / n)};
}

// Sample mean and sd within `k` standard errors of the law: SE(mean) = sd/sqrt(n), SE(sd) ≈ sd/sqrt(2n).
void check_within_standard_errors(const std::string& what, const law& got, const law& want, double n, double k = 4.0) {
    INFO(what << ": sample mean " << got.mean << " sd " << got.sd << ", expected mean " << want.mean << " sd "
              << want.sd);
    CHECK(std::abs(got.mean - want.mean) <= k * want.sd / std::sqrt(n));
    CHECK(std::abs(got.sd - want.sd) <= k * want.sd / std::sqrt(2 * n));
}

}  // namespace

static_assert(sampler<ddpm_ancestral<variance::fixed_large, v_prediction>>);
static_assert(sampler<ddim<10, x0_prediction>>);

// ---- Timesteps --------------------------------------------------------------------------------

TEST_CASE("sampler timesteps match diffusers' set_timesteps for every spacing", "[diffusion][sampler]") {
    const std::pair<timestep_spacing, const char*> spacings[] = {{timestep_spacing::leading, "leading"},
                                                                 {timestep_spacing::trailing, "trailing"},
                                                                 {timestep_spacing::linspace, "linspace"}};
    const std::pair<std::int64_t, std::int64_t> sizes[] = {{1000, 50}, {1000, 3}, {10, 7}, {10, 10}, {1000, 1}};
    for (const auto& [spacing, name] : spacings)
        for (const auto& [T, N] : sizes) {
            const std::string file = std::string("diffusion/timesteps_") + name + "_T" + std::to_string(T) + "_N" +
                                     std::to_string(N) + ".npy";
            const tensor<std::int64_t> want = load_golden<std::int64_t>(file);
            const std::vector<std::int64_t> got = make_timesteps(T, N, spacing);
            INFO(file);
            CHECK(std::vector<std::int64_t>(want.begin(), want.end()) == got);
        }
    CHECK(make_timesteps(1000, 50, timestep_spacing::leading).front() == 980);
    CHECK(make_timesteps(1000, 50, timestep_spacing::trailing).back() == 19);
    CHECK_THROWS_WITH(make_timesteps(1000, 1001, timestep_spacing::leading),
                      Catch::Contains("expected 1 <= steps <= T = 1000, found steps = 1001"));
    CHECK_THROWS_WITH(make_timesteps(1000, 0, timestep_spacing::leading), Catch::Contains("found steps = 0"));
}

// ---- Single steps -----------------------------------------------------------------------------

TEST_CASE("one DDPM step and one DDIM step match the NumPy reference", "[diffusion][sampler]") {
    const schedule_table linear(linear_ho2020{}, 1000), cosine(cosine_nichol_dhariwal{}, 1000);
    const tensor<double> x = load_golden("diffusion/step_x_t.npy");
    const tensor<double> out = load_golden("diffusion/step_model_output.npy");
    const tensor<double> noise = load_golden("diffusion/step_noise.npy");
    tensor<double> out3 = out;
    for (double& v : out3) v *= 3;
    const shape dims = x.dims();
    REQUIRE(dims == shape{2, 3, 4, 5});
    const x0_options clip{.mode = x0_mode::clip};
    const x0_options thr995{.mode = x0_mode::dynamic_threshold, .percentile = 0.995};
    const x0_options thr90{.mode = x0_mode::dynamic_threshold, .percentile = 0.9};
    const tensor_view<const double> none{};

    auto check = [&](const std::string& name, auto&& step) {
        tensor<double> got(dims);
        step(got.view());
        require_close(name, got, load_golden("diffusion/step_" + name + ".npy"), 1e-12, 1e-12);
    };
    check("ddpm_small_eps_t500", [&](tensor_view<double> y) {
        ddpm_step(linear, variance::fixed_small, 500, 499, x.view(), out.view(), noise.view(), y);
    });
    check("ddpm_large_eps_t500", [&](tensor_view<double> y) {
        ddpm_step(linear, variance::fixed_large, 500, 499, x.view(), out.view(), noise.view(), y);
    });
    check("ddpm_small_v_t500_to_480", [&](tensor_view<double> y) {
        ddpm_step<v_prediction>(linear, variance::fixed_small, 500, 480, x.view(), out.view(), noise.view(), y);
    });
    check("ddpm_large_x0_t500_to_480", [&](tensor_view<double> y) {
        ddpm_step<x0_prediction>(linear, variance::fixed_large, 500, 480, x.view(), out3.view(), noise.view(), y);
    });
    check("ddpm_small_eps_clip_t500", [&](tensor_view<double> y) {
        ddpm_step(linear, variance::fixed_small, 500, 499, x.view(), out.view(), noise.view(), y, clip);
    });
    check("ddpm_small_eps_threshold_t500", [&](tensor_view<double> y) {
        ddpm_step(linear, variance::fixed_small, 500, 499, x.view(), out.view(), noise.view(), y, thr995);
    });
    check("ddpm_small_eps_t0_final", [&](tensor_view<double> y) {
        ddpm_step(linear, variance::fixed_small, 0, -1, x.view(), out.view(), none, y);
    });
    check("ddim_eta0_eps_t500_to_480",
          [&](tensor_view<double> y) { ddim_step(linear, 0.0, 500, 480, x.view(), out.view(), none, y); });
    check("ddim_eta1_eps_t500_to_480",
          [&](tensor_view<double> y) { ddim_step(linear, 1.0, 500, 480, x.view(), out.view(), noise.view(), y); });
    check("ddim_eta0_v_cosine_t700_to_650", [&](tensor_view<double> y) {
        ddim_step<v_prediction>(cosine, 0.0, 700, 650, x.view(), out.view(), none, y);
    });
    check("ddim_eta05_x0_threshold_t500_to_480", [&](tensor_view<double> y) {
        ddim_step<x0_prediction>(linear, 0.5, 500, 480, x.view(), out3.view(), noise.view(), y, thr90);
    });
    check("ddim_eta0_eps_clip_t500_to_480",
          [&](tensor_view<double> y) { ddim_step(linear, 0.0, 500, 480, x.view(), out.view(), none, y, clip); });
    check("ddim_eta1_eps_t20_final",
          [&](tensor_view<double> y) { ddim_step(linear, 1.0, 20, -1, x.view(), out.view(), none, y); });

    // Float: the same steps, rounded once per element from double arithmetic.
    tensor<float> xf(dims), outf(dims), noisef(dims), yf(dims);
    for (std::int64_t i = 0; i < dims.numel(); ++i)
        xf[i] = static_cast<float>(x[i]), outf[i] = static_cast<float>(out[i]),
        noisef[i] = static_cast<float>(noise[i]);
    ddpm_step(linear, variance::fixed_small, 500, 499, xf.view(), outf.view(), noisef.view(), yf.view());
    require_close("ddpm float", yf, load_golden("diffusion/step_ddpm_small_eps_t500.npy"), 1e-5, 1e-6);
    ddim_step<v_prediction>(cosine, 0.0, 700, 650, xf.view(), outf.view(), tensor_view<const float>{}, yf.view());
    require_close("ddim float", yf, load_golden("diffusion/step_ddim_eta0_v_cosine_t700_to_650.npy"), 1e-5, 1e-6);

    // In place: x_prev may alias x_t.
    tensor<double> inplace = x;
    ddim_step(linear, 1.0, 500, 480, inplace.view(), out.view(), noise.view(), inplace.view());
    require_close("ddim in place", inplace, load_golden("diffusion/step_ddim_eta1_eps_t500_to_480.npy"), 1e-12, 1e-12);
}

TEST_CASE("a DDIM step with eta = 1 is the DDPM posterior step, strided or not", "[diffusion][sampler]") {
    const schedule_table table(scaled_linear{}, 1000);
    const shape dims{3, 2, 6, 5};
    const tensor<double> x = random_tensor<double>(dims, 21), out = random_tensor<double>(dims, 22),
                         z = random_tensor<double>(dims, 23);
    for (auto [t, t_prev] :
         {std::pair<std::int64_t, std::int64_t>{700, 699}, {700, 650}, {50, 0}, {999, 979}, {20, -1}}) {
        tensor<double> a(dims), b(dims);
        const tensor_view<const double> noise = t_prev >= 0 ? z.view() : tensor_view<const double>{};
        ddim_step(table, 1.0, t, t_prev, x.view(), out.view(), noise, a.view());
        ddpm_step(table, variance::fixed_small, t, t_prev, x.view(), out.view(), noise, b.view());
        require_close("DDIM(eta=1) vs DDPM from t = " + std::to_string(t) + " to " + std::to_string(t_prev), a, b,
                      1e-10, 1e-10);
    }
}

TEST_CASE("x0 clipping and dynamic thresholding act on each sample on its own", "[diffusion][sampler]") {
    tensor<double> x0(shape{2, 5});
    const double v[] = {-3.0, -1.0, 0.0, 0.5, 2.0, 0.9, -0.5, 0.25, 0.0, -0.75};
    std::copy(std::begin(v), std::end(v), x0.begin());
    tensor<double> c = x0;
    process_x0(c.view(), x0_options{.mode = x0_mode::clip});
    const double clipped[] = {-1.0, -1.0, 0.0, 0.5, 1.0, 0.9, -0.5, 0.25, 0.0, -0.75};
    for (int i = 0; i < 10; ++i) CHECK(c[i] == clipped[i]);

    // p = 1: s = max |x0| = 3 for the first sample; the second stays as is (s = max(0.9, 1) = 1).
    tensor<double> d = x0;
    process_x0(d.view(), x0_options{.mode = x0_mode::dynamic_threshold, .percentile = 1.0});
    const double thresholded[] = {-1.0, -1.0 / 3, 0.0, 0.5 / 3, 2.0 / 3, 0.9, -0.5, 0.25, 0.0, -0.75};
    for (int i = 0; i < 10; ++i) CHECK(d[i] == Approx(thresholded[i]).epsilon(1e-15));

    // p = 0.75 of |x| = {0, 0.5, 1, 2, 3}: position 3 -> s = 2, so x0 = clamp(x0, -2, 2)/2.
    tensor<double> e = x0;
    process_x0(e.view(), x0_options{.mode = x0_mode::dynamic_threshold, .percentile = 0.75});
    CHECK(e[0] == -1.0);
    CHECK(e[1] == -0.5);
    CHECK(e[4] == 1.0);
    // p = 0.6: position 2.4 -> s = 1 + 0.4·(2 − 1) = 1.4.
    tensor<double> f = x0;
    process_x0(f.view(), x0_options{.mode = x0_mode::dynamic_threshold, .percentile = 0.6});
    CHECK(f[3] == Approx(0.5 / 1.4).epsilon(1e-14));
    // max_threshold caps s.
    tensor<double> g = x0;
    process_x0(g.view(), x0_options{.mode = x0_mode::dynamic_threshold, .percentile = 1.0, .max_threshold = 1.5});
    CHECK(g[0] == -1.0);
    CHECK(g[3] == Approx(0.5 / 1.5).epsilon(1e-15));

    CHECK_THROWS_WITH(process_x0(g.view(), x0_options{.mode = x0_mode::dynamic_threshold, .percentile = 0.0}),
                      Catch::Contains("expected a percentile 0 < p <= 1, found p = 0"));
    CHECK_THROWS_WITH(process_x0(g.view(), x0_options{.mode = x0_mode::dynamic_threshold, .max_threshold = 0.5}),
                      Catch::Contains("expected max_threshold >= 1, found 0.5"));
}

// ---- Whole samplers ---------------------------------------------------------------------------

// With the model on cpu and on cpu_strict, whose memory the sampler must reach through copies.
TEMPLATE_TEST_CASE("a sample depends on its seed and index, not on the batch it was drawn in", "[diffusion][sampler]",
                   cpu, cpu_strict) {
    const schedule_table table(linear_ho2020{}, 1000);
    const shape item{2, 5, 6};
    const std::int64_t per_item = item.numel();
    on_backend_denoiser<TestType, labelled_denoiser> model;
    labelled_denoiser host_model;
    sampler_options opt{.guidance_scale = 2.5, .null_class = 3, .x0 = {.mode = x0_mode::dynamic_threshold}};
    const tensor<std::int64_t> labels = labels_of({0, 2, 1, 3});

    auto check_split = [&](const auto& s, const char* what) {
        INFO(what);
        const tensor<float> all = s.sample(model, item, labels.view(), 42, 100);
        REQUIRE(all.dims() == shape{4, 2, 5, 6});
        // The same bits as the model run on the host directly.
        const tensor<float> host = s.sample(host_model, item, labels.view(), 42, 100);
        REQUIRE(std::equal(host.begin(), host.end(), all.begin()));
        for (std::int64_t half = 0; half < 2; ++half) {
            const tensor<std::int64_t> part = labels_of({labels[2 * half], labels[2 * half + 1]});
            const tensor<float> two =
                s.sample(model, item, 2, part.view(), 42, 100 + 2 * static_cast<std::uint64_t>(half));
            REQUIRE(std::equal(two.begin(), two.end(), all.begin() + half * 2 * per_item));
        }
        // A single sample, drawn alone at its index.
        const tensor<std::int64_t> third = labels_of({labels[2]});
        const tensor<float> one = s.sample(model, item, third.view(), 42, 102);
        REQUIRE(std::equal(one.begin(), one.end(), all.begin() + 2 * per_item));
        // Another seed gives another sample.
        const tensor<float> other = s.sample(model, item, labels.view(), 43, 100);
        CHECK_FALSE(std::equal(other.begin(), other.end(), all.begin()));
    };
    check_split(ddpm_ancestral<variance::fixed_small>(table, 40, opt), "ddpm, 40 leading steps, guided, thresholded");
    check_split(ddim<25>(table, 0.7, opt), "ddim<25>, eta 0.7, guided, thresholded");
    opt.spacing = timestep_spacing::trailing;
    check_split(ddpm_ancestral<variance::fixed_large, v_prediction>(table, 30, opt), "ddpm large, v, trailing");
}

TEST_CASE("samples are bitwise identical at 1 and 2 threads", "[diffusion][sampler]") {
    const schedule_table table(cosine_nichol_dhariwal{}, 200);
    const shape item{3, 16, 16};
    labelled_denoiser model;
    const sampler_options opt{.guidance_scale = 3.0, .null_class = 3, .x0 = {.mode = x0_mode::clip}};
    const tensor<std::int64_t> labels = labels_of({0, 1, 2, 0, 1, 2});
    const ddpm_ancestral<> ddpm(table, 0, opt);
    const ddim<20> ddim20(table, 1.0, opt);
    const int saved = max_threads();
    set_threads(1);
    const tensor<float> a1 = ddpm.sample(model, item, labels.view(), 5),
                        b1 = ddim20.sample(model, item, labels.view(), 5);
    set_threads(2);
    const tensor<float> a2 = ddpm.sample(model, item, labels.view(), 5),
                        b2 = ddim20.sample(model, item, labels.view(), 5);
    set_threads(saved);
    CHECK(std::equal(a1.begin(), a1.end(), a2.begin()));
    CHECK(std::equal(b1.begin(), b1.end(), b2.begin()));
    for (float v : a1) REQUIRE(std::isfinite(v));
}

TEST_CASE("with the exact denoiser of Gaussian data, DDPM and DDIM reproduce its mean and spread",
          "[diffusion][sampler]") {
    const schedule_table table(linear_ho2020{}, 1000);
    const double mu = 0.3, sigma = 0.5;
    gaussian_denoiser<> model{&table, mu, sigma, {}};
    const shape item{1, 32, 32};
    const std::int64_t count = 16;
    const double n = static_cast<double>(count * item.numel());
    const law data{mu, sigma};

    SECTION("DDPM, all 1000 steps, both variances") {
        const ddpm_ancestral<variance::fixed_small> small(table);
        const ddpm_ancestral<variance::fixed_large> large(table);
        const tensor<float> xs = small.sample(model, item, count, no_labels, 1);
        const tensor<float> xl = large.sample(model, item, count, no_labels, 2);
        check_within_standard_errors("DDPM fixed_small vs data", sample_law(xs), data, n);
        check_within_standard_errors("DDPM fixed_large vs data", sample_law(xl), data, n);
        check_within_standard_errors("DDPM fixed_small vs its chain", sample_law(xs),
                                     chain_law(table, small.timesteps(), mu, sigma, false, 0, variance::fixed_small),
                                     n);
        check_within_standard_errors("DDPM fixed_large vs its chain", sample_law(xl),
                                     chain_law(table, large.timesteps(), mu, sigma, false, 0, variance::fixed_large),
                                     n);
    }
    SECTION("DDIM, 50 steps, eta 0 and 1; and 1000 steps") {
        const ddim<50> det(table, 0.0), sto(table, 1.0);
        const tensor<float> xd = det.sample(model, item, count, no_labels, 3);
        const tensor<float> xs = sto.sample(model, item, count, no_labels, 4);
        const law det_law = chain_law(table, det.timesteps(), mu, sigma, true, 0.0, variance::fixed_small);
        const law sto_law = chain_law(table, sto.timesteps(), mu, sigma, true, 1.0, variance::fixed_small);
        check_within_standard_errors("DDIM<50> eta 0 vs its chain", sample_law(xd), det_law, n);
        check_within_standard_errors("DDIM<50> eta 1 vs its chain", sample_law(xs), sto_law, n);
        // 50 steps of DDIM shrink the spread of this data by a few percent (discretisation error of
        // the probability-flow ODE, largest where sqrt((1 − ᾱ)/ᾱ) ≈ σ); the mean is kept.
        CHECK(std::abs(det_law.mean - mu) < 0.005);
        CHECK(std::abs(det_law.sd - sigma) < 0.06 * sigma);
        CHECK(std::abs(sto_law.sd - sigma) < 0.12 * sigma);
        // With all 1000 steps DDIM reaches the data within a few standard errors.
        const ddim<1000> full(table, 0.0);
        check_within_standard_errors("DDIM<1000> eta 0 vs data",
                                     sample_law(full.sample(model, item, count, no_labels, 5)), data, n);
    }
    SECTION("DDPM over a strided chain of 100 trailing steps") {
        const ddpm_ancestral<variance::fixed_large> strided(table, 100, {.spacing = timestep_spacing::trailing});
        REQUIRE(strided.timesteps().size() == 100);
        const law want = chain_law(table, strided.timesteps(), mu, sigma, false, 0, variance::fixed_large);
        check_within_standard_errors("DDPM 100 trailing vs its chain",
                                     sample_law(strided.sample(model, item, count, no_labels, 6)), want, n);
        CHECK(std::abs(want.sd - sigma) < 0.03 * sigma);
    }
}

TEST_CASE("v- and x0-prediction models sample like the equivalent epsilon model", "[diffusion][sampler]") {
    const schedule_table table(cosine_nichol_dhariwal{}, 500);
    const shape item{2, 8, 8};
    gaussian_denoiser<epsilon_prediction> eps_model{&table, -0.2, 0.7, {}};
    gaussian_denoiser<v_prediction> v_model{&table, -0.2, 0.7, {}};
    gaussian_denoiser<x0_prediction> x0_model{&table, -0.2, 0.7, {}};
    const tensor<float> a = ddim<25>(table, 0.5).sample(eps_model, item, 3, no_labels, 8);
    const tensor<float> b = ddim<25, v_prediction>(table, 0.5).sample(v_model, item, 3, no_labels, 8);
    const tensor<float> c = ddim<25, x0_prediction>(table, 0.5).sample(x0_model, item, 3, no_labels, 8);
    require_close("ddim v vs eps", b, a, 1e-3, 1e-3);
    require_close("ddim x0 vs eps", c, a, 1e-3, 1e-3);
    const tensor<float> d = ddpm_ancestral<>(table, 50).sample(eps_model, item, 3, no_labels, 9);
    const tensor<float> e =
        ddpm_ancestral<variance::fixed_small, v_prediction>(table, 50).sample(v_model, item, 3, no_labels, 9);
    require_close("ddpm v vs eps", e, d, 1e-3, 1e-3);
}

TEST_CASE("classifier-free guidance mixes the conditional and the null-class outputs", "[diffusion][sampler]") {
    const schedule_table table(linear_ho2020{}, 100);
    const shape item{1, 4, 4};
    const tensor<std::int64_t> labels = labels_of({0, 2, 1});
    labelled_denoiser guided;
    const double w = 4.0;
    const ddim<10> with_guidance(table, 0.3, {.guidance_scale = w, .null_class = 3});
    const tensor<float> a = with_guidance.sample(guided, item, labels.view(), 11);
    // One call per step on a doubled batch: the labels, then the null class.
    CHECK(guided.last_batch == 6);
    CHECK(guided.last_labels == std::vector<std::int64_t>{0, 2, 1, 3, 3, 3});
    // out_u + w (out_c − out_u) = base + w·shift(y): a model that outputs that directly, unguided.
    labelled_denoiser pre_guided;
    pre_guided.scale = w;
    const tensor<float> b = ddim<10>(table, 0.3).sample(pre_guided, item, labels.view(), 11);
    CHECK(pre_guided.last_batch == 3);
    require_close("guided vs pre-guided", a, b, 1e-4, 1e-4);
    // w = 0 samples the unconditional model.
    const tensor<float> c =
        ddim<10>(table, 0.3, {.guidance_scale = 0.0, .null_class = 3}).sample(guided, item, labels.view(), 11);
    const tensor<std::int64_t> nulls = labels_of({3, 3, 3});
    const tensor<float> d = ddim<10>(table, 0.3).sample(guided, item, nulls.view(), 11);
    require_close("w = 0 vs null class", c, d, 1e-5, 1e-5);
}

TEST_CASE("bad sampler input raises errors naming what was expected and found", "[diffusion][sampler]") {
    const schedule_table table(linear_ho2020{}, 1000);
    CHECK_THROWS_WITH(ddim<2000>(table), Catch::Contains("ddim: expected at most T = 1000 steps, found 2000"));
    CHECK_THROWS_WITH(ddim<10>(table, -0.1), Catch::Contains("expected eta >= 0, found eta = -0.1"));
    CHECK_THROWS_WITH(ddpm_ancestral<>(table, 1001),
                      Catch::Contains("expected at most T = 1000 steps (0 for all), found 1001"));

    labelled_denoiser model;
    const shape item{1, 4, 4};
    const tensor<std::int64_t> three = labels_of({0, 1, 2});
    const ddim<5> plain(table);
    CHECK_THROWS_WITH(plain.sample(model, item, 4, three.view(), 1),
                      Catch::Contains("ddim: expected 4 labels of shape (4) (one per sample), found shape (3)"));
    CHECK_THROWS_WITH(plain.sample(model, item, 0, no_labels, 1),
                      Catch::Contains("expected at least 1 sample, found count = 0"));
    CHECK_THROWS_WITH(plain.sample(model, shape{}, 2, no_labels, 1),
                      Catch::Contains("expected an item shape of rank 1"));
    const tensor<std::int64_t> negative = labels_of({0, -1});
    CHECK_THROWS_WITH(plain.sample(model, item, negative.view(), 1),
                      Catch::Contains("expected labels >= 0, found label -1 for sample 1"));

    const ddim<5> no_null(table, 0.0, {.guidance_scale = 2.0});
    CHECK_THROWS_WITH(no_null.sample(model, item, three.view(), 1),
                      Catch::Contains("needs the null class label (= num_classes), found null_class = -1"));
    const ddim<5> guided(table, 0.0, {.guidance_scale = 2.0, .null_class = 2});
    CHECK_THROWS_WITH(guided.sample(model, item, 3, no_labels, 1),
                      Catch::Contains("needs one label per sample, found none"));
    const tensor<std::int64_t> too_big = labels_of({0, 3});
    CHECK_THROWS_WITH(guided.sample(model, item, too_big.view(), 1),
                      Catch::Contains("expected labels <= the null class 2, found label 3 for sample 1"));

    truncating_denoiser bad;
    CHECK_THROWS_WITH(plain.sample(bad, shape{1, 4, 4}, 2, no_labels, 1),
                      Catch::Contains("denoiser output: expected shape (2, 1, 4, 4), found (2, 1, 4, 3)"));

    tensor<float> x(shape{2, 3}), out(shape{2, 3}), y(shape{2, 3}), wrong(shape{2, 4});
    CHECK_THROWS_WITH(ddpm_step(table, variance::fixed_small, 10, 10, x.view(), out.view(), x.view(), y.view()),
                      Catch::Contains("expected a previous timestep -1 <= t_prev < t = 10, found t_prev = 10"));
    CHECK_THROWS_WITH(ddpm_step(table, variance::fixed_small, 1000, 10, x.view(), out.view(), x.view(), y.view()),
                      Catch::Contains("expected a timestep 0 <= t < T = 1000, found t = 1000"));
    CHECK_THROWS_WITH(
        ddpm_step(table, variance::fixed_small, 10, 9, x.view(), out.view(), tensor_view<const float>{}, y.view()),
        Catch::Contains(
            "ddpm_step: expected noise of shape (2, 3) for the step from t = 10 to t_prev = 9, found none"));
    CHECK_THROWS_WITH(ddim_step(table, 0.0, 10, 5, x.view(), wrong.view(), tensor_view<const float>{}, y.view()),
                      Catch::Contains("ddim_step: expected shape (2, 3), found (2, 4)"));
    CHECK_THROWS_WITH(ddim_step(table, 0.5, 10, 5, x.view(), out.view(), wrong.view(), y.view()),
                      Catch::Contains("ddim_step noise: expected shape (2, 3), found (2, 4)"));
}

TEST_CASE("DPM-Solver++(2M) solves the probability-flow ODE of Gaussian data to second order", "[diffusion][sampler]") {
    // For x_0 ~ N(μ, σ_d²) the ODE keeps every sample at its quantile: from x at the first timestep
    // t0, the exact end point is μ + σ_d (x − a μ)/sqrt(a² σ_d² + s²) with a, s of t0. DDIM is the
    // first-order solver of the same ODE (Lu et al. 2022, §3), so it is the yardstick.
    const schedule_table table(linear_ho2020{}, 1000);
    const double mu = 0.3, sd = 0.5;
    gaussian_denoiser<> model{&table, mu, sd, {}};
    const sampler_options o{.spacing = timestep_spacing::trailing};
    const shape item{64};
    const std::uint64_t seed = 11;
    auto error = [&](const tensor<float>& x, std::int64_t t0) {
        tensor<float> start(shape{4, 64});
        draw_sampler_noise(start.view(), seed, 0, 0);
        const double ab = table.alphas_cumprod()[static_cast<std::size_t>(t0)];
        double worst = 0;
        for (std::int64_t i = 0; i < start.numel(); ++i) {
            const double exact = mu + sd * (start[i] - std::sqrt(ab) * mu) / std::sqrt(ab * sd * sd + 1.0 - ab);
            worst = std::max(worst, std::abs(x[i] - exact));
        }
        return worst;
    };
    const dpm_solver_pp_2m<10> dpm10(table, o);
    const dpm_solver_pp_2m<20> dpm20(table, o);
    const ddim<10> ddim10(table, 0.0, o);
    const ddim<20> ddim20(table, 0.0, o);
    REQUIRE(dpm10.timesteps().front() == 999);
    const double e_dpm10 = error(dpm10.sample(model, item, 4, {}, seed), 999);
    const double e_dpm20 = error(dpm20.sample(model, item, 4, {}, seed), 999);
    const double e_ddim10 = error(ddim10.sample(model, item, 4, {}, seed), 999);
    const double e_ddim20 = error(ddim20.sample(model, item, 4, {}, seed), 999);
    INFO("max error: DPM-Solver++(2M) 10 steps " << e_dpm10 << ", 20 steps " << e_dpm20 << "; DDIM 10 steps "
                                                 << e_ddim10 << ", 20 steps " << e_ddim20);
    // Measured: 0.29 -> 0.067 for DPM-Solver++(2M), 0.40 -> 0.21 for DDIM. Both end with the same
    // first-order step to ᾱ = 1, which bounds how small either error gets at these step counts.
    CHECK(e_dpm10 / e_dpm20 > 3.5);    // second order: halving the step size quarters the error
    CHECK(e_ddim10 / e_ddim20 < 2.5);  // first order: about halves it
    CHECK(e_dpm10 < e_ddim10);
    CHECK(e_dpm20 < e_ddim20 / 2.5);
}

TEST_CASE("DPM-Solver++(2M) of a point mass lands on it, and its first step is DDIM's", "[diffusion][sampler]") {
    const schedule_table table(linear_ho2020{}, 1000);
    gaussian_denoiser<> point{&table, -0.4, 0.0, {}};  // σ_d = 0: every x̂_0 is μ exactly
    const tensor<float> x = dpm_solver_pp_2m<7>(table).sample(point, shape{3, 4, 4}, 2, {}, 5);
    for (float v : x) CHECK(v == Approx(-0.4).margin(1e-5));

    // One step from the same x_t: first order DPM-Solver++ is DDIM (η = 0) in other coordinates.
    tensor<float> x_t = random_tensor<float>(shape{2, 5}, 3), out = random_tensor<float>(shape{2, 5}, 4);
    tensor<float> a(shape{2, 5}), b(shape{2, 5});
    tensor<double> x0(shape{2, 5});
    dpm_solver_pp_2m_step<epsilon_prediction, float>(table, 600, 500, 0.0, x_t, out, {}, x0.view(), a.view());
    ddim_step<epsilon_prediction, float>(table, 0.0, 600, 500, x_t, out, {}, b.view());
    require_close("first-order step", a, b, 1e-5, 1e-6);
    auto bad_h = [&] {
        dpm_solver_pp_2m_step<epsilon_prediction, float>(table, 600, 500, -1.0, x_t, out, x0.view(), x0.view(),
                                                         a.view());
    };
    CHECK_THROWS_WITH(bad_h(), Catch::Contains("previous step's h > 0"));
}
