// What a diffusion model predicts: the noise ε (Ho et al. 2020), the clean image x_0, or the
// velocity v (Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion Models",
// ICLR 2022). Each parameterization gives the training target from (x_0, ε, t) and turns a model
// output back into (x_0, ε) given x_t and t, with x_t = a x_0 + s ε, a = sqrt(ᾱ_t), s = sqrt(1 − ᾱ_t).
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "ouro/core/backend.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/diffusion/schedule.hpp"

namespace ouro::diffusion {

// ---- The concept ------------------------------------------------------------------------------

// Scalar maps in double; a and s are sqrt(ᾱ_t) and sqrt(1 − ᾱ_t).
template <class P>
concept parameterization = requires(double out, double x0, double eps, double x_t, double a, double s) {
    { P::name } -> std::convertible_to<const char*>;
    { P::target(x0, eps, a, s) } -> std::same_as<double>;
    { P::to_x0(out, x_t, a, s) } -> std::same_as<double>;
    { P::to_eps(out, x_t, a, s) } -> std::same_as<double>;
};

// static_assert(check_parameterization<P>()) explains in words what P lacks.
template <class P>
constexpr bool check_parameterization() {
    static_assert(requires { { P::name } -> std::convertible_to<const char*>; },
                  "a parameterization needs a name: `static constexpr const char* name = \"...\";`");
    static_assert(requires(double x0, double eps, double a, double s) {
                      { P::target(x0, eps, a, s) } -> std::same_as<double>;
                  },
                  "a parameterization needs `static double target(double x0, double eps, double a, double s)`, "
                  "the training target with a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t)");
    static_assert(requires(double out, double x_t, double a, double s) {
                      { P::to_x0(out, x_t, a, s) } -> std::same_as<double>;
                      { P::to_eps(out, x_t, a, s) } -> std::same_as<double>;
                  },
                  "a parameterization needs `static double to_x0(double out, double x_t, double a, double s)` and "
                  "`static double to_eps(...)`, turning a model output into its x0 and eps");
    return parameterization<P>;
}

// ---- The three parameterizations ---------------------------------------------------------------

// ε-prediction (Ho et al. 2020, eq. (11)-(14)): x_0 = (x_t − s ε)/a (DDPM eq. (15)).
struct epsilon_prediction {
    static constexpr const char* name = "epsilon";
    static double target(double /*x0*/, double eps, double /*a*/, double /*s*/) { return eps; }
    static double to_x0(double out, double x_t, double a, double s) { return (x_t - s * out) / a; }
    static double to_eps(double out, double /*x_t*/, double /*a*/, double /*s*/) { return out; }
};

// x_0-prediction (diffusers' "sample"): ε = (x_t − a x_0)/s.
struct x0_prediction {
    static constexpr const char* name = "x0";
    static double target(double x0, double /*eps*/, double /*a*/, double /*s*/) { return x0; }
    static double to_x0(double out, double /*x_t*/, double /*a*/, double /*s*/) { return out; }
    static double to_eps(double out, double x_t, double a, double s) { return (x_t - a * out) / s; }
};

// v-prediction (Salimans & Ho 2022, §4 and appendix D): v = a ε − s x_0; since a² + s² = 1,
// x_0 = a x_t − s v and ε = s x_t + a v.
struct v_prediction {
    static constexpr const char* name = "v";
    static double target(double x0, double eps, double a, double s) { return a * eps - s * x0; }
    static double to_x0(double out, double x_t, double a, double s) { return a * x_t - s * out; }
    static double to_eps(double out, double x_t, double a, double s) { return s * x_t + a * out; }
};

static_assert(check_parameterization<epsilon_prediction>());
static_assert(check_parameterization<x0_prediction>());
static_assert(check_parameterization<v_prediction>());

// ε from x_t and an x_0 estimate: (x_t − a x_0)/s (used after x_0 has been clipped or thresholded).
inline double eps_from_x0(double x0, double x_t, double a, double s) { return (x_t - a * x0) / s; }

// ---- Batched over (B, ...) with a timestep per item --------------------------------------------

namespace detail {
// Requires x of rank >= 1 with B = x.dim(0) >= 1 and t of shape (B) with every t_b in [0, T).
template <class T>
std::int64_t require_batch_timesteps(const schedule_table& table, tensor_view<const T> x,
                                     tensor_view<const std::int64_t> t, const char* who) {
    require(x.rank() >= 1 && x.dim(0) >= 1, who, ": expected a non-empty batch (B, ...), found shape ", x.dims());
    const std::int64_t batch = x.dim(0);
    if (!(t.dims() == shape{batch}))
        fail(who, ": expected timesteps of shape ", shape{batch}, " (one per item), found ", t.dims());
    for (std::int64_t b = 0; b < batch; ++b) table.require_timestep(t[b], who);
    return batch;
}
}  // namespace detail

// target = P::target(x0, eps, t) per item, e.g. v = a ε − s x_0 for v_prediction.
// Requires x0, eps and target of one shape (B, ...), t of shape (B) in [0, T). Overwrites target.
template <parameterization P, real_scalar T>
void training_target(const schedule_table& table, tensor_view<const std::type_identity_t<T>> x0,
                     tensor_view<const std::type_identity_t<T>> eps, tensor_view<const std::int64_t> t,
                     tensor_view<T> target) {
    require_shape(eps.dims(), x0.dims(), "training_target eps");
    require_shape(target.dims(), x0.dims(), "training_target target");
    const std::int64_t batch = detail::require_batch_timesteps(table, x0, t, "training_target");
    const std::int64_t per_item = x0.numel() / batch;
    parallel_for(
        batch,
        [&](std::int64_t b) {
            const auto k = static_cast<std::size_t>(t[b]);
            const double a = table.sqrt_alphas_cumprod()[k], s = table.sqrt_one_minus_alphas_cumprod()[k];
            for (std::int64_t i = b * per_item; i < (b + 1) * per_item; ++i)
                target[i] = static_cast<T>(P::target(x0[i], eps[i], a, s));
        },
        per_item * 4);
}

// (x0, eps) of a model output at (x_t, t) per item. Requires output, x_t, x0 and eps of one shape
// (B, ...), t of shape (B) in [0, T). Overwrites x0 and eps.
template <parameterization P, real_scalar T>
void split_prediction(const schedule_table& table, tensor_view<const std::type_identity_t<T>> output,
                      tensor_view<const std::type_identity_t<T>> x_t, tensor_view<const std::int64_t> t,
                      tensor_view<T> x0, tensor_view<T> eps) {
    require_shape(x_t.dims(), output.dims(), "split_prediction x_t");
    require_shape(x0.dims(), output.dims(), "split_prediction x0");
    require_shape(eps.dims(), output.dims(), "split_prediction eps");
    const std::int64_t batch = detail::require_batch_timesteps(table, output, t, "split_prediction");
    const std::int64_t per_item = output.numel() / batch;
    parallel_for(
        batch,
        [&](std::int64_t b) {
            const auto k = static_cast<std::size_t>(t[b]);
            const double a = table.sqrt_alphas_cumprod()[k], s = table.sqrt_one_minus_alphas_cumprod()[k];
            for (std::int64_t i = b * per_item; i < (b + 1) * per_item; ++i) {
                x0[i] = static_cast<T>(P::to_x0(output[i], x_t[i], a, s));
                eps[i] = static_cast<T>(P::to_eps(output[i], x_t[i], a, s));
            }
        },
        per_item * 8);
}

}  // namespace ouro::diffusion
