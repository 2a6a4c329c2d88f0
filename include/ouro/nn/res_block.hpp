// nn::res_block, the residual block of DDPM U-Nets conditioned on an embedding (Ho et al. 2020;
// guided-diffusion's ResBlock without scale-shift norm or resampling):
//   h   = conv1(silu(norm1(x)))
//   h  += emb_proj(silu(emb))[:, :, None, None]     (time embedding, label embedding already added)
//   y   = conv2(dropout(silu(norm2(h)))) + skip(x)   (skip: 1×1 conv when Cin != Cout, else identity)
// Parameters "<name>.norm1.*", "<name>.conv1.*" (3×3), "<name>.emb_proj.*", "<name>.norm2.*",
// "<name>.conv2.*" (3×3) and, when Cin != Cout, "<name>.skip.*" (1×1); ".weight" and ".bias" each.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ouro/backend/op_params.hpp"
#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/activation.hpp"
#include "ouro/nn/conv2d.hpp"
#include "ouro/nn/dropout.hpp"
#include "ouro/nn/group_norm.hpp"
#include "ouro/nn/linear.hpp"
#include "ouro/nn/module.hpp"
#include "ouro/nn/norm_silu_conv.hpp"

namespace ouro::nn {

struct res_block_options {
    double dropout = 0.0;            // drop probability before conv2 (training only)
    std::uint64_t dropout_salt = 0;  // tells this block's dropout masks from other layers' (see nn::dropout)
    std::int64_t groups = 32;        // of both GroupNorms; must divide Cin and Cout
    double eps = 1e-5;               // of both GroupNorms (torch's default, as guided-diffusion)
};

template <backend B, real_scalar T = float>
class res_block {
public:
    // Registers the parameters above under `name` in `store`, which must outlive the block.
    // Requires channel counts and emb_dim >= 1, options.groups dividing both channel counts.
    res_block(parameter_store<T, B>& store, std::string_view name, std::int64_t in_channels, std::int64_t out_channels,
              std::int64_t emb_dim, res_block_options options = {})
        : name_(name),
          in_(in_channels),
          out_(out_channels),
          emb_dim_(checked_emb_dim_(name, in_channels, out_channels, emb_dim, options)),
          norm1_(store, join_name(name, "norm1"), options.groups, in_channels, options.eps),
          conv1_(store, join_name(name, "conv1"), in_channels, out_channels, 3,
                 conv2d_params{.stride = 1, .padding = 1}),
          emb_proj_(store, join_name(name, "emb_proj"), emb_dim, out_channels),
          norm2_(store, join_name(name, "norm2"), options.groups, out_channels, options.eps),
          dropout_(options.dropout, options.dropout_salt),
          conv2_(store, join_name(name, "conv2"), out_channels, out_channels, 3,
                 conv2d_params{.stride = 1, .padding = 1}),
          store_(&store) {
        if (in_channels != out_channels) skip_.emplace(store, join_name(name, "skip"), in_channels, out_channels, 1);
    }

    // PyTorch's default init everywhere except conv2, which starts at zero as guided-diffusion's
    // zero_module and DDPM's init_scale=0: a fresh block is skip(x).
    void reset_parameters(std::uint64_t seed) {
        norm1_.reset_parameters(seed);
        conv1_.reset_parameters(seed);
        emb_proj_.reset_parameters(seed);
        norm2_.reset_parameters(seed);
        fill_constant(store_->value(conv2_.weight()), T(0));
        fill_constant(store_->value(conv2_.bias()), T(0));
        if (skip_) skip_->reset_parameters(seed);
    }

    // x (B, Cin, H, W), emb (B, emb_dim) -> y (B, Cout, H, W). Dropout is active when ctx.training.
    // Keeps views of x and emb for backward: both must stay unchanged until then. With
    // ctx.inference, each layer's output is freed once the next layer has read it.
    tensor_view<const T, B> forward(tensor_view<const T, B> x, tensor_view<const T, B> emb,
                                    const forward_context& ctx = {}) {
        require(x.rank() == 4 && x.dim(1) == in_ && x.dim(0) >= 1, "nn::res_block '", name_,
                "' forward: expected x of shape (B, ", in_, ", H, W) with B >= 1, found shape ", x.dims());
        require_shape(emb.dims(), shape{x.dim(0), emb_dim_}, "nn::res_block forward emb (B, emb_dim)");
        if constexpr (fuses_norm_silu_conv<B, T>) {
            if (ctx.fusable()) return fused_inference_(x, emb, ctx);
        }
        const bool free_early = ctx.inference;
        const tensor_view<const T, B> a1 = norm1_.forward(x, ctx);   // silu(norm1(x)), one layer
        const tensor_view<const T, B> h1 = conv1_.forward(a1, ctx);  // (B, Cout, H, W)
        if (free_early) norm1_.release();
        const tensor_view<const T, B> e = emb_proj_.forward(emb_act_.forward(emb, ctx), ctx);  // (B, Cout)
        h_.resize(h1.dims());
        ops<B>::template add_per_channel<T>(h1, e, h_.view());
        if (free_early) {
            conv1_.release();
            emb_act_.release();
            emb_proj_.release();
        } else {
            conv1_.release_output();  // read by the add alone; conv1's backward needs its input, not this
        }
        const tensor_view<const T, B> n2 = norm2_.forward(h_.view(), ctx);
        const tensor_view<const T, B> a2 = dropout_.forward(n2, ctx);
        if (free_early) h_.release();
        // In training with dropout, a2 is a new tensor: norm2's output is dead (its backward reads h).
        if (!free_early && a2.data() != n2.data()) norm2_.release_output();
        const tensor_view<const T, B> h2 = conv2_.forward(a2, ctx);  // (B, Cout, H, W)
        if (free_early) {
            norm2_.release();
            dropout_.release();
        }
        const tensor_view<const T, B> s = skip_ ? skip_->forward(x, ctx) : x;  // (B, Cout, H, W)
        y_.resize(h2.dims());
        ops<B>::template elementwise_add<T>(h2, s, y_.view());
        if (free_early) {
            conv2_.release();
            if (skip_) skip_->release();
        } else {
            conv2_.release_output();
            if (skip_) skip_->release_output();
        }
        ran_ = !free_early;
        return y_.view();
    }

    // dy (B, Cout, H, W) -> dx (B, Cin, H, W); stores d emb (emb_grad()) and accumulates the
    // gradients of every parameter. Frees the forward's activations: a second backward needs a
    // new forward.
    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(ran_, "nn::res_block '", name_,
                "' backward: forward has not run, or ran with forward_context::inference");
        require_shape(dy.dims(), y_.dims(), "nn::res_block backward dy");
        // Each layer is freed once its input gradient has been read (its activations were read by
        // the layer after it, whose backward ran first), as PyTorch frees a graph it differentiates.
        const tensor_view<const T, B> dh = norm2_.backward(dropout_.backward(conv2_.backward(dy)));  // (B, Cout, H, W)
        conv2_.release();
        dropout_.release();
        de_.resize(shape{dy.dim(0), out_});
        ops<B>::template sum_per_channel<T>(dh, de_.view());  // gradient of the broadcast over H, W
        // A view of emb_act_'s own gradient buffer, valid until the next backward.
        demb_ = emb_act_.backward(emb_proj_.backward(de_.view()));  // (B, emb_dim)
        emb_proj_.release();
        const tensor_view<const T, B> dx_main = norm1_.backward(conv1_.backward(dh));  // (B, Cin, H, W)
        norm2_.release();
        h_.release();
        conv1_.release();
        const tensor_view<const T, B> dx_skip = skip_ ? skip_->backward(dy) : dy;  // (B, Cin, H, W)
        dx_.resize(dx_main.dims());
        ops<B>::template elementwise_add<T>(dx_main, dx_skip, dx_.view());
        norm1_.release();
        if (skip_) skip_->release();
        ran_ = false;
        return dx_.view();
    }

    // Frees every buffer of the block and its layers (to the buffer cache); a backward before the
    // next forward is an error.
    void release() noexcept {
        norm1_.release();
        conv1_.release();
        emb_act_.release();
        emb_proj_.release();
        norm2_.release();
        dropout_.release();
        conv2_.release();
        if (skip_) skip_->release();
        h_.release();
        y_.release();
        dx_.release();
        de_.release();
        demb_ = {};
        ran_ = false;
    }

    // d loss / d emb of the last backward, (B, emb_dim); valid until the next backward.
    tensor_view<const T, B> emb_grad() const { return demb_; }

    std::int64_t in_channels() const { return in_; }
    std::int64_t out_channels() const { return out_; }
    std::int64_t emb_dim() const { return emb_dim_; }
    bool has_skip_conv() const { return skip_.has_value(); }
    const std::string& name() const { return name_; }

private:
    // forward for inference on a backend that fuses: each GroupNorm+SiLU is applied by the conv
    // after it as it reads its input, and the embedding and the skip are added by the convs as
    // they write their outputs (conv2d::forward_silu_affine), so neither the activations nor h1 and
    // h2 before their additions are ever stored. The same bits as the unfused pass. The output
    // lives in conv2_ until release().
    tensor_view<const T, B> fused_inference_(tensor_view<const T, B> x, tensor_view<const T, B> emb,
                                             const forward_context& ctx) {
        const tensor_view<const T, B> e = emb_proj_.forward(emb_act_.forward(emb, ctx), ctx);  // (B, Cout)
        // h = conv1(silu(norm1(x))) + e
        const tensor_view<const T, B> h = conv1_.forward_silu_affine(x, norm1_.silu_coefficients(x), ctx, e);
        norm1_.release();
        emb_act_.release();
        emb_proj_.release();
        const tensor_view<const T, B> s = skip_ ? skip_->forward(x, ctx) : x;  // (B, Cout, H, W)
        // y = conv2(silu(norm2(h))) + s (dropout is the identity in inference)
        const tensor_view<const T, B> y =
            conv2_.forward_silu_affine(h, norm2_.silu_coefficients(h), ctx, tensor_view<const T, B>{}, s);
        conv1_.release();
        norm2_.release();
        if (skip_) skip_->release();
        ran_ = false;
        return y;
    }

    // Checked before any parameter is registered, so a refused block leaves the store as it was.
    static std::int64_t checked_emb_dim_(std::string_view name, std::int64_t in, std::int64_t out, std::int64_t emb_dim,
                                         const res_block_options& o) {
        require(in >= 1 && out >= 1 && emb_dim >= 1, "nn::res_block '", name,
                "': expected in_channels, out_channels and emb_dim >= 1, found ", in, ", ", out, " and ", emb_dim);
        require(o.groups >= 1 && in % o.groups == 0 && out % o.groups == 0, "nn::res_block '", name,
                "': expected groups dividing both channel counts, found groups = ", o.groups, " for in_channels = ", in,
                " and out_channels = ", out);
        require(o.dropout >= 0 && o.dropout <= 1, "nn::res_block '", name,
                "': expected a drop probability 0 <= p <= 1, found p = ", o.dropout);
        return emb_dim;
    }

    std::string name_;
    std::int64_t in_, out_, emb_dim_;
    group_norm_silu<B, T> norm1_;  // GroupNorm then SiLU, one layer
    conv2d<B, T> conv1_;
    silu<B, T> emb_act_;
    linear<B, T> emb_proj_;
    group_norm_silu<B, T> norm2_;
    dropout<B, T> dropout_;
    conv2d<B, T> conv2_;
    std::optional<conv2d<B, T>> skip_;
    parameter_store<T, B>* store_;
    tensor<T, B> h_;                // (B, Cout, H, W), conv1 output plus the embedding
    tensor<T, B> y_, dx_;           // (B, Cout, H, W), (B, Cin, H, W)
    tensor<T, B> de_;               // (B, Cout), gradient of emb_proj's output
    tensor_view<const T, B> demb_;  // (B, emb_dim), emb_act_'s input gradient
    bool ran_ = false;
};

}  // namespace ouro::nn
