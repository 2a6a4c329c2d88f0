// CPU kernels: 2-D average and max pooling over square windows without padding (floor mode), as
// torch.nn.functional.avg_pool2d / max_pool2d(return_indices=True), with their gradients.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ouro/backend/op_params.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

struct pool_ops {
    // y[n, c, i, j] = mean of x over the window at (stride·i, stride·j): the window's sum, row by
    // row, divided by kernel². Requires y of pool2d_output_shape. Overwrites y.
    template <real_scalar T>
    static void avg_pool2d_forward(tensor_view<const T> x,  // (B, C, H, W)
                                   tensor_view<T> y,        // (B, C, Ho, Wo)
                                   std::int64_t kernel, std::int64_t stride) {
        const geometry_ g = geometry_of_("avg_pool2d_forward", x.dims(), kernel, stride);
        require_shape(y.dims(), g.out, "avg_pool2d_forward output y (B, C, Ho, Wo)");
        const T divisor = static_cast<T>(kernel * kernel);
        parallel_for(
            g.planes,
            [&](std::int64_t plane) {
                const T* in = x.data() + plane * g.h * g.w;
                T* out = y.data() + plane * g.ho * g.wo;
                for (std::int64_t i = 0; i < g.ho; ++i)
                    for (std::int64_t j = 0; j < g.wo; ++j) {
                        const T* window = in + i * stride * g.w + j * stride;
                        T sum(0);
                        for (std::int64_t u = 0; u < kernel; ++u)
                            for (std::int64_t v = 0; v < kernel; ++v) sum += window[u * g.w + v];
                        out[i * g.wo + j] = sum / divisor;
                    }
            },
            g.ho * g.wo * kernel * kernel);
    }

    // dx = ∂L/∂x given dy: every window spreads dy / kernel² over its entries; overlapping windows
    // add up in output order. Requires dy of the output shape of dx's. Overwrites dx.
    template <real_scalar T>
    static void avg_pool2d_backward(tensor_view<const T> dy,  // (B, C, Ho, Wo)
                                    tensor_view<T> dx,        // (B, C, H, W)
                                    std::int64_t kernel, std::int64_t stride) {
        const geometry_ g = geometry_of_("avg_pool2d_backward", dx.dims(), kernel, stride);
        require_shape(dy.dims(), g.out, "avg_pool2d_backward dy (B, C, Ho, Wo)");
        const T divisor = static_cast<T>(kernel * kernel);
        parallel_for(
            g.planes,
            [&](std::int64_t plane) {
                const T* in = dy.data() + plane * g.ho * g.wo;
                T* out = dx.data() + plane * g.h * g.w;
                std::fill(out, out + g.h * g.w, T(0));
                for (std::int64_t i = 0; i < g.ho; ++i)
                    for (std::int64_t j = 0; j < g.wo; ++j) {
                        const T share = in[i * g.wo + j] / divisor;
                        T* window = out + i * stride * g.w + j * stride;
                        for (std::int64_t u = 0; u < kernel; ++u)
                            for (std::int64_t v = 0; v < kernel; ++v) window[u * g.w + v] += share;
                    }
            },
            g.ho * g.wo * kernel * kernel);
    }

    // y = the window maxima, indices = their flat positions h·W + w within the (H, W) plane, as
    // PyTorch returns them. Windows are scanned row by row and a later entry wins only if it is
    // strictly larger or NaN, so ties go to the first entry and NaN propagates, as in PyTorch's CPU
    // kernel. Requires y and indices of pool2d_output_shape. Overwrites both.
    template <real_scalar T>
    static void max_pool2d_forward(tensor_view<const T> x,             // (B, C, H, W)
                                   tensor_view<T> y,                   // (B, C, Ho, Wo)
                                   tensor_view<std::int64_t> indices,  // (B, C, Ho, Wo)
                                   std::int64_t kernel, std::int64_t stride) {
        const geometry_ g = geometry_of_("max_pool2d_forward", x.dims(), kernel, stride);
        require_shape(y.dims(), g.out, "max_pool2d_forward output y (B, C, Ho, Wo)");
        require_shape(indices.dims(), g.out, "max_pool2d_forward indices (B, C, Ho, Wo)");
        parallel_for(
            g.planes,
            [&](std::int64_t plane) {
                const T* in = x.data() + plane * g.h * g.w;
                T* out = y.data() + plane * g.ho * g.wo;
                std::int64_t* idx = indices.data() + plane * g.ho * g.wo;
                for (std::int64_t i = 0; i < g.ho; ++i)
                    for (std::int64_t j = 0; j < g.wo; ++j) {
                        std::int64_t best_at = i * stride * g.w + j * stride;
                        T best = -std::numeric_limits<T>::infinity();
                        for (std::int64_t u = 0; u < kernel; ++u)
                            for (std::int64_t v = 0; v < kernel; ++v) {
                                const std::int64_t at = (i * stride + u) * g.w + j * stride + v;
                                const T value = in[at];
                                if (value > best || std::isnan(value)) {
                                    best = value;
                                    best_at = at;
                                }
                            }
                        out[i * g.wo + j] = best;
                        idx[i * g.wo + j] = best_at;
                    }
            },
            g.ho * g.wo * kernel * kernel);
    }

    // As below, with the window the forward used, which is checked against the shapes: the form
    // layers call, so that a backend whose kernel gathers over windows (CUDA) gets what it needs.
    template <real_scalar T>
    static void max_pool2d_backward(tensor_view<const T> dy, tensor_view<const std::int64_t> indices, tensor_view<T> dx,
                                    std::int64_t kernel, std::int64_t stride) {
        require_shape(dy.dims(), pool2d_output_shape(dx.dims(), kernel, stride, "max_pool2d_backward"),
                      "max_pool2d_backward dy (B, C, Ho, Wo)");
        max_pool2d_backward<T>(dy, indices, dx);
    }

    // dx[n, c, indices[n, c, i, j]] += dy[n, c, i, j], starting from zero, in output order.
    // Requires dy and indices of equal shape (B, C, Ho, Wo), dx (B, C, H, W) with B, C matching
    // and every index in [0, H·W). Overwrites dx.
    template <real_scalar T>
    static void max_pool2d_backward(tensor_view<const T> dy,                  // (B, C, Ho, Wo)
                                    tensor_view<const std::int64_t> indices,  // (B, C, Ho, Wo)
                                    tensor_view<T> dx) {                      // (B, C, H, W)
        require_rank(dx.dims(), 4, "max_pool2d_backward", "input gradient dx (B, C, H, W)");
        require_rank(dy.dims(), 4, "max_pool2d_backward", "dy (B, C, Ho, Wo)");
        require(dx.numel() > 0, "max_pool2d_backward: expected a non-empty dx (B, C, H, W), found shape ", dx.dims());
        require(dy.dim(0) == dx.dim(0) && dy.dim(1) == dx.dim(1),
                "max_pool2d_backward: expected dy with the batch and channels of dx ", dx.dims(), ", found ",
                dy.dims());
        require_shape(indices.dims(), dy.dims(), "max_pool2d_backward indices (B, C, Ho, Wo)");
        const std::int64_t plane_in = dx.dim(2) * dx.dim(3), plane_out = dy.dim(2) * dy.dim(3);
        // Checked before the parallel loop: an index out of range would write outside dx.
        for (std::int64_t k = 0; k < indices.numel(); ++k)
            if (indices[k] < 0 || indices[k] >= plane_in)
                fail("max_pool2d_backward: index ", indices[k], " at flat position ", k,
                     " is outside the (H, W) plane of dx ", dx.dims());
        parallel_for(
            dx.dim(0) * dx.dim(1),
            [&](std::int64_t plane) {
                const T* in = dy.data() + plane * plane_out;
                const std::int64_t* idx = indices.data() + plane * plane_out;
                T* out = dx.data() + plane * plane_in;
                std::fill(out, out + plane_in, T(0));
                for (std::int64_t k = 0; k < plane_out; ++k) out[idx[k]] += in[k];
            },
            plane_in + plane_out);
    }

private:
    struct geometry_ {
        shape out;
        std::int64_t planes, h, w, ho, wo;
    };

    static geometry_ geometry_of_(const char* what, const shape& x, std::int64_t kernel, std::int64_t stride) {
        const shape out = pool2d_output_shape(x, kernel, stride, what);
        return {out, x[0] * x[1], x[2], x[3], out[2], out[3]};
    }
};

}  // namespace ouro::cpu_kernels
