// ops<cuda>, first slice (issue #14): the ops whose kernel bodies exist (backend/cuda/kernels/,
// each checked against ops<cpu> by emulation in tests/test_cuda_emulated.cpp), launched on the
// thread's stream (memory.cuh): the pointwise activations and sums and every optimiser pass. What a
// layer calls that is not here yet (convolutions, linear and attention through cuBLAS, the norms,
// resampling, pooling, embeddings, dropout, the losses and the reductions of the finite check and
// clipping) stops at compile time with "is not a member of ouro::ops<ouro::cuda>".
//
// Shapes are checked on the host with the CPU's messages. Determinism: every op here is one
// thread per element, so its bits do not depend on the launch; the device's exp and the compiler's
// fused multiply-adds may differ from the CPU's in the last bits (tests/cuda/ compares with a
// tolerance per op).
#pragma once

#if !defined(__CUDACC__)
#error "ouro/backend/cuda/ops.cuh is for translation units compiled by nvcc (link ouro::cuda)"
#endif

#include <cstdint>

#include "ouro/backend/adamw_update.hpp"
#include "ouro/backend/cuda/kernels/pointwise.hpp"
#include "ouro/backend/cuda/launch.cuh"
#include "ouro/backend/cuda/memory.cuh"
#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro {

namespace detail {
template <>
inline constexpr bool backend_header_included<cuda> = true;
}  // namespace detail

template <>
struct ops<cuda> {
    template <class T>
    using view = tensor_view<T, cuda>;

    template <real_scalar T>
    static void silu_forward(view<const T> x, view<T> y) {
        require_shape(y.dims(), x.dims(), "silu_forward y");
        run_(x.numel(), cuda_kernels::silu_forward_body<T>{x.data(), y.data(), x.numel()}, "silu_forward");
    }
    template <real_scalar T>
    static void silu_backward(view<const T> x, view<const T> dy, view<T> dx) {
        require_shape(dy.dims(), x.dims(), "silu_backward dy");
        require_shape(dx.dims(), x.dims(), "silu_backward dx");
        run_(x.numel(), cuda_kernels::silu_backward_body<T>{x.data(), dy.data(), dx.data(), x.numel()}, "silu_backward");
    }
    template <real_scalar T>
    static void relu_forward(view<const T> x, view<T> y) {
        require_shape(y.dims(), x.dims(), "relu_forward y");
        run_(x.numel(), cuda_kernels::relu_forward_body<T>{x.data(), y.data(), x.numel()}, "relu_forward");
    }
    template <real_scalar T>
    static void relu_backward(view<const T> y, view<const T> dy, view<T> dx) {
        require_shape(dy.dims(), y.dims(), "relu_backward dy");
        require_shape(dx.dims(), y.dims(), "relu_backward dx");
        run_(y.numel(), cuda_kernels::relu_backward_body<T>{y.data(), dy.data(), dx.data(), y.numel()}, "relu_backward");
    }
    template <real_scalar T>
    static void elementwise_add(view<const T> a, view<const T> b, view<T> y) {
        require_shape(b.dims(), a.dims(), "elementwise_add b");
        require_shape(y.dims(), a.dims(), "elementwise_add y");
        run_(a.numel(), cuda_kernels::add_body<T>{a.data(), b.data(), y.data(), a.numel()}, "elementwise_add");
    }
    template <real_scalar T>
    static void accumulate(view<const T> x, view<T> y) {
        require_shape(x.dims(), y.dims(), "accumulate x");
        run_(y.numel(), cuda_kernels::add_body<T>{y.data(), x.data(), y.data(), y.numel()}, "accumulate");
    }
    template <real_scalar T>
    static void add_per_channel(view<const T> x, view<const T> v, view<T> y) {
        require(x.rank() >= 2, "add_per_channel: expected x of shape (B, C, ...), found shape ", x.dims());
        require_shape(v.dims(), shape{x.dim(0), x.dim(1)}, "add_per_channel v (B, C)");
        require_shape(y.dims(), x.dims(), "add_per_channel y");
        const std::int64_t planes = x.dim(0) * x.dim(1), plane = planes == 0 ? 0 : x.numel() / planes;
        run_(x.numel(), cuda_kernels::add_per_channel_body<T>{x.data(), v.data(), y.data(), planes, plane}, "add_per_channel");
    }

    // ---- The optimisers' passes (backend/cpu/update.hpp on the CPU) ----

    template <real_scalar T>
    static void adamw_step(view<T> p, view<T> m, view<T> v, view<const T> g, const optim::adamw_step_scalars<T>& s) {
        same_size_("adamw_step", p.numel(), {m.numel(), v.numel(), g.numel()});
        run_(p.numel(), cuda_kernels::adamw_body<T>{p.data(), m.data(), v.data(), g.data(), p.numel(), s}, "adamw_step");
    }
    template <real_scalar T>
    static void sgd_step(view<T> p, view<T> momentum, view<const T> g, T lr, T mu, T wd) {
        same_size_("sgd_step", p.numel(), {momentum.numel(), g.numel()});
        run_(p.numel(), cuda_kernels::sgd_body<T>{p.data(), momentum.data(), g.data(), p.numel(), lr, mu, wd}, "sgd_step");
    }
    template <real_scalar T>
    static void ema_blend(view<T> avg, view<const T> p, T one_minus_decay) {
        same_size_("ema_blend", avg.numel(), {p.numel()});
        run_(avg.numel(), cuda_kernels::ema_body<T>{avg.data(), p.data(), avg.numel(), one_minus_decay}, "ema_blend");
    }
    template <real_scalar T>
    static void swap_contents(view<T> a, view<T> b) {
        same_size_("swap_contents", a.numel(), {b.numel()});
        run_(a.numel(), cuda_kernels::swap_body<T>{a.data(), b.data(), a.numel()}, "swap_contents");
    }
    template <real_scalar T>
    static void scale(view<T> x, T s) {
        run_(x.numel(), cuda_kernels::scale_body<T>{x.data(), x.numel(), s}, "scale");
    }
    template <real_scalar T>
    static void extrapolate_away(view<const T> x, view<T> y, T w) {
        require_shape(x.dims(), y.dims(), "extrapolate_away x");
        run_(y.numel(), cuda_kernels::extrapolate_body<T>{x.data(), y.data(), y.numel(), w}, "extrapolate_away");
    }

private:
    // Queues `body` over n elements on the thread's stream; a launch error is an ouro::error naming the op.
    template <class Body>
    static void run_(std::int64_t n, const Body& body, const char* op) {
        if (n == 0) return;
        cuda_kernels::check(cuda_kernels::launch(cuda_kernels::launch_shape_for(n), body, cuda_kernels::stream()), op);
    }
    static void same_size_(const char* what, std::int64_t n, std::initializer_list<std::int64_t> others) {
        for (std::int64_t m : others)
            require(m == n, what, ": expected buffers of ", n, " elements each, found one of ", m);
    }
};

}  // namespace ouro
