// nn::max_pool2d and nn::avg_pool2d: square-window pooling without padding (floor mode), as
// torch.nn.MaxPool2d / AvgPool2d; no parameters.
#pragma once

#include <cstdint>

#include "ouro/backend/op_params.hpp"
#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

template <backend B, real_scalar T = float>
class max_pool2d {
public:
    // stride = 0 means stride = kernel, PyTorch's default.
    explicit max_pool2d(std::int64_t kernel, std::int64_t stride = 0)
        : kernel_(kernel), stride_(stride ? stride : kernel) {
        require(kernel >= 1 && stride_ >= 1, "max_pool2d: expected kernel >= 1 and stride >= 1, found kernel ", kernel,
                " and stride ", stride_);
    }

    void reset_parameters(std::uint64_t) {}

    tensor_view<const T, B> forward(tensor_view<const T, B> x, [[maybe_unused]] const forward_context& ctx = {}) {
        const shape out = pool2d_output_shape(x.dims(), kernel_, stride_, "max_pool2d");  // (B, C, Ho, Wo)
        y_.resize(out);
        indices_.resize(out);
        ops<B>::template max_pool2d_forward<T>(x, y_.view(), indices_.view(), kernel_, stride_);
        x_dims_ = x.dims();
        return y_.view();
    }

    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(x_dims_.rank() == 4, "max_pool2d: backward called before forward");
        dx_.resize(x_dims_);
        ops<B>::template max_pool2d_backward<T>(dy, indices_.view(), dx_.view(), kernel_, stride_);
        return dx_.view();
    }

    // Flat positions within each (H, W) plane of the maxima of the last forward.
    tensor_view<const std::int64_t, B> indices() const { return indices_.view(); }

private:
    std::int64_t kernel_, stride_;
    shape x_dims_;
    tensor<T, B> y_, dx_;
    tensor<std::int64_t, B> indices_;  // (B, C, Ho, Wo)
};

template <backend B, real_scalar T = float>
class avg_pool2d {
public:
    // stride = 0 means stride = kernel, PyTorch's default.
    explicit avg_pool2d(std::int64_t kernel, std::int64_t stride = 0)
        : kernel_(kernel), stride_(stride ? stride : kernel) {
        require(kernel >= 1 && stride_ >= 1, "avg_pool2d: expected kernel >= 1 and stride >= 1, found kernel ", kernel,
                " and stride ", stride_);
    }

    void reset_parameters(std::uint64_t) {}

    tensor_view<const T, B> forward(tensor_view<const T, B> x, [[maybe_unused]] const forward_context& ctx = {}) {
        y_.resize(pool2d_output_shape(x.dims(), kernel_, stride_, "avg_pool2d"));  // (B, C, Ho, Wo)
        ops<B>::template avg_pool2d_forward<T>(x, y_.view(), kernel_, stride_);
        x_dims_ = x.dims();
        return y_.view();
    }

    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(x_dims_.rank() == 4, "avg_pool2d: backward called before forward");
        dx_.resize(x_dims_);
        ops<B>::template avg_pool2d_backward<T>(dy, dx_.view(), kernel_, stride_);
        return dx_.view();
    }

private:
    std::int64_t kernel_, stride_;
    shape x_dims_;
    tensor<T, B> y_, dx_;
};

}  // namespace ouro::nn
