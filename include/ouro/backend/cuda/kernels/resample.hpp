// CUDA kernel bodies of resampling and concatenation, as ops<cpu>'s resample_ops: nearest 2×
// upsampling and its gradient (each input position sums its 2×2 block in the CPU's order, one
// thread per position, so the same bits), and the channel concatenation and its split. Every
// thread writes its own outputs: no cooperation, exact under the emulated launch.
#pragma once

#include <cstdint>

#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// y[p, i, j] = x[p, ⌊i/2⌋, ⌊j/2⌋] over planes p = (n, c): x (planes, h, w), y (planes, 2h, 2w).
template <class T>
struct upsample_nearest2x_forward_body {
    const T* x;
    T* y;
    std::int64_t planes, h, w;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t wide = 2 * w, n = planes * 2 * h * wide;
        for (std::int64_t k = at.first(); k < n; k += at.stride()) {
            const std::int64_t j = k % wide, i = k / wide % (2 * h), p = k / (wide * 2 * h);
            y[k] = x[(p * h + i / 2) * w + j / 2];
        }
    }
};

// dx[p, i, j] = (dy[2i, 2j] + dy[2i, 2j+1]) + (dy[2i+1, 2j] + dy[2i+1, 2j+1]) of plane p.
template <class T>
struct upsample_nearest2x_backward_body {
    const T* dy;  // (planes, 2h, 2w)
    T* dx;        // (planes, h, w)
    std::int64_t planes, h, w;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t n = planes * h * w, wide = 2 * w;
        for (std::int64_t k = at.first(); k < n; k += at.stride()) {
            const std::int64_t j = k % w, i = k / w % h, p = k / (w * h);
            const T* top = dy + (p * 2 * h + 2 * i) * wide + 2 * j;
            const T* bottom = top + wide;
            dx[k] = (top[0] + top[1]) + (bottom[0] + bottom[1]);
        }
    }
};

// y (B, Ca + Cb, hw) = cat([a (B, Ca, hw), b (B, Cb, hw)], dim = 1); na = Ca·hw, nb = Cb·hw.
template <class T>
struct concat_channels_forward_body {
    const T* a;
    const T* b;
    T* y;
    std::int64_t batch, na, nb;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t item = na + nb, n = batch * item;
        for (std::int64_t k = at.first(); k < n; k += at.stride()) {
            const std::int64_t s = k / item, r = k % item;
            y[k] = r < na ? a[s * na + r] : b[s * nb + r - na];
        }
    }
};

// da = dy[:, :Ca], db = dy[:, Ca:], the split of the concatenation's gradient.
template <class T>
struct concat_channels_backward_body {
    const T* dy;
    T* da;
    T* db;
    std::int64_t batch, na, nb;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t item = na + nb, n = batch * item;
        for (std::int64_t k = at.first(); k < n; k += at.stride()) {
            const std::int64_t s = k / item, r = k % item;
            if (r < na) da[s * na + r] = dy[k];
            else
                db[s * nb + r - na] = dy[k];
        }
    }
};

}  // namespace ouro::cuda_kernels
