// CUDA kernel bodies of 2-D average and max pooling (square windows, no padding, floor mode), as
// ops<cpu>'s pool_ops. The gradients, scatters on the CPU, are gathers here: each input position
// adds the contributions of the windows that hold it, in output order as the CPU adds them, so the
// bits are the CPU's and no thread writes another's element (no atomics).
#pragma once

#include <cstdint>

#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// A pooling's geometry: planes (B·C) of h×w in, ho×wo out, kernel and stride.
struct pool_geometry {
    std::int64_t planes, h, w, ho, wo, kernel, stride;
    // The outputs (i in [i0, i1], j in [j0, j1]) whose windows hold input row r, column c.
    OURO_HOST_DEVICE void windows_holding(std::int64_t r, std::int64_t c, std::int64_t& i0, std::int64_t& i1,
                                          std::int64_t& j0, std::int64_t& j1) const {
        i0 = r < kernel ? 0 : (r - kernel) / stride + 1;
        i1 = r / stride < ho - 1 ? r / stride : ho - 1;
        j0 = c < kernel ? 0 : (c - kernel) / stride + 1;
        j1 = c / stride < wo - 1 ? c / stride : wo - 1;
    }
};

// y = the window's sum, row by row, divided by kernel² (in T, as the CPU).
template <class T>
struct avg_pool2d_forward_body {
    const T* x;  // (planes, h, w)
    T* y;        // (planes, ho, wo)
    pool_geometry g;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const T divisor = static_cast<T>(g.kernel * g.kernel);
        for (std::int64_t k = at.first(); k < g.planes * g.ho * g.wo; k += at.stride()) {
            const std::int64_t j = k % g.wo, i = k / g.wo % g.ho, p = k / (g.wo * g.ho);
            const T* window = x + p * g.h * g.w + i * g.stride * g.w + j * g.stride;
            T sum(0);
            for (std::int64_t u = 0; u < g.kernel; ++u)
                for (std::int64_t v = 0; v < g.kernel; ++v) sum += window[u * g.w + v];
            y[k] = sum / divisor;
        }
    }
};

// dx[r, c] = Σ over the windows (i, j) holding (r, c), in output order, of dy[i, j] / kernel².
template <class T>
struct avg_pool2d_backward_body {
    const T* dy;  // (planes, ho, wo)
    T* dx;        // (planes, h, w)
    pool_geometry g;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const T divisor = static_cast<T>(g.kernel * g.kernel);
        for (std::int64_t k = at.first(); k < g.planes * g.h * g.w; k += at.stride()) {
            const std::int64_t c = k % g.w, r = k / g.w % g.h, p = k / (g.w * g.h);
            std::int64_t i0, i1, j0, j1;
            g.windows_holding(r, c, i0, i1, j0, j1);
            T sum(0);
            for (std::int64_t i = i0; i <= i1; ++i)
                for (std::int64_t j = j0; j <= j1; ++j) sum += dy[(p * g.ho + i) * g.wo + j] / divisor;
            dx[k] = sum;
        }
    }
};

// y = the window's maximum and indices its flat position r·w + c: scanned row by row, a later
// entry wins only if strictly larger or NaN (ties to the first, NaN propagates), as the CPU.
template <class T>
struct max_pool2d_forward_body {
    const T* x;             // (planes, h, w)
    T* y;                   // (planes, ho, wo)
    std::int64_t* indices;  // (planes, ho, wo)
    pool_geometry g;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t k = at.first(); k < g.planes * g.ho * g.wo; k += at.stride()) {
            const std::int64_t j = k % g.wo, i = k / g.wo % g.ho, p = k / (g.wo * g.ho);
            const T* in = x + p * g.h * g.w;
            std::int64_t best_at = i * g.stride * g.w + j * g.stride;
            T best = in[best_at];
            bool first = true;
            for (std::int64_t u = 0; u < g.kernel; ++u)
                for (std::int64_t v = 0; v < g.kernel; ++v) {
                    const std::int64_t pos = (i * g.stride + u) * g.w + j * g.stride + v;
                    const T value = in[pos];
                    if (first || value > best || value != value) {  // value != value: NaN
                        best = value;
                        best_at = pos;
                        first = false;
                    }
                }
            y[k] = best;
            indices[k] = best_at;
        }
    }
};

// dx[r, c] = Σ over the windows holding (r, c) whose index is r·w + c, in output order, of dy.
template <class T>
struct max_pool2d_backward_body {
    const T* dy;                  // (planes, ho, wo)
    const std::int64_t* indices;  // (planes, ho, wo), each in [0, h·w) (checked on the host)
    T* dx;                        // (planes, h, w)
    pool_geometry g;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t k = at.first(); k < g.planes * g.h * g.w; k += at.stride()) {
            const std::int64_t c = k % g.w, r = k / g.w % g.h, p = k / (g.w * g.h);
            std::int64_t i0, i1, j0, j1;
            g.windows_holding(r, c, i0, i1, j0, j1);
            T sum(0);
            for (std::int64_t i = i0; i <= i1; ++i)
                for (std::int64_t j = j0; j <= j1; ++j) {
                    const std::int64_t o = (p * g.ho + i) * g.wo + j;
                    if (indices[o] == r * g.w + c) sum += dy[o];
                }
            dx[k] = sum;
        }
    }
};

}  // namespace ouro::cuda_kernels
