// Checks of conv2d_forward with matmul_precision::bf16, shared by test_conv.cpp (built for this
// machine, AVX512-BF16 where it has it) and test_conv_bf16_portable.cpp (built without it, so the
// fp32 kernel on rounded operands runs): both paths must compute the same function.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "support/gradcheck.hpp"

namespace ouro::testing {

// For every layout of the conv tests (blocks spanning images, edge tiles, odd depths Cin·k·k,
// strides): y = b + Σ w·x with w and x rounded to bf16, against the defining sum in long double
// over the rounded operands, within fp32 summation error (relative to b + Σ|w·x|); and the
// rounding did happen (y differs from the fp32 products by more than that error somewhere).
inline void check_bf16_conv_is_the_sum_of_rounded_operands() {
    using cpu_ops = ops<cpu>;
    struct layout {
        shape x;
        std::int64_t cout, k;
        conv2d_params p;
    };
    const layout cases[] = {
        {shape{2, 10, 19, 17}, 5, 3, {1, 1}},  // 323 pixels over two blocks; depth 90
        {shape{2, 11, 17, 18}, 4, 1, {1, 0}},  // pointwise, odd depth 11
        {shape{5, 10, 7, 9}, 13, 3, {1, 1}},   // blocks span images; 13 output channels (edge tiles)
        {shape{3, 17, 5, 6}, 50, 3, {1, 1}},   // odd depth 153, 50 output channels
        {shape{1, 1, 28, 28}, 16, 3, {1, 1}},  // a U-Net's first conv: depth 9
        {shape{1, 9, 33, 35}, 3, 3, {2, 1}},   // stride 2
    };
    for (const layout& c : cases) {
        INFO("x " << c.x << ", k " << c.k << ", stride " << c.p.stride);
        const tensor<float> x = random_tensor<float>(c.x, 81);
        const tensor<float> w = random_tensor<float>(shape{c.cout, c.x[1], c.k, c.k}, 82, 0.3);
        const tensor<float> b = random_tensor<float>(shape{c.cout}, 83);
        const shape ys = conv2d_output_shape(x.dims(), w.dims(), c.p);
        tensor<float> y(ys), y32(ys);
        cpu_ops::conv2d_forward<float>(x, w, b, y, c.p, matmul_precision::bf16);
        cpu_ops::conv2d_forward<float>(x, w, b, y32, c.p);

        const std::int64_t cin = c.x[1], h = c.x[2], wd = c.x[3], k = c.k;
        double worst = 0, largest_difference = 0;
        for (std::int64_t n = 0; n < ys[0]; ++n)
            for (std::int64_t o = 0; o < ys[1]; ++o)
                for (std::int64_t i = 0; i < ys[2]; ++i)
                    for (std::int64_t j = 0; j < ys[3]; ++j) {
                        long double sum = b[o], magnitude = std::fabs(b[o]);
                        for (std::int64_t ch = 0; ch < cin; ++ch)
                            for (std::int64_t u = 0; u < k; ++u)
                                for (std::int64_t v = 0; v < k; ++v) {
                                    const std::int64_t r = i * c.p.stride - c.p.padding + u;
                                    const std::int64_t q = j * c.p.stride - c.p.padding + v;
                                    if (r < 0 || r >= h || q < 0 || q >= wd) continue;
                                    const long double term =
                                        static_cast<long double>(
                                            cpu_kernels::gemm::round_to_bf16(w[((o * cin + ch) * k + u) * k + v])) *
                                        cpu_kernels::gemm::round_to_bf16(x[((n * cin + ch) * h + r) * wd + q]);
                                    sum += term;
                                    magnitude += std::fabs(term);
                                }
                        const std::int64_t at = ((n * ys[1] + o) * ys[2] + i) * ys[3] + j;
                        worst = std::max(worst, static_cast<double>(std::fabs(y[at] - sum) / magnitude));
                        largest_difference =
                            std::max(largest_difference, static_cast<double>(std::fabs(y[at] - y32[at])));
                    }
        CHECK(worst < 2e-6);               // fp32 sums of exact products
        CHECK(largest_difference > 1e-3);  // and the operands were rounded (2^-9 relative each)
    }
}

// bf16 results are as deterministic as fp32 ones: the same at 1 and 2 threads, and an image's
// output the same alone as in a batch.
inline void check_bf16_conv_is_deterministic() {
    using cpu_ops = ops<cpu>;
    const tensor<float> x = random_tensor<float>(shape{3, 12, 20, 19}, 91);
    const tensor<float> w = random_tensor<float>(shape{8, 12, 3, 3}, 92, 0.1);
    const tensor<float> b = random_tensor<float>(shape{8}, 93);
    const conv2d_params p{1, 1};
    tensor<float> one(conv2d_output_shape(x.dims(), w.dims(), p)), two(one.dims());
    const int saved = max_threads();
    set_threads(1);
    cpu_ops::conv2d_forward<float>(x, w, b, one, p, matmul_precision::bf16);
    set_threads(2);
    cpu_ops::conv2d_forward<float>(x, w, b, two, p, matmul_precision::bf16);
    set_threads(saved);
    CHECK(std::memcmp(one.data(), two.data(), sizeof(float) * one.numel()) == 0);

    const std::int64_t per_image = x.numel() / 3, per_output = one.numel() / 3;
    tensor<float> x1(shape{1, 12, 20, 19}), y1(shape{1, 8, 20, 19});
    std::copy(x.data() + 2 * per_image, x.data() + 3 * per_image, x1.data());
    cpu_ops::conv2d_forward<float>(x1, w, b, y1, p, matmul_precision::bf16);
    CHECK(std::memcmp(y1.data(), one.data() + 2 * per_output, sizeof(float) * per_output) == 0);
}

}  // namespace ouro::testing
