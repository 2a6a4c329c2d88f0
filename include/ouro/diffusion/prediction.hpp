// What a diffusion model predicts, as scalar maps: the noise ε (Ho et al. 2020), the clean image
// x_0, or the velocity v (Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion
// Models", ICLR 2022), with x_t = a x_0 + s ε, a = sqrt(ᾱ_t), s = sqrt(1 − ᾱ_t). No tensors here:
// the maps are host-device functions, which the CPU's batched forms (parameterization.hpp) and the
// CUDA backend's sampler bodies (backend/cuda/kernels/diffusion.hpp) both call.
#pragma once

#include <concepts>

#include "ouro/core/host_device.hpp"

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
    static_assert(
        requires {
            { P::name } -> std::convertible_to<const char*>;
        },
        "a parameterization needs a name: `static constexpr const char* name = \"...\";`");
    static_assert(
        requires(double x0, double eps, double a, double s) {
            { P::target(x0, eps, a, s) } -> std::same_as<double>;
        },
        "a parameterization needs `static double target(double x0, double eps, double a, double s)`, "
        "the training target with a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t)");
    static_assert(
        requires(double out, double x_t, double a, double s) {
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
    OURO_HOST_DEVICE static double target(double /*x0*/, double eps, double /*a*/, double /*s*/) { return eps; }
    OURO_HOST_DEVICE static double to_x0(double out, double x_t, double a, double s) { return (x_t - s * out) / a; }
    OURO_HOST_DEVICE static double to_eps(double out, double /*x_t*/, double /*a*/, double /*s*/) { return out; }
};

// x_0-prediction (diffusers' "sample"): ε = (x_t − a x_0)/s.
struct x0_prediction {
    static constexpr const char* name = "x0";
    OURO_HOST_DEVICE static double target(double x0, double /*eps*/, double /*a*/, double /*s*/) { return x0; }
    OURO_HOST_DEVICE static double to_x0(double out, double /*x_t*/, double /*a*/, double /*s*/) { return out; }
    OURO_HOST_DEVICE static double to_eps(double out, double x_t, double a, double s) { return (x_t - a * out) / s; }
};

// v-prediction (Salimans & Ho 2022, §4 and appendix D): v = a ε − s x_0; since a² + s² = 1,
// x_0 = a x_t − s v and ε = s x_t + a v.
struct v_prediction {
    static constexpr const char* name = "v";
    OURO_HOST_DEVICE static double target(double x0, double eps, double a, double s) { return a * eps - s * x0; }
    OURO_HOST_DEVICE static double to_x0(double out, double x_t, double a, double s) { return a * x_t - s * out; }
    OURO_HOST_DEVICE static double to_eps(double out, double x_t, double a, double s) { return s * x_t + a * out; }
};

static_assert(check_parameterization<epsilon_prediction>());
static_assert(check_parameterization<x0_prediction>());
static_assert(check_parameterization<v_prediction>());

// ε from x_t and an x_0 estimate: (x_t − a x_0)/s (used after x_0 has been clipped or thresholded).
OURO_HOST_DEVICE inline double eps_from_x0(double x0, double x_t, double a, double s) { return (x_t - a * x0) / s; }

}  // namespace ouro::diffusion
