// CUDA kernel bodies of group normalisation (Wu & He 2018, eqs. (1)-(2)), optionally fused with
// SiLU, as ops<cpu>'s group_norm_forward and group_norm_silu_forward: a first launch computes each
// (sample, group)'s mean and 1/std in double (two passes, in index order: the same order whatever
// the grid) and each (sample, channel)'s affine map y = a·x + shift; a second applies it per
// element, with one fused multiply-add as the CPU does. One thread per (sample, group) in the first
// launch is slow for large groups on a GPU, but it needs no cooperation between threads, so the
// emulated launch runs it exactly; a block-cooperative version comes with a cooperative emulation.
#pragma once

#include <cmath>
#include <cstdint>

#include "ouro/backend/cuda/kernels/pointwise.hpp"  // exp_of, sqrt_of
#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// fma of float or double, from CUDA's math library on the device and <cmath> on the host.
template <class T>
OURO_HOST_DEVICE T fma_of(T a, T b, T c) {
#if defined(__CUDA_ARCH__)
    if constexpr (sizeof(T) == 4) return ::fmaf(a, b, c);
    else return ::fma(a, b, c);
#else
    return std::fma(a, b, c);
#endif
}

// Per item = (b, g) of x (B, C, hw) with C = groups·cg: mean, rstd = 1/sqrt(var + eps) (biased
// variance), and for each of its cg channels c the map (a, shift) = (rstd·γ_c, β_c − mean·a),
// written to coefficients[(b·C + c)·2 …] (B, C, 2). mean and rstd may be null.
template <class T>
struct group_norm_stats_body {
    const T* x;       // (B, C, hw)
    const T* gamma;   // (C)
    const T* beta;    // (C)
    T* mean;          // (B, groups) or null
    T* rstd;          // (B, groups) or null
    T* coefficients;  // (B, C, 2)
    std::int64_t batch, channels, groups, hw;
    double eps;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t cg = channels / groups, n = cg * hw;
        for (std::int64_t item = at.first(); item < batch * groups; item += at.stride()) {
            const T* xs = x + item * n;
            double sum = 0;
            for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(xs[i]);
            const double m = sum / static_cast<double>(n);
            double squares = 0;
            for (std::int64_t i = 0; i < n; ++i) {
                const double d = static_cast<double>(xs[i]) - m;
                squares += d * d;
            }
            const double r = 1.0 / sqrt_of{}(squares / static_cast<double>(n) + eps);
            if (mean) mean[item] = static_cast<T>(m);
            if (rstd) rstd[item] = static_cast<T>(r);
            const std::int64_t g = item % groups, b = item / groups;
            for (std::int64_t k = 0; k < cg; ++k) {
                const std::int64_t c = g * cg + k;
                const double a = r * static_cast<double>(gamma[c]);
                coefficients[2 * (b * channels + c)] = static_cast<T>(a);
                coefficients[2 * (b * channels + c) + 1] = static_cast<T>(static_cast<double>(beta[c]) - m * a);
            }
        }
    }
};

// y = a·x + shift (one fused multiply-add) with (a, shift) of the element's (b, c), then SiLU
// when Silu: the CPU's affine_ and silu_lanes.
template <class T, bool Silu>
struct group_norm_apply_body {
    const T* x;             // (B, C, hw)
    const T* coefficients;  // (B, C, 2)
    T* y;                   // (B, C, hw)
    std::int64_t planes, hw;  // planes = B·C
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t n = planes * hw;
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const std::int64_t bc = i / hw;
            const T v = fma_of(coefficients[2 * bc], x[i], coefficients[2 * bc + 1]);
            if constexpr (Silu) y[i] = v / (T(1) + exp_of(-v));
            else y[i] = v;
        }
    }
};

}  // namespace ouro::cuda_kernels
