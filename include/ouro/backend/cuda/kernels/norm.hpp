// CUDA kernel bodies of group normalisation (Wu & He 2018, eqs. (1)-(2)), optionally fused with
// SiLU, and of its gradient, as ops<cpu>'s group_norm_forward, group_norm_silu_forward and their
// backwards (below). The forward: a first launch computes each
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
    else
        return ::fma(a, b, c);
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
    const T* x;               // (B, C, hw)
    const T* coefficients;    // (B, C, 2)
    T* y;                     // (B, C, hw)
    std::int64_t planes, hw;  // planes = B·C
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t n = planes * hw;
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const std::int64_t bc = i / hw;
            const T v = fma_of(coefficients[2 * bc], x[i], coefficients[2 * bc + 1]);
            if constexpr (Silu) y[i] = v / (T(1) + exp_of(-v));
            else
                y[i] = v;
        }
    }
};

// The gradient, in three launches as the CPU's backward_ computes it in two loops:
//  1. group_norm_backward_sums_body, one thread per (b, g): with Silu, the SiLU's gradient at the
//     forward's a·x + shift into dx (which then serves as the normalisation's dy); per channel
//     Σ dy·(x − mean) and Σ dy (into dev_sums, dy_sums (B, C), double), and the group's
//     coefficients of dx = r·γ_c·dy + coef_x·x + coef_0 (into group_coefficients (B, G, 2), double);
//  2. group_norm_backward_combine_body, per element: that dx, two fused multiply-adds as the CPU;
//  3. group_norm_backward_parameters_body, one thread per channel: dγ_c += Σ_b rstd·dev_sum,
//     dβ_c += Σ_b dy_sum, b in order.
template <class T, bool Silu>
struct group_norm_backward_sums_body {
    const T* x;                  // (B, C, hw)
    const T* dy;                 // (B, C, hw)
    const T* gamma;              // (C)
    const T* mean;               // (B, groups)
    const T* rstd;               // (B, groups)
    const T* coefficients;       // (B, C, 2) of the forward (Silu only)
    T* dx;                       // (B, C, hw): the SiLU's gradient (Silu only)
    double* dev_sums;            // (B, C)
    double* dy_sums;             // (B, C)
    double* group_coefficients;  // (B, groups, 2): coef_x, coef_0
    std::int64_t batch, channels, groups, hw;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t cg = channels / groups, n = cg * hw;
        for (std::int64_t item = at.first(); item < batch * groups; item += at.stride()) {
            const std::int64_t b = item / groups, g = item % groups, offset = item * n;
            const double m = static_cast<double>(mean[item]), r = static_cast<double>(rstd[item]);
            const T* g_dy = dy;
            if constexpr (Silu) {
                for (std::int64_t k = 0; k < cg; ++k) {
                    const std::int64_t bc = b * channels + g * cg + k;
                    const T a = coefficients[2 * bc], shift = coefficients[2 * bc + 1];
                    for (std::int64_t i = offset + k * hw; i < offset + (k + 1) * hw; ++i) {
                        const T v = fma_of(a, x[i], shift), sig = T(1) / (T(1) + exp_of(-v));
                        dx[i] = dy[i] * sig * fma_of(v, T(1) - sig, T(1));
                    }
                }
                g_dy = dx;
            }
            double sum_dxhat = 0, sum_dxhat_dev = 0;
            for (std::int64_t k = 0; k < cg; ++k) {
                const std::int64_t c = g * cg + k;
                double dev = 0, sum = 0;
                for (std::int64_t i = offset + k * hw; i < offset + (k + 1) * hw; ++i) {
                    dev += static_cast<double>(g_dy[i]) * (static_cast<double>(x[i]) - m);
                    sum += static_cast<double>(g_dy[i]);
                }
                dev_sums[b * channels + c] = dev;
                dy_sums[b * channels + c] = sum;
                const double gm = static_cast<double>(gamma[c]);
                sum_dxhat += gm * sum;
                sum_dxhat_dev += gm * dev;
            }
            const double m1 = sum_dxhat / static_cast<double>(n), m2 = sum_dxhat_dev / static_cast<double>(n);
            group_coefficients[2 * item] = -r * r * r * m2;
            group_coefficients[2 * item + 1] = r * r * r * m2 * m - r * m1;
        }
    }
};

// dx = a·dy + (coef_x·x + coef_0) with a = rstd·γ_c; dy is the SiLU's gradient already in dx when
// the forward was fused (pass dx as dy then: each element reads only itself).
template <class T>
struct group_norm_backward_combine_body {
    const T* dy;                       // (B, C, hw)
    const T* x;                        // (B, C, hw)
    const T* gamma;                    // (C)
    const T* rstd;                     // (B, groups)
    const double* group_coefficients;  // (B, groups, 2)
    T* dx;                             // (B, C, hw)
    std::int64_t batch, channels, groups, hw;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t cg = channels / groups, n = batch * channels * hw;
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const std::int64_t bc = i / hw, c = bc % channels, item = bc / channels * groups + c / cg;
            const T a = static_cast<T>(static_cast<double>(rstd[item]) * static_cast<double>(gamma[c]));
            const T bx = static_cast<T>(group_coefficients[2 * item]),
                    c0 = static_cast<T>(group_coefficients[2 * item + 1]);
            dx[i] = fma_of(a, dy[i], fma_of(bx, x[i], c0));
        }
    }
};

template <class T>
struct group_norm_backward_parameters_body {
    const T* rstd;           // (B, groups)
    const double* dev_sums;  // (B, C)
    const double* dy_sums;   // (B, C)
    T* dgamma;               // (C), accumulated into
    T* dbeta;                // (C), accumulated into
    std::int64_t batch, channels, groups;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t cg = channels / groups;
        for (std::int64_t c = at.first(); c < channels; c += at.stride()) {
            double dg = 0, db = 0;
            for (std::int64_t b = 0; b < batch; ++b) {
                dg += static_cast<double>(rstd[b * groups + c / cg]) * dev_sums[b * channels + c];
                db += dy_sums[b * channels + c];
            }
            dgamma[c] += static_cast<T>(dg);
            dbeta[c] += static_cast<T>(db);
        }
    }
};

}  // namespace ouro::cuda_kernels
