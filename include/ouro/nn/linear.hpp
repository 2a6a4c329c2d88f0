// nn::linear, the fully connected layer y = x·Wᵀ + b (torch.nn.Linear), with parameters
// "<name>.weight" (out, in) and "<name>.bias" (out).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

template <backend B, real_scalar T = float>
class linear {
public:
    // Registers "<name>.weight" (out_features, in_features) and, when `bias`, "<name>.bias"
    // (out_features), zero-initialised until reset_parameters.
    linear(parameter_store<T, B>& store, std::string_view name, std::int64_t in_features, std::int64_t out_features,
           bool bias = true)
        : store_(&store), in_(in_features), out_(out_features) {
        require(in_features > 0 && out_features > 0, "nn::linear '", name,
                "': expected in_features, out_features >= 1, found ", in_features, ", ", out_features);
        weight_ = store.add(join_name(name, "weight"), shape{out_features, in_features});
        if (bias) bias_ = store.add(join_name(name, "bias"), shape{out_features});
    }

    // PyTorch's default (kaiming_uniform with a = sqrt(5), and the bias rule of nn.Linear):
    // weight and bias uniform on [−1/sqrt(in), 1/sqrt(in)], one Philox stream per parameter.
    void reset_parameters(std::uint64_t seed) {
        const T bound = static_cast<T>(1.0 / std::sqrt(static_cast<double>(in_)));
        fill_uniform(store_->value(weight_), bound, seed, static_cast<std::uint64_t>(weight_.index));
        if (bias_.valid()) fill_uniform(store_->value(bias_), bound, seed, static_cast<std::uint64_t>(bias_.index));
    }

    // x (N, in) -> y (N, out). Keeps a view of x for backward: x must stay unchanged until then.
    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        require_rank(x.dims(), 2, "nn::linear forward", "x (N, in)");
        require(x.dim(1) == in_, "nn::linear forward: expected x of shape (N, ", in_, "), found shape ", x.dims());
        x_ = ctx.inference ? tensor_view<const T, B>{} : x;
        y_.resize(shape{x.dim(0), out_});
        ops<B>::template linear_forward<T>(x, weight(), bias_view_(), y_.view());
        return y_.view();
    }

    // dy (N, out) -> dx (N, in); accumulates into the weight and bias gradients.
    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(x_.data() != nullptr,
                "nn::linear backward: forward has not run, or ran with forward_context::inference");
        require_shape(dy.dims(), shape{x_.dim(0), out_}, "nn::linear backward dy (N, out)");
        dx_.resize(x_.dims());
        ops<B>::template linear_backward<T>(x_, dy, weight(), dx_.view(), store_->grad(weight_),
                                            bias_.valid() ? store_->grad(bias_) : tensor_view<T, B>{});
        return dx_.view();
    }

    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept {
        x_ = {};
        y_.release();
        dx_.release();
    }

    tensor_view<const T, B> weight() const { return std::as_const(*store_).value(weight_); }
    bool has_bias() const { return bias_.valid(); }
    std::int64_t in_features() const { return in_; }
    std::int64_t out_features() const { return out_; }

private:
    tensor_view<const T, B> bias_view_() const {
        return bias_.valid() ? std::as_const(*store_).value(bias_) : tensor_view<const T, B>{};
    }

    parameter_store<T, B>* store_;
    std::int64_t in_, out_;
    parameter weight_, bias_;
    tensor_view<const T, B> x_;
    tensor<T, B> y_, dx_;
};

}  // namespace ouro::nn
