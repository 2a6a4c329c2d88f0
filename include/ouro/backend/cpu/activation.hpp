// CPU kernels: pointwise activations (SiLU, ReLU) and their gradients, vectorised with xsimd.
#pragma once

#include "ouro/backend/cpu/detail/simd_warnings_off.hpp"  // xsimd, GCC bug 105593

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ouro/backend/cpu/elementwise.hpp"  // pointwise_detail::map
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

// SiLU of one vector of lanes, the one formula every SiLU of the CPU backend uses (silu_forward
// and group_norm_silu_forward), so that a fused and an unfused pass give the same bits.
template <class T>
xsimd::batch<T> silu_lanes(xsimd::batch<T> v) {
    return v / (xsimd::batch<T>(T(1)) + xsimd::exp(-v));
}

// The SiLU's gradient dy·σ(v)·(1 + v·(1 − σ(v))) of one vector of lanes, shared likewise by
// silu_backward and group_norm_silu_backward.
template <class T>
xsimd::batch<T> silu_grad_lanes(xsimd::batch<T> v, xsimd::batch<T> dy) {
    const xsimd::batch<T> one(T(1));
    const xsimd::batch<T> s = one / (one + xsimd::exp(-v));
    return dy * s * xsimd::fma(v, one - s, one);
}

// y[i] = silu(a·x[i] + shift) for i < n (a GroupNorm's affine map of one channel, then SiLU):
// whole vectors, then the tail through one zero-padded vector, as silu_forward's map does. The
// one loop behind group_norm_silu_forward and conv2d_forward_silu_affine, which both call it on
// whole planes (H·W values of one image and channel), so the two give the same bits. Call it on
// the same spans only: at -O1 g++ compiles the vector and the tail statements with different
// contractions, so a value's bits there may depend on whether it fell in the tail.
// y may not overlap x unless y == x.
template <class T>
void silu_affine_span(const T* x, T* y, std::int64_t n, T a, T shift) {
    using batch = xsimd::batch<T>;
    constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
    const std::int64_t vec_end = n / w * w;
    const batch av(a), sv(shift);
    for (std::int64_t i = 0; i < vec_end; i += w)
        silu_lanes(xsimd::fma(av, xsimd::load_unaligned(x + i), sv)).store_unaligned(y + i);
    if (vec_end < n) {
        alignas(64) T tail[w] = {};
        for (std::int64_t i = vec_end; i < n; ++i) tail[i - vec_end] = std::fma(a, x[i], shift);
        silu_lanes(xsimd::load_aligned(tail)).store_aligned(tail);
        std::copy(tail, tail + (n - vec_end), y + vec_end);
    }
}

struct activation_ops {
    // SiLU (Swish-1; Elfwing, Uchibe & Doya 2018; Ramachandran et al. 2017): y = x·σ(x).
    // Requires y of x's shape (any rank); overwrites y.
    template <real_scalar T>
    static void silu_forward(tensor_view<const T> x, tensor_view<T> y) {
        require_shape(y.dims(), x.dims(), "silu_forward y");
        pointwise_detail::map(
            y.data(), x.numel(), 24, [](xsimd::batch<T> v) { return silu_lanes(v); }, x.data());
    }

    // dx = dy·σ(x)·(1 + x·(1 − σ(x))), the derivative of x·σ(x) (as torch's silu_backward).
    // Requires x of the forward, dy and dx of x's shape; overwrites dx.
    template <real_scalar T>
    static void silu_backward(tensor_view<const T> x, tensor_view<const T> dy, tensor_view<T> dx) {
        require_shape(dy.dims(), x.dims(), "silu_backward dy");
        require_shape(dx.dims(), x.dims(), "silu_backward dx");
        using batch = xsimd::batch<T>;
        pointwise_detail::map(
            dx.data(), x.numel(), 28, [](batch v, batch g) { return silu_grad_lanes(v, g); }, x.data(), dy.data());
    }

    // y = max(x, 0); NaN stays NaN (as torch.relu). Requires y of x's shape; overwrites y.
    template <real_scalar T>
    static void relu_forward(tensor_view<const T> x, tensor_view<T> y) {
        require_shape(y.dims(), x.dims(), "relu_forward y");
        using batch = xsimd::batch<T>;
        pointwise_detail::map(
            y.data(), x.numel(), 2, [](batch v) { return xsimd::select(v < batch(T(0)), batch(T(0)), v); }, x.data());
    }

    // dx = dy where y > 0, else 0 (the subgradient 0 at 0, as torch's threshold_backward). `y` is
    // the forward output; the forward input gives the same answer, since y > 0 exactly when x > 0.
    // Requires dy and dx of y's shape; overwrites dx.
    template <real_scalar T>
    static void relu_backward(tensor_view<const T> y, tensor_view<const T> dy, tensor_view<T> dx) {
        require_shape(dy.dims(), y.dims(), "relu_backward dy");
        require_shape(dx.dims(), y.dims(), "relu_backward dx");
        using batch = xsimd::batch<T>;
        pointwise_detail::map(
            dx.data(), y.numel(), 2, [](batch v, batch g) { return xsimd::select(v > batch(T(0)), g, batch(T(0))); },
            y.data(), dy.data());
    }
};

}  // namespace ouro::cpu_kernels

#include "ouro/backend/cpu/detail/simd_warnings_on.hpp"
