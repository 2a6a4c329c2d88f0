// nn::norm_silu_conv: conv(silu(group_norm(x))), the pair that opens every res block and ends the
// U-Net. For inference on a backend with the fused op (ops<B>::conv2d_forward_silu_affine) the
// GroupNorm yields only its per-channel affine map and the conv applies it, with the SiLU, as it
// reads x: the normalised tensor, as large as x, is neither written nor read again (on the CPU,
// 6% of a 6.5 M-parameter U-Net's forward at batch 256 went to that pass). Otherwise, and always
// in training (the conv's backward needs its input), the two layers run one after the other.
// Either way the result has the same bits.
#pragma once

#include "ouro/core/tensor.hpp"
#include "ouro/nn/conv2d.hpp"
#include "ouro/nn/group_norm.hpp"
#include "ouro/nn/module.hpp"

namespace ouro::nn {

// Whether conv2d<B, T>::forward_silu_affine exists, i.e. the backend fuses the pair.
template <backend B, class T>
inline constexpr bool fuses_norm_silu_conv = requires(conv2d<B, T>& c, tensor_view<const T, B> v) {
    c.forward_silu_affine(v, v, forward_context{});
};

// conv(silu(norm(x))). With ctx.inference and a fusing backend, norm holds only its coefficients
// afterwards (release() frees them); otherwise as norm.forward then conv.forward, norm's output
// alive until the caller releases it.
template <backend B, real_scalar T>
tensor_view<const T, B> norm_silu_conv(group_norm_silu<B, T>& norm, conv2d<B, T>& conv, tensor_view<const T, B> x,
                                       const forward_context& ctx) {
    if constexpr (fuses_norm_silu_conv<B, T>) {
        if (ctx.fusable()) return conv.forward_silu_affine(x, norm.silu_coefficients(x), ctx);
    }
    return conv.forward(norm.forward(x, ctx), ctx);
}

}  // namespace ouro::nn
