// nn::lenet: LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998) for 28×28 grey digits, with ReLU and max
// pooling as is usual today. It is ouro's first real model, and, trained on real data, the feature
// extractor that FID, precision and recall use for 28×28 grey images (its 84-d penultimate layer).
#pragma once

#include <cstdint>

#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/activation.hpp"
#include "ouro/nn/conv2d.hpp"
#include "ouro/nn/linear.hpp"
#include "ouro/nn/module.hpp"
#include "ouro/nn/pool.hpp"

namespace ouro::nn {

template <backend B, real_scalar T = float>
class lenet {
public:
    static constexpr std::int64_t image_size = 28;
    static constexpr std::int64_t feature_dim = 84;

    // Owns its parameters; modules point into store_, so a lenet is neither copied nor moved.
    explicit lenet(std::int64_t num_classes = 10)
        : conv1_(store_, "conv1", 1, 6, 5, {.stride = 1, .padding = 2}),   // 28 -> 28
          conv2_(store_, "conv2", 6, 16, 5),                                // 14 -> 10
          fc1_(store_, "fc1", 16 * 5 * 5, 120),
          fc2_(store_, "fc2", 120, feature_dim),
          fc3_(store_, "fc3", feature_dim, num_classes),
          pool1_(2),
          pool2_(2) {}
    lenet(const lenet&) = delete;
    lenet& operator=(const lenet&) = delete;

    void reset_parameters(std::uint64_t seed) {
        conv1_.reset_parameters(seed);
        conv2_.reset_parameters(seed);
        fc1_.reset_parameters(seed);
        fc2_.reset_parameters(seed);
        fc3_.reset_parameters(seed);
    }

    // x (B, 1, 28, 28) -> 84-d features (B, 84), the input of the classifier layer.
    tensor_view<const T> features(tensor_view<const T> x, const forward_context& ctx = {}) {
        require_shape(x.dims(), shape{x.rank() == 4 ? x.dim(0) : 0, 1, image_size, image_size},
                      "lenet input (B, 1, 28, 28)");
        auto h = relu1_.forward(conv1_.forward(x, ctx));  // (B, 6, 28, 28)
        h = pool1_.forward(h);                            // (B, 6, 14, 14)
        h = relu2_.forward(conv2_.forward(h, ctx));       // (B, 16, 10, 10)
        h = pool2_.forward(h);                            // (B, 16, 5, 5)
        h = h.reshaped(shape{x.dim(0), 16 * 5 * 5});      // (B, 400)
        h = relu3_.forward(fc1_.forward(h, ctx));         // (B, 120)
        return relu4_.forward(fc2_.forward(h, ctx));      // (B, 84)
    }

    // x (B, 1, 28, 28) -> logits (B, classes).
    tensor_view<const T> forward(tensor_view<const T> x, const forward_context& ctx = {}) {
        return fc3_.forward(features(x, ctx), ctx);
    }

    // dlogits (B, classes) -> dx (B, 1, 28, 28); parameter gradients accumulate in store().
    tensor_view<const T> backward(tensor_view<const T> dlogits) {
        auto g = fc3_.backward(dlogits);
        g = fc2_.backward(relu4_.backward(g));
        g = fc1_.backward(relu3_.backward(g));
        g = g.reshaped(shape{g.dim(0), 16, 5, 5});
        g = conv2_.backward(relu2_.backward(pool2_.backward(g)));
        return conv1_.backward(relu1_.backward(pool1_.backward(g)));
    }

    parameter_store<T>& store() { return store_; }
    const parameter_store<T>& store() const { return store_; }

private:
    parameter_store<T> store_;  // declared first: the modules register into it
    conv2d<B, T> conv1_, conv2_;
    linear<B, T> fc1_, fc2_, fc3_;
    max_pool2d<B, T> pool1_, pool2_;
    relu<B, T> relu1_, relu2_, relu3_, relu4_;
};

}  // namespace ouro::nn
