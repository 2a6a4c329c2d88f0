// CPU kernels: elementwise arithmetic shared by layers (residual sums, broadcasting an embedding over
// a feature map and its gradient, accumulation), and the vectorised loop the pointwise kernels share.
#pragma once

#include "ouro/backend/cpu/detail/simd_warnings_off.hpp"  // xsimd, GCC bug 105593

#include <algorithm>
#include <cstdint>

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

namespace pointwise_detail {

// Elements per parallel work item: a multiple of every SIMD width, so only the last item has a tail.
inline constexpr std::int64_t chunk_elements = 4096;

// out[i] = f(a[i], b[i], ...) for i in [0, n), with f taking and returning xsimd::batch<T>.
// The tail is run through f on a zero-padded batch, so every element goes through the same
// vector code (a scalar tail would use other exp/log approximations and give position-dependent
// results). Work items are fixed chunks, so results do not depend on the thread count.
template <class T, class F, class... In>
void map(T* out, std::int64_t n, std::int64_t cost_per_element, F f, const In*... in) {
    using batch = xsimd::batch<T>;
    constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
    static_assert(chunk_elements % w == 0, "pointwise_detail::map: chunk size must be a multiple of the SIMD width");
    const std::int64_t chunks = (n + chunk_elements - 1) / chunk_elements;
    parallel_for(
        chunks,
        [&](std::int64_t c) {
            const std::int64_t begin = c * chunk_elements, end = std::min(n, begin + chunk_elements);
            const std::int64_t vec_end = begin + (end - begin) / w * w;
            for (std::int64_t i = begin; i < vec_end; i += w)
                f(xsimd::load_unaligned(in + i)...).store_unaligned(out + i);
            if (vec_end < end) {
                const std::int64_t tail = end - vec_end;
                auto padded = [&](const T* p) {
                    alignas(64) T buf[w] = {};
                    std::copy(p + vec_end, p + end, buf);
                    return xsimd::load_aligned(buf);
                };
                alignas(64) T result[w];
                f(padded(in)...).store_aligned(result);
                std::copy(result, result + tail, out + vec_end);
            }
        },
        chunk_elements * cost_per_element);
}

}  // namespace pointwise_detail

struct elementwise_ops {
    // y = a + b. Requires a, b and y of one shape (any rank); overwrites y.
    template <real_scalar T>
    static void elementwise_add(tensor_view<const T> a, tensor_view<const T> b, tensor_view<T> y) {
        require_shape(b.dims(), a.dims(), "elementwise_add b");
        require_shape(y.dims(), a.dims(), "elementwise_add y");
        pointwise_detail::map<T>(
            y.data(), a.numel(), 1, [](auto u, auto v) { return u + v; }, a.data(), b.data());
    }

    // y[b, c, ...] = x[b, c, ...] + v[b, c]: h + emb[:, :, None, None] of guided-diffusion's ResBlock.
    // Requires x (B, C, ...) of rank >= 2, v (B, C), y of x's shape; overwrites y.
    template <real_scalar T>
    static void add_per_channel(tensor_view<const T> x,  // (B, C, ...)
                                tensor_view<const T> v,  // (B, C)
                                tensor_view<T> y) {      // (B, C, ...)
        require(x.rank() >= 2, "add_per_channel: expected x of shape (B, C, ...), found shape ", x.dims());
        require_shape(v.dims(), shape{x.dim(0), x.dim(1)}, "add_per_channel v (B, C)");
        require_shape(y.dims(), x.dims(), "add_per_channel y");
        const std::int64_t planes = x.dim(0) * x.dim(1), n = planes == 0 ? 0 : x.numel() / planes;
        parallel_for(
            planes,
            [&](std::int64_t p) {
                const T* in = x.data() + p * n;
                T* out = y.data() + p * n;
                const T shift = v[p];
                for (std::int64_t i = 0; i < n; ++i) out[i] = in[i] + shift;
            },
            n);
    }

    // y[b, c] = Σ x[b, c, ...] over the trailing axes, summed in index order in double: the gradient
    // of add_per_channel with respect to v. Requires x of rank >= 2, y (B, C); overwrites y.
    template <real_scalar T>
    static void sum_per_channel(tensor_view<const T> x,  // (B, C, ...)
                                tensor_view<T> y) {      // (B, C)
        require(x.rank() >= 2, "sum_per_channel: expected x of shape (B, C, ...), found shape ", x.dims());
        require_shape(y.dims(), shape{x.dim(0), x.dim(1)}, "sum_per_channel y (B, C)");
        const std::int64_t planes = x.dim(0) * x.dim(1), n = planes == 0 ? 0 : x.numel() / planes;
        parallel_for(
            planes,
            [&](std::int64_t p) {
                const T* in = x.data() + p * n;
                double sum = 0;
                for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(in[i]);
                y[p] = static_cast<T>(sum);
            },
            n);
    }

    // y += x. Requires x and y of one shape; the parameter-free gradient sum of a branch point.
    template <real_scalar T>
    static void accumulate(tensor_view<const T> x, tensor_view<T> y) {
        require_shape(x.dims(), y.dims(), "accumulate x");
        pointwise_detail::map<T>(
            y.data(), y.numel(), 1, [](auto u, auto v) { return u + v; }, y.data(), x.data());
    }

    // y = (1 + w)·y − w·x: extrapolation from x through y (SIMS's negative guidance, y the base
    // model's output, x the auxiliary's). One serial pass, as that combination has always run.
    template <real_scalar T>
    static void extrapolate_away(tensor_view<const T> x, tensor_view<T> y, T w) {
        require_shape(x.dims(), y.dims(), "extrapolate_away x");
        T* o = y.data();
        const T* a = x.data();
        for (std::int64_t i = 0, n = y.numel(); i < n; ++i) o[i] = (T(1) + w) * o[i] - w * a[i];
    }
};

}  // namespace ouro::cpu_kernels

#include "ouro/backend/cpu/detail/simd_warnings_on.hpp"
