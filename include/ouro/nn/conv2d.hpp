// nn::conv2d: a 2-D convolution layer with a square kernel, as torch.nn.Conv2d with one stride and
// one zero padding for both axes; parameters "<name>.weight" (Cout, Cin, k, k) and "<name>.bias" (Cout).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "ouro/backend/op_params.hpp"
#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

template <backend B, real_scalar T = float>
class conv2d {
public:
    // Registers "<name>.weight" and, when `bias`, "<name>.bias" in `store`, which must outlive the
    // module. Requires channel counts and kernel >= 1, stride >= 1, padding >= 0.
    conv2d(parameter_store<T, B>& store, std::string_view name, std::int64_t in_channels, std::int64_t out_channels,
           std::int64_t kernel, conv2d_params params = {}, bool bias = true)
        : store_(&store), name_(name), in_(in_channels), out_(out_channels), kernel_(kernel), params_(params) {
        require(in_channels >= 1 && out_channels >= 1 && kernel >= 1, "conv2d '", name_,
                "': expected in_channels, out_channels and kernel >= 1, found ", in_channels, ", ", out_channels,
                " and ", kernel);
        require(params.stride >= 1 && params.padding >= 0, "conv2d '", name_,
                "': expected stride >= 1 and padding >= 0, found stride ", params.stride, " and padding ",
                params.padding);
        weight_ = store.add(join_name(name_, "weight"), shape{out_channels, in_channels, kernel, kernel});
        if (bias) bias_ = store.add(join_name(name_, "bias"), shape{out_channels});
    }

    // torch.nn.Conv2d.reset_parameters: weight and bias uniform on ±1/sqrt(Cin·k·k), each from its
    // own Philox stream (salt = its index in the store).
    void reset_parameters(std::uint64_t seed) {
        const T bound = static_cast<T>(1.0 / std::sqrt(static_cast<double>(in_ * kernel_ * kernel_)));
        fill_uniform(store_->value(weight_), bound, seed, static_cast<std::uint64_t>(weight_.index));
        if (bias_.valid()) fill_uniform(store_->value(bias_), bound, seed, static_cast<std::uint64_t>(bias_.index));
    }

    // y = conv2d(x) + bias. Keeps a view of x for backward: x must stay unchanged until then.
    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        const tensor_view<const T, B> w = store_->value(weight_);
        require(ctx.matmul == matmul_precision::fp32 || ctx.inference, "conv2d '", name_,
                "': bf16 products are for inference (forward_context::inference), not for a forward that "
                "backward will follow");
        y_.resize(conv2d_output_shape(x.dims(), w.dims(), params_, name_.c_str()));  // (B, Cout, Ho, Wo)
        ops<B>::template conv2d_forward<T>(x, w, bias_view_(), y_.view(), params_, ctx.matmul);
        x_ = ctx.inference ? tensor_view<const T, B>{} : x;
        return y_.view();
    }

    // y = conv2d(silu(scale·x + shift)) + bias, (scale, shift) = coefficients (B, Cin, 2) per image
    // and channel (group_norm::silu_coefficients): a GroupNorm+SiLU and this conv in one pass over
    // x, for inference only (ctx.inference; nothing is kept for a backward). The same bits as the
    // two layers one after the other. Backends without the fused op
    // (ops<B>::conv2d_forward_silu_affine) are served by nn::norm_silu_conv's unfused path.
    // Then, when given, + channel_add[n, o] (B, Cout) and + residual (B, Cout, Ho, Wo), added as the
    // outputs are written, with the bits of add_per_channel and elementwise_add after the conv.
    tensor_view<const T, B> forward_silu_affine(tensor_view<const T, B> x, tensor_view<const T, B> coefficients,
                                                const forward_context& ctx, tensor_view<const T, B> channel_add = {},
                                                tensor_view<const T, B> residual = {}) requires
        requires(tensor_view<const T, B> v, tensor_view<T, B> out) {
        ops<B>::template conv2d_forward_silu_affine<T>(v, v, v, v, out, conv2d_params{}, matmul_precision::fp32, v, v);
    }
    {
        require(ctx.inference, "conv2d '", name_,
                "': forward_silu_affine is for inference (forward_context::inference)");
        const tensor_view<const T, B> w = store_->value(weight_);
        y_.resize(conv2d_output_shape(x.dims(), w.dims(), params_, name_.c_str()));  // (B, Cout, Ho, Wo)
        ops<B>::template conv2d_forward_silu_affine<T>(x, coefficients, w, bias_view_(), y_.view(), params_, ctx.matmul,
                                                       channel_add, residual);
        x_ = {};
        return y_.view();
    }

    // y = conv2d(upsample_nearest2x(x)) + bias, x (B, Cin, H, W): nn::upsample's pair in one pass,
    // for inference only (ctx.inference); the upsampled tensor is never stored. The same bits as the
    // two one after the other. Exists where the backend has the fused op.
    tensor_view<const T, B> forward_upsampled(tensor_view<const T, B> x, const forward_context& ctx) requires
        requires(tensor_view<const T, B> v, tensor_view<T, B> out) {
        ops<B>::template conv2d_forward_upsampled<T>(v, v, v, out, conv2d_params{}, matmul_precision::fp32);
    }
    {
        require(ctx.inference, "conv2d '", name_, "': forward_upsampled is for inference (forward_context::inference)");
        require(x.rank() == 4, "conv2d '", name_,
                "': forward_upsampled: expected x of shape (B, Cin, H, W), found shape ", x.dims());
        const tensor_view<const T, B> w = store_->value(weight_);
        y_.resize(conv2d_output_shape(shape{x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)}, w.dims(), params_,
                                      name_.c_str()));  // (B, Cout, Ho, Wo)
        ops<B>::template conv2d_forward_upsampled<T>(x, w, bias_view_(), y_.view(), params_, ctx.matmul);
        x_ = {};
        return y_.view();
    }

    // Returns dx; adds dw and db into the store's gradients.
    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(x_.data() != nullptr, "conv2d '", name_,
                "': backward: forward has not run, or ran with forward_context::inference");
        dx_.resize(x_.dims());  // (B, Cin, H, W)
        ops<B>::template conv2d_backward_input<T>(dy, store_->value(weight_), dx_.view(), params_);
        tensor_view<T, B> db = bias_.valid() ? store_->grad(bias_) : tensor_view<T, B>{};
        ops<B>::template conv2d_backward_weight<T>(x_, dy, store_->grad(weight_), db, params_);
        return dx_.view();
    }

    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept {
        x_ = {};
        y_.release();
        dx_.release();
    }
    // Frees only the output, which backward does not read: for a block whose next step (an add)
    // has consumed it. Backward still works.
    void release_output() noexcept { y_.release(); }

    parameter weight() const { return weight_; }
    parameter bias() const { return bias_; }  // invalid when built without bias
    std::int64_t in_channels() const { return in_; }
    std::int64_t out_channels() const { return out_; }
    std::int64_t kernel() const { return kernel_; }
    conv2d_params params() const { return params_; }
    const std::string& name() const { return name_; }

private:
    tensor_view<const T, B> bias_view_() const {
        return bias_.valid() ? tensor_view<const T, B>(store_->value(bias_)) : tensor_view<const T, B>{};
    }

    parameter_store<T, B>* store_;
    std::string name_;
    std::int64_t in_, out_, kernel_;
    conv2d_params params_;
    parameter weight_, bias_;
    tensor_view<const T, B> x_;  // (B, Cin, H, W), the input of the last forward
    tensor<T, B> y_;             // (B, Cout, Ho, Wo)
    tensor<T, B> dx_;            // (B, Cin, H, W)
};

}  // namespace ouro::nn
