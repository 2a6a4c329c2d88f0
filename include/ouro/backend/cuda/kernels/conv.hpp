// The CUDA backend's 2-D convolution as im2col + GEMM per image (the classic lowering of
// Chellapilla et al. 2006, what cuDNN's IMPLICIT_GEMM does without the buffer): its cuBLAS calls as
// plain data, as kernels/linear.hpp, tested on the CPU through reference_gemm against ops<cpu>,
// and the bodies that lower and raise the image (im2col, and col2im as a gather: each input pixel
// sums its taps in a fixed order, no atomics) and add the bias and its gradient.
//
// Per image b, with K = Cin·k·k and P = Ho·Wo (row-major; cuBLAS sees each matrix transposed):
//   cols (K, P) = im2col(x_b);        y_b (Cout, P) = W (Cout, K) · cols
//   dcols (K, P) = Wᵀ · dy_b;         dx_b = col2im(dcols)
//   dW (Cout, K) += dy_b · colsᵀ
#pragma once

#include <cstdint>

#include "ouro/backend/cuda/kernels/linear.hpp"
#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// One image's geometry.
struct conv_geometry {
    std::int64_t cin, h, w, cout, k, stride, padding, ho, wo;
    OURO_HOST_DEVICE std::int64_t taps() const { return cin * k * k; }  // K
    OURO_HOST_DEVICE std::int64_t pixels() const { return ho * wo; }    // P
};

// y_b (Cout, P) = W (Cout, K) · cols (K, P): column-major y_bᵀ (P, Cout) = colsᵀ (P, K) · Wᵀ (K, Cout).
inline gemm_call conv_forward_gemm(const conv_geometry& g) {
    return {.transpose_a = false,
            .transpose_b = false,
            .m = g.pixels(),
            .n = g.cout,
            .k = g.taps(),
            .lda = g.pixels(),
            .ldb = g.taps(),
            .ldc = g.pixels(),
            .beta = 0};
}
// dcols (K, P) = Wᵀ (K, Cout) · dy_b (Cout, P): column-major dcolsᵀ (P, K) = dy_bᵀ (P, Cout) · W (Cout, K).
inline gemm_call conv_input_gradient_gemm(const conv_geometry& g) {
    return {.transpose_a = false,
            .transpose_b = true,
            .m = g.pixels(),
            .n = g.taps(),
            .k = g.cout,
            .lda = g.pixels(),
            .ldb = g.taps(),
            .ldc = g.pixels(),
            .beta = 0};
}
// dW (Cout, K) += dy_b (Cout, P) · colsᵀ (P, K): column-major dWᵀ (K, Cout) = cols (K, P) · dy_bᵀ (P, Cout).
inline gemm_call conv_weight_gradient_gemm(const conv_geometry& g) {
    return {.transpose_a = true,
            .transpose_b = false,
            .m = g.taps(),
            .n = g.cout,
            .k = g.pixels(),
            .lda = g.pixels(),
            .ldb = g.pixels(),
            .ldc = g.taps(),
            .beta = 1};
}

// cols[(c·k + ky)·k + kx, oy·Wo + ox] = x[c, oy·s − p + ky, ox·s − p + kx], 0 outside the image.
template <class T>
struct im2col_body {
    const T* x;  // (Cin, H, W), one image
    T* cols;     // (K, P)
    conv_geometry g;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t n = g.taps() * g.pixels();
        for (std::int64_t e = at.first(); e < n; e += at.stride()) {
            const std::int64_t tap = e / g.pixels(), pixel = e % g.pixels();
            const std::int64_t c = tap / (g.k * g.k), ky = tap / g.k % g.k, kx = tap % g.k;
            const std::int64_t iy = pixel / g.wo * g.stride - g.padding + ky,
                               ix = pixel % g.wo * g.stride - g.padding + kx;
            cols[e] = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w ? x[(c * g.h + iy) * g.w + ix] : T(0);
        }
    }
};

// dx[c, iy, ix] = Σ over taps (ky, kx) in order of dcols[(c·k + ky)·k + kx, oy·Wo + ox] for the
// outputs (oy, ox) that read (iy, ix): a gather, one thread per input pixel.
template <class T>
struct col2im_body {
    const T* dcols;  // (K, P)
    T* dx;           // (Cin, H, W), one image, overwritten
    conv_geometry g;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t n = g.cin * g.h * g.w;
        for (std::int64_t e = at.first(); e < n; e += at.stride()) {
            const std::int64_t c = e / (g.h * g.w), iy = e / g.w % g.h, ix = e % g.w;
            T sum(0);
            for (std::int64_t ky = 0; ky < g.k; ++ky) {
                const std::int64_t ty = iy + g.padding - ky;  // = oy·s
                if (ty < 0 || ty % g.stride != 0 || ty / g.stride >= g.ho) continue;
                for (std::int64_t kx = 0; kx < g.k; ++kx) {
                    const std::int64_t tx = ix + g.padding - kx;
                    if (tx < 0 || tx % g.stride != 0 || tx / g.stride >= g.wo) continue;
                    sum += dcols[((c * g.k + ky) * g.k + kx) * g.pixels() + ty / g.stride * g.wo + tx / g.stride];
                }
            }
            dx[e] = sum;
        }
    }
};

// y[b, c, i] += bias[c] over (batch, channels, plane).
template <class T>
struct add_channel_bias_body {
    T* y;           // (batch, channels, plane)
    const T* bias;  // (channels)
    std::int64_t batch, channels, plane;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t n = batch * channels * plane;
        for (std::int64_t e = at.first(); e < n; e += at.stride()) y[e] += bias[e / plane % channels];
    }
};

// db[c] += Σ_b Σ_i dy[b, c, i], images in order, then pixels, in double; one thread per channel.
template <class T>
struct add_channel_sums_body {
    const T* dy;  // (batch, channels, plane)
    T* db;        // (channels)
    std::int64_t batch, channels, plane;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t c = at.first(); c < channels; c += at.stride()) {
            double sum = 0;
            for (std::int64_t b = 0; b < batch; ++b)
                for (std::int64_t i = 0; i < plane; ++i) sum += static_cast<double>(dy[(b * channels + c) * plane + i]);
            db[c] += static_cast<T>(sum);
        }
    }
};

}  // namespace ouro::cuda_kernels
