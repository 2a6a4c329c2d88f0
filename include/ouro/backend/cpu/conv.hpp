// CPU kernels: 2-D convolution (the cross-correlation of torch.nn.functional.conv2d) with square
// kernels, the same stride and zero padding on both axes; forward, input gradient and parameter
// gradients, by im2col + GEMM (Chellapilla, Puri & Simard 2006) on the register-tiled kernel of gemm.hpp,
// and for the same-size convolutions (stride 1, k = 2p + 1: the U-Net's 3×3 and 1×1 convs, forward,
// input gradient and, for k = 1 or 3, weight gradient) by a direct product over a zero-padded copy
// of the input, without im2col.
//
// Work is cut into pieces of a fixed size, never by thread count: forward runs per block of
// conv_ops::column_block output pixels of the batch (same-size convs: per chunk of images),
// backward-input per (image, block of input channels), and backward-weight per block of input
// channels, each looping over the batch in order.
// Every output is one sum in a fixed order (gemm.hpp), so an image's output is bitwise the same at
// any thread count and in any batch, and the weight gradient is the same at any thread count.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "ouro/backend/op_params.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "ouro/backend/cpu/activation.hpp"  // silu_affine_span
#include "ouro/backend/cpu/gemm.hpp"
#include "ouro/backend/cpu/gemm_bf16.hpp"
#include "ouro/core/backend.hpp"

namespace ouro::cpu_kernels {

struct conv_ops {
    // Columns (output pixels, or pixels of a batch laid end to end) per work item and per im2col
    // block: a multiple of every tile width of gemm.hpp (48, 32, 24, 16 or 8 values). It bounds
    // the scratch (a (Cin·k·k, 288) block of a 256-channel 3×3 conv is 2.7 MB in float) and lets a
    // single large image run in parallel. Results do not depend on it (each output is one sum in
    // a fixed order), but work items do, so it is a constant, never the thread count.
    static constexpr std::int64_t column_block = 288;
    // Input channels per backward work item.
    static constexpr std::int64_t channel_block = 8;

    // forward_direct_'s store_row: the outputs as they are.
    struct copy_store_ {
        template <class T>
        void operator()(const T* src, std::int64_t count, T* dst, std::int64_t, std::int64_t, std::int64_t) const {
            copy_row_(src, count, dst);
        }
    };

    // forward_direct_'s store_row for conv2d_forward_silu_affine's additions: dst = (src +
    // channel_add[n, o]) + residual[n, o, pixel …], either term absent when its pointer is null. The
    // same float additions as add_per_channel and elementwise_add after the conv, so the same bits.
    template <class T>
    struct add_store_ {
        const T* channel_add;  // (B, Cout) or null
        const T* residual;     // (B, Cout, H, W) or null
        std::int64_t cout, hw;

        void operator()(const T* src, std::int64_t count, T* dst, std::int64_t n, std::int64_t o,
                        std::int64_t pixel) const {
            const T shift = channel_add ? channel_add[n * cout + o] : T(0);
            const T* res = residual ? residual + (n * cout + o) * hw + pixel : nullptr;
            // Rows here are short (7 to 32 values), so a scalar tail would be much of the work: the
            // vectors are 16, 8 or 4 wide where the CPU has them, the last ending at `count` and
            // overlapping the one before (dst aliases neither src nor res, so a value written twice
            // is written the same).
            auto run = [&]<class V>(std::int64_t w) {
                auto one = [&](std::int64_t j) {
                    V v = V::load_unaligned(src + j);
                    if (channel_add) v = v + V(shift);
                    if (res) v = v + V::load_unaligned(res + j);
                    v.store_unaligned(dst + j);
                };
                std::int64_t j = 0;
                for (; j + w <= count; j += w) one(j);
                if (j < count) one(count - w);
            };
            if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512F__)
                if (count >= 16) return run.template operator()<xsimd::batch<float, xsimd::avx512f>>(16);
#endif
#if defined(__AVX__)
                if (count >= 8) return run.template operator()<xsimd::batch<float, xsimd::avx>>(8);
                if (count >= 4) return run.template operator()<xsimd::batch<float, xsimd::sse4_2>>(4);
#endif
            }
            add_scalar(src, count, dst, shift, res);
        }

        // The same one value at a time, for spans whose dst may be src (the vectors above may not).
        void add_scalar(const T* src, std::int64_t count, T* dst, T shift, const T* res) const {
            for (std::int64_t j = 0; j < count; ++j) {
                T v = src[j];
                if (channel_add) v = v + shift;
                if (res) v = v + res[j];
                dst[j] = v;
            }
        }
    };

    // y = conv2d(x, w) + b:  y[n, o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] · x[n, c, s·i − p + u, s·j − p + v],
    // with x zero outside its extent. Requires the shapes of conv2d_output_shape, y of that shape,
    // and b of shape (Cout), or b without data (a default-constructed view) for no bias.
    // Overwrites y. With matmul_precision::bf16 (T = float only) w and x enter the products
    // rounded to bfloat16 and the sums stay fp32 (gemm_bf16.hpp); the bias is added in fp32.
    //
    // As one product Y (Cout, B·Ho·Wo) = W (Cout, Cin·k·k) · im2col(x): the weights are packed once,
    // then each work item, a block of column_block columns that may span images, writes its im2col
    // block and multiplies (same-size convs: forward_direct_, per chunk of images, without im2col). y[n, o, i, j] is
    // b[o] plus the sum over (c, u, v) in increasing order, whichever block or thread computes it.
    template <real_scalar T>
    static void conv2d_forward(tensor_view<const T> x,  // (B, Cin, H, W)
                               tensor_view<const T> w,  // (Cout, Cin, k, k)
                               tensor_view<const T> b,  // (Cout) or none
                               tensor_view<T> y,        // (B, Cout, Ho, Wo)
                               conv2d_params params, matmul_precision precision = matmul_precision::fp32) {
        const geometry_ g = geometry_of_("conv2d_forward", x.dims(), w.dims(), params);
        const T* bias = checked_output_and_bias_(g, y, b, "conv2d_forward output y (B, Cout, Ho, Wo)",
                                                 "conv2d_forward bias b (Cout)");

        if (precision == matmul_precision::bf16) {
            if constexpr (std::same_as<T, float>) {
                forward_bf16_(x.data(), w.data(), bias, y.data(), g);
                return;
            } else {
                throw error("conv2d_forward: bf16 products are for float tensors, found double");
            }
        }
        forward_(x.data(), w.data(), bias, y.data(), g);
    }

    // y = conv2d(silu(scale[n, c]·x + shift[n, c]), w) + b, (scale, shift) = coefficients[n, c, :]:
    // a GroupNorm+SiLU (group_norm_silu_coefficients) and the conv after it, for inference; then,
    // when given, + channel_add[n, o] (a res block's time embedding) and + residual (its skip), added
    // as the outputs are written, with the bits of add_per_channel and elementwise_add after it. The
    // activation is computed as x is copied into the product's padded layout and never stored,
    // which saves writing and re-reading a tensor of x's size (a res block's activations are tens
    // of MB at batch 256, so both passes went to memory). The same bits as group_norm_silu_forward
    // then conv2d_forward (silu_affine_span computes every value the same way). Same-size convs
    // only take that path (with bf16 products, only with AVX512-BF16); the others write the
    // activation into a temporary first.
    template <real_scalar T>
    static void conv2d_forward_silu_affine(tensor_view<const T> x,             // (B, Cin, H, W)
                                           tensor_view<const T> coefficients,  // (B, Cin, 2)
                                           tensor_view<const T> w,             // (Cout, Cin, k, k)
                                           tensor_view<const T> b,             // (Cout) or none
                                           tensor_view<T> y,                   // (B, Cout, Ho, Wo)
                                           conv2d_params params, matmul_precision precision = matmul_precision::fp32,
                                           tensor_view<const T> channel_add = {},  // (B, Cout) or none
                                           tensor_view<const T> residual = {}) {   // (B, Cout, Ho, Wo) or none
        const geometry_ g = geometry_of_("conv2d_forward_silu_affine", x.dims(), w.dims(), params);
        if (!channel_add.absent())
            require_shape(channel_add.dims(), shape{g.batch, g.cout},
                          "conv2d_forward_silu_affine channel_add (B, Cout)");
        if (!residual.absent())
            require_shape(residual.dims(), shape{g.batch, g.cout, g.ho, g.wo},
                          "conv2d_forward_silu_affine residual (B, Cout, Ho, Wo)");
        const add_store_<T> adds{channel_add.data(), residual.data(), g.cout, g.ho * g.wo};
        const bool adding = adds.channel_add != nullptr || adds.residual != nullptr;
        require_shape(coefficients.dims(), shape{g.batch, g.cin, 2},
                      "conv2d_forward_silu_affine coefficients (B, Cin, 2)");
        const T* bias = checked_output_and_bias_(g, y, b, "conv2d_forward_silu_affine output y (B, Cout, Ho, Wo)",
                                                 "conv2d_forward_silu_affine bias b (Cout)");
        const T* coef = coefficients.data();
        // Image n's plane of channel c, activated, into out (H·W values): the exponentials run over
        // whole planes, as group_norm_silu_forward's do, not over rows padded to whole vectors.
        auto activate_plane = [&](std::int64_t c, std::int64_t n, T* out) {
            const std::int64_t nc = n * g.cin + c;
            silu_affine_span(x.data() + nc * g.hw, out, g.hw, coef[2 * nc], coef[2 * nc + 1]);
        };
        if (precision == matmul_precision::fp32 && g.same_size()) {
            forward_same_size_(
                w.data(), bias, y.data(), g,
                [&](std::int64_t c, std::int64_t n, T* dst, std::int64_t stride) {
                    T* plane = scratch_<T, slot_::activation>(g.hw);
                    activate_plane(c, n, plane);
                    for (std::int64_t i = 0; i < g.h; ++i) copy_row_(plane + i * g.w, g.w, dst + i * stride);
                },
                adds);
            return;
        }
#if OURO_HAS_AVX512_BF16
        if constexpr (std::same_as<T, float>) {
            if (precision == matmul_precision::bf16 && g.same_size()) {
                forward_bf16_same_size_(
                    w.data(), bias, y.data(), g,
                    [&](std::int64_t c2, std::int64_t n, std::uint32_t* dst, std::int64_t stride) {
                        float* even = scratch_<float, slot_::activation>(2 * g.hw);
                        float* odd = even + g.hw;
                        const bool has_odd = 2 * c2 + 1 < g.cin;
                        activate_plane(2 * c2, n, even);
                        if (has_odd) activate_plane(2 * c2 + 1, n, odd);
                        for (std::int64_t i = 0; i < g.h; ++i)
                            gemm::pair_bf16(even + i * g.w, has_odd ? odd + i * g.w : nullptr, g.w, dst + i * stride);
                    },
                    adds);
                return;
            }
        }
#endif
        // Elsewhere: the activation into a tensor of x's shape (its block goes back to the buffer
        // cache), then the plain conv.
        tensor<T> activated;
        activated.resize(x.dims());
        parallel_for(
            g.batch * g.cin,
            [&](std::int64_t nc) {
                silu_affine_span(x.data() + nc * g.hw, activated.data() + nc * g.hw, g.hw, coef[2 * nc],
                                 coef[2 * nc + 1]);
            },
            32 * g.hw);
        conv2d_forward<T>(activated.view(), w, b, y, params, precision);
        if (adding) {
            const std::int64_t plane = g.ho * g.wo;
            parallel_for(
                g.batch * g.cout,
                [&](std::int64_t no) {  // in place, so one value at a time
                    T* p = y.data() + no * plane;
                    adds.add_scalar(p, plane, p, adds.channel_add ? adds.channel_add[no] : T(0),
                                    adds.residual ? adds.residual + no * plane : nullptr);
                },
                2 * plane);
        }
    }

    // y = conv2d(upsample_nearest2x(x), w) + b, for inference: a U-Net's upsampling layer. x is
    // (B, Cin, H, W) and the conv runs on (B, Cin, 2H, 2W); same-size convs (the U-Net's 3×3, padding
    // 1) write each value of x twice into two rows of the product's padded layout as they copy it,
    // so the upsampled tensor (four times x) is never stored. Others upsample into a temporary
    // first. The same bits as upsample_nearest2x_forward then conv2d_forward (the conv reads the same
    // values).
    template <real_scalar T>
    static void conv2d_forward_upsampled(tensor_view<const T> x,  // (B, Cin, H, W)
                                         tensor_view<const T> w,  // (Cout, Cin, k, k)
                                         tensor_view<const T> b,  // (Cout) or none
                                         tensor_view<T> y,        // (B, Cout, Ho, Wo) of the (2H, 2W) input
                                         conv2d_params params, matmul_precision precision = matmul_precision::fp32) {
        require(x.rank() == 4, "conv2d_forward_upsampled: expected x of shape (B, Cin, H, W), found shape ", x.dims());
        const shape up{x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)};
        const geometry_ g = geometry_of_("conv2d_forward_upsampled", up, w.dims(), params);
        const T* bias = checked_output_and_bias_(g, y, b, "conv2d_forward_upsampled output y (B, Cout, Ho, Wo)",
                                                 "conv2d_forward_upsampled bias b (Cout)");
        const std::int64_t hw_in = x.dim(2) * x.dim(3), w_in = x.dim(3);
        // Row i of the upsampled plane (n, c), 2W values, at dst: x's row i/2, each value twice.
        auto upsampled_row = [&](std::int64_t c, std::int64_t n, std::int64_t i, T* dst) {
            const T* src = x.data() + (n * g.cin + c) * hw_in + (i / 2) * w_in;
            for (std::int64_t j = 0; j < w_in; ++j) dst[2 * j] = dst[2 * j + 1] = src[j];
        };
        if (precision == matmul_precision::fp32 && g.same_size()) {
            forward_same_size_(w.data(), bias, y.data(), g,
                               [&](std::int64_t c, std::int64_t n, T* dst, std::int64_t stride) {
                                   for (std::int64_t i = 0; i < g.h; i += 2) {
                                       upsampled_row(c, n, i, dst + i * stride);
                                       copy_row_(dst + i * stride, g.w, dst + (i + 1) * stride);
                                   }
                               });
            return;
        }
#if OURO_HAS_AVX512_BF16
        if constexpr (std::same_as<T, float>) {
            if (precision == matmul_precision::bf16 && g.same_size()) {
                forward_bf16_same_size_(w.data(), bias, y.data(), g,
                                        [&](std::int64_t c2, std::int64_t n, std::uint32_t* dst, std::int64_t stride) {
                                            float* even = scratch_<float, slot_::activation>(2 * g.w);
                                            float* odd = even + g.w;
                                            const bool has_odd = 2 * c2 + 1 < g.cin;
                                            for (std::int64_t i = 0; i < g.h; i += 2) {
                                                upsampled_row(2 * c2, n, i, even);
                                                if (has_odd) upsampled_row(2 * c2 + 1, n, i, odd);
                                                gemm::pair_bf16(even, has_odd ? odd : nullptr, g.w, dst + i * stride);
                                                copy_row_(dst + i * stride, g.w, dst + (i + 1) * stride);
                                            }
                                        });
                return;
            }
        }
#endif
        tensor<T> upsampled;
        upsampled.resize(up);
        parallel_for(
            g.batch * g.cin,
            [&](std::int64_t nc) {
                for (std::int64_t i = 0; i < g.h; ++i)
                    upsampled_row(nc % g.cin, nc / g.cin, i, upsampled.data() + nc * g.hw + i * g.w);
            },
            4 * hw_in);
        conv2d_forward<T>(upsampled.view(), w, b, y, params, precision);
    }

    // dx = ∂L/∂x given dy = ∂L/∂y:  dx = col2im(wᵀ dy) image by image, overlapping patches summed.
    // Requires dy of the output shape that dx's shape, w and params give. Overwrites dx.
    //
    // Same-size convs (stride 1, k = 2p + 1) run as a forward conv of dy, see below. Otherwise wᵀ
    // is packed once; each work item, an (image, block of input channels), multiplies its rows
    // of wᵀ by dy a block of pixels at a time and adds the columns into its channels of dx, which
    // no other item writes.
    template <real_scalar T>
    static void conv2d_backward_input(tensor_view<const T> dy,  // (B, Cout, Ho, Wo)
                                      tensor_view<const T> w,   // (Cout, Cin, k, k)
                                      tensor_view<T> dx,        // (B, Cin, H, W)
                                      conv2d_params params) {
        using tile = gemm::pixel_tile<T>;
        const geometry_ g = geometry_of_("conv2d_backward_input", dx.dims(), w.dims(), params);
        require_shape(dy.dims(), shape{g.batch, g.cout, g.ho, g.wo}, "conv2d_backward_input dy (B, Cout, Ho, Wo)");

        if (g.same_size()) {
            // Stride 1, output as large as the input: dx[n, c, p] = Σ_{o, t} w[o, c, t]·dy[n, o, p − shift(t)]
            // is the forward conv of dy with the kernel transposed (Cin, Cout, k, k) and flipped in
            // both spatial axes, at the same padding (k − 1 − p = p). It runs as a forward product
            // (forward_direct_: padded copies of dy instead of col2im scatters).
            T* flipped = scratch_<T, slot_::flipped>(g.cin * g.cout * g.kk);
            for (std::int64_t o = 0; o < g.cout; ++o)
                for (std::int64_t c = 0; c < g.cin; ++c)
                    for (std::int64_t t = 0; t < g.kk; ++t)
                        flipped[(c * g.cout + o) * g.kk + t] = w.data()[(o * g.cin + c) * g.kk + (g.kk - 1 - t)];
            geometry_ gt = g;
            gt.cin = g.cout;
            gt.cout = g.cin;
            gt.ckk = g.cout * g.kk;
            forward_(dy.data(), static_cast<const T*>(flipped), static_cast<const T*>(nullptr), dx.data(), gt);
            return;
        }

        // wᵀ (Cin·k·k, Cout) in panels of mr rows. A channel block's channel_block·k·k rows start
        // on a panel boundary (mr divides channel_block), so block c0's panels begin at row c0·k·k.
        static_assert(channel_block % tile::mr == 0);
        T* wt_packed = scratch_<T, slot_::weights>(gemm::packed_rows_size<tile>(g.ckk, g.cout));
        gemm::pack_rows<tile>(w.data(), 1, g.ckk, g.ckk, g.cout, wt_packed);

        const std::int64_t blocks = (g.cin + channel_block - 1) / channel_block;
        parallel_for(
            g.batch * blocks,
            [&](std::int64_t item) {
                const std::int64_t n = item / blocks, c0 = (item % blocks) * channel_block;
                const std::int64_t nc = std::min(channel_block, g.cin - c0), rows = nc * g.kk;
                const T* a = wt_packed + c0 * g.kk * g.cout;
                const T* dy_n = dy.data() + n * g.cout * g.hwo;
                T* dx_n = dx.data() + n * g.cin * g.hw;
                std::fill(dx_n + c0 * g.hw, dx_n + (c0 + nc) * g.hw, T(0));
                for (std::int64_t p0 = 0; p0 < g.hwo; p0 += column_block) {
                    const std::int64_t cols = std::min(column_block, g.hwo - p0);
                    T* out = scratch_<T, slot_::products>(rows * column_block);
                    const std::int64_t ldo = column_block;
                    // Whole tiles of dy's columns are read in place; the last partial one from a
                    // zero-padded copy (reading past it would leave dy's buffer).
                    const std::int64_t body = cols / tile::nr * tile::nr;
                    if (body > 0)
                        gemm::outer_product<tile, false>(rows, body, g.cout, a, 0, dy_n + p0, g.hwo, out, ldo,
                                                         static_cast<const T*>(nullptr));
                    if (body < cols) {
                        T* tail = scratch_<T, slot_::tail>(g.cout * tile::nr);
                        for (std::int64_t o = 0; o < g.cout; ++o) {
                            const T* src = dy_n + o * g.hwo + p0 + body;
                            std::copy(src, src + (cols - body), tail + o * tile::nr);
                            std::fill(tail + o * tile::nr + (cols - body), tail + (o + 1) * tile::nr, T(0));
                        }
                        gemm::outer_product<tile, false>(rows, cols - body, g.cout, a, 0, tail, tile::nr, out + body,
                                                         ldo, static_cast<const T*>(nullptr));
                    }
                    col2im_add_(out, c0, c0 + nc, g, p0, cols, dx_n, column_block);
                }
            },
            2 * g.cout * channel_block * g.kk * g.hwo);
    }

    // dw += Σ_n dy_n im2col(x_n)ᵀ and db += Σ_{n, i, j} dy[n, :, i, j], summed over the batch in order.
    // Requires x and dw of the shapes conv2d_output_shape accepts, dy of the output shape, and db
    // of shape (Cout) or without data (no bias). Accumulates into dw and db.
    //
    // Per work item, a block of input channels, the transposed gradient dwᵀ (taps, Cout) of its
    // taps is summed over images and pixel blocks in order, as outer products of an im2col block
    // (read in place) and the transposed dy block, then added into those columns of dw, which no
    // other item writes. Same-size 3×3 and 1×1 convs read their taps in place from forward_direct_'s
    // zero-padded layout instead of an im2col block (backward_weight_direct_).
    template <real_scalar T>
    static void conv2d_backward_weight(tensor_view<const T> x,   // (B, Cin, H, W)
                                       tensor_view<const T> dy,  // (B, Cout, Ho, Wo)
                                       tensor_view<T> dw,        // (Cout, Cin, k, k)
                                       tensor_view<T> db,        // (Cout) or none
                                       conv2d_params params) {
        const geometry_ g = geometry_of_("conv2d_backward_weight", x.dims(), dw.dims(), params);
        require_shape(dy.dims(), shape{g.batch, g.cout, g.ho, g.wo}, "conv2d_backward_weight dy (B, Cout, Ho, Wo)");
        const bool has_bias = db.data() != nullptr;
        if (has_bias) require_shape(db.dims(), shape{g.cout}, "conv2d_backward_weight bias gradient db (Cout)");
        // The path and tile follow the layer's geometry only, so results depend on nothing else.
        if (g.same_size() && (g.k == 1 || g.k == 3)) backward_weight_direct_(x.data(), dy.data(), dw.data(), g);
        else if (g.cout <= gemm::narrow_channel_tile<T>::nr)
            backward_weight_<gemm::narrow_channel_tile<T>>(x.data(), dy.data(), dw.data(), g);
        else
            backward_weight_<gemm::channel_tile<T>>(x.data(), dy.data(), dw.data(), g);

        if (!has_bias) return;
        // Per output channel, one vector of partial sums over the batch's pixels (pixel p of each
        // image into lane p mod lanes; a scalar chain was 3% of a small U-Net's training step),
        // then the lanes and the rows' last p mod lanes pixels: a fixed order for the layer.
        using batch = xsimd::batch<T>;
        constexpr std::int64_t lanes = static_cast<std::int64_t>(batch::size);
        const std::int64_t body = g.hwo / lanes * lanes;
        parallel_for(
            g.cout,
            [&](std::int64_t o) {
                batch partial(T(0));
                T tail(0);
                for (std::int64_t n = 0; n < g.batch; ++n) {
                    const T* row = dy.data() + (n * g.cout + o) * g.hwo;
                    for (std::int64_t p = 0; p < body; p += lanes) partial += batch::load_unaligned(row + p);
                    for (std::int64_t p = body; p < g.hwo; ++p) tail += row[p];
                }
                db[o] += xsimd::hadd(partial) + tail;
            },
            g.batch * g.hwo);
    }

private:
    struct geometry_ {
        std::int64_t batch, cin, cout, h, w, k, stride, pad, ho, wo;
        std::int64_t hw, hwo, kk, ckk;  // derived: H·W, Ho·Wo, k·k, Cin·k·k
        // Stride 1 with an output as large as the input (k = 2p + 1): output pixel p reads input
        // pixel p + (u − pad)·W + (v − pad) for every tap, one shift per tap over the whole block.
        bool same_size() const { return stride == 1 && ho == h && wo == w; }
    };

    static geometry_ geometry_of_(const char* what, const shape& x, const shape& w, conv2d_params p) {
        const shape y = conv2d_output_shape(x, w, p, what);
        geometry_ g{x[0], x[1], w[0], x[2], x[3], w[2], p.stride, p.padding, y[2], y[3], 0, 0, 0, 0};
        g.hw = g.h * g.w;
        g.hwo = g.ho * g.wo;
        g.kk = g.k * g.k;
        g.ckk = g.cin * g.kk;
        return g;
    }

    // Checks a forward's output y (B, Cout, Ho, Wo) and bias b (Cout) against g, naming them by
    // y_what and b_what; returns b's data, or null for no bias (b without data).
    template <class T>
    static const T* checked_output_and_bias_(const geometry_& g, tensor_view<T> y, tensor_view<const T> b,
                                             const char* y_what, const char* b_what) {
        require_shape(y.dims(), shape{g.batch, g.cout, g.ho, g.wo}, y_what);
        if (b.data() == nullptr) return nullptr;
        require_shape(b.dims(), shape{g.cout}, b_what);
        return b.data();
    }

    // dw += Σ_n dy_n im2col(x_n)ᵀ on raw buffers, with register tile Tile (see conv2d_backward_weight).
    template <class Tile, class T>
    static void backward_weight_(const T* x, const T* dy, T* dw, const geometry_& g) {
        using tile = Tile;
        // dyᵀ, image by image: (B, Ho·Wo, Cout padded to whole tiles of columns with zeros), the
        // B operand of every block's product. Transposed once here rather than by each channel block.
        const std::int64_t cout_padded = (g.cout + tile::nr - 1) / tile::nr * tile::nr;
        T* dyt = scratch_<T, slot_::transposed>(g.batch * g.hwo * cout_padded);
        constexpr std::int64_t pixel_run = 16;  // pixels per transposed run: 16 columns of each dy row
        const std::int64_t runs = (g.hwo + pixel_run - 1) / pixel_run;
        parallel_for(
            g.batch * runs,
            [&](std::int64_t item) {
                const std::int64_t n = item / runs, q0 = (item % runs) * pixel_run;
                const std::int64_t count = std::min(pixel_run, g.hwo - q0);
                transpose_run_(dy + n * g.cout * g.hwo + q0, g.hwo, g.cout, count, dyt + (n * g.hwo + q0) * cout_padded,
                               cout_padded);
            },
            2 * g.cout * pixel_run);

        const std::int64_t blocks = (g.cin + channel_block - 1) / channel_block;
        parallel_for(
            blocks,
            [&](std::int64_t item) {
                const std::int64_t c0 = item * channel_block, nc = std::min(channel_block, g.cin - c0);
                const std::int64_t rows = nc * g.kk;
                T* sum = scratch_<T, slot_::products>(rows * g.cout);  // dwᵀ of this block: (rows, Cout)
                std::fill(sum, sum + rows * g.cout, T(0));
                // The im2col block is A in place, its rows past `rows` (up to a whole tile) zero.
                const std::int64_t rows_padded = (rows + tile::mr - 1) / tile::mr * tile::mr;
                T* col = scratch_<T, slot_::columns>(rows_padded * column_block);
                std::fill(col + rows * column_block, col + rows_padded * column_block, T(0));
                for (std::int64_t n = 0; n < g.batch; ++n) {
                    const T* x_n = x + n * g.cin * g.hw;
                    for (std::int64_t p0 = 0; p0 < g.hwo; p0 += column_block) {
                        const std::int64_t cols = std::min(column_block, g.hwo - p0);
                        im2col_(x_n, c0, c0 + nc, g, p0, cols, col, column_block);
                        gemm::outer_product<tile, true, gemm::a_layout::rows>(
                            rows, g.cout, cols, col, column_block, dyt + (n * g.hwo + p0) * cout_padded, cout_padded,
                            sum, g.cout, static_cast<const T*>(nullptr));
                    }
                }
                add_block_gradient_(sum, g.cout, rows, c0, dw, g);
            },
            2 * g.batch * g.cout * channel_block * g.kk * g.hwo);
    }

    // The forward product of conv2d_forward on raw buffers of geometry g (y overwritten); also the
    // input gradient of same-size convs, run on dy with the flipped, transposed kernel.
    template <class T>
    static void forward_(const T* x, const T* w, const T* bias, T* y, const geometry_& g) {
        using tile = gemm::pixel_tile<T>;
        if (g.same_size()) {
            forward_same_size_(w, bias, y, g,
                               plane_of_rows_(g, [&](std::int64_t c, std::int64_t n, std::int64_t i, T* row) {
                                   copy_row_(x + (n * g.cin + c) * g.hw + i * g.w, g.w, row);
                               }));
            return;
        }
        T* w_packed = scratch_<T, slot_::weights>(gemm::packed_rows_size<tile>(g.cout, g.ckk));
        gemm::pack_rows<tile>(w, g.ckk, 1, g.cout, g.ckk, w_packed);
        forward_blocks_<tile>(x, y, g, [&](T* col, std::int64_t cols, T* out, std::int64_t ldo) {
            gemm::outer_product<tile, false>(g.cout, cols, g.ckk, w_packed, 0, col, column_block, out, ldo, bias);
        });
    }

    // forward_'s same_size() case, the input's planes written into the padded layout by
    // write_plane (see pad_chunk_).
    template <class T, class WritePlane, class StoreRow = copy_store_>
    static void forward_same_size_(const T* w, const T* bias, T* y, const geometry_& g, WritePlane&& write_plane,
                                   StoreRow&& store_row = StoreRow{}) {
        using tile = gemm::pixel_tile<T>;
        T* w_packed = scratch_<T, slot_::weights>(gemm::packed_rows_size<tile>(g.cout, g.ckk));
        gemm::pack_rows<tile>(w, g.ckk, 1, g.cout, g.ckk, w_packed);
        forward_direct_<T>(
            g.cin, g, tile::nr, y, write_plane,
            [&](const T* b, const std::int64_t* taps, std::int64_t cols, T* out, std::int64_t ldo) {
                gemm::outer_product<tile, false>(g.cout, cols, g.ckk, w_packed, 0, b, gemm::indexed_rows{taps}, out,
                                                 ldo, bias);
            },
            store_row);
    }

    // The direct form of a same_size() product (stride 1, k = 2p + 1), without im2col: each work
    // item, a chunk of images, copies its images once into a zero-padded, channel-major layout in
    // which every tap of every output pixel lies one fixed offset away from the pixel itself, so the
    // product reads B's rows in place (gemm::indexed_rows, one offset per (c, u, v)); compare the
    // indirect convolution of Dukhan (arXiv 1907.02129), which keeps a pointer per pixel and tap.
    //
    // Per channel: the chunk's images one after another, each H + p rows of W + p values — the
    // image's row, then p zeros that serve as the right padding of this row and the left padding of
    // the next — the last p rows zero, the bottom padding of this image and the top of the next;
    // `origin` zeros before the first image and a tail after the last cover the reads of the first
    // and last pixels' taps and of whole tiles past the end. Column q (from origin) is pixel
    // (n, i, j) = (q / plane, q % plane / (W + p), q % (W + p)), plane = (H + p)·(W + p), and its tap
    // (u, v) lies at q + (u − p)·(W + p) + (v − p). Columns with i >= H or j >= W are computed and
    // dropped: (1 + p/H)(1 + p/W) times the work (1.07 at 28 × 28, p = 1; 1.31 at 7 × 7) for no
    // im2col. A chunk is a few images (about chunk_columns columns), so its layout stays in the
    // cache between the copy and the product. Every kept output is the same sum over (c, u, v) in
    // increasing order as through im2col, whatever the chunk, so results are bitwise the same.
    static constexpr std::int64_t chunk_columns = 1152;

    struct padded_layout_ {
        std::int64_t images, row, plane, origin, channel_stride;  // images per chunk, W + p, (H + p)(W + p), …
    };

    // The layout of a chunk for geometry g, with room for a tile of `nr` columns read past its end.
    // Chunks depend on the layer and the batch only (never the thread count); at least four of them
    // where the batch allows, so that both threads have work.
    static padded_layout_ padded_layout_of_(const geometry_& g, std::int64_t nr) {
        padded_layout_ l{};
        l.row = g.w + g.pad;
        l.plane = (g.h + g.pad) * l.row;
        l.origin = g.pad * l.row + g.pad;
        l.images = std::clamp((chunk_columns + l.plane - 1) / l.plane, std::int64_t{1},
                              std::max<std::int64_t>(1, g.batch / 4));
        const std::int64_t columns = l.images * l.plane;
        const std::int64_t tail = (columns + nr - 1) / nr * nr - columns + g.pad * l.row + g.pad;
        l.channel_stride = l.origin + columns + tail;
        return l;
    }

    // dw += Σ_n dy_n im2col(x_n)ᵀ for a same_size() conv with k = 1 or 3, without im2col: the taps of
    // a block of input channels are read in place from forward_direct_'s zero-padded layout, one
    // chunk of images at a time, against dyᵀ laid out in the same columns (zero rows where a column
    // is padding, so with finite inputs those columns add exactly nothing; a non-finite input gives
    // a non-finite gradient either way). An im2col block copies every input value
    // k·k times; this copies it once (im2col was 12% of a small U-Net's training step).
    //
    // Per work item, a block of input channels: dwᵀ (taps, Cout) summed over chunks in order, each
    // chunk's columns in blocks of column_block, each block's columns in order (tap_tile), then added
    // into the block's columns of dw. The blocking depends on the layer's geometry only.
    template <class T>
    static void backward_weight_direct_(const T* x, const T* dy, T* dw, const geometry_& g) {
        using batch = xsimd::batch<T>;
        constexpr std::int64_t lanes = static_cast<std::int64_t>(batch::size);
        // Tiles of two vectors of output channels where Cout fills whole pairs, else of one.
        const bool wide = (g.cout + lanes - 1) / lanes % 2 == 0;
        const std::int64_t cout_padded = (g.cout + lanes - 1) / lanes * lanes;
        const padded_layout_ l = padded_layout_of_(g, 1);

        // dyᵀ in the padded columns: row n·plane + i·(W + p) + j is pixel (i, j) of image n (Cout
        // values, then zeros to cout_padded), zero for j >= W or i >= H.
        T* dyt = scratch_<T, slot_::transposed>(g.batch * l.plane * cout_padded);
        const std::int64_t image_rows = g.h + g.pad;
        parallel_for(
            g.batch * image_rows,
            [&](std::int64_t item) {
                const std::int64_t n = item / image_rows, i = item % image_rows;
                T* dst = dyt + (n * l.plane + i * l.row) * cout_padded;
                if (i >= g.h) {
                    std::fill(dst, dst + l.row * cout_padded, T(0));
                    return;
                }
                for (std::int64_t j0 = 0; j0 < g.w; j0 += 16)
                    transpose_run_(dy + n * g.cout * g.hw + i * g.w + j0, g.hw, g.cout,
                                   std::min<std::int64_t>(16, g.w - j0), dst + j0 * cout_padded, cout_padded);
                std::fill(dst + g.w * cout_padded, dst + l.row * cout_padded, T(0));
            },
            g.cout * g.w);

        const std::int64_t blocks = (g.cin + channel_block - 1) / channel_block;
        const std::int64_t chunks = (g.batch + l.images - 1) / l.images;
        parallel_for(
            blocks,
            [&](std::int64_t item) {
                const std::int64_t c0 = item * channel_block, nc = std::min(channel_block, g.cin - c0);
                const std::int64_t rows = nc * g.kk;
                T* sum = scratch_<T, slot_::products>(rows * cout_padded);  // dwᵀ of this block: (rows, cout_padded)
                std::fill(sum, sum + rows * cout_padded, T(0));
                T* padded = scratch_<T, slot_::columns>(nc * l.channel_stride);
                for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
                    const std::int64_t n0 = chunk * l.images, images = std::min(l.images, g.batch - n0);
                    pad_chunk_(l, g, nc, n0, images, padded,
                               plane_of_rows_(g, [&](std::int64_t c, std::int64_t n, std::int64_t i, T* row) {
                                   copy_row_(x + (n * g.cin + c0 + c) * g.hw + i * g.w, g.w, row);
                               }));
                    const std::int64_t columns = images * l.plane;
                    for (std::int64_t d0 = 0; d0 < columns; d0 += column_block) {
                        const std::int64_t depth = std::min(column_block, columns - d0);
                        const T* a = padded + l.origin + d0;
                        const T* b = dyt + (n0 * l.plane + d0) * cout_padded;
                        // 18 accumulators for 3×3 taps (16 for 1×1) with 32 vector registers, 9 (4) with 16.
                        constexpr bool many = gemm::has_many_registers<T>;
                        if (g.k == 3) {
                            if (wide && many) tap_tiles_<3, 1, 2>(nc, cout_padded, depth, a, l, b, sum);
                            else
                                tap_tiles_<3, many ? 2 : 1, 1>(nc, cout_padded, depth, a, l, b, sum);
                        } else {
                            if (wide) tap_tiles_<1, many ? 8 : 2, 2>(nc, cout_padded, depth, a, l, b, sum);
                            else
                                tap_tiles_<1, many ? 8 : 4, 1>(nc, cout_padded, depth, a, l, b, sum);
                        }
                    }
                }
                add_block_gradient_(sum, cout_padded, rows, c0, dw, g);
            },
            2 * g.batch * g.cout * channel_block * g.kk * l.plane);
    }

    // dw[o, c0·k·k + r] += sum[r·ld + o] for the `rows` taps of a block of input channels starting
    // at c0: a work item's transposed gradient dwᵀ added into its own columns of dw.
    template <class T>
    static void add_block_gradient_(const T* sum, std::int64_t ld, std::int64_t rows, std::int64_t c0, T* dw,
                                    const geometry_& g) {
        for (std::int64_t o = 0; o < g.cout; ++o) {
            T* dw_row = dw + o * g.ckk + c0 * g.kk;
            for (std::int64_t r = 0; r < rows; ++r) dw_row[r] += sum[r * ld + o];
        }
    }

    // sum (nc·K·K rows (c, u, v), cout_padded columns) += the taps of channels [0, nc) of a chunk's
    // padded layout (a: column 0 of channel 0, after the origin) times `depth` rows of b (row
    // stride cout_padded), in tiles of C channels × V vectors; a last group of fewer than C
    // channels goes one channel at a time.
    template <int K, int C, int V, class T>
    static void tap_tiles_(std::int64_t nc, std::int64_t cout_padded, std::int64_t depth, const T* a,
                           const padded_layout_& l, const T* b, T* sum) {
        constexpr std::int64_t nr = V * static_cast<std::int64_t>(xsimd::batch<T>::size);
        std::int64_t c = 0;
        for (; c + C <= nc; c += C)
            for (std::int64_t o0 = 0; o0 + nr <= cout_padded; o0 += nr)
                tap_tile_<K, C, V>(depth, a + c * l.channel_stride, l, b + o0, cout_padded,
                                   sum + c * K * K * cout_padded + o0);
        for (; c < nc; ++c)
            for (std::int64_t o0 = 0; o0 < cout_padded; o0 += nr / V)
                tap_tile_<K, 1, 1>(depth, a + c * l.channel_stride, l, b + o0, cout_padded,
                                   sum + c * K * K * cout_padded + o0);
    }

    // One tile of the direct weight gradient: for C channels (a + c·channel_stride) and their K × K
    // taps (u, v), at offset (u − K/2)·(W + p) + (v − K/2) from each column, and V vectors of output
    // channels: s[((c·K + u)·K + v)·ld + j] += Σ_{q < depth} a_c[q + offset(u, v)] · b[q·ld + j], the
    // sum in increasing q. One pointer per (c, u) and v as a constant displacement keep the 3·C
    // row pointers in registers (an offset table per row would not fit).
    template <int K, int C, int V, class T>
    static void tap_tile_(std::int64_t depth, const T* a, const padded_layout_& l, const T* __restrict b,
                          std::int64_t ld, T* __restrict s) {
        using batch = xsimd::batch<T>;
        constexpr int lanes = static_cast<int>(batch::size), half = K / 2;
        const T* row[C * K];
#pragma GCC unroll 24
        for (int c = 0; c < C; ++c)
#pragma GCC unroll 3
            for (int u = 0; u < K; ++u) row[c * K + u] = a + c * l.channel_stride + (u - half) * l.row - half;
        batch acc[C * K * K][V];
#pragma GCC unroll 24
        for (int r = 0; r < C * K * K; ++r)
#pragma GCC unroll 2
            for (int v = 0; v < V; ++v) acc[r][v] = batch::load_unaligned(s + r * ld + v * lanes);
        for (std::int64_t q = 0; q < depth; ++q) {
            batch bv[V];
#pragma GCC unroll 2
            for (int v = 0; v < V; ++v) bv[v] = batch::load_unaligned(b + q * ld + v * lanes);
#pragma GCC unroll 24
            for (int cu = 0; cu < C * K; ++cu)
#pragma GCC unroll 3
                for (int t = 0; t < K; ++t) {
                    const batch ai(row[cu][q + t]);
#pragma GCC unroll 2
                    for (int v = 0; v < V; ++v) acc[cu * K + t][v] = xsimd::fma(ai, bv[v], acc[cu * K + t][v]);
                }
        }
#pragma GCC unroll 24
        for (int r = 0; r < C * K * K; ++r)
#pragma GCC unroll 2
            for (int v = 0; v < V; ++v) acc[r][v].store_unaligned(s + r * ld + v * lanes);
    }

    // Writes channels [0, channels) of images [n0, n0 + images) into the padded layout l at
    // `padded` (see forward_direct_): write_plane(c, n, dst, row_stride) writes the H rows of W values
    // of image n in channel c, row i at dst + i·row_stride; everything else (origin, row ends,
    // bottom rows, tail) is zero.
    template <class X, class WritePlane>
    static void pad_chunk_(const padded_layout_& l, const geometry_& g, std::int64_t channels, std::int64_t n0,
                           std::int64_t images, X* padded, WritePlane&& write_plane) {
        const std::int64_t columns = images * l.plane;
        for (std::int64_t c = 0; c < channels; ++c) {
            X* channel = padded + c * l.channel_stride;
            std::fill(channel, channel + l.origin, X(0));
            for (std::int64_t n = 0; n < images; ++n) {
                X* image = channel + l.origin + n * l.plane;
                write_plane(c, n0 + n, image, l.row);
                for (std::int64_t i = 0; i < g.h; ++i)
                    std::fill(image + i * l.row + g.w, image + (i + 1) * l.row, X(0));
                std::fill(image + g.h * l.row, image + l.plane, X(0));
            }
            std::fill(channel + l.origin + columns, channel + l.channel_stride, X(0));
        }
    }

    // A write_plane for pad_chunk_ from write_row(c, n, i, dst), which writes row i's W values.
    template <class WriteRow>
    static auto plane_of_rows_(const geometry_& g, WriteRow write_row) {
        return [g, write_row](std::int64_t c, std::int64_t n, auto* dst, std::int64_t row_stride) {
            for (std::int64_t i = 0; i < g.h; ++i) write_row(c, n, i, dst + i * row_stride);
        };
    }

    // y = the same_size() product over `channels` input planes (channels · k·k rows of B), chunk by
    // chunk: write_plane(c, n, dst, row_stride) writes image n's plane of input channel c as
    // pad_chunk_ asks (the fp32 input, or its bf16 pairs); product(b, taps, cols, out, ldo) writes a block's (g.cout,
    // cols) outputs at row stride ldo, reading B's row k at b[taps[k] + j].
    // store_row(src, count, dst, n, o, pixel) writes `count` outputs of image n and output channel o,
    // from plane offset `pixel` on, at dst (copy_store_: as they are).
    template <class X, class T, class WritePlane, class Product, class StoreRow = copy_store_>
    static void forward_direct_(std::int64_t channels, const geometry_& g, std::int64_t nr, T* y,
                                WritePlane&& write_plane, Product&& product, StoreRow&& store_row = StoreRow{}) {
        const padded_layout_ l = padded_layout_of_(g, nr);
        std::int64_t* taps = scratch_<std::int64_t, slot_::taps>(channels * g.kk);
        for (std::int64_t c = 0; c < channels; ++c)
            for (std::int64_t u = 0; u < g.k; ++u)
                for (std::int64_t v = 0; v < g.k; ++v)
                    taps[(c * g.k + u) * g.k + v] = c * l.channel_stride + l.origin + (u - g.pad) * l.row + (v - g.pad);
        const std::int64_t chunks = (g.batch + l.images - 1) / l.images;
        parallel_for(
            chunks,
            [&](std::int64_t item) {
                const std::int64_t n0 = item * l.images, images = std::min(l.images, g.batch - n0);
                const std::int64_t columns = images * l.plane;
                X* padded = scratch_<X, slot_::columns>(channels * l.channel_stride);
                pad_chunk_(l, g, channels, n0, images, padded, write_plane);
                T* out = scratch_<T, slot_::products>(g.cout * column_block);
                for (std::int64_t j0 = 0; j0 < columns; j0 += column_block) {
                    const std::int64_t cols = std::min(column_block, columns - j0);
                    product(static_cast<const X*>(padded) + j0, static_cast<const std::int64_t*>(taps), cols, out,
                            column_block);
                    // The image rows r (l.row columns each) the block touches: row i of image n0 + n is
                    // r = n·(H + p) + i, real when i < H, its first W columns real.
                    for (std::int64_t r = j0 / l.row; r * l.row < j0 + cols; ++r) {
                        const std::int64_t n = r / (g.h + g.pad), i = r % (g.h + g.pad);
                        const std::int64_t a = std::max(r * l.row, j0), e = std::min(r * l.row + g.w, j0 + cols);
                        if (i >= g.h || a >= e) continue;
                        const std::int64_t pixel = i * g.w + (a - r * l.row);
                        T* dst = y + (n0 + n) * g.cout * g.hw + pixel;
                        for (std::int64_t o = 0; o < g.cout; ++o)
                            store_row(out + o * column_block + (a - j0), e - a, dst + o * g.hw, n0 + n, o, pixel);
                    }
                }
            },
            2 * g.cout * g.ckk * l.images * l.plane);
    }

    // dst[q·ld_dst + o] = src[o·ld_src + q] for q < count (at most 16) and o < channels, and zero for
    // o in [channels, ld_dst): a run of pixels of dy (channels, pixels) transposed into the weight
    // gradient's B operand (pixels, channels padded to whole tiles). With AVX-512 and float, 16 × 16
    // blocks go through registers (a scalar transposition was 6% of a small U-Net's training
    // step); ld_dst is then a multiple of 16 (every tile's nr is).
    template <class T>
    static void transpose_run_(const T* src, std::int64_t ld_src, std::int64_t channels, std::int64_t count, T* dst,
                               std::int64_t ld_dst) {
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<T, float>) {
            const __mmask16 m = static_cast<__mmask16>((1u << count) - 1);  // count <= 16
            for (std::int64_t o0 = 0; o0 < ld_dst; o0 += 16) {
                __m512 r[16];
                for (std::int64_t i = 0; i < 16; ++i)
                    r[i] = o0 + i < channels ? _mm512_maskz_loadu_ps(m, src + (o0 + i) * ld_src) : _mm512_setzero_ps();
                transpose_16x16_(r);
                for (std::int64_t q = 0; q < count; ++q) _mm512_storeu_ps(dst + q * ld_dst + o0, r[q]);
            }
            return;
        }
#endif
        for (std::int64_t q = 0; q < count; ++q) {
            for (std::int64_t o = 0; o < channels; ++o) dst[q * ld_dst + o] = src[o * ld_src + q];
            std::fill(dst + q * ld_dst + channels, dst + (q + 1) * ld_dst, T(0));
        }
    }

#if defined(__AVX512F__)
    // r[i][j] becomes r[j][i]: pairs interleaved within 128-bit lanes, then quadruples, then the
    // lanes exchanged between groups of four rows.
    static void transpose_16x16_(__m512 (&r)[16]) {
        __m512 t[16];
        for (int i = 0; i < 8; ++i) {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // r[4i + c], lane L: rows 4i..4i+3 at column 4L + c.
        for (int i = 0; i < 4; ++i) {
            r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
            r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
            r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
            r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        __m512 out[16];
        for (int c = 0; c < 4; ++c) {
            const __m512 a = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);       // lanes 0, 2 of rows 0-3, 4-7
            const __m512 b = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);       // lanes 1, 3
            const __m512 d = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);  // the same of rows 8-11, 12-15
            const __m512 e = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
            out[c] = _mm512_shuffle_f32x4(a, d, 0x88);
            out[8 + c] = _mm512_shuffle_f32x4(a, d, 0xDD);
            out[4 + c] = _mm512_shuffle_f32x4(b, e, 0x88);
            out[12 + c] = _mm512_shuffle_f32x4(b, e, 0xDD);
        }
        for (int i = 0; i < 16; ++i) r[i] = out[i];
    }
#endif

    // dst[0, n) = src[0, n) for the short rows of an image (7 to 32 values here), inline: g++ turns a
    // plain loop into a call to memmove, which costs more than such a copy (it was 9% of a small
    // U-Net's training step with AVX-512, 7% of S's forward with AVX2). 4-byte values (float, bf16
    // pairs) move a whole vector at a time (16 with AVX-512, 8 with AVX) and the rest as one more
    // vector ending at n, overlapping the last (8 or 4 values wide below a vector): no masked store,
    // which AMD Zen 4 runs many times slower than a plain one (a masked store was two thirds of the
    // padded copies' time).
    template <class X>
    static void copy_row_(const X* src, std::int64_t n, X* dst) {
#if defined(__AVX__)
        if constexpr (sizeof(X) == 4) {
#if defined(__AVX512F__)
            if (n >= 16) {
                std::int64_t j = 0;
                for (; j + 16 <= n; j += 16) _mm512_storeu_si512(dst + j, _mm512_loadu_si512(src + j));
                if (j < n) _mm512_storeu_si512(dst + n - 16, _mm512_loadu_si512(src + n - 16));
                return;
            }
#endif
            if (n >= 8) {
                std::int64_t j = 0;
                for (; j + 8 <= n; j += 8)
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j),
                                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j)));
                if (j < n)
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + n - 8),
                                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + n - 8)));
            } else if (n >= 4) {
                const __m128i head = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
                const __m128i tail = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + n - 4));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), head);
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + n - 4), tail);
            } else {
                for (std::int64_t j = 0; j < n; ++j) dst[j] = src[j];
            }
            return;
        }
#endif
        std::copy(src, src + n, dst);
    }

#if OURO_HAS_AVX512_BF16
    // The conv over channel pairs (2c, 2c + 1) that forward_bf16_ runs: ceil(Cin/2) input "channels".
    static geometry_ pair_geometry_(const geometry_& g) {
        geometry_ gp = g;
        gp.cin = (g.cin + 1) / 2;
        gp.ckk = gp.cin * g.kk;
        return gp;
    }

    // W as rows (Cout, (Cin/2)·k·k) of bf16 pairs, packed in panels (a zero channel completing an
    // odd Cin), in this thread's weights scratch.
    static const std::uint32_t* pack_bf16_weights_(const float* w, const geometry_& g, const geometry_& gp) {
        using tile = gemm::pixel_tile<float>;
        std::uint32_t* wp = scratch_<std::uint32_t, slot_::flipped>(g.cout * gp.ckk);
        for (std::int64_t o = 0; o < g.cout; ++o)
            for (std::int64_t c = 0; c < g.cin; c += 2)
                for (std::int64_t t = 0; t < g.kk; ++t) {
                    const float* w_o = w + o * g.ckk;
                    wp[o * gp.ckk + c / 2 * g.kk + t] =
                        gemm::bf16_pair(w_o[c * g.kk + t], c + 1 < g.cin ? w_o[(c + 1) * g.kk + t] : 0.0f);
                }
        std::uint32_t* w_packed = scratch_<std::uint32_t, slot_::weights>(gemm::packed_rows_size<tile>(g.cout, gp.ckk));
        gemm::pack_rows<tile>(static_cast<const std::uint32_t*>(wp), gp.ckk, 1, g.cout, gp.ckk, w_packed);
        return w_packed;
    }

    // forward_bf16_'s same_size() case: write_plane(c2, n, dst, row_stride) writes the bf16 pairs of
    // image n's channels (2·c2, 2·c2 + 1) into the padded layout (see pad_chunk_).
    template <class WritePlane, class StoreRow = copy_store_>
    static void forward_bf16_same_size_(const float* w, const float* bias, float* y, const geometry_& g,
                                        WritePlane&& write_plane, StoreRow&& store_row = StoreRow{}) {
        using tile = gemm::pixel_tile<float>;
        const geometry_ gp = pair_geometry_(g);
        const std::uint32_t* w_packed = pack_bf16_weights_(w, g, gp);
        forward_direct_<std::uint32_t>(
            gp.cin, gp, tile::nr, y, write_plane,
            [&](const std::uint32_t* b, const std::int64_t* taps, std::int64_t cols, float* out, std::int64_t ldo) {
                gemm::outer_product_bf16<tile>(g.cout, cols, gp.ckk, w_packed, b, gemm::indexed_rows{taps}, out, ldo,
                                               bias);
            },
            store_row);
    }
#endif

    // forward_ with the products in bf16 (conv2d_forward's matmul_precision::bf16). The sum runs
    // over pairs of input channels (2c, 2c + 1) at each tap: x is converted once to planes of bf16
    // pairs (B, ceil(Cin/2), H, W) — for same-size convs straight into the direct product's padded
    // layout — so im2col or the padded copy moves whole pairs (half the bytes of fp32 values), and
    // the weights are packed as the same pairs, a zero channel completing an odd Cin. Without
    // AVX512-BF16 the same rounded operands go through the fp32 kernel.
    static void forward_bf16_(const float* x, const float* w, const float* bias, float* y, const geometry_& g) {
        using tile = gemm::pixel_tile<float>;
#if OURO_HAS_AVX512_BF16
        if (g.same_size()) {  // the pairs written straight into forward_direct_'s padded layout
            forward_bf16_same_size_(
                w, bias, y, g,
                plane_of_rows_(g, [&](std::int64_t c2, std::int64_t n, std::int64_t i, std::uint32_t* row) {
                    const float* even = x + (n * g.cin + 2 * c2) * g.hw + i * g.w;
                    gemm::pair_bf16(even, 2 * c2 + 1 < g.cin ? even + g.hw : nullptr, g.w, row);
                }));
            return;
        }
        const geometry_ gp = pair_geometry_(g);
        const std::uint32_t* w_packed = pack_bf16_weights_(w, g, gp);
        // (B, Cin/2, H, W), a tensor for this call only (its block goes back to the buffer cache):
        // a thread's grow-only scratch would hold the largest layer's input for the process's life.
        tensor<std::uint32_t> pairs;
        pairs.resize(shape{g.batch, gp.cin, g.h, g.w});
        std::uint32_t* xp = pairs.data();
        parallel_for(
            g.batch * gp.cin,
            [&](std::int64_t item) {
                const std::int64_t n = item / gp.cin, c = 2 * (item % gp.cin);
                const float* even = x + (n * g.cin + c) * g.hw;
                gemm::pair_bf16(even, c + 1 < g.cin ? even + g.hw : nullptr, g.hw, xp + item * g.hw);
            },
            2 * g.hw);
        forward_blocks_<tile>(static_cast<const std::uint32_t*>(xp), y, gp,
                              [&](std::uint32_t* col, std::int64_t cols, float* out, std::int64_t ldo) {
                                  gemm::outer_product_bf16<tile>(g.cout, cols, gp.ckk, w_packed, col, column_block, out,
                                                                 ldo, bias);
                              });
#else
        float* w_packed = scratch_<float, slot_::weights>(gemm::packed_rows_size<tile>(g.cout, g.ckk));
        gemm::pack_rows<tile>(w, g.ckk, 1, g.cout, g.ckk, w_packed);
        for (std::int64_t i = 0; i < gemm::packed_rows_size<tile>(g.cout, g.ckk); ++i)
            w_packed[i] = gemm::round_to_bf16(w_packed[i]);
        forward_blocks_<tile>(x, y, g, [&](float* col, std::int64_t cols, float* out, std::int64_t ldo) {
            for (std::int64_t r = 0; r < g.ckk; ++r)
                for (std::int64_t j = 0; j < cols; ++j)
                    col[r * column_block + j] = gemm::round_to_bf16(col[r * column_block + j]);
            gemm::outer_product<tile, false>(g.cout, cols, g.ckk, w_packed, 0, col, column_block, out, ldo, bias);
        });
#endif
    }

    // The blocks of a forward product: per work item, a block of column_block columns of the
    // batch's output pixels (possibly spanning images), its im2col block (rows Cin·k·k at stride
    // column_block, zero past `cols` up to a whole tile of columns; the product may overwrite it)
    // and product(col, cols, out, ldo), which writes the block's (Cout, cols) outputs at row stride ldo,
    // straight into y when the block lies in one image.
    // x's elements are float or bf16 pairs (X), y's float or double (T); g.cout is y's channel count.
    template <class Tile, class X, class T, class Product>
    static void forward_blocks_(const X* x, T* y, const geometry_& g, Product&& product) {
        const std::int64_t columns = g.batch * g.hwo;
        const std::int64_t blocks = (columns + column_block - 1) / column_block;
        parallel_for(
            blocks,
            [&](std::int64_t item) {
                const std::int64_t j0 = item * column_block, cols = std::min(column_block, columns - j0);
                X* col = scratch_<X, slot_::columns>(g.ckk * column_block);
                for_each_image_segment_(
                    g, j0, cols, [&](std::int64_t n, std::int64_t p, std::int64_t offset, std::int64_t count) {
                        im2col_(x + n * g.cin * g.hw, 0, g.cin, g, p, count, col + offset, column_block);
                    });
                // The kernel reads whole tiles of columns: the ones past the block's end are zero.
                const std::int64_t padded = (cols + Tile::nr - 1) / Tile::nr * Tile::nr;
                if (padded > cols)
                    for (std::int64_t r = 0; r < g.ckk; ++r)
                        std::fill(col + r * column_block + cols, col + r * column_block + padded, X(0));

                const std::int64_t n0 = j0 / g.hwo, p0 = j0 % g.hwo;
                if (p0 + cols <= g.hwo) {  // one image: straight into y
                    product(col, cols, y + n0 * g.cout * g.hwo + p0, g.hwo);
                    return;
                }
                T* out = scratch_<T, slot_::products>(g.cout * column_block);
                product(col, cols, out, column_block);
                for_each_image_segment_(
                    g, j0, cols, [&](std::int64_t n, std::int64_t p, std::int64_t offset, std::int64_t count) {
                        for (std::int64_t o = 0; o < g.cout; ++o)
                            std::copy(out + o * column_block + offset, out + o * column_block + offset + count,
                                      y + (n * g.cout + o) * g.hwo + p);
                    });
            },
            2 * g.cout * g.ckk * column_block);
    }

    // The per-thread scratch buffers, one per use, so that a buffer the calling thread fills before
    // a parallel loop (packed or flipped weights, the transposed dy) is not the one its work items fill.
    enum class slot_ { weights, flipped, transposed, columns, products, tail, taps, activation };

    // A per-thread buffer of at least `n` elements that grows and is never freed, so steady-state
    // calls allocate nothing. Each work item overwrites what it reads, so contents never leak
    // between items.
    template <class T, slot_ Slot>
    static T* scratch_(std::int64_t n) {
        thread_local aligned_vector<T> buffer;
        if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
        return buffer.data();
    }

    // Calls f(n, p, offset, count) for each image n that the columns [j0, j0 + cols) of the
    // batch's (B·Ho·Wo) output pixels touch: its pixels [p, p + count) are columns
    // [offset, offset + count) of the block.
    template <class F>
    static void for_each_image_segment_(const geometry_& g, std::int64_t j0, std::int64_t cols, F&& f) {
        for (std::int64_t j = j0; j < j0 + cols;) {
            const std::int64_t n = j / g.hwo, p = j % g.hwo, count = std::min(g.hwo - p, j0 + cols - j);
            f(n, p, j - j0, count);
            j += count;
        }
    }

    // The output columns j in [0, wo) whose tap v reads an input column s·j − p + v inside [0, w):
    // [lo, hi), possibly empty.
    static void valid_columns_(const geometry_& g, std::int64_t v, std::int64_t& lo, std::int64_t& hi) {
        lo = v >= g.pad ? 0 : (g.pad - v + g.stride - 1) / g.stride;
        const std::int64_t last = g.w - 1 + g.pad - v;  // s·j <= last
        hi = last < 0 ? 0 : std::min(g.wo, last / g.stride + 1);
        lo = std::min(lo, hi);
    }

    // col (rows (c − c0, u, v) for c in [c0, c1) at row stride ld, columns = output pixels
    // [p0, p0 + cols)) from the image x_n (Cin, H, W), zero where a tap falls in the padding.
    template <class T>
    static void im2col_(const T* x_n, std::int64_t c0, std::int64_t c1, const geometry_& g, std::int64_t p0,
                        std::int64_t cols, T* col, std::int64_t ld) {
        if (g.same_size()) {
            im2col_same_(x_n, c0, c1, g, p0, cols, col, ld);
            return;
        }
        for (std::int64_t c = c0; c < c1; ++c) {
            const T* plane = x_n + c * g.hw;
            for (std::int64_t u = 0; u < g.k; ++u)
                for (std::int64_t v = 0; v < g.k; ++v) {
                    T* out = col + ((c - c0) * g.kk + u * g.k + v) * ld;
                    std::int64_t lo, hi;
                    valid_columns_(g, v, lo, hi);
                    // Walk the block one output row at a time.
                    for (std::int64_t p = p0; p < p0 + cols;) {
                        const std::int64_t i = p / g.wo, j0 = p % g.wo;
                        const std::int64_t j1 = std::min(g.wo, j0 + (p0 + cols - p));
                        const std::int64_t row_in = i * g.stride - g.pad + u;
                        if (row_in < 0 || row_in >= g.h) {
                            std::fill(out, out + (j1 - j0), T(0));
                        } else {
                            const std::int64_t base = row_in * g.w - g.pad + v;  // plane[base + s·j]: tap of pixel j
                            const std::int64_t a = std::clamp(lo, j0, j1), e = std::clamp(hi, a, j1);
                            std::fill(out, out + (a - j0), T(0));
                            if (g.stride == 1) {
                                std::copy(plane + base + a, plane + base + e, out + (a - j0));
                            } else {
                                for (std::int64_t j = a; j < e; ++j) out[j - j0] = plane[base + j * g.stride];
                            }
                            std::fill(out + (e - j0), out + (j1 - j0), T(0));
                        }
                        out += j1 - j0;
                        p += j1 - j0;
                    }
                }
        }
    }

    // The taps of the same_size() case, a block of output pixels [p0, p0 + cols) at a time: per tap
    // (c, u, v), one contiguous shifted copy of the plane, zero where the tap's row leaves the image
    // (a prefix or suffix of the block) and where its column does (the first or last pixels of
    // each image row, |v − pad| of them). Fewer, longer copies than the general path, the same values.
    template <class T>
    static void im2col_same_(const T* x_n, std::int64_t c0, std::int64_t c1, const geometry_& g, std::int64_t p0,
                             std::int64_t cols, T* col, std::int64_t ld) {
        for (std::int64_t c = c0; c < c1; ++c) {
            const T* plane = x_n + c * g.hw;
            for (std::int64_t u = 0; u < g.k; ++u)
                for (std::int64_t v = 0; v < g.k; ++v) {
                    T* out = col + ((c - c0) * g.kk + u * g.k + v) * ld;
                    const std::int64_t shift = (u - g.pad) * g.w + (v - g.pad);
                    // Pixels whose tap row is inside the image: p with 0 <= p + (u − pad)·W < H·W.
                    const std::int64_t lo = std::clamp(-(u - g.pad) * g.w - p0, std::int64_t{0}, cols);
                    const std::int64_t hi = std::clamp(g.hw - (u - g.pad) * g.w - p0, lo, cols);
                    std::fill(out, out + lo, T(0));
                    // In the rows inside the image, p + shift stays inside the plane except where the
                    // column leaves it, and those entries are zeroed just below.
                    // [a, e) within [lo, hi): a block shorter than the shift (a few pixels at the
                    // start of an image, when blocks span images) may have no such entry at all.
                    const std::int64_t a = std::clamp(-shift - p0, lo, hi);
                    const std::int64_t e = std::clamp(g.hw - shift - p0, a, hi);
                    std::fill(out + lo, out + a, T(0));
                    std::copy(plane + p0 + a + shift, plane + p0 + e + shift, out + a);
                    std::fill(out + e, out + hi, T(0));
                    std::fill(out + hi, out + cols, T(0));
                    zero_outside_columns_(out, g, v, p0, lo, hi);
                }
        }
    }

    // Zeroes entries [lo, hi) of a same_size() tap row whose column j + v − pad leaves [0, W).
    template <class T>
    static void zero_outside_columns_(T* out, const geometry_& g, std::int64_t v, std::int64_t p0, std::int64_t lo,
                                      std::int64_t hi) {
        const std::int64_t d = v - g.pad;
        if (d == 0) return;
        // Columns j < −d (d < 0) or j >= W − d (d > 0) of every image row the block touches.
        const std::int64_t j_begin = d < 0 ? 0 : g.w - d, j_end = d < 0 ? -d : g.w;
        for (std::int64_t row_start = (p0 + lo) / g.w * g.w; row_start < p0 + hi; row_start += g.w) {
            const std::int64_t a = std::max(row_start + j_begin, p0 + lo), e = std::min(row_start + j_end, p0 + hi);
            for (std::int64_t p = a; p < e; ++p) out[p - p0] = T(0);
        }
    }

    // The adjoint of im2col_same_: each tap row adds into the plane at its shift, skipping the
    // entries whose tap lies outside the image. The order of additions is fixed.
    template <class T>
    static void col2im_add_same_(const T* col, std::int64_t c0, std::int64_t c1, const geometry_& g, std::int64_t p0,
                                 std::int64_t cols, T* dx_n, std::int64_t ld) {
        const std::int64_t row_pixels = g.w;
        for (std::int64_t c = c0; c < c1; ++c) {
            T* plane = dx_n + c * g.hw;
            for (std::int64_t u = 0; u < g.k; ++u)
                for (std::int64_t v = 0; v < g.k; ++v) {
                    const T* in = col + ((c - c0) * g.kk + u * g.k + v) * ld;
                    const std::int64_t shift = (u - g.pad) * g.w + (v - g.pad), d = v - g.pad;
                    const std::int64_t lo = std::clamp(-(u - g.pad) * g.w - p0, std::int64_t{0}, cols);
                    const std::int64_t hi = std::clamp(g.hw - (u - g.pad) * g.w - p0, lo, cols);
                    // Image row by image row, the columns whose tap stays inside: j in [max(0, −d), min(W, W − d)).
                    const std::int64_t j_lo = std::max<std::int64_t>(0, -d),
                                       j_hi = std::min(row_pixels, row_pixels - d);
                    for (std::int64_t row_start = (p0 + lo) / g.w * g.w; row_start < p0 + hi; row_start += g.w) {
                        const std::int64_t a = std::max(row_start + j_lo, p0 + lo),
                                           e = std::min(row_start + j_hi, p0 + hi);
                        T* dst = plane + shift;
                        for (std::int64_t p = a; p < e; ++p) dst[p] += in[p - p0];
                    }
                }
        }
    }

    // The adjoint of im2col_ (col at row stride ld): adds col's entries into the taps they were read from in dx_n's
    // channels [c0, c1); taps in the padding are dropped. The order of additions is fixed.
    template <class T>
    static void col2im_add_(const T* col, std::int64_t c0, std::int64_t c1, const geometry_& g, std::int64_t p0,
                            std::int64_t cols, T* dx_n, std::int64_t ld) {
        if (g.same_size()) {
            col2im_add_same_(col, c0, c1, g, p0, cols, dx_n, ld);
            return;
        }
        for (std::int64_t c = c0; c < c1; ++c) {
            T* plane = dx_n + c * g.hw;
            for (std::int64_t u = 0; u < g.k; ++u)
                for (std::int64_t v = 0; v < g.k; ++v) {
                    const T* in = col + ((c - c0) * g.kk + u * g.k + v) * ld;
                    std::int64_t lo, hi;
                    valid_columns_(g, v, lo, hi);
                    for (std::int64_t p = p0; p < p0 + cols;) {
                        const std::int64_t i = p / g.wo, j0 = p % g.wo;
                        const std::int64_t j1 = std::min(g.wo, j0 + (p0 + cols - p));
                        const std::int64_t row_in = i * g.stride - g.pad + u;
                        if (row_in >= 0 && row_in < g.h) {
                            const std::int64_t base = row_in * g.w - g.pad + v;
                            const std::int64_t a = std::clamp(lo, j0, j1), e = std::clamp(hi, a, j1);
                            if (g.stride == 1) {
                                T* dst = plane + base + a;
                                const T* src = in + (a - j0);
                                for (std::int64_t t = 0; t < e - a; ++t) dst[t] += src[t];
                            } else {
                                for (std::int64_t j = a; j < e; ++j) plane[base + j * g.stride] += in[j - j0];
                            }
                        }
                        in += j1 - j0;
                        p += j1 - j0;
                    }
                }
        }
    }
};

}  // namespace ouro::cpu_kernels
