// CPU kernels: the fully connected layer y = x·Wᵀ + b (torch.nn.functional.linear) and its gradients,
// each one Eigen GEMM over Eigen::Map views of our buffers (no copies). Eigen runs single-threaded
// (EIGEN_DONT_PARALLELIZE) and its blocking depends on the sizes only, so results do not depend on
// the OpenMP thread count.
#pragma once


#include <cstdint>

#include "ouro/backend/cpu/eigen_maps.hpp"
#include "ouro/backend/op_params.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

struct linear_ops {
    // y = x·Wᵀ + b. Requires x (N, in) with N >= 1, w (out, in), b (out) or a default-constructed
    // (absent) view for no bias, y (N, out). Overwrites y.
    template <real_scalar T>
    static void linear_forward(tensor_view<const T> x,  // (N, in)
                               tensor_view<const T> w,  // (out, in)
                               tensor_view<const T> b,  // (out) or absent
                               tensor_view<T> y) {      // (N, out)
        const linear_sizes s = check_linear("linear_forward", x.dims(), w.dims());
        require_shape(y.dims(), shape{s.n, s.out}, "linear_forward y (N, out)");
        const const_row_major_map<T> wm(w.data(), s.out, s.in);
        const bool bias = !b.absent();
        if (bias) require_shape(b.dims(), shape{s.out}, "linear_forward b (out)");
        // One matrix-vector product per row, not one GEMM for the batch: a GEMM's blocking (and so
        // its rounding) depends on N, which would make an item's output depend on its batch.
        using vec_ = Eigen::Matrix<T, Eigen::Dynamic, 1>;
        parallel_for(
            s.n,
            [&](std::int64_t i) {
                Eigen::Map<vec_> yi(y.data() + i * s.out, s.out);
                yi.noalias() = wm * Eigen::Map<const vec_>(x.data() + i * s.in, s.in);
                if (bias) yi += Eigen::Map<const vec_>(b.data(), s.out);
            },
            2 * s.in * s.out);
    }

    // Gradients of linear_forward:  dx = dy·W,  dW += dyᵀ·x,  db += Σ_n dy.
    // Requires x and w of the forward, dy (N, out), dx (N, in) or absent (not computed, e.g. for a
    // first layer), dw (out, in), db (out) or absent (a layer without bias). Overwrites dx,
    // accumulates into dw and db.
    template <real_scalar T>
    static void linear_backward(tensor_view<const T> x,   // (N, in)
                                tensor_view<const T> dy,  // (N, out)
                                tensor_view<const T> w,   // (out, in)
                                tensor_view<T> dx,        // (N, in) or absent
                                tensor_view<T> dw,        // (out, in)
                                tensor_view<T> db) {      // (out) or absent
        const linear_sizes s = check_linear("linear_backward", x.dims(), w.dims());
        require_shape(dy.dims(), shape{s.n, s.out}, "linear_backward dy (N, out)");
        require_shape(dw.dims(), shape{s.out, s.in}, "linear_backward dw (out, in)");
        const const_row_major_map<T> xm(x.data(), s.n, s.in), wm(w.data(), s.out, s.in), dym(dy.data(), s.n, s.out);
        if (!dx.absent()) {
            require_shape(dx.dims(), shape{s.n, s.in}, "linear_backward dx (N, in)");
            using vec_ = Eigen::Matrix<T, Eigen::Dynamic, 1>;
            parallel_for(  // per row, for the batch invariance of linear_forward
                s.n,
                [&](std::int64_t i) {
                    Eigen::Map<vec_>(dx.data() + i * s.in, s.in).noalias() =
                        wm.transpose() * Eigen::Map<const vec_>(dy.data() + i * s.out, s.out);
                },
                2 * s.in * s.out);
        }
        row_major_map<T> dwm(dw.data(), s.out, s.in);
        dwm.noalias() += dym.transpose() * xm;
        if (!db.absent()) {
            require_shape(db.dims(), shape{s.out}, "linear_backward db (out)");
            // Rows added in order n = 0, 1, ..., in double, then once into db.
            for (std::int64_t o = 0; o < s.out; ++o) {
                double sum = 0;
                for (std::int64_t i = 0; i < s.n; ++i) sum += static_cast<double>(dy[i * s.out + o]);
                db[o] += static_cast<T>(sum);
            }
        }
    }
};

}  // namespace ouro::cpu_kernels
