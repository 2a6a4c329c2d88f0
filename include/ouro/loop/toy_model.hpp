// loop::toy::mlp_denoiser: the MLP denoiser of the toy world (loop/toy.hpp). A 2-D point is a
// (2, 1, 1) "image", so the model runs through the same trainer, samplers and latent extractor as
// nn::unet, with the same interface (forward/backward/predict/encode, a static spec, a store).
//
//   t -> sinusoidal(time_dim) -> linear -> SiLU -> linear = emb (B, hidden)
//   h0 = SiLU(linear(x) + emb [+ label embedding(y)])                        = encode(x, t, y)
//   h  = SiLU(linear(h)) × depth
//   out = linear(h)                                                          = prediction (B, C, 1, 1)
//
// The usual MLP of 2-D diffusion toys. Its "bottleneck" for Latent Space Filtering is h0, the first
// hidden layer: the first place where the point, the timestep and the label have been combined.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ouro/backend/ops.hpp"
#include "ouro/core/backend.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/fnv1a.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/activation.hpp"
#include "ouro/nn/embedding.hpp"
#include "ouro/nn/host_inputs.hpp"
#include "ouro/nn/linear.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::loop::toy {

// The architecture of the MLP, as a structural value usable as a template argument:
//   loop::toy::mlp_denoiser<cpu, mlp_spec{.hidden = 128, .depth = 3, .time_dim = 32, .classes = 8}>
struct mlp_spec {
    std::int64_t in_channels = 2;  // the point's dimension
    std::int64_t image_size = 1;   // always 1: a point is a (C, 1, 1) image
    std::int64_t hidden = 128;     // width of every hidden layer
    std::int64_t depth = 3;        // hidden layers after the first (h0)
    std::int64_t time_dim = 32;    // width of the sinusoidal timestep embedding
    std::int64_t classes = 8;      // 0 = unconditional; else labels 0..classes-1, plus the null class `classes`

    // "toy_mlp(in=2, hidden=128, depth=3, time=32, classes=8)"
    std::string str() const {
        std::ostringstream os;
        os << "toy_mlp(in=" << in_channels << ", hidden=" << hidden << ", depth=" << depth << ", time=" << time_dim
           << ", classes=" << classes << ")";
        return os.str();
    }

    // FNV-1a of str(): a short fingerprint stored with checkpoints (as unet_spec::hash).
    std::uint64_t hash() const { return fnv1a_of(str()); }
};

// Checks a spec, with messages that say which field is wrong. Throws ouro::error.
inline void validate(const mlp_spec& s) {
    require(s.in_channels >= 1, "toy::mlp_spec: expected in_channels >= 1, found ", s.in_channels);
    require(s.image_size == 1, "toy::mlp_spec: expected image_size = 1 (a point is a (C, 1, 1) image), found ",
            s.image_size);
    require(s.hidden >= 1, "toy::mlp_spec: expected hidden >= 1, found ", s.hidden);
    require(s.depth >= 0, "toy::mlp_spec: expected depth >= 0, found ", s.depth);
    // One frequency needs a cos and a sin: a width of 1 would embed every timestep as 0.
    require(s.time_dim >= 2, "toy::mlp_spec: expected time_dim >= 2, found ", s.time_dim);
    require(s.classes >= 0, "toy::mlp_spec: expected classes >= 0, found ", s.classes);
}

template <backend B, mlp_spec Spec, real_scalar T = float>
class mlp_denoiser {
public:
    using backend_type = B;
    using value_type = T;
    static constexpr mlp_spec spec = Spec;

    // Builds every layer and registers its parameters (zero until reset_parameters). Names follow
    // PyTorch state-dict keys of nn.Sequential-style modules: "input.*", "time.0.*", "time.2.*",
    // "label_emb.weight", "blocks.<i>.*", "output.*". The model owns its store and is neither copied
    // nor moved (its layers point into it); a replica is default-constructed and given the values.
    mlp_denoiser() {
        validate(Spec);
        input_.emplace(store_, "input", Spec.in_channels, Spec.hidden);
        time_fc1_.emplace(store_, "time.0", Spec.time_dim, Spec.hidden);
        time_fc2_.emplace(store_, "time.2", Spec.hidden, Spec.hidden);
        if (Spec.classes > 0) label_emb_.emplace(store_, "label_emb", Spec.classes + 1, Spec.hidden);
        blocks_.reserve(static_cast<std::size_t>(Spec.depth));  // no reallocation: layers keep views into blocks
        for (std::int64_t i = 0; i < Spec.depth; ++i)
            blocks_.emplace_back(store_, "blocks." + std::to_string(i), Spec.hidden);
        output_.emplace(store_, "output", Spec.hidden, Spec.in_channels);
    }
    mlp_denoiser(const mlp_denoiser&) = delete;
    mlp_denoiser& operator=(const mlp_denoiser&) = delete;

    // PyTorch's default init (Linear: uniform ±1/sqrt(in), Embedding: N(0, 1)); the output layer
    // starts at zero (as nn::unet's, guided-diffusion's zero_module), so a fresh model predicts 0.
    void reset_parameters(std::uint64_t seed) {
        input_->reset_parameters(seed);
        time_fc1_->reset_parameters(seed);
        time_fc2_->reset_parameters(seed);
        if (label_emb_) label_emb_->reset_parameters(seed);
        for (block& b : blocks_) b.fc.reset_parameters(seed);
        nn::fill_constant(store_.value(store_.find("output.weight")), T(0));
        nn::fill_constant(store_.value(store_.find("output.bias")), T(0));
    }

    // The encoder: x_t (B, C, 1, 1), t (B), y (B) or empty -> h0 (B, hidden, 1, 1).
    // Labels are required when Spec.classes > 0 (the null class Spec.classes means "no label") and
    // refused otherwise. Rows do not depend on each other, bitwise: every op works row by row.
    tensor_view<const T, B> encode(tensor_view<const T, B> x, tensor_view<const std::int64_t> t,
                                   tensor_view<const std::int64_t> y, const nn::forward_context& ctx = {}) {
        check_inputs_(x, t, y);
        forward_ran_ = false;
        batch_ = x.dim(0);
        // t and y come from the host; inputs_ gives them in B's memory.
        auto emb =
            time_fc2_->forward(time_act_.forward(time_fc1_->forward(time_sin_.forward(inputs_.timesteps(t)), ctx)),
                               ctx);  // (B, hidden)
        pre_.resize(shape{batch_, Spec.hidden});
        ops<B>::template elementwise_add<T>(input_->forward(x.reshaped(shape{batch_, Spec.in_channels}), ctx), emb,
                                            pre_.view());
        if (label_emb_) ops<B>::template accumulate<T>(label_emb_->forward(inputs_.labels(y), ctx), pre_.view());
        h0_ = act0_.forward(pre_.view());  // (B, hidden)
        return h0_.reshaped(shape{batch_, Spec.hidden, 1, 1});
    }

    // The full network: x_t (B, C, 1, 1), t (B), y (B) or empty -> prediction (B, C, 1, 1).
    tensor_view<const T, B> forward(tensor_view<const T, B> x, tensor_view<const std::int64_t> t,
                                    tensor_view<const std::int64_t> y, const nn::forward_context& ctx = {}) {
        encode(x, t, y, ctx);
        tensor_view<const T, B> h = h0_;
        for (block& b : blocks_) h = b.act.forward(b.fc.forward(h, ctx), ctx);  // (B, hidden)
        const auto out = output_->forward(h, ctx);                              // (B, C)
        forward_ran_ = true;
        return out.reshaped(shape{batch_, Spec.in_channels, 1, 1});
    }

    // The denoiser interface of the samplers: evaluation mode.
    tensor_view<const T, B> predict(tensor_view<const T, B> x, tensor_view<const std::int64_t> t,
                                    tensor_view<const std::int64_t> y) {
        return forward(x, t, y, nn::forward_context{});
    }

    // dprediction (B, C, 1, 1) of the last forward -> dx (B, C, 1, 1); parameter gradients
    // accumulate in store(). Requires forward (not only encode) to have run.
    tensor_view<const T, B> backward(tensor_view<const T, B> dout) {
        require(forward_ran_, "toy::mlp_denoiser backward: forward has not run (encode alone keeps no backward state)");
        require_shape(dout.dims(), shape{batch_, Spec.in_channels, 1, 1}, "toy::mlp_denoiser backward dout");
        auto g = output_->backward(dout.reshaped(shape{batch_, Spec.in_channels}));  // (B, hidden)
        for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) g = it->fc.backward(it->act.backward(g));
        g = act0_.backward(g);  // d(pre-activation of h0), shared by the three branches that sum into it
        if (label_emb_) label_emb_->backward(g);
        time_fc1_->backward(time_act_.backward(time_fc2_->backward(g)));
        return input_->backward(g).reshaped(shape{batch_, Spec.in_channels, 1, 1});
    }

    parameter_store<T, B>& store() { return store_; }
    const parameter_store<T, B>& store() const { return store_; }

private:
    struct block {
        block(parameter_store<T, B>& store, const std::string& name, std::int64_t width)
            : fc(store, name, width, width) {}
        nn::linear<B, T> fc;
        nn::silu<B, T> act;
    };

    void check_inputs_(tensor_view<const T, B> x, tensor_view<const std::int64_t> t,
                       tensor_view<const std::int64_t> y) const {
        const std::int64_t batch = x.rank() == 4 ? x.dim(0) : 0;
        require(x.rank() == 4 && batch >= 1, "toy::mlp_denoiser: expected x of shape (B, ", Spec.in_channels,
                ", 1, 1) with B >= 1, found ", x.dims());
        require_shape(x.dims(), shape{batch, Spec.in_channels, 1, 1}, "toy::mlp_denoiser input x");
        require_shape(t.dims(), shape{batch}, "toy::mlp_denoiser timesteps t");
        if constexpr (Spec.classes > 0) {
            require_shape(y.dims(), shape{batch}, "toy::mlp_denoiser labels y (the model is class-conditional)");
            for (std::int64_t i = 0; i < batch; ++i)
                require(y[i] >= 0 && y[i] <= Spec.classes, "toy::mlp_denoiser: label ", y[i], " at index ", i,
                        " is out of range: expected 0..", Spec.classes - 1, ", or ", Spec.classes, " for no label");
        } else {
            require(y.numel() == 0, "toy::mlp_denoiser: the model is unconditional, but labels of shape ", y.dims(),
                    " were given");
        }
    }

    parameter_store<T, B> store_;
    std::optional<nn::linear<B, T>> input_, time_fc1_, time_fc2_, output_;
    nn::timestep_embedding<B, T> time_sin_{Spec.time_dim};
    nn::silu<B, T> time_act_, act0_;
    std::optional<nn::label_embedding<B, T>> label_emb_;
    std::vector<block> blocks_;

    nn::host_inputs<B, T> inputs_;  // t and y in B's memory
    tensor<T, B> pre_;
    tensor_view<const T, B> h0_;  // (B, hidden), act0_'s output
    std::int64_t batch_ = 0;
    bool forward_ran_ = false;
};

}  // namespace ouro::loop::toy
