// nn::lenet: LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998) with ReLU and max pooling as is usual
// today, for square images of C channels: 28×28 grey digits by default, 32×32 colour (CIFAR-10) and
// other sizes too. It is ouro's first real model, and, trained on real data, the feature extractor
// that FID, precision and recall use (its 84-d penultimate layer).
#pragma once

#include <cstdint>

#include "ouro/core/error.hpp"
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
    using backend_type = B;
    static constexpr std::int64_t feature_dim = 84;

    // Throws ouro::error unless in_channels >= 1 and image_size is a multiple of 4 and >= 12: the
    // sizes for which both 2×2 poolings divide evenly (S -> S/2, then S/2 - 4 -> S/4 - 2) and at
    // least one pixel is left to fc1.
    static void require_geometry(std::int64_t in_channels, std::int64_t image_size) {
        require(in_channels >= 1, "lenet: expected in_channels >= 1, found ", in_channels);
        require(image_size >= 12 && image_size % 4 == 0,
                "lenet: expected an image size that is a multiple of 4 and at least 12 (so that both 2x2 poolings "
                "divide evenly), found ",
                image_size);
    }

    // Owns its parameters; modules point into store_, so a lenet is neither copied nor moved.
    // The channel widths are the same for every geometry, so (1, 28) is the classic LeNet-5 and
    // (3, 32) the LeNet commonly run on CIFAR-10; only fc1's input grows with the image.
    explicit lenet(std::int64_t num_classes = 10, std::int64_t in_channels = 1, std::int64_t image_size = 28)
        : in_channels_((require_geometry(in_channels, image_size), in_channels)),
          image_size_(image_size),
          pooled_(image_size / 4 - 2),
          conv1_(store_, "conv1", in_channels, 6, 5, {.stride = 1, .padding = 2}),  // S -> S
          conv2_(store_, "conv2", 6, 16, 5),                                        // S/2 -> S/2 - 4
          fc1_(store_, "fc1", 16 * pooled_ * pooled_, 120),
          fc2_(store_, "fc2", 120, feature_dim),
          fc3_(store_, "fc3", feature_dim, num_classes),
          pool1_(2),
          pool2_(2) {}
    lenet(const lenet&) = delete;
    lenet& operator=(const lenet&) = delete;

    std::int64_t in_channels() const { return in_channels_; }
    std::int64_t image_size() const { return image_size_; }

    void reset_parameters(std::uint64_t seed) {
        conv1_.reset_parameters(seed);
        conv2_.reset_parameters(seed);
        fc1_.reset_parameters(seed);
        fc2_.reset_parameters(seed);
        fc3_.reset_parameters(seed);
    }

    // x (B, C, S, S) -> 84-d features (B, 84), the input of the classifier layer.
    tensor_view<const T, B> features(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        const std::int64_t b = x.rank() == 4 ? x.dim(0) : 0;
        const shape expected{b, in_channels_, image_size_, image_size_};
        if (!(x.dims() == expected)) fail("lenet input (B, C, S, S): expected shape ", expected, ", found ", x.dims());
        const std::int64_t p = pooled_;
        auto h = relu1_.forward(conv1_.forward(x, ctx));  // (B, 6, S, S)
        h = pool1_.forward(h);                            // (B, 6, S/2, S/2)
        h = relu2_.forward(conv2_.forward(h, ctx));       // (B, 16, S/2 - 4, S/2 - 4)
        h = pool2_.forward(h);                            // (B, 16, p, p), p = S/4 - 2
        h = h.reshaped(shape{b, 16 * p * p});             // (B, 16·p·p)
        h = relu3_.forward(fc1_.forward(h, ctx));         // (B, 120)
        return relu4_.forward(fc2_.forward(h, ctx));      // (B, 84)
    }

    // x (B, C, S, S) -> logits (B, classes).
    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        return fc3_.forward(features(x, ctx), ctx);
    }

    // dlogits (B, classes) -> dx (B, C, S, S); parameter gradients accumulate in store().
    tensor_view<const T, B> backward(tensor_view<const T, B> dlogits) {
        auto g = fc3_.backward(dlogits);
        g = fc2_.backward(relu4_.backward(g));
        g = fc1_.backward(relu3_.backward(g));
        g = g.reshaped(shape{g.dim(0), 16, pooled_, pooled_});
        g = conv2_.backward(relu2_.backward(pool2_.backward(g)));
        return conv1_.backward(relu1_.backward(pool1_.backward(g)));
    }

    parameter_store<T, B>& store() { return store_; }
    const parameter_store<T, B>& store() const { return store_; }

private:
    std::int64_t in_channels_, image_size_;
    std::int64_t pooled_;          // side of the last pooled map, S/4 - 2
    parameter_store<T, B> store_;  // declared before the modules: they register into it
    conv2d<B, T> conv1_, conv2_;
    linear<B, T> fc1_, fc2_, fc3_;
    max_pool2d<B, T> pool1_, pool2_;
    relu<B, T> relu1_, relu2_, relu3_, relu4_;
};

}  // namespace ouro::nn
