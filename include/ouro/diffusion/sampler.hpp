// Samplers of the reverse process: DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), DDIM
// (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021) and DPM-Solver++(2M) (Lu et
// al. 2022), with classifier-free
// guidance (Ho & Salimans 2022), x_0 clipping and dynamic thresholding (Saharia et al., "Imagen",
// 2022). Samplers are types; their single steps are free functions usable on their own.
// All noise comes from Philox keyed by (seed, rng_purpose::sampler, sample index, step), so a
// sample depends only on (seed, its index): not on batch size, chunking or thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "ouro/core/backend.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/diffusion/parameterization.hpp"
#include "ouro/diffusion/schedule.hpp"

namespace ouro::diffusion {

// ---- Models -----------------------------------------------------------------------------------

// A denoiser maps noisy images x_t (B, C, H, W), timesteps t (B) and class labels y (B) (or an
// empty view, shape (0), for an unconditional model) to its output of x_t's shape: ε, x_0 or v
// as its parameterization says. The returned view may point into the model's own buffers; the
// sampler reads it before the next call. x_t and the output are in the memory of the model's
// backend (backend_of_t<M>), t and y on the host.
template <class M>
concept denoiser = requires(M& m, tensor_view<const float, backend_of_t<M>> x_t, tensor_view<const std::int64_t> t,
                            tensor_view<const std::int64_t> y) {
    { m.predict(x_t, t, y) } -> std::convertible_to<tensor_view<const float, backend_of_t<M>>>;
};

// static_assert(check_denoiser<M>()) explains in words what M lacks.
template <class M>
constexpr bool check_denoiser() {
    static_assert(denoiser<M>,
                  "a denoiser needs `tensor_view<const float> predict(tensor_view<const float> x_t /*(B, C, H, W)*/, "
                  "tensor_view<const std::int64_t> t /*(B)*/, tensor_view<const std::int64_t> y /*(B) or (0)*/)` "
                  "returning an output of x_t's shape");
    return denoiser<M>;
}

// ---- Options ----------------------------------------------------------------------------------

// The variance of DDPM's reverse steps (Ho et al. 2020, §3.2): σ_t² = β̃_t ("fixed_small", the
// posterior variance, best for x_0 ~ a point) or σ_t² = β_t ("fixed_large", best for x_0 ~ N(0, I)).
enum class variance { fixed_small, fixed_large };

// Which T-step timesteps a sampler of N steps visits, as diffusers' DDIMScheduler.set_timesteps
// ("Common Diffusion Noise Schedules and Sample Steps Are Flawed", Lin et al. 2024, Table 2):
//   leading:  (i·(T div N)) for i = N−1 … 0                        e.g. T=1000, N=50: 980, 960, …, 0
//   trailing: round(T − i·T/N) − 1 for i = 0 … N−1                 e.g. 999, 979, …, 19
//   linspace: round(linspace(0, T − 1, N)) reversed                e.g. 999, 979, …, 0
enum class timestep_spacing { leading, trailing, linspace };

enum class x0_mode {
    none,               // use the model's x_0 as it is
    clip,               // clamp x_0 to [-1, 1] (Ho et al. 2020; guided-diffusion's clip_denoised)
    dynamic_threshold,  // Saharia et al. 2022, §2.3: s = max(1, p-quantile of |x_0| per sample), x_0 = clamp(x_0, −s,
                        // s)/s
};

struct x0_options {
    x0_mode mode = x0_mode::none;
    double percentile = 0.995;  // p of dynamic thresholding, in (0, 1] (torch.quantile's linear interpolation)
    double max_threshold = std::numeric_limits<double>::infinity();  // s is at most this (diffusers' sample_max_value)
};

// Runtime options shared by the samplers.
struct sampler_options {
    // Classifier-free guidance (Ho & Salimans 2022, eq. (6)): out = out_u + w·(out_c − out_u), with
    // out_c the model's output for the labels and out_u for the "null class" label. w = 1 runs the
    // conditional model only. Mixing raw outputs equals mixing ε for every parameterization here,
    // since each maps its output to ε affinely with weights (1 − w) + w = 1.
    double guidance_scale = 1.0;
    std::int64_t null_class = -1;  // the unconditional label (= num_classes); required when w != 1
    x0_options x0 = {};
    timestep_spacing spacing = timestep_spacing::leading;  // diffusers' default
};

// ---- Timesteps --------------------------------------------------------------------------------

// The N timesteps, in decreasing order, that a sampler visits on a T-step schedule (see
// timestep_spacing). Requires 1 <= N <= T.
inline std::vector<std::int64_t> make_timesteps(std::int64_t timesteps, std::int64_t steps, timestep_spacing spacing) {
    require(timesteps >= 1, "make_timesteps: expected at least 1 timestep, found T = ", timesteps);
    require(steps >= 1 && steps <= timesteps, "make_timesteps: expected 1 <= steps <= T = ", timesteps,
            ", found steps = ", steps);
    std::vector<std::int64_t> ts(static_cast<std::size_t>(steps));
    const auto n = static_cast<std::size_t>(steps);
    switch (spacing) {
        case timestep_spacing::leading: {
            const std::int64_t ratio = timesteps / steps;
            for (std::size_t i = 0; i < n; ++i) ts[i] = static_cast<std::int64_t>(n - 1 - i) * ratio;
            break;
        }
        case timestep_spacing::trailing: {
            const double ratio = static_cast<double>(timesteps) / static_cast<double>(steps);
            for (std::size_t i = 0; i < n; ++i)
                ts[i] = static_cast<std::int64_t>(
                            std::nearbyint(static_cast<double>(timesteps) + static_cast<double>(i) * -ratio)) -
                        1;
            break;
        }
        case timestep_spacing::linspace: {
            const std::vector<double> v = detail::linspace(0.0, static_cast<double>(timesteps - 1), steps);
            for (std::size_t i = 0; i < n; ++i) ts[i] = static_cast<std::int64_t>(std::nearbyint(v[n - 1 - i]));
            break;
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        const bool ok = ts[i] >= 0 && ts[i] < timesteps && (i == 0 || ts[i] < ts[i - 1]);
        if (!ok)
            fail("make_timesteps: T = ", timesteps, ", steps = ", steps, " gives a timestep ", ts[i], " at position ",
                 i, " that is out of [0, T) or not below the one before");
    }
    return ts;
}

// ---- x_0 processing ---------------------------------------------------------------------------

namespace detail {
inline void require_x0_options(const x0_options& o) {
    if (o.mode != x0_mode::dynamic_threshold) return;
    require(o.percentile > 0.0 && o.percentile <= 1.0,
            "dynamic thresholding: expected a percentile 0 < p <= 1, found p = ", o.percentile);
    require(o.max_threshold >= 1.0, "dynamic thresholding: expected max_threshold >= 1, found ", o.max_threshold);
}

// Applies `o` to one item's x_0 (n values, in double). `scratch` holds n values.
inline void process_x0_item(double* x0, std::int64_t n, const x0_options& o, std::vector<double>& scratch) {
    switch (o.mode) {
        case x0_mode::none: return;
        case x0_mode::clip:
            for (std::int64_t i = 0; i < n; ++i) x0[i] = std::clamp(x0[i], -1.0, 1.0);
            return;
        case x0_mode::dynamic_threshold: {
            scratch.resize(static_cast<std::size_t>(n));
            for (std::int64_t i = 0; i < n; ++i) scratch[static_cast<std::size_t>(i)] = std::abs(x0[i]);
            std::sort(scratch.begin(), scratch.end());
            // torch.quantile(..., interpolation="linear")
            const double pos = o.percentile * static_cast<double>(n - 1);
            const auto lo = static_cast<std::size_t>(std::floor(pos));
            const std::size_t hi = std::min(lo + 1, static_cast<std::size_t>(n - 1));
            const double q = scratch[lo] + (pos - static_cast<double>(lo)) * (scratch[hi] - scratch[lo]);
            const double s = std::clamp(q, 1.0, o.max_threshold);
            for (std::int64_t i = 0; i < n; ++i) x0[i] = std::clamp(x0[i], -s, s) / s;
            return;
        }
    }
}

template <class T>
std::int64_t require_step_inputs(const schedule_table& table, std::int64_t t, std::int64_t t_prev,
                                 tensor_view<const T> x_t, tensor_view<const T> model_output, tensor_view<T> x_prev,
                                 const char* who) {
    table.require_timestep(t, who);
    if (t_prev < -1 || t_prev >= t)
        fail(who, ": expected a previous timestep -1 <= t_prev < t = ", t, ", found t_prev = ", t_prev);
    require(x_t.rank() >= 1 && x_t.dim(0) >= 1, who, ": expected a non-empty batch x_t (B, ...), found shape ",
            x_t.dims());
    require_shape(model_output.dims(), x_t.dims(), who);
    require_shape(x_prev.dims(), x_t.dims(), who);
    return x_t.dim(0);
}

// What every step does item by item, in parallel over the batch: item b's x̂_0 = P::to_x0(out, x_t)
// in double, processed as `x0` says, then update(begin, n, x0_hat) writes the item's n outputs from
// element `begin` on. x̂_0 goes to x0_store (B·n values) where given, else to a per-item buffer.
template <parameterization P, class T, class Update>
void for_each_item_x0(tensor_view<const T> x_t, tensor_view<const T> model_output, double a, double s,
                      const x0_options& x0, double* x0_store, Update&& update) {
    const std::int64_t per_item = x_t.numel() / x_t.dim(0);
    parallel_for(
        x_t.dim(0),
        [&](std::int64_t b) {
            const std::int64_t begin = b * per_item;
            std::vector<double> own, scratch;
            if (x0_store == nullptr) own.resize(static_cast<std::size_t>(per_item));
            double* x0_hat = x0_store != nullptr ? x0_store + begin : own.data();
            for (std::int64_t i = 0; i < per_item; ++i)
                x0_hat[i] = P::to_x0(model_output[begin + i], x_t[begin + i], a, s);
            process_x0_item(x0_hat, per_item, x0, scratch);
            update(begin, per_item, static_cast<const double*>(x0_hat));
        },
        per_item * 16);
}
}  // namespace detail

// Applies `options` to x_0 estimates (B, ...), each item on its own. Overwrites x0.
template <real_scalar T>
void process_x0(tensor_view<T> x0, const x0_options& options) {
    detail::require_x0_options(options);
    if (options.mode == x0_mode::none) return;
    require(x0.rank() >= 1, "process_x0: expected a batch (B, ...), found shape ", x0.dims());
    const std::int64_t batch = x0.dim(0);
    if (batch == 0) return;
    const std::int64_t per_item = x0.numel() / batch;
    parallel_for(
        batch,
        [&](std::int64_t b) {
            std::vector<double> item(static_cast<std::size_t>(per_item)), scratch;
            for (std::int64_t i = 0; i < per_item; ++i) item[static_cast<std::size_t>(i)] = x0[b * per_item + i];
            detail::process_x0_item(item.data(), per_item, options, scratch);
            for (std::int64_t i = 0; i < per_item; ++i)
                x0[b * per_item + i] = static_cast<T>(item[static_cast<std::size_t>(i)]);
        },
        per_item * 16);
}

// ---- Single steps -----------------------------------------------------------------------------

// One DDPM ancestral step from timestep t to t_prev (t_prev = t − 1 for the full chain, any
// −1 <= t_prev < t for a strided one), for every item of a batch:
//   x̂_0 = P::to_x0(model_output, x_t), then clipped/thresholded as `x0` says;
//   x_prev = coef1 x̂_0 + coef2 x_t + σ z,                               DDPM eq. (7), Algorithm 2
// with the table's coef1_t, coef2_t, β̃_t (fixed_small) or β_t (fixed_large) when t_prev = t − 1,
// and otherwise those of the respaced chain (Nichol & Dhariwal 2021, §4; diffusers' DDPMScheduler):
//   β' = 1 − ᾱ_t/ᾱ_{t_prev}, coef1 = sqrt(ᾱ_{t_prev}) β'/(1 − ᾱ_t),
//   coef2 = sqrt(1 − β') (1 − ᾱ_{t_prev})/(1 − ᾱ_t), σ² = β'(1 − ᾱ_{t_prev})/(1 − ᾱ_t) or β'.
// The last step (t_prev = −1, ᾱ_{−1} = 1) adds no noise and may take noise absent (a
// default-constructed view); otherwise noise is z (B, ...). Requires x_t, model_output, noise and
// x_prev of one shape (B, ...). Overwrites x_prev (which may alias x_t).
template <parameterization P = epsilon_prediction, real_scalar T>
void ddpm_step(const schedule_table& table, variance var, std::int64_t t, std::int64_t t_prev,
               tensor_view<const std::type_identity_t<T>> x_t, tensor_view<const std::type_identity_t<T>> model_output,
               tensor_view<const std::type_identity_t<T>> noise, tensor_view<T> x_prev, const x0_options& x0 = {}) {
    detail::require_step_inputs<T>(table, t, t_prev, x_t, model_output, x_prev, "ddpm_step");
    detail::require_x0_options(x0);
    const auto k = static_cast<std::size_t>(t);
    const double ab = table.alphas_cumprod()[k], ab_prev = table.alpha_bar(t_prev);
    const double a = table.sqrt_alphas_cumprod()[k], s = table.sqrt_one_minus_alphas_cumprod()[k];
    double coef1, coef2, sigma2;
    if (t_prev == t - 1) {
        coef1 = table.posterior_mean_coef1()[k];
        coef2 = table.posterior_mean_coef2()[k];
        sigma2 = var == variance::fixed_small ? table.posterior_variance()[k] : table.betas()[k];
    } else {
        const double beta = 1.0 - ab / ab_prev;
        coef1 = std::sqrt(ab_prev) * beta / (1.0 - ab);
        coef2 = std::sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab);
        sigma2 = var == variance::fixed_small ? beta * (1.0 - ab_prev) / (1.0 - ab) : beta;
    }
    const bool noisy = t_prev >= 0;
    if (noisy) {
        require(!noise.absent(), "ddpm_step: expected noise of shape ", x_t.dims(), " for the step from t = ", t,
                " to t_prev = ", t_prev, ", found none");
        require_shape(noise.dims(), x_t.dims(), "ddpm_step noise");
    }
    const double sigma = noisy ? std::sqrt(sigma2) : 0.0;
    detail::for_each_item_x0<P>(x_t, model_output, a, s, x0, nullptr,
                                [&](std::int64_t begin, std::int64_t n, const double* x0_hat) {
                                    for (std::int64_t i = 0; i < n; ++i) {
                                        double v = coef1 * x0_hat[i] + coef2 * static_cast<double>(x_t[begin + i]);
                                        if (noisy) v += sigma * static_cast<double>(noise[begin + i]);
                                        x_prev[begin + i] = static_cast<T>(v);
                                    }
                                });
}

// One DDIM step from t to t_prev (Song et al. 2021, eq. (12)), for every item of a batch:
//   x̂_0 = P::to_x0(out, x_t) (clipped/thresholded as `x0` says), ε̂ = P::to_eps(out, x_t), and
//   when x_0 was processed ε̂ = (x_t − sqrt(ᾱ_t) x̂_0)/sqrt(1 − ᾱ_t) (guided-diffusion's
//   ddim_sample; diffusers' use_clipped_model_output), so the step stays on the line of x_t and x̂_0;
//   σ = η sqrt((1 − ᾱ_prev)/(1 − ᾱ_t)) sqrt(1 − ᾱ_t/ᾱ_prev)                            eq. (16)
//   x_prev = sqrt(ᾱ_prev) x̂_0 + sqrt(1 − ᾱ_prev − σ²) ε̂ + σ z,    ᾱ_prev = ᾱ_{t_prev}, ᾱ_{−1} = 1.
// η = 0 is deterministic DDIM, η = 1 the DDPM posterior. Noise may be absent (a default-constructed
// view) when σ = 0 (η = 0 or t_prev = −1). Requires η >= 0, −1 <= t_prev < t, x_t, model_output,
// noise and x_prev of one shape (B, ...). Overwrites x_prev (which may alias x_t).
template <parameterization P = epsilon_prediction, real_scalar T>
void ddim_step(const schedule_table& table, double eta, std::int64_t t, std::int64_t t_prev,
               tensor_view<const std::type_identity_t<T>> x_t, tensor_view<const std::type_identity_t<T>> model_output,
               tensor_view<const std::type_identity_t<T>> noise, tensor_view<T> x_prev, const x0_options& x0 = {}) {
    detail::require_step_inputs<T>(table, t, t_prev, x_t, model_output, x_prev, "ddim_step");
    require(eta >= 0.0, "ddim_step: expected eta >= 0, found eta = ", eta);
    detail::require_x0_options(x0);
    const auto k = static_cast<std::size_t>(t);
    const double ab = table.alphas_cumprod()[k], ab_prev = table.alpha_bar(t_prev);
    const double a = table.sqrt_alphas_cumprod()[k], s = table.sqrt_one_minus_alphas_cumprod()[k];
    const double sigma = eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab)) * std::sqrt(1.0 - ab / ab_prev);
    const double a_prev = std::sqrt(ab_prev);
    const double direction = std::sqrt(std::max(0.0, 1.0 - ab_prev - sigma * sigma));
    const bool noisy = sigma > 0.0;
    if (noisy) {
        require(!noise.absent(), "ddim_step: expected noise of shape ", x_t.dims(), " for eta = ", eta, " from t = ", t,
                " to t_prev = ", t_prev, ", found none");
        require_shape(noise.dims(), x_t.dims(), "ddim_step noise");
    }
    const bool processed = x0.mode != x0_mode::none;
    detail::for_each_item_x0<P>(
        x_t, model_output, a, s, x0, nullptr, [&](std::int64_t begin, std::int64_t n, const double* x0_hat) {
            for (std::int64_t i = 0; i < n; ++i) {
                const double xt = x_t[begin + i], x0i = x0_hat[i];
                const double eps = processed ? eps_from_x0(x0i, xt, a, s) : P::to_eps(model_output[begin + i], xt, a, s);
                double v = a_prev * x0i + direction * eps;
                if (noisy) v += sigma * static_cast<double>(noise[begin + i]);
                x_prev[begin + i] = static_cast<T>(v);
            }
        });
}

// One DPM-Solver++(2M) step from t to t_prev (Lu et al., "DPM-Solver++", arXiv 2211.01095,
// Algorithm 2, data prediction), for every item of a batch. With α = sqrt(ᾱ), σ = sqrt(1 − ᾱ) and
// λ = log(α/σ):
//   x̂_0 = P::to_x0(out, x_t), clipped/thresholded as `x0` says; written to x0_out (for the next step)
//   h = λ_{t_prev} − λ_t;  D = x̂_0 (first order), or with the previous step's x̂_0' and h' (r = h'/h)
//   D = (1 + 1/(2r)) x̂_0 − (1/(2r)) x̂_0'                                            eq. (5.5)
//   x_prev = (σ_prev/σ_t) x_t − α_prev (e^{−h} − 1) D                                  eq. (5.4)
// The final step (t_prev = −1, ᾱ = 1, σ = 0) returns D = x̂_0, first order as diffusers'
// lower_order_final. x0_last absent (a default-constructed view) means first order. Returns h (0
// for the final step). Requires x_t, model_output, x_prev, x0_out (and x0_last) of one shape.
// Overwrites x_prev (which may alias x_t) and x0_out.
template <parameterization P = epsilon_prediction, real_scalar T>
double dpm_solver_pp_2m_step(const schedule_table& table, std::int64_t t, std::int64_t t_prev, double h_last,
                             tensor_view<const std::type_identity_t<T>> x_t,
                             tensor_view<const std::type_identity_t<T>> model_output, tensor_view<const double> x0_last,
                             tensor_view<double> x0_out, tensor_view<T> x_prev, const x0_options& x0 = {}) {
    detail::require_step_inputs<T>(table, t, t_prev, x_t, model_output, x_prev, "dpm_solver_pp_2m_step");
    detail::require_x0_options(x0);
    require_shape(x0_out.dims(), x_t.dims(), "dpm_solver_pp_2m_step x0_out");
    const bool second_order = !x0_last.absent() && t_prev >= 0;
    if (second_order) {
        require_shape(x0_last.dims(), x_t.dims(), "dpm_solver_pp_2m_step x0_last");
        require(h_last > 0.0 && std::isfinite(h_last),
                "dpm_solver_pp_2m_step: expected the previous step's h > 0, found ", h_last);
    }
    const auto k = static_cast<std::size_t>(t);
    const double a = table.sqrt_alphas_cumprod()[k], s = table.sqrt_one_minus_alphas_cumprod()[k];
    const double ab_prev = table.alpha_bar(t_prev);
    const double a_prev = std::sqrt(ab_prev), s_prev = std::sqrt(1.0 - ab_prev);
    const double h = t_prev >= 0 ? std::log(a_prev / s_prev) - std::log(a / s) : 0.0;
    const double r = second_order ? h_last / h : 1.0;
    const double c_new = second_order ? 1.0 + 0.5 / r : 1.0, c_old = second_order ? -0.5 / r : 0.0;
    const double keep = t_prev >= 0 ? s_prev / s : 0.0, push = t_prev >= 0 ? -a_prev * std::expm1(-h) : 1.0;
    detail::for_each_item_x0<P>(
        x_t, model_output, a, s, x0, x0_out.data(), [&](std::int64_t begin, std::int64_t n, const double* x0_hat) {
            for (std::int64_t i = 0; i < n; ++i) {
                const double d = second_order ? c_new * x0_hat[i] + c_old * x0_last[begin + i] : x0_hat[i];
                x_prev[begin + i] = static_cast<T>(keep * static_cast<double>(x_t[begin + i]) + push * d);
            }
        });
    return h;
}

// ---- Whole samplers ---------------------------------------------------------------------------

// Sampler noise layout: the noise of sample `index` at sampler step `step` (0: the starting x_T,
// i + 1: the noise of the i-th denoising step) is drawn in order from
//   philox_stream(seed, rng_purpose::sampler, step·2^40 + index).
inline constexpr int sampler_index_bits = 40;
inline constexpr std::uint64_t sampler_max_index = (std::uint64_t{1} << sampler_index_bits) - 1;
inline constexpr std::uint64_t sampler_max_step = (std::uint64_t{1} << (64 - sampler_index_bits)) - 1;

// Fills out (B, ...) with standard normals: item b from the stream of (seed, first_index + b, step).
inline void draw_sampler_noise(tensor_view<float> out, std::uint64_t seed, std::uint64_t first_index,
                               std::uint64_t step) {
    require(out.rank() >= 1, "draw_sampler_noise: expected a batch (B, ...), found shape ", out.dims());
    const std::int64_t batch = out.dim(0);
    if (batch == 0) return;
    require(step <= sampler_max_step, "draw_sampler_noise: expected step <= ", sampler_max_step, ", found ", step);
    require(first_index + static_cast<std::uint64_t>(batch - 1) <= sampler_max_index,
            "draw_sampler_noise: expected sample indices below 2^40, found first_index = ", first_index, " with ",
            batch, " samples");
    const std::int64_t per_item = out.numel() / batch;
    parallel_for(
        batch,
        [&](std::int64_t b) {
            philox_stream rng(seed, rng_purpose::sampler,
                              (step << sampler_index_bits) | (first_index + static_cast<std::uint64_t>(b)));
            for (std::int64_t i = b * per_item; i < (b + 1) * per_item; ++i) out[i] = rng.normal();
        },
        per_item * 32);
}

namespace detail {
// The model archetype the sampler concept is checked with.
struct denoiser_archetype {
    tensor_view<const float> predict(tensor_view<const float>, tensor_view<const std::int64_t>,
                                     tensor_view<const std::int64_t>);
};

inline shape batch_shape(std::int64_t n, const shape& item) {
    require(item.rank() >= 1 && item.rank() < shape::max_rank, "sampler: expected an item shape of rank 1 to ",
            shape::max_rank - 1, " such as (C, H, W), found ", item);
    require(item.numel() >= 1, "sampler: expected a non-empty item shape, found ", item);
    const auto d = [&](int i) { return item[i]; };
    switch (item.rank()) {
        case 1: return shape{n, d(0)};
        case 2: return shape{n, d(0), d(1)};
        case 3: return shape{n, d(0), d(1), d(2)};
        case 4: return shape{n, d(0), d(1), d(2), d(3)};
        default: return shape{n, d(0), d(1), d(2), d(3), d(4)};
    }
}

// The loop every sampler shares: x_T from the step-0 noise, then for each timestep one model call
// (two batches in one when guided) and one step. `step_fn(t, t_prev, x, out, draw)` advances x in
// place from the (guided) model output `out`, calling draw() for this step's noise only when the
// step needs some. The sampler's state and updates stay on the host (in double, as on the CPU), so
// a seed gives the same samples on every backend; a model on a backend without host memory gets
// x_t copied over and its output copied back, once per step (a few hundred KB for a batch of
// MNIST-sized images, small beside the U-Net's work).
template <class M, class StepFn>
tensor<float> run_sampler(M& model, const std::vector<std::int64_t>& timesteps, const sampler_options& options,
                          const shape& item_shape, std::int64_t count, tensor_view<const std::int64_t> labels,
                          std::uint64_t seed, std::uint64_t first_index, const char* who, StepFn&& step_fn) {
    static_assert(check_denoiser<M>());
    require(count >= 1, who, ": expected at least 1 sample, found count = ", count);
    const shape dims = batch_shape(count, item_shape);
    const bool has_labels = !(labels.data() == nullptr || labels.numel() == 0);
    if (has_labels) {
        if (!(labels.dims() == shape{count}))
            fail(who, ": expected ", count, " labels of shape ", shape{count}, " (one per sample), found shape ",
                 labels.dims());
        for (std::int64_t b = 0; b < count; ++b) {
            if (labels[b] < 0) fail(who, ": expected labels >= 0, found label ", labels[b], " for sample ", b);
            if (options.null_class >= 0 && labels[b] > options.null_class)
                fail(who, ": expected labels <= the null class ", options.null_class, ", found label ", labels[b],
                     " for sample ", b);
        }
    }
    const bool guided = options.guidance_scale != 1.0;
    if (guided) {
        require(has_labels, who, ": classifier-free guidance (scale ", options.guidance_scale,
                ") needs one label per sample, found none");
        require(options.null_class >= 0, who, ": classifier-free guidance (scale ", options.guidance_scale,
                ") needs the null class label (= num_classes), found null_class = ", options.null_class);
    }
    require(first_index + static_cast<std::uint64_t>(count - 1) <= sampler_max_index, who,
            ": expected sample indices below 2^40, found first_index = ", first_index, " with ", count, " samples");
    require(timesteps.size() <= sampler_max_step, who, ": too many steps (", timesteps.size(), ")");

    tensor<float> x(dims);  // (B, C, H, W)
    draw_sampler_noise(x.view(), seed, first_index, 0);
    const std::int64_t n = x.numel();
    const std::int64_t model_batch = guided ? 2 * count : count;
    tensor<float> model_x;  // (2B, C, H, W) when guided
    if (guided) model_x.resize(batch_shape(model_batch, item_shape));
    tensor<std::int64_t> model_t(shape{model_batch});
    tensor<std::int64_t> model_y(shape{has_labels ? model_batch : 0});
    for (std::int64_t b = 0; b < count && has_labels; ++b) {
        model_y[b] = labels[b];
        if (guided) model_y[count + b] = options.null_class;
    }
    tensor<float> out(dims);  // (B, C, H, W) guided output
    tensor<float> noise(dims);
    tensor<float, backend_of_t<M>> model_in;  // the model's input and output in its memory, when
    tensor<float> model_out;                  // that is not the host's

    for (std::size_t i = 0; i < timesteps.size(); ++i) {
        const std::int64_t t = timesteps[i];
        const std::int64_t t_prev = i + 1 < timesteps.size() ? timesteps[i + 1] : -1;
        model_t.fill(t);
        tensor_view<const float> in = x.view();
        if (guided) {
            std::copy(x.begin(), x.end(), model_x.begin());
            std::copy(x.begin(), x.end(), model_x.begin() + n);
            in = model_x.view();
        }
        tensor_view<const float> pred;
        if constexpr (denoiser<M>)
            pred = call_through<backend_of_t<M>>(
                [&](auto x) { return model.predict(x, model_t.view(), model_y.view()); }, in, model_in, model_out);
        // (else: the static_assert above)
        require_shape(pred.dims(), in.dims(), "denoiser output");
        if (guided) {
            const double w = options.guidance_scale;
            for (std::int64_t j = 0; j < n; ++j) {
                const double c = pred[j], u = pred[n + j];
                out[j] = static_cast<float>(u + w * (c - u));
            }
        } else {
            std::copy(pred.begin(), pred.end(), out.begin());
        }
        const auto draw = [&]() -> tensor_view<const float> {
            draw_sampler_noise(noise.view(), seed, first_index, static_cast<std::uint64_t>(i) + 1);
            return noise.view();
        };
        step_fn(t, t_prev, x.view(), tensor_view<const float>(out.view()), draw);
    }
    return x;
}
}  // namespace detail

// A sampler names itself, lists the timesteps it visits, and draws `count` samples of
// `item_shape` (labels: one per sample, or empty for an unconditional model), the sample with
// index first_index + b depending only on (seed, first_index + b).
template <class S>
concept sampler = requires(const S& s, detail::denoiser_archetype& m, const shape& item, std::int64_t count,
                           tensor_view<const std::int64_t> labels, std::uint64_t seed) {
    { S::name } -> std::convertible_to<const char*>;
    { s.timesteps() } -> std::convertible_to<const std::vector<std::int64_t>&>;
    { s.sample(m, item, count, labels, seed, seed) } -> std::same_as<tensor<float>>;
};

// static_assert(check_sampler<S>()) explains in words what S lacks.
template <class S>
constexpr bool check_sampler() {
    static_assert(
        requires {
            { S::name } -> std::convertible_to<const char*>;
        },
        "a sampler needs a name: `static constexpr const char* name = \"...\";`");
    static_assert(
        requires(const S& s) {
            { s.timesteps() } -> std::convertible_to<const std::vector<std::int64_t>&>;
        },
        "a sampler needs `const std::vector<std::int64_t>& timesteps() const`, the timesteps it visits");
    static_assert(
        requires(const S& s, detail::denoiser_archetype& m, const shape& item, std::int64_t count,
                 tensor_view<const std::int64_t> labels, std::uint64_t seed) {
            { s.sample(m, item, count, labels, seed, seed) } -> std::same_as<tensor<float>>;
        },
        "a sampler needs `template <denoiser M> tensor<float> sample(M& model, const shape& item_shape, "
        "std::int64_t count, tensor_view<const std::int64_t> labels, std::uint64_t seed, "
        "std::uint64_t first_index) const`");
    return sampler<S>;
}

namespace detail {
// What the samplers below share: their schedule, options and the timesteps they visit (checked
// and computed once, on construction), and sample()'s one-sample-per-label form; each sampler
// (Derived) provides the counted form, sample(model, item_shape, count, labels, seed, first_index).
template <class Derived>
class sampler_common {
public:
    const schedule_table& table() const { return table_; }
    const sampler_options& options() const { return options_; }
    const std::vector<std::int64_t>& timesteps() const { return timesteps_; }

    // One sample per label.
    template <class M>
    tensor<float> sample(M& model, const shape& item_shape, tensor_view<const std::int64_t> labels, std::uint64_t seed,
                         std::uint64_t first_index = 0) const {
        return static_cast<const Derived&>(*this).sample(model, item_shape, labels.numel(), labels, seed, first_index);
    }

protected:
    // Requires steps <= T, and steps >= 1, or steps >= 0 where zero_means_all (then 0 means all T);
    // and x_0 options that require_x0_options accepts. `who` names the sampler in the errors.
    sampler_common(const char* who, schedule_table table, std::int64_t steps, sampler_options options,
                   bool zero_means_all = false)
        : table_(std::move(table)), options_(options) {
        require(steps >= (zero_means_all ? 0 : 1) && steps <= table_.timesteps(), who, ": expected at most T = ",
                table_.timesteps(), zero_means_all ? " steps (0 for all), found " : " steps, found ", steps);
        require_x0_options(options_.x0);
        timesteps_ = make_timesteps(table_.timesteps(), steps == 0 ? table_.timesteps() : steps, options_.spacing);
    }

    schedule_table table_;
    sampler_options options_;
    std::vector<std::int64_t> timesteps_;
};
}  // namespace detail

// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) over all T timesteps, or over `steps` of
// them (a strided, respaced chain; see ddpm_step), for a model of parameterization P.
template <variance V = variance::fixed_small, parameterization P = epsilon_prediction>
class ddpm_ancestral : public detail::sampler_common<ddpm_ancestral<V, P>> {
    using common_ = detail::sampler_common<ddpm_ancestral<V, P>>;
    using common_::options_;
    using common_::table_;
    using common_::timesteps_;

public:
    static constexpr const char* name = "ddpm_ancestral";
    static constexpr variance variance_type = V;
    using parameterization_type = P;
    using common_::sample;

    // steps = 0 means all T. Requires 0 <= steps <= T.
    explicit ddpm_ancestral(schedule_table table, std::int64_t steps = 0, sampler_options options = {})
        : common_(name, std::move(table), steps, options, /*zero_means_all=*/true) {}

    // `count` samples (count, item_shape...) with labels (count) or empty; see sampler_options.
    template <class M>
    tensor<float> sample(M& model, const shape& item_shape, std::int64_t count, tensor_view<const std::int64_t> labels,
                         std::uint64_t seed, std::uint64_t first_index = 0) const {
        return detail::run_sampler(
            model, timesteps_, options_, item_shape, count, labels, seed, first_index, name,
            [&](std::int64_t t, std::int64_t t_prev, tensor_view<float> x, tensor_view<const float> out, auto&& draw) {
                const tensor_view<const float> z = t_prev >= 0 ? draw() : tensor_view<const float>{};
                ddpm_step<P, float>(table_, V, t, t_prev, x, out, z, x, options_.x0);
            });
    }
};

// DDIM (Song et al. 2021) with `Steps` steps and stochasticity η (0: deterministic), for a model
// of parameterization P. The step from each timestep goes to the next one of the sequence, and
// from the last to ᾱ = 1 (diffusers' set_alpha_to_one).
template <int Steps, parameterization P = epsilon_prediction>
class ddim : public detail::sampler_common<ddim<Steps, P>> {
    static_assert(Steps >= 1, "ddim<Steps>: Steps must be at least 1");
    using common_ = detail::sampler_common<ddim<Steps, P>>;
    using common_::options_;
    using common_::table_;
    using common_::timesteps_;

public:
    static constexpr const char* name = "ddim";
    static constexpr int steps = Steps;
    using parameterization_type = P;
    using common_::sample;

    // Requires Steps <= T and η >= 0.
    explicit ddim(schedule_table table, double eta = 0.0, sampler_options options = {})
        : common_(name, std::move(table), Steps, options), eta_(eta) {
        require(eta >= 0.0, "ddim: expected eta >= 0, found eta = ", eta);
    }

    double eta() const { return eta_; }

    template <class M>
    tensor<float> sample(M& model, const shape& item_shape, std::int64_t count, tensor_view<const std::int64_t> labels,
                         std::uint64_t seed, std::uint64_t first_index = 0) const {
        return detail::run_sampler(
            model, timesteps_, options_, item_shape, count, labels, seed, first_index, name,
            [&](std::int64_t t, std::int64_t t_prev, tensor_view<float> x, tensor_view<const float> out, auto&& draw) {
                const bool noisy = eta_ > 0.0 && t_prev >= 0;
                const tensor_view<const float> z = noisy ? draw() : tensor_view<const float>{};
                ddim_step<P, float>(table_, eta_, t, t_prev, x, out, z, x, options_.x0);
            });
    }

private:
    double eta_;
};

// DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095, Algorithm 2) with `Steps` model calls: the
// second-order multistep solver of the probability-flow ODE in data prediction, deterministic,
// for a model of parameterization P. Its first step is first order (no earlier x̂_0), and so is
// its last, which goes to ᾱ = 1 and returns x̂_0 (see dpm_solver_pp_2m_step). Guidance and x_0
// processing as every sampler (sampler_options); with guidance, the guided output is the one
// the solver integrates (as diffusers' pipelines do).
template <int Steps, parameterization P = epsilon_prediction>
class dpm_solver_pp_2m : public detail::sampler_common<dpm_solver_pp_2m<Steps, P>> {
    static_assert(Steps >= 1, "dpm_solver_pp_2m<Steps>: Steps must be at least 1");
    using common_ = detail::sampler_common<dpm_solver_pp_2m<Steps, P>>;
    using common_::options_;
    using common_::table_;
    using common_::timesteps_;

public:
    static constexpr const char* name = "dpm_solver_pp_2m";
    static constexpr int steps = Steps;
    using parameterization_type = P;
    using common_::sample;

    // Requires Steps <= T.
    explicit dpm_solver_pp_2m(schedule_table table, sampler_options options = {})
        : common_(name, std::move(table), Steps, options) {}

    template <class M>
    tensor<float> sample(M& model, const shape& item_shape, std::int64_t count, tensor_view<const std::int64_t> labels,
                         std::uint64_t seed, std::uint64_t first_index = 0) const {
        tensor<double> x0_now, x0_last;  // x̂_0 of this step and of the one before, (B, ...)
        double h_last = 0.0;
        bool have_last = false;
        return detail::run_sampler(
            model, timesteps_, options_, item_shape, count, labels, seed, first_index, name,
            [&](std::int64_t t, std::int64_t t_prev, tensor_view<float> x, tensor_view<const float> out, auto&&) {
                x0_now.resize(x.dims());
                x0_last.resize(x.dims());
                const tensor_view<const double> last =
                    have_last ? tensor_view<const double>(x0_last.view()) : tensor_view<const double>{};
                h_last = dpm_solver_pp_2m_step<P, float>(table_, t, t_prev, h_last, x, out, last, x0_now.view(), x,
                                                         options_.x0);
                std::swap(x0_now, x0_last);
                have_last = true;
            });
    }
};

static_assert(check_sampler<ddpm_ancestral<>>());
static_assert(check_sampler<ddim<50>>());
static_assert(check_sampler<dpm_solver_pp_2m<20>>());

}  // namespace ouro::diffusion
