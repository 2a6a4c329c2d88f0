// nn::unet: the DDPM noise-prediction U-Net in the ddpm-torch / guided-diffusion layout, configured
// at compile time by a structural unet_spec. It exposes its encoder (down path + middle block),
// whose bottleneck output is where Latent Space Filtering reads its latents (Cai et al. 2025, §3).
//
//   t -> sinusoidal(base) -> linear -> SiLU -> linear = emb (B, 4·base)   [+ label embedding]
//   x -> conv_in -> [res_block (+attention)]×R, downsample   per level   (skips saved)
//     -> middle: res_block, attention, res_block                         = encode(x, t, y)
//     -> [concat skip, res_block (+attention)]×(R+1), upsample per level
//     -> GroupNorm -> SiLU -> conv_out                                   = prediction (B, C, H, W)
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ouro/backend/op_params.hpp"
#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/fnv1a.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/activation.hpp"
#include "ouro/nn/attention.hpp"
#include "ouro/nn/conv2d.hpp"
#include "ouro/nn/embedding.hpp"
#include "ouro/nn/group_norm.hpp"
#include "ouro/nn/host_inputs.hpp"
#include "ouro/nn/linear.hpp"
#include "ouro/nn/module.hpp"
#include "ouro/nn/norm_silu_conv.hpp"
#include "ouro/nn/res_block.hpp"
#include "ouro/nn/resample.hpp"

namespace ouro::nn {

// The architecture of a U-Net, as a structural value usable as a template argument:
//   nn::unet<cpu, unet_spec{.in_channels = 1, .image_size = 28, .base = 32, .mult = {1, 2, 2},
//                           .attention = {false, false, true}, .classes = 10}>
struct unet_spec {
    static constexpr int max_levels = 5;

    int in_channels = 1;
    int image_size = 28;                        // square inputs, divisible by 2^(levels-1)
    int base = 32;                              // channels of the first level
    std::array<int, max_levels> mult{1, 2, 2};  // channel multiplier per level; the first 0 ends the list
    int res_blocks = 1;                         // per level on the way down (one more on the way up)
    std::array<bool, max_levels> attention{};   // self-attention after the res blocks of each level
    int heads = 1;
    int groups = 32;  // of every GroupNorm
    double dropout = 0.0;
    int classes = 0;  // 0 = unconditional; else labels 0..classes-1, plus a null class

    constexpr int levels() const {
        int n = 0;
        while (n < max_levels && mult[n] > 0) ++n;
        return n;
    }
    constexpr int channels(int level) const { return base * mult[level]; }
    constexpr int emb_dim() const { return 4 * base; }
    constexpr int bottleneck_channels() const { return channels(levels() - 1); }

    // Spatial size after `level` downsamplings.
    constexpr int size_at(int level) const { return image_size >> level; }

    // "in=1 size=28 base=32 mult=1,2,2 res=1 attn=0,0,1 heads=1 groups=32 dropout=0 classes=10"
    std::string str() const {
        std::ostringstream os;
        os << "in=" << in_channels << " size=" << image_size << " base=" << base << " mult=";
        for (int l = 0; l < levels(); ++l) os << (l ? "," : "") << mult[l];
        os << " res=" << res_blocks << " attn=";
        for (int l = 0; l < levels(); ++l) os << (l ? "," : "") << int(attention[l]);
        os << " heads=" << heads << " groups=" << groups << " dropout=" << dropout << " classes=" << classes;
        return os.str();
    }

    // FNV-1a of str(): a short fingerprint stored with checkpoints.
    std::uint64_t hash() const { return fnv1a_of(str()); }
};

// Checks a spec once, with messages that say which field is wrong. Throws ouro::error.
inline void validate(const unet_spec& s) {
    require(s.in_channels >= 1, "unet_spec: expected in_channels >= 1, found ", s.in_channels);
    require(s.image_size >= 1, "unet_spec: expected image_size >= 1, found ", s.image_size);
    require(s.base >= 1, "unet_spec: expected base >= 1, found ", s.base);
    require(s.levels() >= 1, "unet_spec: expected at least one level (mult[0] > 0)");
    require(s.image_size % (1 << (s.levels() - 1)) == 0, "unet_spec: image_size ", s.image_size,
            " must be divisible by 2^(levels - 1) = ", 1 << (s.levels() - 1),
            " so that upsampling restores the sizes of the skips");
    require(s.res_blocks >= 1, "unet_spec: expected res_blocks >= 1, found ", s.res_blocks);
    require(s.classes >= 0, "unet_spec: expected classes >= 0, found ", s.classes);
    require(s.dropout >= 0 && s.dropout < 1, "unet_spec: expected 0 <= dropout < 1, found ", s.dropout);
    for (int l = 0; l < s.levels(); ++l)
        require(s.channels(l) % s.groups == 0, "unet_spec: groups = ", s.groups, " must divide the channels of level ",
                l, ", found ", s.channels(l));
}

template <backend B, unet_spec Spec, real_scalar T = float>
class unet {
    static constexpr int levels_ = Spec.levels();
    static_assert(levels_ >= 1, "unet_spec: mult must start with a positive multiplier");

public:
    using backend_type = B;
    using value_type = T;
    static constexpr unet_spec spec = Spec;

    // Builds every layer and registers its parameters (zero until reset_parameters).
    // A unet owns its parameter store and is neither copied nor moved (its layers point into it).
    unet() {
        validate(Spec);
        const std::int64_t emb = Spec.emb_dim();
        time_fc1_.emplace(store_, "time_embed.0", Spec.base, emb);
        time_fc2_.emplace(store_, "time_embed.2", emb, emb);
        if (Spec.classes > 0) label_emb_.emplace(store_, "label_emb", Spec.classes + 1, emb);
        conv_in_.emplace(store_, "input.conv", Spec.in_channels, Spec.base, 3,
                         conv2d_params{.stride = 1, .padding = 1});

        std::uint64_t salt = 1;  // one dropout stream per res block
        auto res_options = [&] {
            return res_block_options{.dropout = Spec.dropout, .dropout_salt = salt++, .groups = Spec.groups};
        };
        const attention_block_options attn_options{.heads = Spec.heads, .groups = Spec.groups};

        std::vector<std::int64_t> skip_channels{Spec.base};
        std::int64_t ch = Spec.base;
        for (int l = 0; l < levels_; ++l) {
            const std::string level = "down." + std::to_string(l);
            for (int r = 0; r < Spec.res_blocks; ++r) {
                const std::string idx = std::to_string(r);
                down_.push_back(std::make_unique<stage>());
                stage& s = *down_.back();
                s.res.emplace(store_, level + ".res." + idx, ch, Spec.channels(l), emb, res_options());
                ch = Spec.channels(l);
                if (Spec.attention[l]) s.attn.emplace(store_, level + ".attn." + idx, ch, attn_options);
                skip_channels.push_back(ch);
            }
            if (l + 1 < levels_) {
                down_.push_back(std::make_unique<stage>());
                down_.back()->down.emplace(store_, level + ".downsample", ch);
                skip_channels.push_back(ch);
            }
        }
        mid_res1_.emplace(store_, "mid.res1", ch, ch, emb, res_options());
        mid_attn_.emplace(store_, "mid.attn", ch, attn_options);
        mid_res2_.emplace(store_, "mid.res2", ch, ch, emb, res_options());

        for (int l = levels_ - 1; l >= 0; --l) {
            const std::string level = "up." + std::to_string(l);
            for (int r = 0; r <= Spec.res_blocks; ++r) {
                const std::string idx = std::to_string(r);
                up_.push_back(std::make_unique<stage>());
                stage& s = *up_.back();
                const std::int64_t skip = skip_channels.back();
                skip_channels.pop_back();
                s.res.emplace(store_, level + ".res." + idx, ch + skip, Spec.channels(l), emb, res_options());
                ch = Spec.channels(l);
                if (Spec.attention[l]) s.attn.emplace(store_, level + ".attn." + idx, ch, attn_options);
            }
            if (l > 0) {
                up_.push_back(std::make_unique<stage>());
                up_.back()->up.emplace(store_, level + ".upsample", ch);
            }
        }
        out_norm_.emplace(store_, "out.norm", Spec.groups, ch);
        out_conv_.emplace(store_, "out.conv", ch, Spec.in_channels, 3, conv2d_params{.stride = 1, .padding = 1});
    }
    unet(const unet&) = delete;
    unet& operator=(const unet&) = delete;

    // PyTorch's default init; the output conv starts at zero (guided-diffusion's zero_module), so a
    // fresh model predicts 0 and training starts from a calm loss.
    void reset_parameters(std::uint64_t seed) {
        time_fc1_->reset_parameters(seed);
        time_fc2_->reset_parameters(seed);
        if (label_emb_) label_emb_->reset_parameters(seed);
        conv_in_->reset_parameters(seed);
        for (auto& s : down_) s->reset_parameters(seed);
        mid_res1_->reset_parameters(seed);
        mid_attn_->reset_parameters(seed);
        mid_res2_->reset_parameters(seed);
        for (auto& s : up_) s->reset_parameters(seed);
        out_norm_->reset_parameters(seed);
        out_conv_->reset_parameters(seed);
        fill_constant(store_.value(out_conv_->weight()), T(0));
        fill_constant(store_.value(out_conv_->bias()), T(0));
    }

    // The encoder: x_t (B, C, S, S) in B's memory, t (B) and y (B) or empty on the host -> bottleneck (B, C_mid, s, s).
    // Labels are required when Spec.classes > 0; the null class Spec.classes means "no label".
    tensor_view<const T, B> encode(tensor_view<const T, B> x, tensor_view<const std::int64_t> t,
                                   tensor_view<const std::int64_t> y, const forward_context& ctx = {}) {
        check_inputs_(x, t, y);
        // t and y come from the host (the samplers and the trainer draw them there).
        const tensor_view<const T, B> t_float = inputs_.timesteps(t);  // (B)
        const tensor_view<const std::int64_t, B> labels = inputs_.labels(y);

        // Time (and label) embedding, (B, 4·base).
        auto e = time_fc2_->forward(time_act_.forward(time_fc1_->forward(time_sin_.forward(t_float), ctx)), ctx);
        emb_.resize(e.dims());
        if (label_emb_) ops<B>::template elementwise_add<T>(e, label_emb_->forward(labels, ctx), emb_.view());
        else
            copy(e, emb_.view());

        skips_.clear();
        tensor_view<const T, B> h = conv_in_->forward(x, ctx);  // (B, base, S, S)
        skips_.push_back(h);
        for (auto& s : down_) {
            h = s->forward(h, emb_.view(), ctx);
            skips_.push_back(h);
        }
        h = mid_res1_->forward(h, emb_.view(), ctx);
        h = mid_attn_->forward(h, ctx);
        if (ctx.inference) mid_res1_->release();
        h = mid_res2_->forward(h, emb_.view(), ctx);  // (B, C_mid, s, s)
        if (ctx.inference) mid_attn_->release();
        return h;
    }

    // The full network: x_t (B, C, S, S), t (B), y (B) or empty -> prediction (B, C, S, S).
    tensor_view<const T, B> forward(tensor_view<const T, B> x, tensor_view<const std::int64_t> t,
                                    tensor_view<const std::int64_t> y, const forward_context& ctx = {}) {
        tensor_view<const T, B> h = encode(x, t, y, ctx);
        // With ctx.inference, the module holding h is freed once h has been read, and each skip's
        // producer once its concat has run: the pass then holds the skips and a few live tensors.
        const bool free_early = ctx.inference;
        std::function<void()> free_h = [this] { mid_res2_->release(); };
        std::size_t skip = skips_.size();
        for (auto& s : up_) {
            if (s->res) {
                h = s->concat.forward(h, skips_[--skip], ctx);
                if (free_early) {
                    free_h();
                    release_skip_producer_(skip);
                }
                free_h = [&c = s->concat] { c.release(); };
            }
            h = s->forward(h, emb_.view(), ctx);
            if (free_early) free_h();
            free_h = [st = s.get()] { st->release(); };
        }
        const tensor_view<const T, B> out = norm_silu_conv(*out_norm_, *out_conv_, h, ctx);  // (B, C, S, S)
        if (free_early) {
            free_h();
            out_norm_->release();
        }
        return out;
    }

    // The denoiser interface of the samplers: evaluation mode, no backward (forward_context::inference),
    // the convolutions' products at predict_precision().
    tensor_view<const T, B> predict(tensor_view<const T, B> x, tensor_view<const std::int64_t> t,
                                    tensor_view<const std::int64_t> y) {
        return forward(x, t, y, forward_context{.inference = true, .matmul = predict_precision_});
    }

    // The products of predict (hence of every sampler): fp32 (the default) or bf16, an opt-in that
    // samples about 1.5× faster on CPUs with AVX512-BF16 (benchmarks/RESULTS.md has its effect on
    // quality). Training and encode() are unaffected.
    void set_predict_precision(matmul_precision p) noexcept { predict_precision_ = p; }
    matmul_precision predict_precision() const noexcept { return predict_precision_; }

    // Frees every activation and gradient buffer of the network (to the buffer cache), e.g. after
    // sampling or encoding, before the model sits idle; parameters are untouched.
    void release() noexcept {
        time_sin_.release();
        time_fc1_->release();
        time_act_.release();
        time_fc2_->release();
        if (label_emb_) label_emb_->release();
        conv_in_->release();
        for (auto& s : down_) s->release();
        mid_res1_->release();
        mid_attn_->release();
        mid_res2_->release();
        for (auto& s : up_) s->release();
        out_norm_->release();
        out_conv_->release();
        inputs_.release();
        emb_.release();
        demb_.release();
        skips_.clear();
        dskips_.clear();
    }

    // dprediction (B, C, S, S) -> dx (B, C, S, S); parameter gradients accumulate in store().
    // Each block is freed once the gradient it produced has been read, so the backward holds the
    // activations still to be differentiated and a few gradients; a second backward needs a new
    // forward.
    tensor_view<const T, B> backward(tensor_view<const T, B> dout) {
        require(!skips_.empty(), "unet backward: forward has not run, or ran with forward_context::inference");
        demb_.resize(emb_.dims());
        demb_.zero();
        auto g = out_conv_->backward(dout);
        g = out_norm_->backward(g);
        out_conv_->release();
        std::function<void()> free_g = [this] { out_norm_->release(); };  // frees the buffer g lies in

        // Up path, last stage first; the skip part of each concat's gradient is set aside.
        dskips_.resize(skips_.size());
        for (std::size_t i = 0; i < skips_.size(); ++i) dskips_[i] = tensor<T, B>{};
        std::size_t skip = 0;
        for (auto it = up_.rbegin(); it != up_.rend(); ++it) {
            stage& s = **it;
            g = s.backward(g, demb_);
            free_g();
            free_g = [&s] { s.release(); };
            if (s.res) {
                const auto parts = s.concat.backward(g);
                store_skip_grad_(skip++, parts.db);
                g = parts.da;
                s.release_except_concat();
                free_g = [&s] { s.concat.release(); };
            }
        }
        g = mid_res2_->backward(g);
        free_g();
        accumulate_(demb_, mid_res2_->emb_grad());
        g = mid_attn_->backward(g);
        mid_res2_->release();
        g = mid_res1_->backward(g);
        mid_attn_->release();
        accumulate_(demb_, mid_res1_->emb_grad());
        free_g = [this] { mid_res1_->release(); };

        // Down path: each stage's output gradient is what came from above plus its skip's.
        for (std::size_t i = down_.size(); i-- > 0;) {
            g = with_skip_grad_(g, i + 1);
            g = down_[i]->backward(g, demb_);
            free_g();
            dskips_[i + 1] = tensor<T, B>{};
            free_g = [st = down_[i].get()] { st->release(); };
        }
        g = with_skip_grad_(g, 0);
        const auto dx = conv_in_->backward(g);
        free_g();
        dskips_[0] = tensor<T, B>{};
        skips_.clear();

        // Embedding path.
        if (label_emb_) label_emb_->backward(demb_.view());
        time_fc1_->backward(time_act_.backward(time_fc2_->backward(demb_.view())));
        return dx;
    }

    parameter_store<T, B>& store() { return store_; }
    const parameter_store<T, B>& store() const { return store_; }

private:
    // One step of the down or up path: a res block with optional attention, or a resampler.
    struct stage {
        std::optional<res_block<B, T>> res;
        std::optional<attention_block<B, T>> attn;
        std::optional<downsample<B, T>> down;
        std::optional<upsample<B, T>> up;
        concat_channels<B, T> concat;  // used on the up path before `res`

        void reset_parameters(std::uint64_t seed) {
            if (res) res->reset_parameters(seed);
            if (attn) attn->reset_parameters(seed);
            if (down) down->reset_parameters(seed);
            if (up) up->reset_parameters(seed);
        }
        tensor_view<const T, B> forward(tensor_view<const T, B> h, tensor_view<const T, B> emb,
                                        const forward_context& ctx) {
            if (down) return down->forward(h, ctx);
            if (up) return up->forward(h, ctx);
            h = res->forward(h, emb, ctx);
            if (!attn) return h;
            h = attn->forward(h, ctx);
            if (ctx.inference) res->release();
            return h;
        }
        void release() noexcept {
            release_except_concat();
            concat.release();
        }
        void release_except_concat() noexcept {
            if (res) res->release();
            if (attn) attn->release();
            if (down) down->release();
            if (up) up->release();
        }
        tensor_view<const T, B> backward(tensor_view<const T, B> g, tensor<T, B>& demb) {
            if (down) return down->backward(g);
            if (up) return up->backward(g);
            if (attn) g = attn->backward(g);
            g = res->backward(g);
            if (attn) attn->release();
            accumulate_(demb, res->emb_grad());
            return g;
        }
    };

    // Skip 0 is conv_in's output, skip k the k-th down stage's.
    void release_skip_producer_(std::size_t skip) noexcept {
        if (skip == 0) conv_in_->release();
        else
            down_[skip - 1]->release();
    }

    static void accumulate_(tensor<T, B>& into, tensor_view<const T, B> g) {
        ops<B>::template accumulate<T>(g, into.view());
    }

    // The gradient of skip `index` is kept until the down path reaches its producer. (The up path
    // consumes skips from the back, so its backward, run in reverse, meets them from index 0 on.)
    void store_skip_grad_(std::size_t index, tensor_view<const T, B> g) {
        tensor<T, B>& d = dskips_[index];
        d.resize(g.dims());
        copy(g, d.view());
    }

    // g + the gradient that skip `index` received on the up path, in a buffer of its own.
    tensor_view<const T, B> with_skip_grad_(tensor_view<const T, B> g, std::size_t index) {
        tensor<T, B>& d = dskips_[index];
        if (d.rank() == 0) return g;
        ops<B>::template accumulate<T>(g, d.view());
        return d.view();
    }

    void check_inputs_(tensor_view<const T, B> x, tensor_view<const std::int64_t> t,
                       tensor_view<const std::int64_t> y) const {
        const std::int64_t batch = x.rank() == 4 ? x.dim(0) : 0;
        require(x.rank() == 4 && batch >= 1, "unet: expected x of shape (B, ", Spec.in_channels, ", ", Spec.image_size,
                ", ", Spec.image_size, ") with B >= 1, found ", x.dims());
        require_shape(x.dims(), shape{batch, Spec.in_channels, Spec.image_size, Spec.image_size}, "unet input x");
        require_shape(t.dims(), shape{batch}, "unet timesteps t");
        if (Spec.classes > 0) {
            require_shape(y.dims(), shape{batch}, "unet labels y (the model is class-conditional)");
            for (std::int64_t i = 0; i < batch; ++i)
                require(y[i] >= 0 && y[i] <= Spec.classes, "unet: label ", y[i], " at index ", i,
                        " is out of range: expected 0..", Spec.classes - 1, ", or ", Spec.classes, " for no label");
        } else {
            require(y.numel() == 0, "unet: the model is unconditional, but labels of shape ", y.dims(), " were given");
        }
    }

    parameter_store<T, B> store_;
    matmul_precision predict_precision_ = matmul_precision::fp32;
    timestep_embedding<B, T> time_sin_{Spec.base};
    std::optional<linear<B, T>> time_fc1_, time_fc2_;
    silu<B, T> time_act_;
    std::optional<label_embedding<B, T>> label_emb_;
    std::optional<conv2d<B, T>> conv_in_;
    std::vector<std::unique_ptr<stage>> down_, up_;
    std::optional<res_block<B, T>> mid_res1_, mid_res2_;
    std::optional<attention_block<B, T>> mid_attn_;
    std::optional<group_norm_silu<B, T>> out_norm_;  // GroupNorm then SiLU, one layer
    std::optional<conv2d<B, T>> out_conv_;

    host_inputs<B, T> inputs_;                    // t and y in B's memory
    tensor<T, B> emb_, demb_;                     // (B, 4·base)
    std::vector<tensor_view<const T, B>> skips_;  // outputs of conv_in and of every down stage
    std::vector<tensor<T, B>> dskips_;
};

}  // namespace ouro::nn
