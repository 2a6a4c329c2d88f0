// nn::silu and nn::relu, the parameter-free activations (torch.nn.SiLU, torch.nn.ReLU).
#pragma once

#include <cstdint>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

// y = x·σ(x). Keeps a view of x for backward: x must stay unchanged until then.
template <backend B, real_scalar T = float>
class silu {
public:
    void reset_parameters(std::uint64_t) {}

    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        x_ = ctx.inference ? tensor_view<const T, B>{} : x;
        y_.resize(x.dims());
        ops<B>::template silu_forward<T>(x, y_.view());
        ran_ = !ctx.inference;
        return y_.view();
    }

    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(ran_, "nn::silu backward: forward has not run, or ran with forward_context::inference");
        require_shape(dy.dims(), x_.dims(), "nn::silu backward dy");
        dx_.resize(x_.dims());
        ops<B>::template silu_backward<T>(x_, dy, dx_.view());
        return dx_.view();
    }

    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept {
        x_ = {};
        y_.release();
        dx_.release();
        ran_ = false;
    }

private:
    tensor_view<const T, B> x_;
    tensor<T, B> y_, dx_;
    bool ran_ = false;
};

// y = max(x, 0). Backward reads its own output, so it keeps nothing of x.
template <backend B, real_scalar T = float>
class relu {
public:
    void reset_parameters(std::uint64_t) {}

    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& = {}) {
        y_.resize(x.dims());
        ops<B>::template relu_forward<T>(x, y_.view());
        ran_ = true;
        return y_.view();
    }

    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(ran_, "nn::relu backward: forward has not run");
        require_shape(dy.dims(), y_.dims(), "nn::relu backward dy");
        dx_.resize(y_.dims());
        ops<B>::template relu_backward<T>(y_.view(), dy, dx_.view());
        return dx_.view();
    }

private:
    tensor<T, B> y_, dx_;
    bool ran_ = false;
};

}  // namespace ouro::nn
