// nn::timestep_embedding (the sinusoidal embedding of diffusion timesteps, no parameters) and
// nn::label_embedding (a learned table of class embeddings, torch.nn.Embedding, "<name>.weight").
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

// t (B) -> (B, dim), guided-diffusion's `timestep_embedding` (cos half first, then sin half).
// Backward gives the gradient with respect to t, for continuous-time use and gradient checks.
template <backend B, real_scalar T = float>
class timestep_embedding {
public:
    explicit timestep_embedding(std::int64_t dim, double max_period = 10000.0) : dim_(dim), max_period_(max_period) {
        require(dim > 0, "nn::timestep_embedding: expected dim >= 1, found ", dim);
        require(max_period > 0, "nn::timestep_embedding: expected max_period > 0, found ", max_period);
    }

    void reset_parameters(std::uint64_t) {}

    // Keeps a view of t for backward: t must stay unchanged until then.
    tensor_view<const T, B> forward(tensor_view<const T, B> t, const forward_context& ctx = {}) {
        require_rank(t.dims(), 1, "nn::timestep_embedding forward", "t (B)");
        t_ = ctx.inference ? tensor_view<const T, B>{} : t;
        y_.resize(shape{t.dim(0), dim_});
        ops<B>::template sinusoidal_timestep_embedding<T>(t, y_.view(), max_period_);
        return y_.view();
    }

    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(t_.data() != nullptr,
                "nn::timestep_embedding backward: forward has not run, or ran with forward_context::inference");
        require_shape(dy.dims(), shape{t_.dim(0), dim_}, "nn::timestep_embedding backward dy (B, dim)");
        dt_.resize(t_.dims());
        ops<B>::template sinusoidal_timestep_embedding_backward<T>(t_, dy, dt_.view(), max_period_);
        return dt_.view();
    }

    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept {
        t_ = {};
        y_.release();
        dt_.release();
    }

    std::int64_t dim() const { return dim_; }

private:
    std::int64_t dim_;
    double max_period_;
    tensor_view<const T, B> t_;
    tensor<T, B> y_, dt_;
};

// labels (B) -> rows of "<name>.weight" (num_classes, dim). For classifier-free guidance, give it
// one class more than the data has and use the last as the "no label" class.
template <backend B, real_scalar T = float>
class label_embedding {
public:
    label_embedding(parameter_store<T, B>& store, std::string_view name, std::int64_t num_classes, std::int64_t dim)
        : store_(&store), classes_(num_classes), dim_(dim) {
        require(num_classes > 0 && dim > 0, "nn::label_embedding '", name, "': expected num_classes, dim >= 1, found ",
                num_classes, ", ", dim);
        weight_ = store.add(join_name(name, "weight"), shape{num_classes, dim});
    }

    // torch.nn.Embedding's init: weight ~ N(0, 1), from Philox keyed by (seed, init, parameter index).
    void reset_parameters(std::uint64_t seed) {
        fill_normal(store_->value(weight_), seed, static_cast<std::uint64_t>(weight_.index));
    }

    // Keeps a view of labels for backward: labels must stay unchanged until then.
    tensor_view<const T, B> forward(tensor_view<const std::int64_t, B> labels, const forward_context& ctx = {}) {
        require_rank(labels.dims(), 1, "nn::label_embedding forward", "labels (B)");
        labels_ = ctx.inference ? tensor_view<const std::int64_t, B>{} : labels;
        y_.resize(shape{labels.dim(0), dim_});
        ops<B>::template label_embedding_forward<T>(labels, std::as_const(*store_).value(weight_), y_.view());
        return y_.view();
    }

    // Accumulates dy (B, dim) into the rows of the weight gradient picked by the forward's labels.
    void backward(tensor_view<const T, B> dy) {
        require(labels_.data() != nullptr,
                "nn::label_embedding backward: forward has not run, or ran with forward_context::inference");
        ops<B>::template label_embedding_backward<T>(labels_, dy, store_->grad(weight_));
    }

    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept {
        labels_ = {};
        y_.release();
    }

    std::int64_t num_classes() const { return classes_; }
    std::int64_t dim() const { return dim_; }

private:
    parameter_store<T, B>* store_;
    std::int64_t classes_, dim_;
    parameter weight_;
    tensor_view<const std::int64_t, B> labels_;
    tensor<T, B> y_;
};

}  // namespace ouro::nn
