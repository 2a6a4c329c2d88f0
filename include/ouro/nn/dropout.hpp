// nn::dropout, inverted dropout in training and the identity in evaluation (torch.nn.Dropout),
// with masks from Philox keyed by the forward_context's (seed, step) and the layer's salt.
#pragma once

#include <cstdint>

#include "ouro/backend/op_params.hpp"
#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

template <backend B, real_scalar T = float>
class dropout {
public:
    // p: the probability of dropping an element, 0 <= p <= 1. salt: tells this layer's masks from
    // those of the model's other dropout layers (give each its own, e.g. its index), < 2^14.
    explicit dropout(double p, std::uint64_t salt = 0) : p_(p), salt_(salt) {
        require(p >= 0 && p <= 1, "nn::dropout: expected a drop probability 0 <= p <= 1, found p = ", p);
        require(salt <= dropout_streams::max_salt, "nn::dropout: expected salt <= ", dropout_streams::max_salt,
                ", found salt = ", salt);
    }

    void reset_parameters(std::uint64_t) {}

    // In training (ctx.training with p > 0): y = x·mask, mask drawn from (ctx.seed, ctx.step, salt).
    // In evaluation: returns x itself (no copy), and backward returns dy. No mask is kept: the
    // backward draws it again from the same key (Philox is counter-based), the same bits.
    tensor_view<const T, B> forward(tensor_view<const T, B> x, const forward_context& ctx = {}) {
        ran_ = true;
        identity_ = !ctx.training || p_ == 0;
        dims_ = x.dims();
        if (identity_) return x;
        seed_ = ctx.seed;
        step_ = ctx.step;
        y_.resize(x.dims());
        ops<B>::template dropout_forward<T>(x, y_.view(), p_, seed_, step_, salt_);
        return y_.view();
    }

    tensor_view<const T, B> backward(tensor_view<const T, B> dy) {
        require(ran_, "nn::dropout backward: forward has not run");
        require_shape(dy.dims(), dims_, "nn::dropout backward dy");
        if (identity_) return dy;
        dx_.resize(dy.dims());
        ops<B>::template dropout_backward<T>(dy, dx_.view(), p_, seed_, step_, salt_);
        return dx_.view();
    }

    // Frees the buffers of the last forward and backward (to the buffer cache); a backward before
    // the next forward is an error.
    void release() noexcept {
        ran_ = false;
        y_.release();
        dx_.release();
    }

    double p() const { return p_; }
    // The mask of the last training forward (0 or 1/(1 − p) per element), drawn again on request.
    tensor<T, B> mask() const {
        require(ran_ && !identity_, "nn::dropout mask: no training forward has run");
        tensor<T, B> ones(dims_, T(1)), mask(dims_);
        ops<B>::template dropout_forward<T>(ones.view(), mask.view(), p_, seed_, step_, salt_);
        return mask;
    }

private:
    double p_;
    std::uint64_t salt_;
    bool ran_ = false, identity_ = true;
    shape dims_;
    std::uint64_t seed_ = 0, step_ = 0;  // the key of the last training forward's mask
    tensor<T, B> y_, dx_;
};

}  // namespace ouro::nn
