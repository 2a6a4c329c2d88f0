// CPU kernels: group normalisation (Wu & He, "Group Normalization", ECCV 2018) forward and backward,
// the normalisation of every DDPM / guided-diffusion U-Net block. Statistics are vectorised with
// xsimd and accumulated in double, in an order fixed by the sizes alone.
#pragma once

#include "ouro/backend/cpu/detail/simd_warnings_off.hpp"  // xsimd, GCC bug 105593

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ouro/backend/cpu/activation.hpp"  // silu_lanes
#include "ouro/backend/op_params.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

struct norm_ops {
    // Group norm over x of shape (B, C), (B, C, L) or (B, C, H, W): the C channels are split into
    // `groups` consecutive groups; per (sample b, group g), with n = (C / G)·(spatial size),
    //   mean = Σ x / n,  var = Σ (x − mean)² / n  (biased, as torch),  rstd = 1 / sqrt(var + eps)
    //   y = (x − mean)·rstd·gamma[c] + beta[c]                       (Wu & He 2018, eqs. (1)-(2))
    // Requires B >= 1, groups >= 1 dividing C, gamma and beta (C), y of x's shape, mean and rstd
    // (B, G). Overwrites y, mean and rstd (the backward needs the last two).
    template <real_scalar T>
    static void group_norm_forward(tensor_view<const T> x,      // (B, C, ...)
                                   tensor_view<const T> gamma,  // (C)
                                   tensor_view<const T> beta,   // (C)
                                   tensor_view<T> y,            // (B, C, ...)
                                   tensor_view<T> mean,         // (B, G)
                                   tensor_view<T> rstd,         // (B, G)
                                   std::int64_t groups, double eps = 1e-5) {
        const layout_ lay = check_group_norm("group_norm_forward", x.dims(), groups);
        require_shape(gamma.dims(), shape{lay.c}, "group_norm_forward gamma (C)");
        require_shape(beta.dims(), shape{lay.c}, "group_norm_forward beta (C)");
        require_shape(y.dims(), x.dims(), "group_norm_forward y");
        require_shape(mean.dims(), shape{lay.b, groups}, "group_norm_forward mean (B, G)");
        require_shape(rstd.dims(), shape{lay.b, groups}, "group_norm_forward rstd (B, G)");
        require(eps >= 0, "group_norm_forward: expected eps >= 0, found ", eps);
        forward_<false>(x, gamma, beta, y, mean.data(), rstd.data(), static_cast<T*>(nullptr), groups, eps, lay);
    }

    // y = silu(group_norm(x)) in one pass, for inference (nothing kept for a backward): the same
    // bits as group_norm_forward followed by silu_forward, without writing and re-reading the
    // normalised tensor. Requires what group_norm_forward does, less mean and rstd.
    template <real_scalar T>
    static void group_norm_silu_forward(tensor_view<const T> x,      // (B, C, ...)
                                        tensor_view<const T> gamma,  // (C)
                                        tensor_view<const T> beta,   // (C)
                                        tensor_view<T> y,            // (B, C, ...)
                                        std::int64_t groups, double eps = 1e-5) {
        const layout_ lay = check_group_norm("group_norm_silu_forward", x.dims(), groups);
        require_shape(gamma.dims(), shape{lay.c}, "group_norm_silu_forward gamma (C)");
        require_shape(beta.dims(), shape{lay.c}, "group_norm_silu_forward beta (C)");
        require_shape(y.dims(), x.dims(), "group_norm_silu_forward y");
        require(eps >= 0, "group_norm_silu_forward: expected eps >= 0, found ", eps);
        forward_<true>(x, gamma, beta, y, static_cast<T*>(nullptr), static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                       groups, eps, lay);
    }

    // The same for training: also writes what group_norm_silu_backward needs, mean and rstd (B, G)
    // as group_norm_forward does, and each (b, c)'s affine map of x, coefficients (B, C, 2) =
    // (scale, shift), so that the backward recomputes the normalised values bit for bit instead of
    // keeping them: y = silu(scale·x + shift).
    template <real_scalar T>
    static void group_norm_silu_forward(tensor_view<const T> x,       // (B, C, ...)
                                        tensor_view<const T> gamma,   // (C)
                                        tensor_view<const T> beta,    // (C)
                                        tensor_view<T> y,             // (B, C, ...)
                                        tensor_view<T> mean,          // (B, G)
                                        tensor_view<T> rstd,          // (B, G)
                                        tensor_view<T> coefficients,  // (B, C, 2)
                                        std::int64_t groups, double eps = 1e-5) {
        const layout_ lay = check_group_norm("group_norm_silu_forward", x.dims(), groups);
        require_shape(gamma.dims(), shape{lay.c}, "group_norm_silu_forward gamma (C)");
        require_shape(beta.dims(), shape{lay.c}, "group_norm_silu_forward beta (C)");
        require_shape(y.dims(), x.dims(), "group_norm_silu_forward y");
        require_shape(mean.dims(), shape{lay.b, groups}, "group_norm_silu_forward mean (B, G)");
        require_shape(rstd.dims(), shape{lay.b, groups}, "group_norm_silu_forward rstd (B, G)");
        require_shape(coefficients.dims(), shape{lay.b, lay.c, 2}, "group_norm_silu_forward coefficients (B, C, 2)");
        require(eps >= 0, "group_norm_silu_forward: expected eps >= 0, found ", eps);
        forward_<true>(x, gamma, beta, y, mean.data(), rstd.data(), coefficients.data(), groups, eps, lay);
    }

    // Only the coefficients (B, C, 2) = (scale, shift) of group_norm_silu_forward, for inference: a
    // consumer applies y = silu(scale·x + shift) as it reads x (conv2d_forward_silu_affine), so the
    // normalised tensor is never written. The same bits as the training variant's coefficients.
    template <real_scalar T>
    static void group_norm_silu_coefficients(tensor_view<const T> x,       // (B, C, ...)
                                             tensor_view<const T> gamma,   // (C)
                                             tensor_view<const T> beta,    // (C)
                                             tensor_view<T> coefficients,  // (B, C, 2)
                                             std::int64_t groups, double eps = 1e-5) {
        const layout_ lay = check_group_norm("group_norm_silu_coefficients", x.dims(), groups);
        require_shape(gamma.dims(), shape{lay.c}, "group_norm_silu_coefficients gamma (C)");
        require_shape(beta.dims(), shape{lay.c}, "group_norm_silu_coefficients beta (C)");
        require_shape(coefficients.dims(), shape{lay.b, lay.c, 2},
                      "group_norm_silu_coefficients coefficients (B, C, 2)");
        require(eps >= 0, "group_norm_silu_coefficients: expected eps >= 0, found ", eps);
        forward_<true>(x, gamma, beta, tensor_view<T>{}, static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                       coefficients.data(), groups, eps, lay);
    }

    // Gradient of group_norm_silu_forward (training variant): the SiLU's gradient at the recomputed
    // normalised values, then group_norm_backward's, in one pass per group; the same bits as
    // silu_backward followed by group_norm_backward. Requires the forward's x, mean, rstd and
    // coefficients, dy and dx of x's shape, gamma, dgamma and dbeta (C). Overwrites dx (also its
    // scratch), accumulates into dgamma and dbeta.
    template <real_scalar T>
    static void group_norm_silu_backward(tensor_view<const T> x,             // (B, C, ...)
                                         tensor_view<const T> dy,            // (B, C, ...)
                                         tensor_view<const T> gamma,         // (C)
                                         tensor_view<const T> mean,          // (B, G)
                                         tensor_view<const T> rstd,          // (B, G)
                                         tensor_view<const T> coefficients,  // (B, C, 2)
                                         tensor_view<T> dx,                  // (B, C, ...)
                                         tensor_view<T> dgamma,              // (C)
                                         tensor_view<T> dbeta) {             // (C)
        require(x.rank() >= 2, "group_norm_silu_backward: expected x of shape (B, C, ...), found shape ", x.dims());
        require_shape(coefficients.dims(), shape{x.dim(0), x.dim(1), 2},
                      "group_norm_silu_backward coefficients (B, C, 2)");
        backward_<true>(x, dy, gamma, mean, rstd, coefficients.data(), dx, dgamma, dbeta);
    }

    // Gradient of group_norm_forward, with xhat = (x − mean)·rstd and dxhat = dy·gamma[c]:
    //   dx     = rstd·(dxhat − mean_g(dxhat) − xhat·mean_g(dxhat·xhat))   (mean_g over the group)
    //   dgamma += Σ_{b, spatial} dy·xhat,   dbeta += Σ_{b, spatial} dy
    // Requires x, gamma and the mean and rstd (B, G) of the matching forward (G is read from them),
    // dy and dx of x's shape, dgamma and dbeta (C). Overwrites dx, accumulates into dgamma and dbeta
    // (summed over the batch in order b = 0, 1, ..., so at any thread count the sums are the same).
    template <real_scalar T>
    static void group_norm_backward(tensor_view<const T> x,      // (B, C, ...)
                                    tensor_view<const T> dy,     // (B, C, ...)
                                    tensor_view<const T> gamma,  // (C)
                                    tensor_view<const T> mean,   // (B, G)
                                    tensor_view<const T> rstd,   // (B, G)
                                    tensor_view<T> dx,           // (B, C, ...)
                                    tensor_view<T> dgamma,       // (C)
                                    tensor_view<T> dbeta) {      // (C)
        backward_<false>(x, dy, gamma, mean, rstd, static_cast<const T*>(nullptr), dx, dgamma, dbeta);
    }

private:
    using layout_ = group_norm_layout;

    // group_norm_backward, and with Silu group_norm_silu_backward (coefficients not null).
    template <bool Silu, class T>
    static void backward_(tensor_view<const T> x, tensor_view<const T> dy, tensor_view<const T> gamma,
                          tensor_view<const T> mean, tensor_view<const T> rstd, const T* coefficients,
                          tensor_view<T> dx, tensor_view<T> dgamma, tensor_view<T> dbeta) {
#define OURO_NORM_NAME_(suffix) (Silu ? "group_norm_silu_backward " suffix : "group_norm_backward " suffix)
        require_rank(mean.dims(), 2, OURO_NORM_NAME_("mean"), "(B, G)");
        const std::int64_t groups = mean.dim(1);
        const layout_ lay =
            check_group_norm(Silu ? "group_norm_silu_backward" : "group_norm_backward", x.dims(), groups);
        require_shape(mean.dims(), shape{lay.b, groups}, OURO_NORM_NAME_("mean (B, G)"));
        require_shape(rstd.dims(), shape{lay.b, groups}, OURO_NORM_NAME_("rstd (B, G)"));
        require_shape(dy.dims(), x.dims(), OURO_NORM_NAME_("dy"));
        require_shape(dx.dims(), x.dims(), OURO_NORM_NAME_("dx"));
        require_shape(gamma.dims(), shape{lay.c}, OURO_NORM_NAME_("gamma (C)"));
        require_shape(dgamma.dims(), shape{lay.c}, OURO_NORM_NAME_("dgamma (C)"));
        require_shape(dbeta.dims(), shape{lay.c}, OURO_NORM_NAME_("dbeta (C)"));
#undef OURO_NORM_NAME_
        const std::int64_t b_count = lay.b, c_count = lay.c, cg = c_count / groups, hw = lay.hw, n = cg * hw;

        // Per (b, c): Σ dy·(x − mean) and Σ dy, kept for the parameter gradients. The per-thread
        // buffer keeps steady-state training free of allocations.
        thread_local std::vector<double> scratch;
        scratch.resize(static_cast<std::size_t>(2 * b_count * c_count));
        double* const dev_sums = scratch.data();
        double* const dy_sums = scratch.data() + b_count * c_count;

        parallel_for(
            b_count * groups,
            [&](std::int64_t item) {
                const std::int64_t b = item / groups, g = item % groups;
                const std::int64_t offset = item * n;
                const double m = static_cast<double>(mean[item]), r = static_cast<double>(rstd[item]);
                const T* g_dy = dy.data();
                if constexpr (Silu) {
                    // The SiLU's gradient at y = scale·x + shift (the forward's bits), into this
                    // group's span of dx, which then serves as the normalisation's dy.
                    for (std::int64_t k = 0; k < cg; ++k) {
                        const std::int64_t o = offset + k * hw, bc = b * c_count + g * cg + k;
                        silu_of_affine_grad_(x.data() + o, dy.data() + o, dx.data() + o, hw, coefficients[2 * bc],
                                             coefficients[2 * bc + 1]);
                    }
                    g_dy = dx.data();
                }
                double sum_dxhat = 0, sum_dxhat_dev = 0;  // Σ dxhat and Σ dxhat·(x − mean) over the group
                for (std::int64_t k = 0; k < cg; ++k) {
                    const std::int64_t c = g * cg + k;
                    const double dev = dot_deviation_(g_dy + offset + k * hw, x.data() + offset + k * hw, hw, m);
                    const double s = sum_(g_dy + offset + k * hw, hw);
                    dev_sums[b * c_count + c] = dev;
                    dy_sums[b * c_count + c] = s;
                    const double gm = static_cast<double>(gamma[c]);
                    sum_dxhat += gm * s;
                    sum_dxhat_dev += gm * dev;
                }
                // dx = A_c·dy + B·x + C0 with mean_g(dxhat) = m1 and mean_g(dxhat·xhat) = r·m2:
                //   A_c = r·gamma[c],  B = −r³·m2,  C0 = r³·m2·mean − r·m1
                const double m1 = sum_dxhat / static_cast<double>(n), m2 = sum_dxhat_dev / static_cast<double>(n);
                const double coef_x = -r * r * r * m2;
                const double coef_0 = r * r * r * m2 * m - r * m1;
                for (std::int64_t k = 0; k < cg; ++k) {
                    const std::int64_t c = g * cg + k;
                    const double a = r * static_cast<double>(gamma[c]);
                    const std::int64_t o = offset + k * hw;
                    combine_(g_dy + o, x.data() + o, dx.data() + o, hw, static_cast<T>(a), static_cast<T>(coef_x),
                             static_cast<T>(coef_0));
                }
            },
            10 * n);

        parallel_for(
            c_count,
            [&](std::int64_t c) {
                const std::int64_t g = c / cg;
                double dg = 0, db = 0;
                for (std::int64_t b = 0; b < b_count; ++b) {
                    dg += static_cast<double>(rstd[b * groups + g]) * dev_sums[b * c_count + c];
                    db += dy_sums[b * c_count + c];
                }
                dgamma[c] += static_cast<T>(dg);
                dbeta[c] += static_cast<T>(db);
            },
            4 * b_count);
    }

    // The forward on checked arguments: y = affine (then SiLU when Silu) unless y is absent; mean,
    // rstd and coefficients written when not null. Each (b, g) group is one contiguous span of n
    // elements with its own statistics.
    template <bool Silu, class T>
    static void forward_(tensor_view<const T> x, tensor_view<const T> gamma, tensor_view<const T> beta,
                         tensor_view<T> y, T* mean, T* rstd, T* coefficients, std::int64_t groups, double eps,
                         const layout_& lay) {
        const std::int64_t cg = lay.c / groups, hw = lay.hw, n = cg * hw;
        parallel_for(
            lay.b * groups,
            [&](std::int64_t item) {
                const std::int64_t g = item % groups;
                const std::int64_t offset = item * n;
                const T* xs = x.data() + offset;
                const double m = sum_(xs, n) / static_cast<double>(n);
                const double var = sum_squared_deviation_(xs, n, m) / static_cast<double>(n);
                const double r = 1.0 / std::sqrt(var + eps);
                if (mean) mean[item] = static_cast<T>(m);
                if (rstd) rstd[item] = static_cast<T>(r);
                for (std::int64_t k = 0; k < cg; ++k) {
                    const std::int64_t c = g * cg + k;
                    const double a = r * static_cast<double>(gamma[c]);
                    const double shift = static_cast<double>(beta[c]) - m * a;
                    if (coefficients) {
                        const std::int64_t bc = item / groups * lay.c + c;
                        coefficients[2 * bc] = static_cast<T>(a);
                        coefficients[2 * bc + 1] = static_cast<T>(shift);
                    }
                    if (!y.absent())
                        affine_<Silu>(xs + k * hw, y.data() + offset + k * hw, hw, static_cast<T>(a),
                                      static_cast<T>(shift));
                }
            },
            (Silu ? 32 : 8) * n);
    }

    // Sums over n elements in blocks of `block_` elements: SIMD lanes in T within a block (few terms
    // per lane, so float keeps its precision), blocks and the scalar tail in double. The order of
    // additions depends on n only.
    static constexpr std::int64_t block_ = 1024;

    template <class T, class Vec, class Scalar>
    static double reduce_(std::int64_t n, Vec&& vec_term, Scalar&& scalar_term) {
        using batch = xsimd::batch<T>;
        constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
        const std::int64_t vec_end = n / w * w;
        double total = 0;
        for (std::int64_t begin = 0; begin < vec_end; begin += block_) {
            const std::int64_t end = std::min(vec_end, begin + block_);
            batch acc(T(0));
            for (std::int64_t i = begin; i < end; i += w) acc += vec_term(i);
            total += static_cast<double>(xsimd::hadd(acc));
        }
        for (std::int64_t i = vec_end; i < n; ++i) total += scalar_term(i);
        return total;
    }

    // Σ p[i]
    template <class T>
    static double sum_(const T* p, std::int64_t n) {
        return reduce_<T>(
            n, [&](std::int64_t i) { return xsimd::load_unaligned(p + i); },
            [&](std::int64_t i) { return static_cast<double>(p[i]); });
    }

    // Σ (p[i] − m)²
    template <class T>
    static double sum_squared_deviation_(const T* p, std::int64_t n, double m) {
        const xsimd::batch<T> mv(static_cast<T>(m));
        return reduce_<T>(
            n,
            [&](std::int64_t i) {
                const auto d = xsimd::load_unaligned(p + i) - mv;
                return d * d;
            },
            [&](std::int64_t i) {
                const double d = static_cast<double>(p[i]) - m;
                return d * d;
            });
    }

    // Σ dy[i]·(x[i] − m)
    template <class T>
    static double dot_deviation_(const T* dy, const T* x, std::int64_t n, double m) {
        const xsimd::batch<T> mv(static_cast<T>(m));
        return reduce_<T>(
            n, [&](std::int64_t i) { return xsimd::load_unaligned(dy + i) * (xsimd::load_unaligned(x + i) - mv); },
            [&](std::int64_t i) { return static_cast<double>(dy[i]) * (static_cast<double>(x[i]) - m); });
    }

    // y = a·x + shift over n elements, then SiLU when Silu. The SiLU runs on whole vectors, the
    // tail's through a zero-padded one, as silu_forward's does (the same bits).
    template <bool Silu = false, class T>
    static void affine_(const T* x, T* y, std::int64_t n, T a, T shift) {
        if constexpr (Silu) {
            silu_affine_span(x, y, n, a, shift);
        } else {
            using batch = xsimd::batch<T>;
            constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
            const std::int64_t vec_end = n / w * w;
            const batch av(a), sv(shift);
            for (std::int64_t i = 0; i < vec_end; i += w)
                xsimd::fma(av, xsimd::load_unaligned(x + i), sv).store_unaligned(y + i);
            for (std::int64_t i = vec_end; i < n; ++i) y[i] = std::fma(a, x[i], shift);
        }
    }

    // out = silu'(v)·dy at v = a·x + shift over n elements (silu_grad_lanes on whole vectors, the
    // tail through a zero-padded one, as silu_backward does). out may alias dy.
    template <class T>
    static void silu_of_affine_grad_(const T* x, const T* dy, T* out, std::int64_t n, T a, T shift) {
        using batch = xsimd::batch<T>;
        constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
        const std::int64_t vec_end = n / w * w;
        const batch av(a), sv(shift);
        for (std::int64_t i = 0; i < vec_end; i += w)
            silu_grad_lanes(xsimd::fma(av, xsimd::load_unaligned(x + i), sv), xsimd::load_unaligned(dy + i))
                .store_unaligned(out + i);
        if (vec_end < n) {
            alignas(64) T v[w] = {}, g[w] = {};
            for (std::int64_t i = vec_end; i < n; ++i) {
                v[i - vec_end] = std::fma(a, x[i], shift);
                g[i - vec_end] = dy[i];
            }
            silu_grad_lanes(xsimd::load_aligned(v), xsimd::load_aligned(g)).store_aligned(v);
            std::copy(v, v + (n - vec_end), out + vec_end);
        }
    }

    // dx = a·dy + (bx·x + c0) over n elements.
    template <class T>
    static void combine_(const T* dy, const T* x, T* dx, std::int64_t n, T a, T bx, T c0) {
        using batch = xsimd::batch<T>;
        constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
        const std::int64_t vec_end = n / w * w;
        const batch av(a), bv(bx), cv(c0);
        for (std::int64_t i = 0; i < vec_end; i += w)
            xsimd::fma(av, xsimd::load_unaligned(dy + i), xsimd::fma(bv, xsimd::load_unaligned(x + i), cv))
                .store_unaligned(dx + i);
        for (std::int64_t i = vec_end; i < n; ++i) dx[i] = std::fma(a, dy[i], std::fma(bx, x[i], c0));
    }
};

}  // namespace ouro::cpu_kernels

#include "ouro/backend/cpu/detail/simd_warnings_on.hpp"
