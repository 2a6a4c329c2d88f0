// The U-Net's resampling modules: nn::downsample (a stride-2 3×3 conv, padding 1) and nn::upsample
// (nearest 2× then a 3×3 conv, padding 1), each with its conv registered as "<name>.conv.weight" and
// "<name>.conv.bias" like the Downsample/Upsample of DDPM ports (Ho et al. 2020) and guided-diffusion;
// and nn::concat_channels, the skip connection's concatenation along channels.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ouro/backend/op_params.hpp"
#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/conv2d.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

// Halves H and W (to ceil(H/2), ceil(W/2)). Padding is 1 on all sides as in guided-diffusion; the
// TensorFlow DDPM (and its port pytorch_diffusion) pads only bottom and right, which shifts the
// sampling grid by one pixel: its weights load, its outputs differ.
template <backend B, real_scalar T = float>
class downsample {
public:
    // out_channels = 0 keeps `channels`.
    downsample(parameter_store<T, B>& store, std::string_view name, std::int64_t channels,
               std::int64_t out_channels = 0)
        : conv_(store, join_name(name, "conv"), channels, out_channels ? out_channels : channels, 3,
                conv2d_params{.stride = 2, .padding = 1}) {}

    void reset_parameters(std::uint64_t seed) { conv_.reset_parameters(seed); }
    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        return conv_.forward(x, ctx);  // (B, C, H, W) -> (B, Cout, ceil(H/2), ceil(W/2))
    }
    tensor_view<const T, B> backward(tensor_view<const T, B> dy) { return conv_.backward(dy); }
    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept { conv_.release(); }
    conv2d<B, T>& conv() { return conv_; }

private:
    conv2d<B, T> conv_;
};

// Doubles H and W: nearest-neighbour 2× then a 3×3 conv with padding 1.
template <backend B, real_scalar T = float>
class upsample {
public:
    // out_channels = 0 keeps `channels`.
    upsample(parameter_store<T, B>& store, std::string_view name, std::int64_t channels, std::int64_t out_channels = 0)
        : name_(name),
          conv_(store, join_name(name, "conv"), channels, out_channels ? out_channels : channels, 3,
                conv2d_params{.stride = 1, .padding = 1}) {}

    void reset_parameters(std::uint64_t seed) { conv_.reset_parameters(seed); }

    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        require_rank(x.dims(), 4, name_.c_str(), "input (B, C, H, W)");
        if constexpr (requires { conv_.forward_upsampled(x, ctx); }) {
            if (ctx.fusable()) {  // the conv reads x upsampled, nothing stored (same bits)
                x_dims_ = shape{};
                return conv_.forward_upsampled(x, ctx);
            }
        }
        up_.resize(shape{x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)});  // (B, C, 2H, 2W)
        ops<B>::template upsample_nearest2x_forward<T>(x, up_.view());
        const tensor_view<const T, B> y = conv_.forward(up_.view(), ctx);  // (B, Cout, 2H, 2W)
        if (ctx.inference) {
            up_.release();
            x_dims_ = shape{};
        } else {
            x_dims_ = x.dims();
        }
        return y;
    }

    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(x_dims_.rank() == 4, "upsample '", name_,
                "': backward: forward has not run, or ran with forward_context::inference");
        const tensor_view<const T, B> dup = conv_.backward(dy);  // (B, C, 2H, 2W)
        dx_.resize(x_dims_);
        ops<B>::template upsample_nearest2x_backward<T>(dup, dx_.view());
        return dx_.view();
    }

    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept {
        conv_.release();
        x_dims_ = shape{};
        up_.release();
        dx_.release();
    }

    conv2d<B, T>& conv() { return conv_; }

private:
    std::string name_;
    conv2d<B, T> conv_;
    shape x_dims_;
    tensor<T, B> up_;  // (B, C, 2H, 2W), read by conv_.backward
    tensor<T, B> dx_;  // (B, C, H, W)
};

// y = cat([a, b], dim=1), no parameters. backward splits dy into the gradients of a and b.
template <backend B, real_scalar T = float>
class concat_channels {
public:
    struct gradients {
        tensor_view<const T, B> da;  // (B, Ca, H, W)
        tensor_view<const T, B> db;  // (B, Cb, H, W)
    };

    tensor_view<const T, B> forward(tensor_view<const T, B> a, tensor_view<const T, B> b,
                                    [[maybe_unused]] const forward_context& ctx = {}) {
        require_rank(a.dims(), 4, "concat_channels", "first part (B, Ca, H, W)");
        require_rank(b.dims(), 4, "concat_channels", "second part (B, Cb, H, W)");
        y_.resize(shape{a.dim(0), a.dim(1) + b.dim(1), a.dim(2), a.dim(3)});  // (B, Ca + Cb, H, W)
        ops<B>::template concat_channels_forward<T>(a, b, y_.view());
        a_dims_ = a.dims();
        b_dims_ = b.dims();
        return y_.view();
    }

    gradients backward(tensor_view<const T, B> dy) {
        require(a_dims_.rank() == 4, "concat_channels: backward called before forward");
        da_.resize(a_dims_);
        db_.resize(b_dims_);
        ops<B>::template concat_channels_backward<T>(dy, da_.view(), db_.view());
        return {da_.view(), db_.view()};
    }

    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept {
        a_dims_ = b_dims_ = shape{};
        y_.release();
        da_.release();
        db_.release();
    }

private:
    shape a_dims_, b_dims_;
    tensor<T, B> y_, da_, db_;
};

}  // namespace ouro::nn
