// CPU kernels: nearest-neighbour 2× upsampling (torch.nn.functional.interpolate(mode="nearest",
// scale_factor=2), the first half of a U-Net's Upsample) and concatenation along channels (the
// U-Net's skip connections), with their gradients.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ouro/backend/op_params.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

struct resample_ops {
    // y[n, c, i, j] = x[n, c, ⌊i/2⌋, ⌊j/2⌋]. Requires a non-empty x and y of shape (B, C, 2H, 2W).
    // Overwrites y.
    template <real_scalar T>
    static void upsample_nearest2x_forward(tensor_view<const T> x,  // (B, C, H, W)
                                           tensor_view<T> y) {      // (B, C, 2H, 2W)
        check_upsample_nearest2x("upsample_nearest2x_forward", x.dims(), "input x", y.dims(), "output y");
        const std::int64_t h = x.dim(2), w = x.dim(3);
        parallel_for(
            x.dim(0) * x.dim(1),
            [&](std::int64_t plane) {
                const T* in = x.data() + plane * h * w;
                T* out = y.data() + plane * 4 * h * w;
                for (std::int64_t i = 0; i < h; ++i) {
                    T* even = out + 2 * i * 2 * w;
                    for (std::int64_t j = 0; j < w; ++j) even[2 * j] = even[2 * j + 1] = in[i * w + j];
                    std::copy(even, even + 2 * w, even + 2 * w);
                }
            },
            4 * h * w);
    }

    // dx[n, c, i, j] = sum of dy over the 2×2 block (2i..2i+1, 2j..2j+1), as
    // (dy[2i, 2j] + dy[2i, 2j+1]) + (dy[2i+1, 2j] + dy[2i+1, 2j+1]). Requires dx non-empty and dy of
    // shape (B, C, 2H, 2W). Overwrites dx.
    template <real_scalar T>
    static void upsample_nearest2x_backward(tensor_view<const T> dy,  // (B, C, 2H, 2W)
                                            tensor_view<T> dx) {      // (B, C, H, W)
        check_upsample_nearest2x("upsample_nearest2x_backward", dx.dims(), "input gradient dx", dy.dims(), "dy");
        const std::int64_t h = dx.dim(2), w = dx.dim(3);
        parallel_for(
            dx.dim(0) * dx.dim(1),
            [&](std::int64_t plane) {
                const T* in = dy.data() + plane * 4 * h * w;
                T* out = dx.data() + plane * h * w;
                for (std::int64_t i = 0; i < h; ++i) {
                    const T* even = in + 2 * i * 2 * w;
                    const T* odd = even + 2 * w;
                    for (std::int64_t j = 0; j < w; ++j)
                        out[i * w + j] = (even[2 * j] + even[2 * j + 1]) + (odd[2 * j] + odd[2 * j + 1]);
                }
            },
            4 * h * w);
    }

    // y = cat([a, b], dim=1). Requires a and b non-empty with equal B, H, W, and y of shape
    // (B, Ca + Cb, H, W). Overwrites y.
    template <real_scalar T>
    static void concat_channels_forward(tensor_view<const T> a,  // (B, Ca, H, W)
                                        tensor_view<const T> b,  // (B, Cb, H, W)
                                        tensor_view<T> y) {      // (B, Ca + Cb, H, W)
        const shape ys = concat_channels_output_shape("concat_channels_forward", a.dims(), b.dims());
        require_shape(y.dims(), ys, "concat_channels_forward output y (B, Ca + Cb, H, W)");
        const std::int64_t na = a.numel() / a.dim(0), nb = b.numel() / b.dim(0);
        parallel_for(
            a.dim(0),
            [&](std::int64_t n) {
                T* out = y.data() + n * (na + nb);
                std::copy(a.data() + n * na, a.data() + (n + 1) * na, out);
                std::copy(b.data() + n * nb, b.data() + (n + 1) * nb, out + na);
            },
            na + nb);
    }

    // The split of dy along channels: da = dy[:, :Ca], db = dy[:, Ca:]. Requires da and db non-empty
    // with equal B, H, W and dy of shape (B, Ca + Cb, H, W). Overwrites da and db.
    template <real_scalar T>
    static void concat_channels_backward(tensor_view<const T> dy,  // (B, Ca + Cb, H, W)
                                         tensor_view<T> da,        // (B, Ca, H, W)
                                         tensor_view<T> db) {      // (B, Cb, H, W)
        const shape ys = concat_channels_output_shape("concat_channels_backward", da.dims(), db.dims());
        require_shape(dy.dims(), ys, "concat_channels_backward dy (B, Ca + Cb, H, W)");
        const std::int64_t na = da.numel() / da.dim(0), nb = db.numel() / db.dim(0);
        parallel_for(
            da.dim(0),
            [&](std::int64_t n) {
                const T* in = dy.data() + n * (na + nb);
                std::copy(in, in + na, da.data() + n * na);
                std::copy(in + na, in + na + nb, db.data() + n * nb);
            },
            na + nb);
    }
};

}  // namespace ouro::cpu_kernels
