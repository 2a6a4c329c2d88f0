// cpu_strict: a test-only backend that proves the backend seam on a machine without a GPU (issue
// #14). It runs the CPU kernels, but declares host_memory = false, so everything above backend/
// that reads or writes a tensor's elements on the host (instead of going through ops<B>,
// copy_from_host or to_host) fails to compile when instantiated with it, exactly where it would be
// wrong on a GPU. Its memory is host memory underneath; only this file looks through that.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/memory.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro {

struct cpu_strict {
    static constexpr const char* name = "cpu_strict";
    static constexpr bool host_memory = false;
};

template <>
struct backend_memory<cpu_strict> {
    static void* allocate(std::size_t bytes) {
        try {
            return ::operator new (bytes == 0 ? 1 : bytes, std::align_val_t{tensor_alignment});
        } catch (const std::bad_alloc&) {
            fail("cpu_strict: cannot allocate ", bytes, " bytes: out of memory");
        }
    }
    static void deallocate(void* p, std::size_t) noexcept { ::operator delete (p, std::align_val_t{tensor_alignment}); }
    static void zero(void* p, std::size_t bytes) { std::memset(p, 0, bytes); }
    static void copy(void* dst, const void* src, std::size_t bytes) { std::memmove(dst, src, bytes); }
    static void copy_from_host(void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }
    static void copy_to_host(void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }
};
static_assert(device_backend<cpu_strict>);

namespace strict_detail {
// Arguments other than cpu_strict tensors pass through unchanged.
template <class A>
A&& host_alias(A&& a) {
    return std::forward<A>(a);
}
// The one place that reads cpu_strict memory as host memory: a view handed to a CPU kernel.
template <class T>
tensor_view<T, cpu> host_alias(tensor_view<T, cpu_strict> v) {
    return {v.data(), v.dims()};
}
template <class T>
tensor_view<T, cpu> host_alias(tensor<T, cpu_strict>& t) {
    return {t.data(), t.dims()};
}
template <class T>
tensor_view<const T, cpu> host_alias(const tensor<T, cpu_strict>& t) {
    return {t.data(), t.dims()};
}
}  // namespace strict_detail

namespace detail {
template <>
inline constexpr bool backend_header_included<cpu_strict> = true;
}  // namespace detail

// Every op of ops<cpu>, with cpu_strict views unwrapped to the CPU views the kernels take. Explicit
// template arguments (ops<B>::template conv2d_forward<T>(...)) pass through as Ts.
#define OURO_STRICT_FORWARD(op)                                                                      \
    template <class... Ts, class... Args>                                                            \
    static decltype(auto) op(Args&&... args) {                                                       \
        return ops<cpu>::template op<Ts...>(strict_detail::host_alias(std::forward<Args>(args))...); \
    }

template <>
struct ops<cpu_strict> {
    OURO_STRICT_FORWARD(accumulate)
    OURO_STRICT_FORWARD(adamw_step)
    OURO_STRICT_FORWARD(add_per_channel)
    OURO_STRICT_FORWARD(attention_backward)
    OURO_STRICT_FORWARD(attention_forward)
    OURO_STRICT_FORWARD(avg_pool2d_backward)
    OURO_STRICT_FORWARD(avg_pool2d_forward)
    OURO_STRICT_FORWARD(concat_channels_backward)
    OURO_STRICT_FORWARD(concat_channels_forward)
    OURO_STRICT_FORWARD(conv2d_backward_input)
    OURO_STRICT_FORWARD(conv2d_backward_weight)
    OURO_STRICT_FORWARD(conv2d_forward)
    OURO_STRICT_FORWARD(dropout_backward)
    OURO_STRICT_FORWARD(dropout_forward)
    OURO_STRICT_FORWARD(elementwise_add)
    OURO_STRICT_FORWARD(ema_blend)
    OURO_STRICT_FORWARD(extrapolate_away)
    OURO_STRICT_FORWARD(first_non_finite)
    OURO_STRICT_FORWARD(group_norm_backward)
    OURO_STRICT_FORWARD(group_norm_forward)
    OURO_STRICT_FORWARD(group_norm_silu_backward)
    OURO_STRICT_FORWARD(group_norm_silu_forward)
    OURO_STRICT_FORWARD(label_embedding_backward)
    OURO_STRICT_FORWARD(label_embedding_forward)
    OURO_STRICT_FORWARD(linear_backward)
    OURO_STRICT_FORWARD(linear_forward)
    OURO_STRICT_FORWARD(max_pool2d_backward)
    OURO_STRICT_FORWARD(max_pool2d_forward)
    OURO_STRICT_FORWARD(mse_loss)
    OURO_STRICT_FORWARD(relu_backward)
    OURO_STRICT_FORWARD(relu_forward)
    OURO_STRICT_FORWARD(scale)
    OURO_STRICT_FORWARD(sgd_step)
    OURO_STRICT_FORWARD(silu_backward)
    OURO_STRICT_FORWARD(silu_forward)
    OURO_STRICT_FORWARD(sinusoidal_timestep_embedding)
    OURO_STRICT_FORWARD(sinusoidal_timestep_embedding_backward)
    OURO_STRICT_FORWARD(softmax_cross_entropy)
    OURO_STRICT_FORWARD(sum_of_squares)
    OURO_STRICT_FORWARD(sum_per_channel)
    OURO_STRICT_FORWARD(swap_contents)
    OURO_STRICT_FORWARD(upsample_nearest2x_backward)
    OURO_STRICT_FORWARD(upsample_nearest2x_forward)
};

#undef OURO_STRICT_FORWARD

namespace testing {
// A host tensor's copy in backend B's memory (the tests that run a module on {cpu, cpu_strict}).
template <backend B, class T>
tensor<T, B> on_backend(const tensor<T>& host) {
    tensor<T, B> t(host.dims());
    copy_from_host(host.view(), t.view());
    return t;
}
}  // namespace testing

}  // namespace ouro
