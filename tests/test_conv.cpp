// 2-D convolution (backend/cpu/conv.hpp, nn/conv2d.hpp): forward and both gradients against PyTorch
// goldens and a direct-sum reference, backward against finite differences, thread-count and batch
// determinism, gradient accumulation, and the errors bad shapes raise.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/nn/conv2d.hpp"
#include "support/common.hpp"
#include "support/conv_bf16_checks.hpp"
#include "support/cpu_strict.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using namespace ouro::testing;
using cpu_ops = ops<cpu>;

namespace {

// y = conv2d(x, w) + b by the defining sum, in long double.
tensor<double> reference_conv(const tensor<double>& x, const tensor<double>& w, const tensor<double>& b,
                              conv2d_params p) {
    const shape ys = conv2d_output_shape(x.dims(), w.dims(), p);
    const std::int64_t cin = x.dim(1), h = x.dim(2), wd = x.dim(3), k = w.dim(2);
    tensor<double> y(ys);
    for (std::int64_t n = 0; n < ys[0]; ++n)
        for (std::int64_t o = 0; o < ys[1]; ++o)
            for (std::int64_t i = 0; i < ys[2]; ++i)
                for (std::int64_t j = 0; j < ys[3]; ++j) {
                    long double s = b[o];
                    for (std::int64_t c = 0; c < cin; ++c)
                        for (std::int64_t u = 0; u < k; ++u)
                            for (std::int64_t v = 0; v < k; ++v) {
                                const std::int64_t r = i * p.stride - p.padding + u, q = j * p.stride - p.padding + v;
                                if (r < 0 || r >= h || q < 0 || q >= wd) continue;
                                s += static_cast<long double>(w[((o * cin + c) * k + u) * k + v]) *
                                     x[((n * cin + c) * h + r) * wd + q];
                            }
                    y[((n * ys[1] + o) * ys[2] + i) * ys[3] + j] = static_cast<double>(s);
                }
    return y;
}

// The three results of one convolution: y, dx, and dw, db accumulated from zero.
template <class T>
struct conv_results {
    tensor<T> y, dx, dw, db;
};

template <class T>
conv_results<T> run_conv(const tensor<T>& x, const tensor<T>& w, const tensor<T>& b, const tensor<T>& dy,
                         conv2d_params p) {
    conv_results<T> r{tensor<T>(conv2d_output_shape(x.dims(), w.dims(), p)), tensor<T>(x.dims()), tensor<T>(w.dims()),
                      tensor<T>(b.dims())};
    cpu_ops::conv2d_forward<T>(x, w, b, r.y, p);
    cpu_ops::conv2d_backward_input<T>(dy, w, r.dx, p);
    cpu_ops::conv2d_backward_weight<T>(x, dy, r.dw, r.db, p);
    return r;
}

template <class T>
void check_against_golden(const std::string& dir, conv2d_params p, double rtol, double atol) {
    const tensor<T> x = cast<T>(load_golden(dir + "/x.npy"));
    const tensor<T> w = cast<T>(load_golden(dir + "/weight.npy"));
    const tensor<T> b = cast<T>(load_golden(dir + "/bias.npy"));
    const tensor<T> dy = cast<T>(load_golden(dir + "/dy.npy"));
    const conv_results<T> r = run_conv(x, w, b, dy, p);
    require_close(dir + " y", r.y, load_golden(dir + "/y.npy"), rtol, atol);
    require_close(dir + " dx", r.dx, load_golden(dir + "/dx.npy"), rtol, atol);
    require_close(dir + " dweight", r.dw, load_golden(dir + "/grad/weight.npy"), rtol, atol);
    require_close(dir + " dbias", r.db, load_golden(dir + "/grad/bias.npy"), rtol, atol);
}

// L = <r, conv2d(x, w) + b>; its gradient with respect to y is r.
void check_finite_differences(const shape& xs, std::int64_t cout, std::int64_t k, conv2d_params p) {
    tensor<double> x = random_tensor<double>(xs, 31);
    tensor<double> w = random_tensor<double>(shape{cout, xs[1], k, k}, 32, 0.3);
    tensor<double> b = random_tensor<double>(shape{cout}, 33);
    const shape ys = conv2d_output_shape(x.dims(), w.dims(), p);
    const tensor<double> r = random_tensor<double>(ys, 34);
    const conv_results<double> g = run_conv(x, w, b, r, p);
    auto loss = [&] {
        tensor<double> y(ys);
        cpu_ops::conv2d_forward<double>(x, w, b, y, p);
        return dot(y, r);
    };
    check_gradient("dx", x.view(), g.dx.view(), loss);
    check_gradient("dw", w.view(), g.dw.view(), loss);
    check_gradient("db", b.view(), g.db.view(), loss);
}

}  // namespace

TEST_CASE("conv2d forward and gradients match PyTorch in double", "[conv][golden]") {
    check_against_golden<double>("conv/k3_s1_p1", {1, 1}, 1e-10, 1e-12);
    check_against_golden<double>("conv/k3_s2_p1", {2, 1}, 1e-10, 1e-12);
    check_against_golden<double>("conv/k1", {1, 0}, 1e-10, 1e-12);
    check_against_golden<double>("conv/k1_s2", {2, 0}, 1e-10, 1e-12);
    check_against_golden<double>("conv/k5_p0", {1, 0}, 1e-10, 1e-12);
    check_against_golden<double>("conv/k3_s3_p2", {3, 2}, 1e-10, 1e-12);
}

TEST_CASE("conv2d in float matches the double golden to float precision", "[conv][golden]") {
    check_against_golden<float>("conv/k3_s1_p1", {1, 1}, 1e-5, 1e-5);
    check_against_golden<float>("conv/k3_s2_p1", {2, 1}, 1e-5, 1e-5);
    check_against_golden<float>("conv/k1", {1, 0}, 1e-5, 1e-5);
}

TEST_CASE("conv2d matches the defining sum across pixel and channel blocks", "[conv]") {
    // Sizes past conv_ops::column_block output pixels and conv_ops::channel_block input channels,
    // so several work items of each kind meet in one image; small images, so that forward blocks
    // span images; and output channel counts off the kernel's tile sizes (8 and 12 rows, 48 and 32
    // columns), so that edge tiles run.
    static_assert(cpu_kernels::conv_ops::column_block == 288 && cpu_kernels::conv_ops::channel_block == 8);
    struct layout {
        shape x;
        std::int64_t cout, k;
        conv2d_params p;
    };
    const layout cases[] = {
        {shape{2, 10, 19, 17}, 5, 3, {1, 1}},  // 323 pixels, channels 8 + 2
        {shape{2, 10, 17, 18}, 4, 1, {1, 0}},  // the pointwise path, 306 pixels
        {shape{5, 10, 7, 9}, 13, 3, {1, 1}},   // 63 pixels: blocks span images; 13 output channels
        {shape{3, 12, 6, 7}, 37, 1, {1, 0}},   // pointwise over images, 37 output channels
        {shape{3, 17, 5, 6}, 50, 3, {1, 1}},   // 50 output channels, 17 input channels
        {shape{45, 2, 7, 7}, 3, 3, {1, 1}},    // blocks that take only the first row of an image
        {shape{1, 9, 33, 35}, 3, 3, {2, 1}},   // stride 2: 17 x 18 = 306 pixels
        {shape{1, 3, 40, 13}, 2, 5, {1, 2}},   // 520 pixels, three blocks
        {shape{2, 3, 6, 2}, 2, 5, {1, 2}},     // taps wider than the image: whole rows of padding
    };
    for (const layout& c : cases) {
        INFO("x " << c.x << ", k " << c.k << ", stride " << c.p.stride << ", padding " << c.p.padding);
        const tensor<double> x = random_tensor<double>(c.x, 41);
        const tensor<double> w = random_tensor<double>(shape{c.cout, c.x[1], c.k, c.k}, 42);
        const tensor<double> b = random_tensor<double>(shape{c.cout}, 43);
        tensor<double> y(conv2d_output_shape(x.dims(), w.dims(), c.p));
        cpu_ops::conv2d_forward<double>(x, w, b, y, c.p);
        require_close("y", y, reference_conv(x, w, b, c.p), 1e-12, 1e-12);

        // The gradients are adjoints: <dy, conv(x)> = <dx, x> + <dw, w> + <db, b> for any dy.
        const tensor<double> dy = random_tensor<double>(y.dims(), 44);
        const conv_results<double> r = run_conv(x, w, b, dy, c.p);
        const double lhs = dot(dy, y);
        // conv is linear in x, and in (w, b): <dy, y> = <dx, x> + <db, b> = <dw, w> + <db, b>.
        CHECK(dot(r.dx, x) + dot(r.db, b) == Approx(lhs).epsilon(1e-12));
        CHECK(dot(r.dw, w) + dot(r.db, b) == Approx(lhs).epsilon(1e-12));

        // float takes other paths (dy transposed 16 x 16 in registers with AVX-512, vector sums of
        // the bias): the same gradients to float precision, edge tiles of channels and pixels included.
        const conv_results<float> f = run_conv(cast<float>(x), cast<float>(w), cast<float>(b), cast<float>(dy), c.p);
        require_close("float dw", f.dw, r.dw, 1e-4, 1e-4);
        require_close("float db", f.db, r.db, 1e-4, 1e-4);
        require_close("float dx", f.dx, r.dx, 1e-4, 1e-4);
    }
}

TEST_CASE("conv2d backward matches central differences", "[conv][gradcheck]") {
    SECTION("3x3, stride 1, padding 1, batch 1, 7x5") { check_finite_differences(shape{1, 3, 7, 5}, 4, 3, {1, 1}); }
    SECTION("3x3, stride 2, padding 1, batch 2, 5x6") { check_finite_differences(shape{2, 2, 5, 6}, 3, 3, {2, 1}); }
    SECTION("1x1, batch 2, 4x5") { check_finite_differences(shape{2, 3, 4, 5}, 5, 1, {1, 0}); }
    SECTION("5x5 unpadded on 7x6") { check_finite_differences(shape{2, 2, 7, 6}, 2, 5, {1, 0}); }
    SECTION("stride 3, padding 2, 10 input channels (two channel blocks)") {
        check_finite_differences(shape{1, 10, 8, 7}, 3, 3, {3, 2});
    }
    SECTION("kernel as large as the padded input, 1x1 output") {
        check_finite_differences(shape{2, 2, 3, 3}, 2, 5, {1, 1});
    }
}

TEST_CASE("conv2d is bitwise identical at 1 and 2 threads and for an image alone or in a batch", "[conv][threads]") {
    struct layout {
        std::int64_t cout, k;
        conv2d_params p;
    };
    const layout cases[] = {{8, 3, {1, 1}}, {8, 1, {1, 0}}, {6, 3, {2, 1}}};
    const tensor<float> x = random_tensor<float>(shape{3, 12, 20, 19}, 51);
    for (const layout& c : cases) {
        INFO("k " << c.k << ", stride " << c.p.stride);
        const tensor<float> w = random_tensor<float>(shape{c.cout, 12, c.k, c.k}, 52, 0.1);
        const tensor<float> b = random_tensor<float>(shape{c.cout}, 53);
        const tensor<float> dy = random_tensor<float>(conv2d_output_shape(x.dims(), w.dims(), c.p), 54);
        const auto [one, two] = testing::at_one_and_two_threads([&] { return run_conv(x, w, b, dy, c.p); });
        CHECK(bitwise_equal(one.y, two.y));
        CHECK(bitwise_equal(one.dx, two.dx));
        CHECK(bitwise_equal(one.dw, two.dw));
        CHECK(bitwise_equal(one.db, two.db));

        // The last image of the batch, alone.
        const std::int64_t per_image = x.numel() / 3, per_output = one.y.numel() / 3;
        tensor<float> x1(shape{1, 12, 20, 19});
        std::copy(x.data() + 2 * per_image, x.data() + 3 * per_image, x1.data());
        tensor<float> y1(shape{1, c.cout, one.y.dim(2), one.y.dim(3)});
        cpu_ops::conv2d_forward<float>(x1, w, b, y1, c.p);
        CHECK(std::memcmp(y1.data(), one.y.data() + 2 * per_output, sizeof(float) * per_output) == 0);
    }
}

TEST_CASE("conv2d_forward_silu_affine gives the bits of group_norm_silu_forward then conv2d_forward", "[conv][fused]") {
    struct layout {
        std::int64_t cin, cout, h, w, k, groups;
        conv2d_params p;
    };
    // Planes shorter than a vector's rows (7 x 7), rows across one (20 x 19), long rows (2 x 300),
    // an odd channel count (bf16 pairs the last with zero), 1x1, and a stride-2 conv (not
    // same-size: the activation goes through a temporary).
    const layout cases[] = {{8, 16, 7, 7, 3, 4, {1, 1}},  {12, 8, 20, 19, 3, 3, {1, 1}}, {6, 4, 2, 300, 3, 2, {1, 1}},
                            {9, 5, 14, 14, 3, 3, {1, 1}}, {8, 6, 10, 11, 1, 2, {1, 0}},  {8, 6, 12, 12, 3, 4, {2, 1}}};
    for (const matmul_precision precision : {matmul_precision::fp32, matmul_precision::bf16}) {
        for (const layout& c : cases) {
            INFO("Cin " << c.cin << ", " << c.h << "x" << c.w << ", k " << c.k << ", stride " << c.p.stride
                        << (precision == matmul_precision::bf16 ? ", bf16" : ", fp32"));
            const tensor<float> x = random_tensor<float>(shape{3, c.cin, c.h, c.w}, 61);
            const tensor<float> gamma = random_tensor<float>(shape{c.cin}, 62);
            const tensor<float> beta = random_tensor<float>(shape{c.cin}, 63);
            const tensor<float> w = random_tensor<float>(shape{c.cout, c.cin, c.k, c.k}, 64, 0.1);
            const tensor<float> b = random_tensor<float>(shape{c.cout}, 65);
            const shape ys = conv2d_output_shape(x.dims(), w.dims(), c.p);

            tensor<float> activated(x.dims()), unfused(ys), fused(ys), coefficients(shape{3, c.cin, 2});
            cpu_ops::group_norm_silu_forward<float>(x, gamma, beta, activated, c.groups);
            cpu_ops::conv2d_forward<float>(activated, w, b, unfused, c.p, precision);
            cpu_ops::group_norm_silu_coefficients<float>(x, gamma, beta, coefficients, c.groups);
            cpu_ops::conv2d_forward_silu_affine<float>(x, coefficients, w, b, fused, c.p, precision);
            CHECK(bitwise_equal(fused, unfused));

            // With the additions a res block makes: + e[n, o] after its first conv, + the skip after
            // its second, as add_per_channel and elementwise_add would after the conv.
            const tensor<float> e = random_tensor<float>(shape{3, c.cout}, 66);
            const tensor<float> skip = random_tensor<float>(ys, 67);
            tensor<float> with_e(ys), with_both(ys), fused_e(ys), fused_skip(ys), fused_both(ys), with_skip(ys);
            cpu_ops::add_per_channel<float>(unfused, e, with_e);
            cpu_ops::elementwise_add<float>(unfused, skip, with_skip);
            cpu_ops::elementwise_add<float>(with_e, skip, with_both);
            cpu_ops::conv2d_forward_silu_affine<float>(x, coefficients, w, b, fused_e, c.p, precision, e);
            cpu_ops::conv2d_forward_silu_affine<float>(x, coefficients, w, b, fused_skip, c.p, precision, {}, skip);
            cpu_ops::conv2d_forward_silu_affine<float>(x, coefficients, w, b, fused_both, c.p, precision, e, skip);
            CHECK(bitwise_equal(fused_e, with_e));
            CHECK(bitwise_equal(fused_skip, with_skip));
            CHECK(bitwise_equal(fused_both, with_both));
            // Not vacuous: the activation changes the result.
            tensor<float> plain(ys);
            cpu_ops::conv2d_forward<float>(x, w, b, plain, c.p, precision);
            CHECK_FALSE(bitwise_equal(plain, unfused));
        }
    }
    {  // in double (the golden tests' type), same-size and with both additions
        const tensor<double> x = random_tensor<double>(shape{2, 6, 9, 9}, 71);
        const tensor<double> gamma = random_tensor<double>(shape{6}, 72), beta = random_tensor<double>(shape{6}, 73);
        const tensor<double> w = random_tensor<double>(shape{4, 6, 3, 3}, 74, 0.1);
        const tensor<double> b = random_tensor<double>(shape{4}, 75), e = random_tensor<double>(shape{2, 4}, 76);
        const tensor<double> skip = random_tensor<double>(shape{2, 4, 9, 9}, 77);
        tensor<double> activated(x.dims()), conv(skip.dims()), with_e(skip.dims()), unfused(skip.dims()),
            fused(skip.dims()), coefficients(shape{2, 6, 2});
        cpu_ops::group_norm_silu_forward<double>(x, gamma, beta, activated, 3);
        cpu_ops::conv2d_forward<double>(activated, w, b, conv, {1, 1});
        cpu_ops::add_per_channel<double>(conv, e, with_e);
        cpu_ops::elementwise_add<double>(with_e, skip, unfused);
        cpu_ops::group_norm_silu_coefficients<double>(x, gamma, beta, coefficients, 3);
        cpu_ops::conv2d_forward_silu_affine<double>(x, coefficients, w, b, fused, {1, 1}, matmul_precision::fp32, e,
                                                    skip);
        CHECK(bitwise_equal(fused, unfused));
    }
    const tensor<float> x = random_tensor<float>(shape{2, 4, 5, 5}, 66);
    const tensor<float> w = random_tensor<float>(shape{3, 4, 3, 3}, 67);
    tensor<float> y(shape{2, 3, 5, 5}), wrong(shape{2, 3, 2});
    CHECK_THROWS_WITH(cpu_ops::conv2d_forward_silu_affine<float>(x, wrong, w, {}, y, {1, 1}),
                      Catch::Contains("coefficients (B, Cin, 2)") && Catch::Contains("(2, 4, 2)"));
    const tensor<float> coefficients = random_tensor<float>(shape{2, 4, 2}, 68);
    CHECK_THROWS_WITH(
        cpu_ops::conv2d_forward_silu_affine<float>(x, coefficients, w, {}, y, {1, 1}, matmul_precision::fp32, wrong),
        Catch::Contains("channel_add (B, Cout)") && Catch::Contains("(2, 3, 2)"));
    CHECK_THROWS_WITH(cpu_ops::conv2d_forward_silu_affine<float>(x, coefficients, w, {}, y, {1, 1},
                                                                 matmul_precision::fp32, {}, wrong),
                      Catch::Contains("residual (B, Cout, Ho, Wo)"));
}

TEST_CASE("conv2d_forward_upsampled gives the bits of upsample_nearest2x_forward then conv2d_forward",
          "[conv][fused]") {
    struct layout {
        std::int64_t cin, cout, h, w, k;
        conv2d_params p;
    };
    // 7 x 7 to 14 x 14 (the U-Nets' first upsampling), a wide row, an odd channel count (bf16 pairs
    // the last with zero), 1x1, and stride 2 (not same-size: the temporary).
    const layout cases[] = {{6, 8, 7, 7, 3, {1, 1}},
                            {4, 5, 3, 10, 3, {1, 1}},
                            {5, 4, 4, 4, 3, {1, 1}},
                            {4, 6, 5, 6, 1, {1, 0}},
                            {4, 3, 6, 6, 3, {2, 1}}};
    for (const matmul_precision precision : {matmul_precision::fp32, matmul_precision::bf16}) {
        for (const layout& c : cases) {
            INFO("Cin " << c.cin << ", " << c.h << "x" << c.w << " upsampled, k " << c.k << ", stride " << c.p.stride
                        << (precision == matmul_precision::bf16 ? ", bf16" : ", fp32"));
            const tensor<float> x = random_tensor<float>(shape{3, c.cin, c.h, c.w}, 81);
            const tensor<float> w = random_tensor<float>(shape{c.cout, c.cin, c.k, c.k}, 82, 0.1);
            const tensor<float> b = random_tensor<float>(shape{c.cout}, 83);
            tensor<float> up(shape{3, c.cin, 2 * c.h, 2 * c.w});
            cpu_ops::upsample_nearest2x_forward<float>(x, up);
            const shape ys = conv2d_output_shape(up.dims(), w.dims(), c.p);
            tensor<float> unfused(ys), fused(ys);
            cpu_ops::conv2d_forward<float>(up, w, b, unfused, c.p, precision);
            cpu_ops::conv2d_forward_upsampled<float>(x, w, b, fused, c.p, precision);
            CHECK(bitwise_equal(fused, unfused));
        }
    }
    const tensor<float> x = random_tensor<float>(shape{2, 4, 5, 5}, 84);
    const tensor<float> w = random_tensor<float>(shape{3, 4, 3, 3}, 85);
    tensor<float> y(shape{2, 3, 5, 5});  // the output of the conv without upsampling
    CHECK_THROWS_WITH(cpu_ops::conv2d_forward_upsampled<float>(x, w, {}, y, {1, 1}),
                      Catch::Contains("(2, 3, 10, 10)") && Catch::Contains("(2, 3, 5, 5)"));
}

TEST_CASE("bfloat16 rounding is to nearest, ties to even, and keeps NaN and infinity", "[conv][bf16]") {
    using cpu_kernels::gemm::to_bf16;
    CHECK(to_bf16(1.0f) == 0x3f80);
    CHECK(to_bf16(-2.0f) == 0xc000);
    CHECK(to_bf16(1.0f + 0x1p-8f) == 0x3f80);             // a tie: down to the even 0x3f80
    CHECK(to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);         // a tie: up to the even 0x3f82
    CHECK(to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);  // above the tie: up
    CHECK(to_bf16(0x1.fffffep127f) == 0x7f80);            // FLT_MAX rounds to infinity
    CHECK(to_bf16(-INFINITY) == 0xff80);
    CHECK(std::isnan(cpu_kernels::gemm::from_bf16(to_bf16(NAN))));
    CHECK(cpu_kernels::gemm::bf16_pair(1.0f, -2.0f) == 0xc0003f80u);  // the even depth in the low half
}

TEST_CASE("conv2d with bf16 products is the fp32 sum of the rounded operands", "[conv][bf16]") {
    INFO("AVX512-BF16 in this build: " << cpu_kernels::gemm::has_bf16_products);
    check_bf16_conv_is_the_sum_of_rounded_operands();
}

TEST_CASE("conv2d with bf16 products is bitwise identical at 1 and 2 threads and alone or in a batch",
          "[conv][bf16][threads]") {
    check_bf16_conv_is_deterministic();
}

TEST_CASE("nn::conv2d takes bf16 products only for inference, and only in float", "[conv][bf16][errors]") {
    parameter_store<float> store;
    nn::conv2d<cpu> conv(store, "c", 2, 3, 3, {1, 1});
    conv.reset_parameters(1);
    const tensor<float> x = random_tensor<float>(shape{1, 2, 5, 5}, 3);
    CHECK_THROWS_WITH(conv.forward(x, {.training = true, .matmul = matmul_precision::bf16}),
                      Catch::Contains("'c'") && Catch::Contains("bf16 products are for inference"));
    const tensor_view<const float> y = conv.forward(x, {.inference = true, .matmul = matmul_precision::bf16});
    CHECK(y.dims() == shape{1, 3, 5, 5});

    const tensor<double> xd = random_tensor<double>(shape{1, 2, 5, 5}, 3),
                         wd = random_tensor<double>(shape{3, 2, 3, 3}, 4);
    tensor<double> yd(shape{1, 3, 5, 5});
    CHECK_THROWS_WITH(
        cpu_ops::conv2d_forward<double>(xd, wd, tensor_view<const double>{}, yd, {1, 1}, matmul_precision::bf16),
        Catch::Contains("bf16 products are for float tensors"));
}

TEST_CASE("conv2d parameter gradients accumulate and bias is optional", "[conv]") {
    const conv2d_params p{1, 1};
    const tensor<double> x = random_tensor<double>(shape{2, 3, 6, 5}, 61);
    const tensor<double> w = random_tensor<double>(shape{4, 3, 3, 3}, 62);
    const tensor<double> b = random_tensor<double>(shape{4}, 63);
    const tensor<double> dy = random_tensor<double>(shape{2, 4, 6, 5}, 64);
    const conv_results<double> once = run_conv(x, w, b, dy, p);

    tensor<double> dw(w.dims(), 0.5), db(b.dims(), -1.0);
    cpu_ops::conv2d_backward_weight<double>(x, dy, dw, db, p);
    cpu_ops::conv2d_backward_weight<double>(x, dy, dw, db, p);
    for (std::int64_t i = 0; i < dw.numel(); ++i) REQUIRE(dw[i] == Approx(0.5 + 2 * once.dw[i]).epsilon(1e-13));
    for (std::int64_t i = 0; i < db.numel(); ++i) REQUIRE(db[i] == Approx(-1.0 + 2 * once.db[i]).epsilon(1e-13));

    // Without bias: y is the biased output less the bias, and only dw is touched.
    tensor<double> y(once.y.dims()), dw_only(w.dims());
    cpu_ops::conv2d_forward<double>(x, w, tensor_view<const double>{}, y, p);
    for (std::int64_t i = 0; i < y.numel(); ++i) REQUIRE(y[i] == Approx(once.y[i] - b[(i / 30) % 4]).margin(1e-13));
    cpu_ops::conv2d_backward_weight<double>(x, dy, dw_only, tensor_view<double>{}, p);
    CHECK(bitwise_equal(dw_only, once.dw));
}

TEST_CASE("conv2d rejects bad shapes and settings with both shapes named", "[conv][errors]") {
    const tensor<float> x(shape{2, 4, 8, 8}), w(shape{8, 3, 3, 3}), b(shape{8});
    tensor<float> y(shape{2, 8, 8, 8}), dx(x.dims()), dw(w.dims()), db(b.dims());

    SECTION("input channels that the weight does not expect") {
        const std::string message = "input (2, 4, 8, 8) has 4 channels but weight (8, 3, 3, 3) expects 3";
        CHECK_THROWS_WITH(cpu_ops::conv2d_forward<float>(x, w, b, y, {1, 1}), Catch::Contains(message));
        CHECK_THROWS_WITH(cpu_ops::conv2d_backward_input<float>(y, w, dx, {1, 1}), Catch::Contains(message));
        CHECK_THROWS_WITH(cpu_ops::conv2d_backward_weight<float>(x, y, dw, db, {1, 1}), Catch::Contains(message));
    }
    const tensor<float> x3(shape{2, 3, 8, 8});
    tensor<float> dx3(x3.dims());
    SECTION("wrong output, gradient and bias shapes") {
        tensor<float> bad_y(shape{2, 8, 7, 8});
        CHECK_THROWS_WITH(cpu_ops::conv2d_forward<float>(x3, w, b, bad_y, {1, 1}),
                          Catch::Contains("expected shape (2, 8, 8, 8), found (2, 8, 7, 8)"));
        // Stride 2 halves the output: (8 + 2 - 3) / 2 + 1 = 4.
        CHECK_THROWS_WITH(cpu_ops::conv2d_forward<float>(x3, w, b, y, {2, 1}),
                          Catch::Contains("expected shape (2, 8, 4, 4), found (2, 8, 8, 8)"));
        const tensor<float> bad_b(shape{7});
        CHECK_THROWS_WITH(cpu_ops::conv2d_forward<float>(x3, w, bad_b, y, {1, 1}),
                          Catch::Contains("expected shape (8), found (7)"));
        const tensor<float> bad_dy(shape{2, 8, 8, 7});
        CHECK_THROWS_WITH(cpu_ops::conv2d_backward_input<float>(bad_dy, w, dx3, {1, 1}),
                          Catch::Contains("expected shape (2, 8, 8, 8), found (2, 8, 8, 7)"));
        CHECK_THROWS_WITH(cpu_ops::conv2d_backward_weight<float>(x3, bad_dy, dw, db, {1, 1}),
                          Catch::Contains("expected shape (2, 8, 8, 8), found (2, 8, 8, 7)"));
        tensor<float> bad_db(shape{3});
        CHECK_THROWS_WITH(cpu_ops::conv2d_backward_weight<float>(x3, y, dw, bad_db, {1, 1}),
                          Catch::Contains("expected shape (8), found (3)"));
    }
    SECTION("a kernel larger than the padded input") {
        const tensor<float> small(shape{1, 3, 2, 6});
        tensor<float> out(shape{1, 8, 2, 6});
        CHECK_THROWS_WITH(cpu_ops::conv2d_forward<float>(small, w, b, out, {1, 0}),
                          Catch::Contains("kernel 3x3 is larger than the padded input 2x6") &&
                              Catch::Contains("(1, 3, 2, 6)") && Catch::Contains("(8, 3, 3, 3)"));
        CHECK_THROWS_WITH(conv2d_output_shape(shape{1, 3, 4, 4}, shape{2, 3, 7, 7}, {1, 1}),
                          Catch::Contains("kernel 7x7 is larger than the padded input 6x6"));
        CHECK(conv2d_output_shape(shape{1, 3, 4, 4}, shape{2, 3, 6, 6}, {1, 1}) == shape{1, 2, 1, 1});
    }
    SECTION("empty batch, wrong rank, non-square kernel, bad stride or padding") {
        const tensor<float> empty(shape{0, 3, 8, 8});
        tensor<float> empty_y(shape{0, 8, 8, 8});
        CHECK_THROWS_WITH(
            cpu_ops::conv2d_forward<float>(empty, w, b, empty_y, {1, 1}),
            Catch::Contains("non-empty") && Catch::Contains("(0, 3, 8, 8)") && Catch::Contains("(8, 3, 3, 3)"));
        const tensor<float> rank3(shape{3, 8, 8});
        CHECK_THROWS_WITH(cpu_ops::conv2d_forward<float>(rank3, w, b, y, {1, 1}),
                          Catch::Contains("rank-4") && Catch::Contains("(3, 8, 8)"));
        const tensor<float> oblong(shape{8, 3, 3, 1});
        CHECK_THROWS_WITH(cpu_ops::conv2d_forward<float>(x3, oblong, b, y, {1, 1}),
                          Catch::Contains("square kernel") && Catch::Contains("(8, 3, 3, 1)"));
        CHECK_THROWS_WITH(cpu_ops::conv2d_forward<float>(x3, w, b, y, {0, 1}), Catch::Contains("stride 0"));
        CHECK_THROWS_WITH(cpu_ops::conv2d_forward<float>(x3, w, b, y, {1, -1}), Catch::Contains("padding -1"));
    }
}

TEST_CASE("nn::conv2d registers its parameters and initialises them as PyTorch", "[conv][module]") {
    parameter_store<float> store;
    nn::conv2d<cpu> conv(store, "down.0", 3, 5, 3, {2, 1});
    nn::conv2d<cpu> plain(store, "head", 5, 2, 1, {}, /*bias=*/false);
    REQUIRE(store.entries().size() == 3);
    CHECK(store.entries()[0].name == "down.0.weight");
    CHECK(store.entries()[0].dims == shape{5, 3, 3, 3});
    CHECK(store.entries()[1].name == "down.0.bias");
    CHECK(store.entries()[1].dims == shape{5});
    CHECK(store.entries()[2].name == "head.weight");
    CHECK_FALSE(plain.bias().valid());

    conv.reset_parameters(7);
    plain.reset_parameters(7);
    // kaiming_uniform(a = sqrt(5)): bound 1 / sqrt(fan_in), fan_in = Cin k k.
    const auto largest = [](tensor_view<const float> v) {
        double m = 0;
        for (float e : v) m = std::max(m, std::abs(static_cast<double>(e)));
        return m;
    };
    // 135 and 10 uniform draws reach well past half the bound; 5 bias draws need only stay inside.
    CHECK(largest(store.value(conv.weight())) <= 1 / std::sqrt(27.0));
    CHECK(largest(store.value(conv.weight())) > 0.5 / std::sqrt(27.0));
    CHECK(largest(store.value(conv.bias())) <= 1 / std::sqrt(27.0));
    CHECK(largest(store.value(conv.bias())) > 0);
    CHECK(largest(store.value(plain.weight())) <= 1 / std::sqrt(5.0));
    CHECK(largest(store.value(plain.weight())) > 0.5 / std::sqrt(5.0));
    const float first = store.value(conv.weight())[0];
    conv.reset_parameters(8);
    CHECK(store.value(conv.weight())[0] != first);
    conv.reset_parameters(7);
    CHECK(store.value(conv.weight())[0] == first);
}

// On cpu and on cpu_strict (a backend whose memory the host may not read: issue #14's seam).
TEMPLATE_TEST_CASE("nn::conv2d matches PyTorch's Conv2d and accumulates its gradients", "[conv][module][golden]", cpu,
                   cpu_strict) {
    using B = TestType;
    using ouro::testing::on_backend;
    const std::string dir = "conv/k3_s2_p1";
    parameter_store<double, B> store;
    nn::conv2d<B, double> conv(store, "conv", 3, 4, 3, {2, 1});
    copy_from_host(load_golden(dir + "/weight.npy").view(), store.value(conv.weight()));
    copy_from_host(load_golden(dir + "/bias.npy").view(), store.value(conv.bias()));
    const auto x = on_backend<B>(load_golden(dir + "/x.npy")), dy = on_backend<B>(load_golden(dir + "/dy.npy"));

    for (int step = 1; step <= 2; ++step) {
        INFO("step " << step);
        const tensor<double> y = to_host(conv.forward(x.view()));
        require_close("y", y, load_golden(dir + "/y.npy"), 1e-10, 1e-12);
        const tensor<double> dx = to_host(conv.backward(dy.view()));
        require_close("dx", dx, load_golden(dir + "/dx.npy"), 1e-10, 1e-12);
        tensor<double> dw = load_golden(dir + "/grad/weight.npy"), db = load_golden(dir + "/grad/bias.npy");
        for (auto& e : dw) e *= step;
        for (auto& e : db) e *= step;
        require_close("dw, accumulated", to_host(store.grad(conv.weight())), dw, 1e-10, 1e-12);
        require_close("db, accumulated", to_host(store.grad(conv.bias())), db, 1e-10, 1e-12);
    }
}

TEST_CASE("nn::conv2d backward matches central differences through the parameter store", "[conv][module][gradcheck]") {
    parameter_store<double> store;
    nn::conv2d<cpu, double> conv(store, "c", 3, 2, 3, {2, 1});
    conv.reset_parameters(3);
    tensor<double> x = random_tensor<double>(shape{1, 3, 5, 7}, 71);
    const tensor<double> r = random_tensor<double>(shape{1, 2, 3, 4}, 72);
    conv.forward(x);
    const tensor<double> dx = to_tensor(conv.backward(r));
    auto loss = [&] { return dot(conv.forward(x), r); };
    check_gradient("dx", x.view(), dx.view(), loss);
    check_gradient("dw", store.value(conv.weight()), store.grad(conv.weight()), loss);
    check_gradient("db", store.value(conv.bias()), store.grad(conv.bias()), loss);
}

TEST_CASE("nn::conv2d names itself in errors", "[conv][module][errors]") {
    parameter_store<float> store;
    nn::conv2d<cpu> conv(store, "down.1.conv", 3, 4, 3, {1, 1});
    CHECK_THROWS_WITH(conv.backward(tensor<float>(shape{1, 4, 5, 5})),
                      Catch::Contains("down.1.conv") && Catch::Contains("forward has not run"));
    CHECK_THROWS_WITH(conv.forward(tensor<float>(shape{1, 4, 5, 5})), Catch::Contains("down.1.conv") &&
                                                                          Catch::Contains("(1, 4, 5, 5)") &&
                                                                          Catch::Contains("(4, 3, 3, 3)"));
    const tensor<float> x(shape{1, 3, 5, 5});
    conv.forward(x);
    CHECK_THROWS_WITH(conv.backward(tensor<float>(shape{1, 4, 5, 4})),
                      Catch::Contains("expected shape (1, 4, 5, 5), found (1, 4, 5, 4)"));
    CHECK_THROWS_WITH(nn::conv2d<cpu>(store, "bad", 3, 0, 3), Catch::Contains("bad") && Catch::Contains("0"));
    CHECK_THROWS_WITH(nn::conv2d<cpu>(store, "bad", 3, 4, 3, {0, 1}), Catch::Contains("stride 0"));
}
