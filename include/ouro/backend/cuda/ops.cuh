// ops<cuda>, first slice (issue #14): the ops whose kernel bodies exist (backend/cuda/kernels/,
// each checked against ops<cpu> by emulation in tests/test_cuda_emulated.cpp), launched on the
// thread's stream (memory.cuh): the pointwise activations and sums, group norm (plain and fused
// with SiLU) with its gradients, resampling and concatenation, pooling, dropout, the embeddings,
// the two losses, every optimiser pass and the finite check, and the linear layer, the
// convolution and self-attention on cuBLAS (their calls planned in kernels/linear.hpp, conv.hpp
// and attention.hpp, where the CPU tests check the transposes): every op the U-Net, LeNet, the
// trainer and the optimisers call. Unlike the CPU's, these GEMMs are not batch-invariant: cuBLAS
// chooses its blocking by the shape.
//
// Scratch (group norm's coefficients and sums, the losses' partial sums) comes from the caching
// allocator, so a step allocates from the device only the first time.
//
// Checks that would read device memory on the host are not made here: labels and pooling indices
// are checked where they are made (the U-Net checks labels on the host before copying them over;
// max pooling's indices come from max_pool2d_forward).
//
// Shapes are checked on the host with the CPU's messages. Determinism: every op here is one
// thread per element, so its bits do not depend on the launch; the device's exp and the compiler's
// fused multiply-adds may differ from the CPU's in the last bits (tests/cuda/ compares with a
// tolerance per op).
#pragma once

#if !defined(__CUDACC__)
#error "ouro/backend/cuda/ops.cuh is for translation units compiled by nvcc (link ouro::cuda)"
#endif

#include <cmath>
#include <cstdint>

#include "ouro/backend/adamw_update.hpp"
#include "ouro/backend/cuda/kernels/attention.hpp"
#include "ouro/backend/cuda/kernels/conv.hpp"
#include "ouro/backend/cuda/kernels/embedding.hpp"
#include "ouro/backend/cuda/kernels/linear.hpp"
#include "ouro/backend/cuda/kernels/norm.hpp"
#include "ouro/backend/cuda/kernels/pointwise.hpp"
#include "ouro/backend/cuda/kernels/pool.hpp"
#include "ouro/backend/cuda/kernels/reductions.hpp"
#include "ouro/backend/cuda/kernels/resample.hpp"
#include "ouro/backend/cuda/launch.cuh"
#include "ouro/backend/cuda/memory.cuh"
#include "ouro/backend/op_params.hpp"
#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro {

namespace detail {
template <>
inline constexpr bool backend_header_included<cuda> = true;
}  // namespace detail

template <>
struct ops<cuda> {
    template <class T>
    using view = tensor_view<T, cuda>;

    template <real_scalar T>
    static void silu_forward(view<const T> x, view<T> y) {
        require_shape(y.dims(), x.dims(), "silu_forward y");
        run_(x.numel(), cuda_kernels::silu_forward_body<T>{x.data(), y.data(), x.numel()}, "silu_forward");
    }
    template <real_scalar T>
    static void silu_backward(view<const T> x, view<const T> dy, view<T> dx) {
        require_shape(dy.dims(), x.dims(), "silu_backward dy");
        require_shape(dx.dims(), x.dims(), "silu_backward dx");
        run_(x.numel(), cuda_kernels::silu_backward_body<T>{x.data(), dy.data(), dx.data(), x.numel()},
             "silu_backward");
    }
    template <real_scalar T>
    static void relu_forward(view<const T> x, view<T> y) {
        require_shape(y.dims(), x.dims(), "relu_forward y");
        run_(x.numel(), cuda_kernels::relu_forward_body<T>{x.data(), y.data(), x.numel()}, "relu_forward");
    }
    template <real_scalar T>
    static void relu_backward(view<const T> y, view<const T> dy, view<T> dx) {
        require_shape(dy.dims(), y.dims(), "relu_backward dy");
        require_shape(dx.dims(), y.dims(), "relu_backward dx");
        run_(y.numel(), cuda_kernels::relu_backward_body<T>{y.data(), dy.data(), dx.data(), y.numel()},
             "relu_backward");
    }
    template <real_scalar T>
    static void elementwise_add(view<const T> a, view<const T> b, view<T> y) {
        require_shape(b.dims(), a.dims(), "elementwise_add b");
        require_shape(y.dims(), a.dims(), "elementwise_add y");
        run_(a.numel(), cuda_kernels::add_body<T>{a.data(), b.data(), y.data(), a.numel()}, "elementwise_add");
    }
    template <real_scalar T>
    static void accumulate(view<const T> x, view<T> y) {
        require_shape(x.dims(), y.dims(), "accumulate x");
        run_(y.numel(), cuda_kernels::add_body<T>{y.data(), x.data(), y.data(), y.numel()}, "accumulate");
    }
    template <real_scalar T>
    static void add_per_channel(view<const T> x, view<const T> v, view<T> y) {
        require(x.rank() >= 2, "add_per_channel: expected x of shape (B, C, ...), found shape ", x.dims());
        require_shape(v.dims(), shape{x.dim(0), x.dim(1)}, "add_per_channel v (B, C)");
        require_shape(y.dims(), x.dims(), "add_per_channel y");
        const std::int64_t planes = x.dim(0) * x.dim(1), plane = planes == 0 ? 0 : x.numel() / planes;
        run_(x.numel(), cuda_kernels::add_per_channel_body<T>{x.data(), v.data(), y.data(), planes, plane},
             "add_per_channel");
    }

    template <real_scalar T>
    static void sum_per_channel(view<const T> x, view<T> y) {
        require(x.rank() >= 2, "sum_per_channel: expected x of shape (B, C, ...), found shape ", x.dims());
        require_shape(y.dims(), shape{x.dim(0), x.dim(1)}, "sum_per_channel y (B, C)");
        const std::int64_t planes = x.dim(0) * x.dim(1), plane = planes == 0 ? 0 : x.numel() / planes;
        run_(planes, cuda_kernels::sum_per_channel_body<T>{x.data(), y.data(), planes, plane}, "sum_per_channel");
    }

    // ---- The linear layer, y = x·Wᵀ + b, on cuBLAS (float; double through cublasDgemm) ----

    template <real_scalar T>
    static void linear_forward(view<const T> x, view<const T> w, view<const T> b, view<T> y) {
        const linear_sizes s = check_linear("linear_forward", x.dims(), w.dims());
        require_shape(y.dims(), shape{s.n, s.out}, "linear_forward y (N, out)");
        const bool bias = !b.absent();
        if (bias) require_shape(b.dims(), shape{s.out}, "linear_forward b (out)");
        gemm_(cuda_kernels::linear_forward_gemm(s.n, s.in, s.out), w.data(), x.data(), y.data(), "linear_forward");
        if (bias)
            run_(s.n * s.out, cuda_kernels::add_row_vector_body<T>{y.data(), b.data(), s.n, s.out},
                 "linear_forward bias");
    }
    template <real_scalar T>
    static void linear_backward(view<const T> x, view<const T> dy, view<const T> w, view<T> dx, view<T> dw,
                                view<T> db) {
        const linear_sizes s = check_linear("linear_backward", x.dims(), w.dims());
        require_shape(dy.dims(), shape{s.n, s.out}, "linear_backward dy (N, out)");
        require_shape(dw.dims(), shape{s.out, s.in}, "linear_backward dw (out, in)");
        if (!dx.absent()) {
            require_shape(dx.dims(), shape{s.n, s.in}, "linear_backward dx (N, in)");
            gemm_(cuda_kernels::linear_input_gradient_gemm(s.n, s.in, s.out), w.data(), dy.data(), dx.data(),
                  "linear_backward dx");
        }
        gemm_(cuda_kernels::linear_weight_gradient_gemm(s.n, s.in, s.out), x.data(), dy.data(), dw.data(),
              "linear_backward dw");
        if (!db.absent()) {
            require_shape(db.dims(), shape{s.out}, "linear_backward db (out)");
            run_(s.out, cuda_kernels::add_column_sums_body<T>{dy.data(), db.data(), s.n, s.out}, "linear_backward db");
        }
    }

    // ---- Self-attention: strided-batched GEMMs over all (batch, head) items (kernels/attention.hpp) ----

    template <real_scalar T>
    static void attention_forward(view<const T> qkv, view<T> out, view<T> probs, std::int64_t heads) {
        const cuda_kernels::attention_geometry g = attention_geometry_("attention_forward", qkv.dims(), heads);
        require_shape(out.dims(), shape{qkv.dim(0), heads * g.d, g.l}, "attention_forward out (B, C, L)");
        require_shape(probs.dims(), shape{qkv.dim(0), heads, g.l, g.l}, "attention_forward probs (B, heads, L, L)");
        namespace plan = cuda_kernels::attention_plans;
        const double scale = 1.0 / std::sqrt(static_cast<double>(g.d));
        const std::int64_t s3 = g.qkv_stride(), s1 = g.d * g.l;
        const T* q = qkv.data();
        gemm_(plan::scores(g, s3, s3, scale), q + g.d * g.l, q, probs.data(), "attention_forward scores");
        run_(g.items * g.l, cuda_kernels::softmax_rows_body<T>{probs.data(), g.items * g.l, g.l},
             "attention_forward softmax");
        gemm_(plan::times_transposed(g, s3, s1, 1.0), static_cast<const T*>(probs.data()), q + 2 * g.d * g.l,
              out.data(), "attention_forward output");
    }
    template <real_scalar T>
    static void attention_backward(view<const T> qkv, view<const T> probs, view<const T> dout, view<T> dqkv) {
        require_rank(probs.dims(), 4, "attention_backward probs", "(B, heads, L, L)");
        const std::int64_t heads = probs.dim(1);
        const cuda_kernels::attention_geometry g = attention_geometry_("attention_backward", qkv.dims(), heads);
        require_shape(probs.dims(), shape{qkv.dim(0), heads, g.l, g.l}, "attention_backward probs (B, heads, L, L)");
        require_shape(dout.dims(), shape{qkv.dim(0), heads * g.d, g.l}, "attention_backward dout (B, C, L)");
        require_shape(dqkv.dims(), qkv.dims(), "attention_backward dqkv (B, 3C, L)");
        namespace plan = cuda_kernels::attention_plans;
        const double scale = 1.0 / std::sqrt(static_cast<double>(g.d));
        const std::int64_t s3 = g.qkv_stride(), s1 = g.d * g.l, dl = g.d * g.l;
        const T* q = qkv.data();
        T* dq = dqkv.data();
        device_buffer<T, cuda> ds(static_cast<std::size_t>(g.items * g.l * g.l));
        gemm_(plan::times(g, s1, s3, 1.0), probs.data(), dout.data(), dq + 2 * dl, "attention_backward dV");
        gemm_(plan::scores(g, s3, s1, 1.0), q + 2 * dl, dout.data(), ds.data(), "attention_backward dP");
        run_(g.items * g.l, cuda_kernels::softmax_rows_backward_body<T>{probs.data(), ds.data(), g.items * g.l, g.l},
             "attention_backward softmax");
        gemm_(plan::times_transposed(g, s3, s3, scale), static_cast<const T*>(ds.data()), q + dl, dq,
              "attention_backward dQ");
        gemm_(plan::times(g, s3, s3, scale), static_cast<const T*>(ds.data()), q, dq + dl, "attention_backward dK");
    }

    // ---- 2-D convolution: im2col + one GEMM per image (kernels/conv.hpp) ----

    template <real_scalar T>
    static void conv2d_forward(view<const T> x, view<const T> w, view<const T> b, view<T> y, conv2d_params params,
                               matmul_precision precision = matmul_precision::fp32) {
        require(precision == matmul_precision::fp32,
                "conv2d_forward: bf16 products are a CPU option (AVX512-BF16); ouro::cuda computes in fp32");
        const cuda_kernels::conv_geometry g = conv_geometry_("conv2d_forward", x.dims(), w.dims(), y.dims(), params);
        const std::int64_t batch = x.dim(0), in_image = g.cin * g.h * g.w, out_image = g.cout * g.pixels();
        device_buffer<T, cuda> cols(static_cast<std::size_t>(g.taps() * g.pixels()));
        for (std::int64_t i = 0; i < batch; ++i) {
            run_(g.taps() * g.pixels(), cuda_kernels::im2col_body<T>{x.data() + i * in_image, cols.data(), g},
                 "conv2d_forward im2col");
            gemm_(cuda_kernels::conv_forward_gemm(g), cols.data(), w.data(), y.data() + i * out_image,
                  "conv2d_forward");
        }
        if (b.data() != nullptr) {
            require_shape(b.dims(), shape{g.cout}, "conv2d_forward bias b (Cout)");
            run_(y.numel(), cuda_kernels::add_channel_bias_body<T>{y.data(), b.data(), batch, g.cout, g.pixels()},
                 "conv2d_forward bias");
        }
    }
    template <real_scalar T>
    static void conv2d_backward_input(view<const T> dy, view<const T> w, view<T> dx, conv2d_params params) {
        const cuda_kernels::conv_geometry g =
            conv_geometry_("conv2d_backward_input", dx.dims(), w.dims(), dy.dims(), params);
        const std::int64_t batch = dx.dim(0), in_image = g.cin * g.h * g.w, out_image = g.cout * g.pixels();
        device_buffer<T, cuda> dcols(static_cast<std::size_t>(g.taps() * g.pixels()));
        for (std::int64_t i = 0; i < batch; ++i) {
            gemm_(cuda_kernels::conv_input_gradient_gemm(g), dy.data() + i * out_image, w.data(), dcols.data(),
                  "conv2d_backward_input");
            run_(in_image, cuda_kernels::col2im_body<T>{dcols.data(), dx.data() + i * in_image, g},
                 "conv2d_backward_input col2im");
        }
    }
    template <real_scalar T>
    static void conv2d_backward_weight(view<const T> x, view<const T> dy, view<T> dw, view<T> db,
                                       conv2d_params params) {
        const cuda_kernels::conv_geometry g =
            conv_geometry_("conv2d_backward_weight", x.dims(), dw.dims(), dy.dims(), params);
        const std::int64_t batch = x.dim(0), in_image = g.cin * g.h * g.w, out_image = g.cout * g.pixels();
        device_buffer<T, cuda> cols(static_cast<std::size_t>(g.taps() * g.pixels()));
        for (std::int64_t i = 0; i < batch; ++i) {
            run_(g.taps() * g.pixels(), cuda_kernels::im2col_body<T>{x.data() + i * in_image, cols.data(), g},
                 "conv2d_backward_weight im2col");
            gemm_(cuda_kernels::conv_weight_gradient_gemm(g), cols.data(), dy.data() + i * out_image, dw.data(),
                  "conv2d_backward_weight");
        }
        if (db.data() != nullptr) {
            require_shape(db.dims(), shape{g.cout}, "conv2d_backward_weight bias gradient db (Cout)");
            run_(g.cout, cuda_kernels::add_channel_sums_body<T>{dy.data(), db.data(), batch, g.cout, g.pixels()},
                 "conv2d_backward_weight db");
        }
    }

    // ---- Group normalisation (Wu & He 2018), plain and fused with SiLU ----

    template <real_scalar T>
    static void group_norm_forward(view<const T> x, view<const T> gamma, view<const T> beta, view<T> y, view<T> mean,
                                   view<T> rstd, std::int64_t groups, double eps = 1e-5) {
        const group_norm_layout lay = norm_forward_checks_("group_norm_forward", x, gamma, beta, y, groups);
        require_shape(mean.dims(), shape{lay.b, groups}, "group_norm_forward mean (B, G)");
        require_shape(rstd.dims(), shape{lay.b, groups}, "group_norm_forward rstd (B, G)");
        device_buffer<T, cuda> coefficients(static_cast<std::size_t>(2 * lay.b * lay.c));
        norm_apply_<false>(x, y, mean.data(), rstd.data(), coefficients.data(), gamma, beta, lay, groups, eps);
    }
    template <real_scalar T>
    static void group_norm_silu_forward(view<const T> x, view<const T> gamma, view<const T> beta, view<T> y,
                                        std::int64_t groups, double eps = 1e-5) {
        const group_norm_layout lay = norm_forward_checks_("group_norm_silu_forward", x, gamma, beta, y, groups);
        device_buffer<T, cuda> coefficients(static_cast<std::size_t>(2 * lay.b * lay.c));
        norm_apply_<true>(x, y, static_cast<T*>(nullptr), static_cast<T*>(nullptr), coefficients.data(), gamma, beta,
                          lay, groups, eps);
    }
    template <real_scalar T>
    static void group_norm_silu_forward(view<const T> x, view<const T> gamma, view<const T> beta, view<T> y,
                                        view<T> mean, view<T> rstd, view<T> coefficients, std::int64_t groups,
                                        double eps = 1e-5) {
        const group_norm_layout lay = norm_forward_checks_("group_norm_silu_forward", x, gamma, beta, y, groups);
        require_shape(mean.dims(), shape{lay.b, groups}, "group_norm_silu_forward mean (B, G)");
        require_shape(rstd.dims(), shape{lay.b, groups}, "group_norm_silu_forward rstd (B, G)");
        require_shape(coefficients.dims(), shape{lay.b, lay.c, 2}, "group_norm_silu_forward coefficients (B, C, 2)");
        norm_apply_<true>(x, y, mean.data(), rstd.data(), coefficients.data(), gamma, beta, lay, groups, eps);
    }
    template <real_scalar T>
    static void group_norm_backward(view<const T> x, view<const T> dy, view<const T> gamma, view<const T> mean,
                                    view<const T> rstd, view<T> dx, view<T> dgamma, view<T> dbeta) {
        norm_backward_<false>("group_norm_backward", x, dy, gamma, mean, rstd, static_cast<const T*>(nullptr), dx,
                              dgamma, dbeta);
    }
    template <real_scalar T>
    static void group_norm_silu_backward(view<const T> x, view<const T> dy, view<const T> gamma, view<const T> mean,
                                         view<const T> rstd, view<const T> coefficients, view<T> dx, view<T> dgamma,
                                         view<T> dbeta) {
        require_shape(coefficients.dims(), shape{x.rank() >= 2 ? x.dim(0) : 0, x.rank() >= 2 ? x.dim(1) : 0, 2},
                      "group_norm_silu_backward coefficients (B, C, 2)");
        norm_backward_<true>("group_norm_silu_backward", x, dy, gamma, mean, rstd, coefficients.data(), dx, dgamma,
                             dbeta);
    }

    // ---- Losses: the value in double in a fixed order, the gradient as the CPU's ----

    // mean((pred − target)²); dpred = 2·(pred − target)/n unless dpred is an empty view.
    template <real_scalar T>
    static double mse_loss(view<const T> pred, view<const T> target, view<T> dpred) {
        const bool with_grad = !dpred.absent();
        check_mse_loss(pred.dims(), target.dims(), dpred.dims(), with_grad);
        const std::int64_t n = pred.numel();
        const cuda_kernels::launch_shape shape_n = cuda_kernels::launch_shape_for(n);
        const std::int64_t slices = shape_n.grid * shape_n.block;
        device_buffer<double, cuda> partial(static_cast<std::size_t>(slices)), total(1);
        const T scale = static_cast<T>(2.0 / static_cast<double>(n));
        launch_(shape_n,
                cuda_kernels::mse_partial_body<T>{pred.data(), target.data(), with_grad ? dpred.data() : nullptr,
                                                  partial.data(), n, slices, scale},
                "mse_loss");
        launch_(cuda_kernels::launch_shape_for(1, 32),
                cuda_kernels::mse_total_body{partial.data(), total.data(), slices, n}, "mse_loss");
        return scalar_to_host_(total.data());
    }

    // Mean over rows of −log softmax(logits)[label]; dlogits = (softmax − onehot)/N unless empty.
    // Labels are in device memory and not range-checked here (the CPU checks them on the host).
    template <real_scalar T>
    static double softmax_cross_entropy(view<const T> logits, view<const std::int64_t> labels, view<T> dlogits) {
        const bool with_grad = !dlogits.absent();
        check_softmax_cross_entropy(logits.dims(), labels.dims(), dlogits.dims(), with_grad);
        const std::int64_t n = logits.dim(0), k = logits.dim(1);
        device_buffer<double, cuda> rows(static_cast<std::size_t>(n)), total(1);
        launch_(cuda_kernels::launch_shape_for(n),
                cuda_kernels::softmax_cross_entropy_rows_body<T>{
                    logits.data(), labels.data(), with_grad ? dlogits.data() : nullptr, rows.data(), n, k},
                "softmax_cross_entropy");
        launch_(cuda_kernels::launch_shape_for(1, 32),
                cuda_kernels::mean_of_rows_body{rows.data(), total.data(), n, 1.0 / static_cast<double>(n)},
                "softmax_cross_entropy");
        return scalar_to_host_(total.data());
    }

    // ---- Resampling and concatenation ----

    template <real_scalar T>
    static void upsample_nearest2x_forward(view<const T> x, view<T> y) {
        check_upsample_nearest2x("upsample_nearest2x_forward", x.dims(), "input x", y.dims(), "output y");
        run_(y.numel(),
             cuda_kernels::upsample_nearest2x_forward_body<T>{x.data(), y.data(), x.dim(0) * x.dim(1), x.dim(2),
                                                              x.dim(3)},
             "upsample_nearest2x_forward");
    }
    template <real_scalar T>
    static void upsample_nearest2x_backward(view<const T> dy, view<T> dx) {
        check_upsample_nearest2x("upsample_nearest2x_backward", dx.dims(), "input gradient dx", dy.dims(), "dy");
        run_(dx.numel(),
             cuda_kernels::upsample_nearest2x_backward_body<T>{dy.data(), dx.data(), dx.dim(0) * dx.dim(1), dx.dim(2),
                                                               dx.dim(3)},
             "upsample_nearest2x_backward");
    }
    template <real_scalar T>
    static void concat_channels_forward(view<const T> a, view<const T> b, view<T> y) {
        const shape ys = concat_channels_output_shape("concat_channels_forward", a.dims(), b.dims());
        require_shape(y.dims(), ys, "concat_channels_forward y");
        const std::int64_t batch = a.dim(0);
        run_(y.numel(),
             cuda_kernels::concat_channels_forward_body<T>{a.data(), b.data(), y.data(), batch, a.numel() / batch,
                                                           b.numel() / batch},
             "concat_channels_forward");
    }
    template <real_scalar T>
    static void concat_channels_backward(view<const T> dy, view<T> da, view<T> db) {
        const shape ys = concat_channels_output_shape("concat_channels_backward", da.dims(), db.dims());
        require_shape(dy.dims(), ys, "concat_channels_backward dy");
        const std::int64_t batch = da.dim(0);
        run_(dy.numel(),
             cuda_kernels::concat_channels_backward_body<T>{dy.data(), da.data(), db.data(), batch, da.numel() / batch,
                                                            db.numel() / batch},
             "concat_channels_backward");
    }

    // ---- Pooling ----

    template <real_scalar T>
    static void avg_pool2d_forward(view<const T> x, view<T> y, std::int64_t kernel, std::int64_t stride) {
        const cuda_kernels::pool_geometry g = geometry_("avg_pool2d_forward", x.dims(), y.dims(), kernel, stride);
        run_(y.numel(), cuda_kernels::avg_pool2d_forward_body<T>{x.data(), y.data(), g}, "avg_pool2d_forward");
    }
    template <real_scalar T>
    static void avg_pool2d_backward(view<const T> dy, view<T> dx, std::int64_t kernel, std::int64_t stride) {
        const cuda_kernels::pool_geometry g = geometry_("avg_pool2d_backward", dx.dims(), dy.dims(), kernel, stride);
        run_(dx.numel(), cuda_kernels::avg_pool2d_backward_body<T>{dy.data(), dx.data(), g}, "avg_pool2d_backward");
    }
    template <real_scalar T>
    static void max_pool2d_forward(view<const T> x, view<T> y, view<std::int64_t> indices, std::int64_t kernel,
                                   std::int64_t stride) {
        const cuda_kernels::pool_geometry g = geometry_("max_pool2d_forward", x.dims(), y.dims(), kernel, stride);
        require_shape(indices.dims(), y.dims(), "max_pool2d_forward indices (B, C, Ho, Wo)");
        run_(y.numel(), cuda_kernels::max_pool2d_forward_body<T>{x.data(), y.data(), indices.data(), g},
             "max_pool2d_forward");
    }
    // Each input gathers the outputs whose windows hold it and whose index points at it (the
    // CPU scatters by index; the sums are the same). Indices come from max_pool2d_forward and are
    // not checked again here (that would read device memory on the host).
    template <real_scalar T>
    static void max_pool2d_backward(view<const T> dy, view<const std::int64_t> indices, view<T> dx, std::int64_t kernel,
                                    std::int64_t stride) {
        const cuda_kernels::pool_geometry g = geometry_("max_pool2d_backward", dx.dims(), dy.dims(), kernel, stride);
        require_shape(indices.dims(), dy.dims(), "max_pool2d_backward indices (B, C, Ho, Wo)");
        run_(dx.numel(), cuda_kernels::max_pool2d_backward_body<T>{dy.data(), indices.data(), dx.data(), g},
             "max_pool2d_backward");
    }

    // ---- Dropout (the CPU's mask, bit for bit: backend/op_params.hpp's dropout_streams) ----

    template <real_scalar T>
    static void dropout_forward(view<const T> x, view<T> y, view<T> mask, double p, std::uint64_t seed,
                                std::uint64_t step, std::uint64_t salt) {
        require_shape(mask.dims(), x.dims(), "dropout_forward mask");
        dropout_(x, y, mask.data(), p, seed, step, salt, "dropout_forward");
    }
    template <real_scalar T>
    static void dropout_forward(view<const T> x, view<T> y, double p, std::uint64_t seed, std::uint64_t step,
                                std::uint64_t salt) {
        dropout_(x, y, static_cast<T*>(nullptr), p, seed, step, salt, "dropout_forward");
    }
    template <real_scalar T>
    static void dropout_backward(view<const T> dy, view<T> dx, double p, std::uint64_t seed, std::uint64_t step,
                                 std::uint64_t salt) {
        dropout_(dy, dx, static_cast<T*>(nullptr), p, seed, step, salt, "dropout_backward");
    }

    // ---- Embeddings ----

    template <real_scalar T>
    static void sinusoidal_timestep_embedding(view<const T> t, view<T> y, double max_period = 10000.0) {
        const std::int64_t batch = timesteps_("sinusoidal_timestep_embedding", t.dims(), y.dims(), max_period);
        const std::int64_t dim = y.dim(1), half = dim / 2;
        run_(batch * (half > 0 ? half : 1),
             cuda_kernels::sinusoidal_embedding_body<T>{t.data(), y.data(), batch, dim, max_period},
             "sinusoidal_timestep_embedding");
    }
    template <real_scalar T>
    static void sinusoidal_timestep_embedding_backward(view<const T> t, view<const T> dy, view<T> dt,
                                                       double max_period = 10000.0) {
        const std::int64_t batch =
            timesteps_("sinusoidal_timestep_embedding_backward", t.dims(), dy.dims(), max_period);
        require_shape(dt.dims(), t.dims(), "sinusoidal_timestep_embedding_backward dt");
        run_(batch,
             cuda_kernels::sinusoidal_embedding_backward_body<T>{t.data(), dy.data(), dt.data(), batch, dy.dim(1),
                                                                 max_period},
             "sinusoidal_timestep_embedding_backward");
    }
    template <real_scalar T>
    static void label_embedding_forward(view<const std::int64_t> labels, view<const T> table, view<T> y) {
        labels_("label_embedding_forward", labels.dims(), table.dims());
        const std::int64_t batch = labels.dim(0), dim = table.dim(1);
        require_shape(y.dims(), shape{batch, dim}, "label_embedding_forward y (B, dim)");
        run_(batch * dim,
             cuda_kernels::label_embedding_forward_body<T>{labels.data(), table.data(), y.data(), batch, dim},
             "label_embedding_forward");
    }
    template <real_scalar T>
    static void label_embedding_backward(view<const std::int64_t> labels, view<const T> dy, view<T> dtable) {
        labels_("label_embedding_backward", labels.dims(), dtable.dims());
        const std::int64_t batch = labels.dim(0), classes = dtable.dim(0), dim = dtable.dim(1);
        require_shape(dy.dims(), shape{batch, dim}, "label_embedding_backward dy (B, dim)");
        run_(classes * dim,
             cuda_kernels::label_embedding_backward_body<T>{labels.data(), dy.data(), dtable.data(), batch, classes,
                                                            dim},
             "label_embedding_backward");
    }

    // ---- The optimisers' passes (backend/cpu/update.hpp on the CPU) ----

    template <real_scalar T>
    static void adamw_step(view<T> p, view<T> m, view<T> v, view<const T> g, const optim::adamw_step_scalars<T>& s) {
        same_size_("adamw_step", p.numel(), {m.numel(), v.numel(), g.numel()});
        run_(p.numel(), cuda_kernels::adamw_body<T>{p.data(), m.data(), v.data(), g.data(), p.numel(), s},
             "adamw_step");
    }
    template <real_scalar T>
    static void sgd_step(view<T> p, view<T> momentum, view<const T> g, T lr, T mu, T wd) {
        same_size_("sgd_step", p.numel(), {momentum.numel(), g.numel()});
        run_(p.numel(), cuda_kernels::sgd_body<T>{p.data(), momentum.data(), g.data(), p.numel(), lr, mu, wd},
             "sgd_step");
    }
    template <real_scalar T>
    static void ema_blend(view<T> avg, view<const T> p, T one_minus_decay) {
        same_size_("ema_blend", avg.numel(), {p.numel()});
        run_(avg.numel(), cuda_kernels::ema_body<T>{avg.data(), p.data(), avg.numel(), one_minus_decay}, "ema_blend");
    }
    template <real_scalar T>
    static void swap_contents(view<T> a, view<T> b) {
        same_size_("swap_contents", a.numel(), {b.numel()});
        run_(a.numel(), cuda_kernels::swap_body<T>{a.data(), b.data(), a.numel()}, "swap_contents");
    }
    template <real_scalar T>
    static void scale(view<T> x, T s) {
        run_(x.numel(), cuda_kernels::scale_body<T>{x.data(), x.numel(), s}, "scale");
    }
    // Σ x² in double, in the CPU's order (chunks of 4096, 8 lanes each, then chunk by chunk).
    template <real_scalar T>
    static double sum_of_squares(view<const T> x) {
        const std::int64_t n = x.numel(), chunk = 4096, chunks = (n + chunk - 1) / chunk;
        if (n == 0) return 0.0;
        device_buffer<double, cuda> partial(static_cast<std::size_t>(chunks)), total(1);
        launch_(cuda_kernels::launch_shape_for(chunks, 64),
                cuda_kernels::sum_of_squares_chunks_body<T>{x.data(), partial.data(), n, chunk}, "sum_of_squares");
        launch_(cuda_kernels::launch_shape_for(1, 32),
                cuda_kernels::sum_in_order_body{partial.data(), total.data(), chunks}, "sum_of_squares");
        return scalar_to_host_(total.data());
    }

    // The index of the first NaN or ±Inf of x, or −1.
    template <real_scalar T>
    static std::int64_t first_non_finite(view<const T> x) {
        const std::int64_t n = x.numel(), chunk = 4096, chunks = (n + chunk - 1) / chunk;
        if (n == 0) return -1;
        device_buffer<std::int64_t, cuda> first(static_cast<std::size_t>(chunks)), result(1);
        launch_(cuda_kernels::launch_shape_for(chunks, 64),
                cuda_kernels::first_non_finite_chunks_body<T>{x.data(), first.data(), n, chunk}, "first_non_finite");
        launch_(cuda_kernels::launch_shape_for(1, 32),
                cuda_kernels::first_of_chunks_body{first.data(), result.data(), chunks}, "first_non_finite");
        std::int64_t r = -1;
        backend_memory<cuda>::copy_to_host(&r, result.data(), sizeof r);
        return r;
    }

    template <real_scalar T>
    static void extrapolate_away(view<const T> x, view<T> y, T w) {
        require_shape(x.dims(), y.dims(), "extrapolate_away x");
        run_(y.numel(), cuda_kernels::extrapolate_body<T>{x.data(), y.data(), y.numel(), w}, "extrapolate_away");
    }

private:
    // The geometry of x (B, Cin, H, W) * w (Cout, Cin, k, k) -> y (B, Cout, Ho, Wo), checked as the CPU does.
    static cuda_kernels::conv_geometry conv_geometry_(const char* what, const shape& x, const shape& w, const shape& y,
                                                      conv2d_params p) {
        const shape out = conv2d_output_shape(x, w, p, what);
        require_shape(y, out, what);
        return {x[1], x[2], x[3], w[0], w[2], p.stride, p.padding, out[2], out[3]};
    }

    static cuda_kernels::attention_geometry attention_geometry_(const char* what, const shape& qkv,
                                                                std::int64_t heads) {
        require_rank(qkv, 3, what, "qkv (B, 3C, L)");
        const std::int64_t b = qkv[0], c3 = qkv[1], l = qkv[2];
        require(b > 0 && c3 > 0 && l > 0, what, ": expected a non-empty qkv (B, 3C, L), found shape ", qkv);
        require(c3 % 3 == 0, what, ": expected qkv (B, 3C, L) with a channel count divisible by 3, found shape ", qkv);
        require(heads > 0, what, ": expected heads >= 1, found heads = ", heads);
        require(c3 / 3 % heads == 0, what, ": expected channels C divisible by heads, found C = ", c3 / 3,
                " (qkv shape ", qkv, ") and heads = ", heads);
        return {b * heads, c3 / 3 / heads, l};
    }

    // One planned GEMM (kernels/linear.hpp: strided-batched when c.batch > 1) on this thread's cuBLAS handle.
    template <class T>
    static void gemm_(const cuda_kernels::gemm_call& c, const T* a, const T* b, T* out, const char* what) {
        const T alpha = static_cast<T>(c.alpha), beta = static_cast<T>(c.beta);
        const auto op = [](bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; };
        const auto i = [](std::int64_t v) { return static_cast<int>(v); };
        if (c.batch > 1) {
            if constexpr (sizeof(T) == 4)
                cuda_kernels::check_blas(
                    cublasSgemmStridedBatched(cuda_kernels::blas(), op(c.transpose_a), op(c.transpose_b), i(c.m),
                                              i(c.n), i(c.k), &alpha, a, i(c.lda), c.stride_a, b, i(c.ldb), c.stride_b,
                                              &beta, out, i(c.ldc), c.stride_c, i(c.batch)),
                    what);
            else
                cuda_kernels::check_blas(
                    cublasDgemmStridedBatched(cuda_kernels::blas(), op(c.transpose_a), op(c.transpose_b), i(c.m),
                                              i(c.n), i(c.k), &alpha, a, i(c.lda), c.stride_a, b, i(c.ldb), c.stride_b,
                                              &beta, out, i(c.ldc), c.stride_c, i(c.batch)),
                    what);
            return;
        }
        if constexpr (sizeof(T) == 4)
            cuda_kernels::check_blas(
                cublasSgemm(cuda_kernels::blas(), op(c.transpose_a), op(c.transpose_b), i(c.m), i(c.n), i(c.k), &alpha,
                            a, i(c.lda), b, i(c.ldb), &beta, out, i(c.ldc)),
                what);
        else
            cuda_kernels::check_blas(
                cublasDgemm(cuda_kernels::blas(), op(c.transpose_a), op(c.transpose_b), i(c.m), i(c.n), i(c.k), &alpha,
                            a, i(c.lda), b, i(c.ldb), &beta, out, i(c.ldc)),
                what);
    }

    template <class T>
    static group_norm_layout norm_forward_checks_(const char* what, view<const T> x, view<const T> gamma,
                                                  view<const T> beta, view<T> y, std::int64_t groups) {
        const group_norm_layout lay = check_group_norm(what, x.dims(), groups);
        require_shape(gamma.dims(), shape{lay.c}, what);
        require_shape(beta.dims(), shape{lay.c}, what);
        require_shape(y.dims(), x.dims(), what);
        return lay;
    }

    // Statistics and each (sample, channel)'s affine map, then y = a·x + shift (and SiLU).
    template <bool Silu, class T>
    static void norm_apply_(view<const T> x, view<T> y, T* mean, T* rstd, T* coefficients, view<const T> gamma,
                            view<const T> beta, const group_norm_layout& lay, std::int64_t groups, double eps) {
        launch_(cuda_kernels::launch_shape_for(lay.b * groups),
                cuda_kernels::group_norm_stats_body<T>{x.data(), gamma.data(), beta.data(), mean, rstd, coefficients,
                                                       lay.b, lay.c, groups, lay.hw, eps},
                "group_norm statistics");
        launch_(cuda_kernels::launch_shape_for(x.numel()),
                cuda_kernels::group_norm_apply_body<T, Silu>{x.data(), coefficients, y.data(), lay.b * lay.c, lay.hw},
                "group_norm apply");
    }

    // The gradient in three launches: per (sample, group) sums (and SiLU's gradient into dx),
    // then dx per element, then dγ and dβ per channel (accumulated).
    template <bool Silu, class T>
    static void norm_backward_(const char* what, view<const T> x, view<const T> dy, view<const T> gamma,
                               view<const T> mean, view<const T> rstd, const T* coefficients, view<T> dx,
                               view<T> dgamma, view<T> dbeta) {
        require_rank(mean.dims(), 2, what, "mean (B, G)");
        const std::int64_t groups = mean.dim(1);
        const group_norm_layout lay = check_group_norm(what, x.dims(), groups);
        require_shape(mean.dims(), shape{lay.b, groups}, what);
        require_shape(rstd.dims(), shape{lay.b, groups}, what);
        require_shape(dy.dims(), x.dims(), what);
        require_shape(dx.dims(), x.dims(), what);
        require_shape(gamma.dims(), shape{lay.c}, what);
        require_shape(dgamma.dims(), shape{lay.c}, what);
        require_shape(dbeta.dims(), shape{lay.c}, what);
        const auto bc = static_cast<std::size_t>(lay.b * lay.c);
        device_buffer<double, cuda> dev_sums(bc), dy_sums(bc),
            group_coefficients(static_cast<std::size_t>(2 * lay.b * groups));
        launch_(
            cuda_kernels::launch_shape_for(lay.b * groups),
            cuda_kernels::group_norm_backward_sums_body<T, Silu>{
                x.data(), dy.data(), gamma.data(), mean.data(), rstd.data(), coefficients, Silu ? dx.data() : nullptr,
                dev_sums.data(), dy_sums.data(), group_coefficients.data(), lay.b, lay.c, groups, lay.hw},
            what);
        launch_(cuda_kernels::launch_shape_for(x.numel()),
                cuda_kernels::group_norm_backward_combine_body<T>{Silu ? dx.data() : dy.data(), x.data(), gamma.data(),
                                                                  rstd.data(), group_coefficients.data(), dx.data(),
                                                                  lay.b, lay.c, groups, lay.hw},
                what);
        launch_(cuda_kernels::launch_shape_for(lay.c),
                cuda_kernels::group_norm_backward_parameters_body<T>{rstd.data(), dev_sums.data(), dy_sums.data(),
                                                                     dgamma.data(), dbeta.data(), lay.b, lay.c, groups},
                what);
    }

    static double scalar_to_host_(const double* device_value) {
        double v = 0;
        backend_memory<cuda>::copy_to_host(&v, device_value, sizeof v);
        return v;
    }

    template <class Body>
    static void launch_(cuda_kernels::launch_shape shape, const Body& body, const char* op) {
        cuda_kernels::check(cuda_kernels::launch(shape, body, cuda_kernels::stream()), op);
    }

    static cuda_kernels::pool_geometry geometry_(const char* what, const shape& in, const shape& out,
                                                 std::int64_t kernel, std::int64_t stride) {
        const shape expected = pool2d_output_shape(in, kernel, stride, what);
        require_shape(out, expected, what);
        return {in[0] * in[1], in[2], in[3], expected[2], expected[3], kernel, stride};
    }

    template <class T>
    static void dropout_(view<const T> x, view<T> y, T* mask, double p, std::uint64_t seed, std::uint64_t step,
                         std::uint64_t salt, const char* what) {
        require_shape(y.dims(), x.dims(), what);
        dropout_streams::check(what, x.dims(), p, step, salt);
        const std::int64_t n = x.numel();
        const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
        run_((n + 3) / 4,
             cuda_kernels::dropout_body<T>{x.data(), y.data(), mask, n, seed, step, salt,
                                           dropout_streams::keep_threshold(p), scale},
             what);
    }

    static std::int64_t timesteps_(const char* what, const shape& t, const shape& y, double max_period) {
        require_rank(t, 1, what, "t (B)");
        require_rank(y, 2, what, "(B, dim)");
        require(t[0] > 0, what, ": expected a non-empty batch, found t of shape ", t);
        require(y[0] == t[0] && y[1] > 0, what, ": expected an embedding of shape (", t[0],
                ", dim) with dim >= 1 for t of shape ", t, ", found shape ", y);
        require(max_period > 0, what, ": expected max_period > 0, found ", max_period);
        return t[0];
    }

    static void labels_(const char* what, const shape& labels, const shape& table) {
        require_rank(labels, 1, what, "labels (B)");
        if (table.rank() != 2) fail(what, ": expected a table of shape (num_classes, dim), found shape ", table);
        require(labels[0] > 0, what, ": expected a non-empty batch, found labels of shape ", labels);
    }

    // Queues `body` over n elements on the thread's stream; a launch error is an ouro::error naming the op.
    template <class Body>
    static void run_(std::int64_t n, const Body& body, const char* op) {
        if (n == 0) return;
        cuda_kernels::check(cuda_kernels::launch(cuda_kernels::launch_shape_for(n), body, cuda_kernels::stream()), op);
    }
    static void same_size_(const char* what, std::int64_t n, std::initializer_list<std::int64_t> others) {
        for (std::int64_t m : others)
            require(m == n, what, ": expected buffers of ", n, " elements each, found one of ", m);
    }
};

}  // namespace ouro
