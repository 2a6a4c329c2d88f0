// What every backend's ops agree on, and no kernel: the parameters and output shapes of the ops
// (so a layer sizes its outputs before calling ops<B>), and the layout of dropout's Philox streams
// (so a seed drops the same elements on every backend). nn modules include this and the facade
// (backend/ops.hpp), never a backend's kernels; a program includes the backends it instantiates.
#pragma once

#include <cstdint>

#include "ouro/core/error.hpp"
#include "ouro/core/host_device.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/shape.hpp"

namespace ouro {

// ---- convolution ----------------------------------------------------------------------------------

// Stride and zero padding of a 2-D convolution, the same along both spatial axes.
struct conv2d_params {
    std::int64_t stride = 1;
    std::int64_t padding = 0;
};

// The output shape (B, Cout, Ho, Wo) of convolving x (B, Cin, H, W) with w (Cout, Cin, k, k), where
// Ho = floor((H + 2p - k) / s) + 1 and likewise Wo (torch.nn.Conv2d docs, "Shape").
// Requires rank-4 x and w, a square kernel, B, Cin, Cout, H, W >= 1, matching Cin, stride >= 1,
// padding >= 0 and k <= H + 2p, W + 2p; otherwise raises ouro::error naming both shapes. `what` opens
// the message (the op or module name).
inline shape conv2d_output_shape(const shape& x, const shape& w, conv2d_params p, const char* what = "conv2d") {
    require_rank(x, 4, what, "input (B, Cin, H, W)");
    require_rank(w, 4, what, "weight (Cout, Cin, k, k)");
    require(p.stride >= 1 && p.padding >= 0, what, ": expected stride >= 1 and padding >= 0, found stride ", p.stride,
            " and padding ", p.padding);
    require(w[0] >= 1 && w[1] >= 1 && w[2] >= 1 && w[2] == w[3], what,
            ": expected a weight (Cout, Cin, k, k) with a square kernel and no empty axis, found shape ", w);
    require(x[1] == w[1], what, ": input ", x, " has ", x[1], " channels but weight ", w, " expects ", w[1]);
    require(x[0] >= 1 && x[2] >= 1 && x[3] >= 1, what, ": expected a non-empty input (B, Cin, H, W), found shape ", x,
            " (weight ", w, ")");
    const std::int64_t k = w[2];
    require(k <= x[2] + 2 * p.padding && k <= x[3] + 2 * p.padding, what, ": kernel ", k, "x", k,
            " is larger than the padded input ", x[2] + 2 * p.padding, "x", x[3] + 2 * p.padding, " (input ", x,
            ", weight ", w, ", padding ", p.padding, ")");
    return shape{x[0], w[0], (x[2] + 2 * p.padding - k) / p.stride + 1, (x[3] + 2 * p.padding - k) / p.stride + 1};
}

// ---- pooling --------------------------------------------------------------------------------------

// The output shape (B, C, Ho, Wo) of pooling x (B, C, H, W) with a kernel×kernel window moved by
// `stride`: Ho = floor((H − kernel) / stride) + 1 and likewise Wo (torch.nn.MaxPool2d docs).
// Requires a non-empty rank-4 x, kernel >= 1, stride >= 1 and kernel <= H, W; otherwise raises
// ouro::error naming the shape and the window.
inline shape pool2d_output_shape(const shape& x, std::int64_t kernel, std::int64_t stride,
                                 const char* what = "pool2d") {
    require_rank(x, 4, what, "input (B, C, H, W)");
    require(x.numel() > 0, what, ": expected a non-empty input (B, C, H, W), found shape ", x);
    require(kernel >= 1 && stride >= 1, what, ": expected kernel >= 1 and stride >= 1, found kernel ", kernel,
            " and stride ", stride);
    require(kernel <= x[2] && kernel <= x[3], what, ": window ", kernel, "x", kernel, " is larger than the input ", x);
    return shape{x[0], x[1], (x[2] - kernel) / stride + 1, (x[3] - kernel) / stride + 1};
}

// ---- group normalisation --------------------------------------------------------------------------

// x (B, C, ...) seen as B samples of C channels of hw elements each.
struct group_norm_layout {
    std::int64_t b, c, hw;
};

// Requires x of shape (B, C), (B, C, L) or (B, C, H, W), non-empty, and C divisible by `groups`
// >= 1; raises ouro::error naming `what` and the shape.
inline group_norm_layout check_group_norm(const char* what, const shape& x, std::int64_t groups) {
    if (x.rank() < 2 || x.rank() > 4)
        fail(what, ": expected x of shape (B, C), (B, C, L) or (B, C, H, W), found shape ", x);
    const std::int64_t b = x[0], c = x[1];
    require(b > 0, what, ": expected a non-empty batch, found x of shape ", x);
    require(c > 0, what, ": expected at least one channel, found x of shape ", x);
    require(x.numel() > 0, what, ": expected a non-empty spatial extent, found x of shape ", x);
    require(groups > 0, what, ": expected groups >= 1, found groups = ", groups);
    require(c % groups == 0, what, ": the channel count C = ", c, " is not divisible by groups = ", groups,
            " (x of shape ", x, ")");
    return {b, c, x.numel() / (b * c)};
}

// ---- linear layer ---------------------------------------------------------------------------------

// y (N, out) = x (N, in) · wᵀ for w (out, in).
struct linear_sizes {
    std::int64_t n, in, out;
};

// Requires rank-2 x (N, in) with N >= 1 and w (out, in) of the same in; raises ouro::error naming
// `what` (the op) and both shapes.
inline linear_sizes check_linear(const char* what, const shape& x, const shape& w) {
    require_rank(x, 2, what, "x (N, in)");
    require_rank(w, 2, what, "w (out, in)");
    require(x[0] > 0, what, ": expected a non-empty batch, found x of shape ", x);
    require(x[1] == w[1], what, ": expected x (N, in) and w (out, in) with the same in, found x of shape ", x,
            " and w of shape ", w);
    return {x[0], x[1], w[0]};
}

// ---- losses ---------------------------------------------------------------------------------------

// mse_loss's arguments: target and, when with_grad, dpred of pred's shape, pred non-empty; raises
// ouro::error naming the one that is not.
inline void check_mse_loss(const shape& pred, const shape& target, const shape& dpred, bool with_grad) {
    require_shape(target, pred, "mse_loss target");
    if (with_grad) require_shape(dpred, pred, "mse_loss dpred");
    require(pred.numel() > 0, "mse_loss: expected a non-empty prediction, found shape ", pred);
}

// softmax_cross_entropy's shapes: logits (N, K) with N, K >= 1, labels (N) and, when with_grad,
// dlogits (N, K); raises ouro::error naming the one that is not. (The labels' range is checked
// where they can be read.)
inline void check_softmax_cross_entropy(const shape& logits, const shape& labels, const shape& dlogits,
                                        bool with_grad) {
    require_rank(logits, 2, "softmax_cross_entropy", "logits (N, K)");
    require(logits[0] > 0 && logits[1] > 0, "softmax_cross_entropy: expected non-empty logits (N, K), found shape ",
            logits);
    require_shape(labels, shape{logits[0]}, "softmax_cross_entropy labels (N)");
    if (with_grad) require_shape(dlogits, logits, "softmax_cross_entropy dlogits (N, K)");
}

// ---- resampling and concatenation ---------------------------------------------------------------

// Requires `small` (B, C, H, W) non-empty and `big` (B, C, 2H, 2W): the two sides of nearest 2x
// upsampling; raises ouro::error naming both shapes. `what` opens the message.
inline void check_upsample_nearest2x(const char* what, const shape& small, const char* small_name, const shape& big,
                                     const char* big_name) {
    require_rank(small, 4, what, "(B, C, H, W)");
    require(small.numel() > 0, what, ": expected a non-empty ", small_name, " (B, C, H, W), found shape ", small);
    require_rank(big, 4, what, "(B, C, 2H, 2W)");
    if (!(big == shape{small[0], small[1], 2 * small[2], 2 * small[3]}))
        fail(what, ": expected ", big_name, " of shape ", shape{small[0], small[1], 2 * small[2], 2 * small[3]},
             " (twice the extent of ", small_name, " ", small, "), found ", big);
}

// The shape (B, Ca + Cb, H, W) of concatenating non-empty a (B, Ca, H, W) and b (B, Cb, H, W) along
// the channels; raises ouro::error naming both shapes.
inline shape concat_channels_output_shape(const char* what, const shape& a, const shape& b) {
    require_rank(a, 4, what, "first part (B, Ca, H, W)");
    require_rank(b, 4, what, "second part (B, Cb, H, W)");
    require(a.numel() > 0 && b.numel() > 0, what, ": expected non-empty parts, found shapes ", a, " and ", b);
    require(a[0] == b[0] && a[2] == b[2] && a[3] == b[3], what,
            ": expected parts with equal batch and spatial extents, found shapes ", a, " and ", b);
    return shape{a[0], a[1] + b[1], a[2], a[3]};
}

// ---- dropout's random streams -----------------------------------------------------------------

// Element i of a dropout layer's input at training step `step` draws the (i mod 2^14)-th uniform of
//   philox_stream(seed, rng_purpose::dropout, index = step·2^32 + salt·2^18 + i / 2^14):
// one stream per chunk of 2^14 elements, so chunks run in parallel on any backend and every
// element's draw is fixed. `salt` tells the dropout layers of one model apart. An element is kept
// when the top 24 bits of its draw reach keep_threshold(p): every backend keeps the same elements.
struct dropout_streams {
    static constexpr std::int64_t chunk_bits = 14;  // elements per Philox stream: 2^14
    static constexpr std::int64_t chunk_index_bits = 18;
    static constexpr std::int64_t salt_bits = 14;
    static constexpr std::int64_t max_elements = std::int64_t{1} << (chunk_bits + chunk_index_bits);
    static constexpr std::uint64_t max_salt = (std::uint64_t{1} << salt_bits) - 1;
    static constexpr std::uint64_t max_step = (std::uint64_t{1} << 32) - 1;

    // Requires 0 <= p <= 1, salt <= max_salt, step <= max_step and at most max_elements elements;
    // raises ouro::error naming `what` and the value.
    static void check(const char* what, const shape& dims, double p, std::uint64_t step, std::uint64_t salt) {
        require(p >= 0 && p <= 1, what, ": expected a drop probability 0 <= p <= 1, found p = ", p);
        require(salt <= max_salt, what, ": expected salt <= ", max_salt, ", found salt = ", salt);
        require(step <= max_step, what, ": expected step <= ", max_step, ", found step = ", step);
        require(dims.numel() <= max_elements, what, ": expected at most ", max_elements, " elements, found x of shape ",
                dims);
    }

    // The stream index of chunk `chunk` (elements chunk·2^14 …) at (step, salt); requires
    // step <= max_step, salt <= max_salt and chunk < 2^chunk_index_bits.
    OURO_HOST_DEVICE static constexpr std::uint64_t stream_index(std::uint64_t step, std::uint64_t salt,
                                                                 std::uint64_t chunk) {
        return (step << 32) | (salt << chunk_index_bits) | chunk;
    }

    // The draws of elements 4q … 4q + 3 (one Philox block; a chunk holds 2^12 whole blocks): word
    // j of philox4x32((q mod 2^12, purpose, index), seed), the stream's (4q + j mod 2^14)-th number.
    OURO_HOST_DEVICE static constexpr philox_counter block(std::uint64_t seed, std::uint64_t step, std::uint64_t salt,
                                                           std::int64_t q) {
        constexpr std::int64_t blocks_per_chunk = (std::int64_t{1} << chunk_bits) / 4;
        const std::uint64_t index = stream_index(step, salt, static_cast<std::uint64_t>(q / blocks_per_chunk));
        return philox4x32(philox_counter{static_cast<std::uint32_t>(q % blocks_per_chunk),
                                         static_cast<std::uint32_t>(rng_purpose::dropout),
                                         static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32)},
                          philox_key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
    }

    // The least k of 24 bits with philox_stream::uniform_from_bits(k) >= p (2^24: none), found by
    // bisection with uniform()'s own float expression, a non-decreasing function of k: keeping the
    // elements whose draw has top bits >= it is keeping those with uniform() >= p, in integers.
    static std::uint32_t keep_threshold(double p) {
        auto u = [](std::uint32_t k) { return static_cast<double>(philox_stream::uniform_from_bits(k)); };
        std::uint32_t lo = 0, hi = std::uint32_t{1} << 24;
        while (lo < hi) {
            const std::uint32_t mid = lo + (hi - lo) / 2;
            if (u(mid) >= p) hi = mid;
            else
                lo = mid + 1;
        }
        return lo;
    }
};

}  // namespace ouro
