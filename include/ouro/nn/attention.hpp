// nn::attention_block, the self-attention block of DDPM U-Nets (Ho et al. 2020; ddpm-torch's and
// guided-diffusion's AttentionBlock): y = x + proj(attention(qkv(group_norm(x)))), attention over
// the H·W positions, one or several heads in guided-diffusion's legacy channel order
// (backend/cpu/attention.hpp). Parameters "<name>.norm.weight/bias" (C), "<name>.qkv.weight"
// (3C, C, 1, 1), "<name>.qkv.bias" (3C), "<name>.proj.weight" (C, C, 1, 1), "<name>.proj.bias" (C).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/conv2d.hpp"
#include "ouro/nn/group_norm.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

struct attention_block_options {
    std::int64_t heads = 1;    // must divide the channel count
    std::int64_t groups = 32;  // of the GroupNorm; must divide the channel count
    double eps = 1e-5;         // of the GroupNorm (torch's default, as guided-diffusion)
};

template <backend B, real_scalar T = float>
class attention_block {
public:
    // Registers the parameters above under `name` in `store`, which must outlive the block.
    // Requires channels >= 1 divisible by options.heads and options.groups.
    attention_block(parameter_store<T, B>& store, std::string_view name, std::int64_t channels,
                    attention_block_options options = {})
        : name_(name),
          channels_(channels),
          heads_(checked_heads_(name, channels, options.heads)),
          norm_(store, join_name(name, "norm"), options.groups, channels, options.eps),
          qkv_(store, join_name(name, "qkv"), channels, 3 * channels, 1),
          proj_(store, join_name(name, "proj"), channels, channels, 1),
          store_(&store) {}

    // PyTorch's default init for norm and qkv; proj starts at zero, as guided-diffusion's
    // zero_module(proj_out) and DDPM's init_scale=0, so a fresh block is the identity.
    void reset_parameters(std::uint64_t seed) {
        norm_.reset_parameters(seed);
        qkv_.reset_parameters(seed);
        fill_constant(store_->value(proj_.weight()), T(0));
        fill_constant(store_->value(proj_.bias()), T(0));
    }

    // x (B, C, H, W) -> y (B, C, H, W). Keeps a view of x for backward: x must stay unchanged until then.
    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        require(x.rank() == 4 && x.dim(1) == channels_ && x.dim(0) >= 1, "nn::attention_block '", name_,
                "' forward: expected x of shape (B, ", channels_, ", H, W) with B >= 1, found shape ", x.dims());
        const std::int64_t b = x.dim(0), c = channels_, l = x.dim(2) * x.dim(3);
        const tensor_view<const T, B> h = norm_.forward(x, ctx);  // (B, C, H, W)
        qkv_out_ = qkv_.forward(h, ctx);                          // (B, 3C, H, W)
        if (ctx.inference) norm_.release();
        a_.resize(x.dims());  // (B, C, H, W)
        probs_.resize(shape{b, heads_, l, l});
        ops<B>::template attention_forward<T>(qkv_out_.reshaped(shape{b, 3 * c, l}), a_.view().reshaped(shape{b, c, l}),
                                              probs_.view(), heads_);
        if (ctx.inference) {  // with inference, each intermediate goes once read
            qkv_.release();
            qkv_out_ = {};
        }
        const tensor_view<const T, B> p = proj_.forward(a_.view(), ctx);  // (B, C, H, W)
        if (ctx.inference) a_.release();
        y_.resize(x.dims());
        ops<B>::template elementwise_add<T>(x, p, y_.view());
        if (ctx.inference) proj_.release();
        return y_.view();
    }

    // dy (B, C, H, W) -> dx; accumulates the gradients of norm, qkv and proj. Frees the forward's
    // activations: a second backward needs a new forward.
    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(qkv_out_.data() != nullptr, "nn::attention_block '", name_,
                "' backward: forward has not run, or ran with forward_context::inference");
        require_shape(dy.dims(), y_.dims(), "nn::attention_block backward dy");
        const std::int64_t b = dy.dim(0), c = channels_, l = dy.dim(2) * dy.dim(3);
        const tensor_view<const T, B> da = proj_.backward(dy);  // (B, C, H, W)
        a_.release();
        dqkv_.resize(qkv_out_.dims());  // (B, 3C, H, W)
        ops<B>::template attention_backward<T>(qkv_out_.reshaped(shape{b, 3 * c, l}), probs_.view(),
                                               da.reshaped(shape{b, c, l}), dqkv_.view().reshaped(shape{b, 3 * c, l}));
        proj_.release();  // each buffer goes once read, as in res_block::backward
        probs_.release();
        const tensor_view<const T, B> dh = qkv_.backward(dqkv_.view());  // (B, C, H, W)
        dqkv_.release();
        qkv_out_ = {};
        const tensor_view<const T, B> dx_norm = norm_.backward(dh);  // (B, C, H, W)
        qkv_.release();
        dx_.resize(dy.dims());
        ops<B>::template elementwise_add<T>(dx_norm, dy, dx_.view());  // the residual path adds dy
        norm_.release();
        return dx_.view();
    }

    // Frees every buffer of the block and its layers (to the buffer cache); a backward before the
    // next forward is an error.
    void release() noexcept {
        norm_.release();
        qkv_.release();
        proj_.release();
        qkv_out_ = {};
        a_.release();
        probs_.release();
        y_.release();
        dx_.release();
        dqkv_.release();
    }

    // The attention probabilities of the last forward, (B, heads, H·W, H·W).
    tensor_view<const T, B> probabilities() const { return probs_.view(); }
    std::int64_t channels() const { return channels_; }
    std::int64_t heads() const { return heads_; }
    const std::string& name() const { return name_; }

private:
    // Checked before any parameter is registered, so a refused block leaves the store as it was.
    static std::int64_t checked_heads_(std::string_view name, std::int64_t channels, std::int64_t heads) {
        require(heads >= 1 && channels >= 1 && channels % heads == 0, "nn::attention_block '", name,
                "': expected heads >= 1 dividing the channel count, found channels = ", channels,
                " and heads = ", heads);
        return heads;
    }

    std::string name_;
    std::int64_t channels_, heads_;
    group_norm<B, T> norm_;
    conv2d<B, T> qkv_, proj_;
    parameter_store<T, B>* store_;
    tensor_view<const T, B> qkv_out_;  // (B, 3C, H, W), qkv_'s output of the last forward
    tensor<T, B> a_;                   // (B, C, H, W), attention output
    tensor<T, B> probs_;               // (B, heads, L, L)
    tensor<T, B> y_, dx_;              // (B, C, H, W)
    tensor<T, B> dqkv_;                // (B, 3C, H, W)
};

}  // namespace ouro::nn
