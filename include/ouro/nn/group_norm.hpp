// nn::group_norm, group normalisation over channels (torch.nn.GroupNorm; Wu & He 2018), with
// parameters "<name>.weight" (C) and "<name>.bias" (C); and nn::group_norm_silu, the same followed
// by SiLU as one layer (the "GroupNorm -> SiLU" of every U-Net block), which keeps one tensor fewer
// for the backward and reads its input once less. Same parameters, same values, bit for bit.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

template <backend B, real_scalar T = float, bool ThenSilu = false>
class group_norm {
public:
    // Registers "<name>.weight" and "<name>.bias" (channels), initialised to 1 and 0. Requires
    // groups >= 1 dividing channels; eps defaults to torch's 1e-5.
    group_norm(parameter_store<T, B>& store, std::string_view name, std::int64_t groups, std::int64_t channels,
               double eps = 1e-5)
        : store_(&store), groups_(groups), channels_(channels), eps_(eps) {
        require(groups > 0 && channels > 0, "nn::group_norm '", name,
                "': expected groups, channels >= 1, found groups = ", groups, ", channels = ", channels);
        require(channels % groups == 0, "nn::group_norm '", name, "': the channel count ", channels,
                " is not divisible by groups = ", groups);
        weight_ = store.add(join_name(name, "weight"), shape{channels});
        bias_ = store.add(join_name(name, "bias"), shape{channels});
        reset_parameters(0);
    }

    // torch.nn.GroupNorm's init: weight 1, bias 0 (no randomness; the seed is unused).
    void reset_parameters(std::uint64_t) {
        fill_constant(store_->value(weight_), T(1));
        fill_constant(store_->value(bias_), T(0));
    }

    // x (B, C), (B, C, L) or (B, C, H, W) -> y of the same shape (then silu(y) when ThenSilu).
    // Keeps a view of x for backward: x must stay unchanged until then.
    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        require(x.rank() >= 2 && x.dim(1) == channels_, "nn::group_norm forward: expected x of shape (B, ", channels_,
                ", ...), found shape ", x.dims());
        x_ = ctx.inference ? tensor_view<const T, B>{} : x;
        y_.resize(x.dims());
        if constexpr (ThenSilu) {
            if (ctx.inference) {  // nothing kept for a backward
                ops<B>::template group_norm_silu_forward<T>(x, value_(weight_), value_(bias_), y_.view(), groups_,
                                                            eps_);
                return y_.view();
            }
        }
        mean_.resize(shape{x.dim(0), groups_});
        rstd_.resize(shape{x.dim(0), groups_});
        if constexpr (ThenSilu) {
            coefficients_.resize(shape{x.dim(0), channels_, 2});
            ops<B>::template group_norm_silu_forward<T>(x, value_(weight_), value_(bias_), y_.view(), mean_.view(),
                                                        rstd_.view(), coefficients_.view(), groups_, eps_);
        } else {
            ops<B>::template group_norm_forward<T>(x, value_(weight_), value_(bias_), y_.view(), mean_.view(),
                                                   rstd_.view(), groups_, eps_);
        }
        return y_.view();
    }

    // For inference, instead of forward: each (image, channel)'s affine map of x, (B, C, 2) =
    // (scale, shift), so that the layer after applies silu(scale·x + shift) as it reads x and the
    // normalised tensor is never written (nn::norm_silu_conv). The same values forward's
    // training variant uses. ThenSilu only.
    tensor_view<const T, B> silu_coefficients(tensor_view<const T, B> x) requires ThenSilu {
        require(x.rank() >= 2 && x.dim(1) == channels_, "nn::group_norm silu_coefficients: expected x of shape (B, ",
                channels_, ", ...), found shape ", x.dims());
        x_ = {};
        coefficients_.resize(shape{x.dim(0), channels_, 2});
        ops<B>::template group_norm_silu_coefficients<T>(x, value_(weight_), value_(bias_), coefficients_.view(),
                                                         groups_, eps_);
        return coefficients_.view();
    }

    // dy of the forward's shape -> dx; accumulates into the weight and bias gradients.
    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(x_.data() != nullptr,
                "nn::group_norm backward: forward has not run, or ran with forward_context::inference");
        require_shape(dy.dims(), x_.dims(), "nn::group_norm backward dy");
        dx_.resize(x_.dims());
        if constexpr (ThenSilu)
            ops<B>::template group_norm_silu_backward<T>(x_, dy, value_(weight_), mean_.view(), rstd_.view(),
                                                         coefficients_.view(), dx_.view(), store_->grad(weight_),
                                                         store_->grad(bias_));
        else
            ops<B>::template group_norm_backward<T>(x_, dy, value_(weight_), mean_.view(), rstd_.view(), dx_.view(),
                                                    store_->grad(weight_), store_->grad(bias_));
        return dx_.view();
    }

    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept {
        x_ = {};
        y_.release();
        dx_.release();
        coefficients_.release();
    }
    // Frees only the output, which backward does not read (it reads x and the statistics): for a
    // layer whose consumer has copied what it needs. Backward still works.
    void release_output() noexcept { y_.release(); }

    std::int64_t groups() const { return groups_; }
    std::int64_t channels() const { return channels_; }
    double eps() const { return eps_; }

private:
    tensor_view<const T, B> value_(parameter p) const { return std::as_const(*store_).value(p); }

    parameter_store<T, B>* store_;
    std::int64_t groups_, channels_;
    double eps_;
    parameter weight_, bias_;
    tensor_view<const T, B> x_;
    tensor<T, B> y_, dx_, mean_, rstd_;
    tensor<T, B> coefficients_;  // (B, C, 2), ThenSilu only: the forward's (scale, shift) per channel
};

// GroupNorm followed by SiLU as one layer: parameters "<name>.weight" and "<name>.bias" as
// nn::group_norm; forward returns silu(group_norm(x)) and backward takes its gradient.
template <backend B, real_scalar T = float>
using group_norm_silu = group_norm<B, T, true>;

}  // namespace ouro::nn
