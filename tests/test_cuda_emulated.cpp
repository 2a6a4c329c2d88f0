// The CUDA backend's kernel bodies, run on the CPU through an emulated launch over the grid a real
// launch would use, against the CPU backend: the default suite checks them on machines without a
// GPU. tests/cuda/ouro_cuda_tests.cu runs the same bodies in real launches where a GPU is present.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/backend/cuda/emulation.hpp"
#include "ouro/backend/cuda/kernels/attention.hpp"
#include "ouro/backend/cuda/kernels/conv.hpp"
#include "ouro/backend/cuda/kernels/diffusion.hpp"
#include "ouro/backend/cuda/kernels/embedding.hpp"
#include "ouro/backend/cuda/kernels/linear.hpp"
#include "ouro/backend/cuda/kernels/norm.hpp"
#include "ouro/backend/cuda/kernels/pointwise.hpp"
#include "ouro/backend/cuda/kernels/pool.hpp"
#include "ouro/backend/cuda/kernels/reductions.hpp"
#include "ouro/backend/cuda/kernels/resample.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/diffusion/forward_process.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/ema.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using cuda_kernels::emulate_launch;
using cuda_kernels::launch_shape_for;

namespace {

// The largest |a_i − b_i| / max(1, |b_i|) over n elements.
double worst_relative_gap(const float* a, const float* b, std::int64_t n) {
    double worst = 0;
    for (std::int64_t i = 0; i < n; ++i)
        worst = std::max(worst, std::abs(double(a[i]) - double(b[i])) / std::max(1.0, std::abs(double(b[i]))));
    return worst;
}

// Sizes below, at and above a block, a warp's tail, and more than max_blocks·block (grid-stride).
constexpr std::int64_t odd_sizes[] = {1, 31, 256, 257, 4099, 70001};

}  // namespace

TEST_CASE("launch_shape_for covers n with whole blocks, capped, and refuses bad blocks") {
    CHECK(launch_shape_for(0).grid == 1);
    CHECK(launch_shape_for(1).grid == 1);
    CHECK(launch_shape_for(256).grid == 1);
    CHECK(launch_shape_for(257).grid == 2);
    CHECK(launch_shape_for(1'000'000'000).grid == 4096);
    CHECK(launch_shape_for(1000, 128, 3).grid == 3);
    CHECK_THROWS_WITH(launch_shape_for(10, 100), Catch::Contains("multiple of 32") && Catch::Contains("100"));
    CHECK_THROWS_WITH(launch_shape_for(-1), Catch::Contains("n >= 0"));
}

TEST_CASE("an emulated grid-stride launch visits every element exactly once") {
    for (const std::int64_t n : odd_sizes)
        for (const std::int64_t max_blocks : {std::int64_t{1}, std::int64_t{3}, std::int64_t{4096}}) {
            std::vector<int> visits(static_cast<std::size_t>(n), 0);
            int* v = visits.data();
            emulate_launch(launch_shape_for(n, 64, max_blocks), [&](cuda_kernels::launch_index at) {
                for (std::int64_t i = at.first(); i < n; i += at.stride()) ++v[i];
            });
            INFO("n = " << n << ", max_blocks = " << max_blocks);
            CHECK(std::count(visits.begin(), visits.end(), 1) == n);
        }
}

TEST_CASE("the CUDA SiLU bodies agree with ops<cpu> within 1e-6 relative") {
    for (const std::int64_t n : odd_sizes) {
        const tensor<float> x = testing::random_tensor<float>(shape{n}, 11, 4.0);
        const tensor<float> dy = testing::random_tensor<float>(shape{n}, 12);
        tensor<float> y_cpu(shape{n}), dx_cpu(shape{n}), y(shape{n}), dx(shape{n});
        ops<cpu>::silu_forward<float>(x.view(), y_cpu.view());
        ops<cpu>::silu_backward<float>(x.view(), dy.view(), dx_cpu.view());
        emulate_launch(launch_shape_for(n), cuda_kernels::silu_forward_body<float>{x.data(), y.data(), n});
        emulate_launch(launch_shape_for(n), cuda_kernels::silu_backward_body<float>{x.data(), dy.data(), dx.data(), n});
        INFO("n = " << n);
        // A few float ulps (seen: 2.0e-7 and 6.0e-7 at n = 70,001): xsimd's exp and <cmath>'s differ
        // in the last bits, and the CPU's gradient rounds 1 + x·(1 − σ) once (an FMA), this body twice.
        CHECK(worst_relative_gap(y.data(), y_cpu.data(), n) < 1e-6);
        CHECK(worst_relative_gap(dx.data(), dx_cpu.data(), n) < 1e-6);
    }
}

TEST_CASE("the CUDA ReLU, add and per-channel bodies equal ops<cpu> bit for bit") {
    for (const std::int64_t n : odd_sizes) {
        tensor<float> x = testing::random_tensor<float>(shape{n}, 41);
        x[0] = std::numeric_limits<float>::quiet_NaN();  // kept by both
        const tensor<float> b = testing::random_tensor<float>(shape{n}, 42);
        tensor<float> y_cpu(shape{n}), dx_cpu(shape{n}), sum_cpu(shape{n}), y(shape{n}), dx(shape{n}), sum(shape{n});
        ops<cpu>::relu_forward<float>(x.view(), y_cpu.view());
        ops<cpu>::relu_backward<float>(y_cpu.view(), b.view(), dx_cpu.view());
        ops<cpu>::elementwise_add<float>(x.view(), b.view(), sum_cpu.view());
        const auto grid = launch_shape_for(n, 64, 7);
        emulate_launch(grid, cuda_kernels::relu_forward_body<float>{x.data(), y.data(), n});
        emulate_launch(grid, cuda_kernels::relu_backward_body<float>{y.data(), b.data(), dx.data(), n});
        emulate_launch(grid, cuda_kernels::add_body<float>{x.data(), b.data(), sum.data(), n});
        INFO("n = " << n);
        const auto same_bits = [](const tensor<float>& u, const tensor<float>& v) {
            return std::memcmp(u.data(), v.data(), static_cast<std::size_t>(u.numel()) * sizeof(float)) == 0;
        };
        CHECK(same_bits(y, y_cpu));
        CHECK(same_bits(dx, dx_cpu));
        CHECK(same_bits(sum, sum_cpu));
    }
    // (B, C, H, W) = (3, 5, 7, 9): a shift per plane and the sum per plane, its gradient.
    const shape dims{3, 5, 7, 9};
    const tensor<float> x = testing::random_tensor<float>(dims, 43), v = testing::random_tensor<float>(shape{3, 5}, 44);
    tensor<float> y_cpu(dims), y(dims), s_cpu(shape{3, 5}), s(shape{3, 5});
    ops<cpu>::add_per_channel<float>(x.view(), v.view(), y_cpu.view());
    ops<cpu>::sum_per_channel<float>(x.view(), s_cpu.view());
    emulate_launch(launch_shape_for(dims.numel(), 64, 3),
                   cuda_kernels::add_per_channel_body<float>{x.data(), v.data(), y.data(), 15, 63});
    emulate_launch(launch_shape_for(15, 32, 1), cuda_kernels::sum_per_channel_body<float>{x.data(), s.data(), 15, 63});
    CHECK(std::equal(y.begin(), y.end(), y_cpu.begin()));
    CHECK(std::equal(s.begin(), s.end(), s_cpu.begin()));
}

TEST_CASE("the CUDA mean squared error: its gradient bit for bit, its value within 1e-6 relative") {
    for (const std::int64_t n : odd_sizes) {
        const tensor<float> pred = testing::random_tensor<float>(shape{n}, 51),
                            target = testing::random_tensor<float>(shape{n}, 52);
        tensor<float> d_cpu(shape{n}), d(shape{n});
        const double loss_cpu = ops<cpu>::mse_loss<float>(pred.view(), target.view(), d_cpu.view());
        const auto grid = launch_shape_for(n, 64, 4);
        const std::int64_t slices = grid.grid * grid.block;
        std::vector<double> partial(static_cast<std::size_t>(slices));
        double loss = 0;
        emulate_launch(
            grid, cuda_kernels::mse_partial_body<float>{pred.data(), target.data(), d.data(), partial.data(), n, slices,
                                                        static_cast<float>(2.0 / static_cast<double>(n))});
        emulate_launch(launch_shape_for(1, 32), cuda_kernels::mse_total_body{partial.data(), &loss, slices, n});
        INFO("n = " << n);
        CHECK(std::equal(d.begin(), d.end(), d_cpu.begin()));
        // The CPU sums each chunk in float SIMD lanes (with FMAs), this body in double: seen 3e-8 apart.
        CHECK(loss == Approx(loss_cpu).epsilon(1e-6));
        if (n >= 256) CHECK(loss > 1.5);  // the mean of (a − b)² for independent unit normals: about 2
    }
}

TEST_CASE("the CUDA noise body draws the CPU's Philox normals, and q_sample mixes them as the CPU does") {
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    // Items of odd and even length (a dropped second of the last pair), one and several blocks.
    for (const std::int64_t per_item :
         {std::int64_t{1}, std::int64_t{7}, std::int64_t{784}, std::int64_t{3 * 32 * 32}}) {
        const std::int64_t items = 5;
        const shape dims{items, per_item};
        tensor<float> eps_cpu(dims), eps(dims);
        const std::uint64_t seed = 0xfeed'beef'1234ULL, first_index = 77;
        diffusion::draw_noise<float>(eps_cpu.view(), seed, first_index);
        emulate_launch(launch_shape_for(items * ((per_item + 1) / 2), 64, 3),
                       cuda_kernels::normal_noise_body<float>{eps.data(), items, per_item, seed, first_index});
        INFO("per_item = " << per_item);
        // The host compiler gives the body the CPU's own std::log, sin and cos: the same bits.
        CHECK(std::equal(eps.begin(), eps.end(), eps_cpu.begin()));

        const tensor<float> x0 = testing::random_tensor<float>(dims, 61);
        tensor<std::int64_t> t(shape{items});
        for (std::int64_t b = 0; b < items; ++b) t[b] = 1 + 211 * b;  // 1 … 845
        tensor<float> x_t_cpu(dims), x_t(dims);
        diffusion::q_sample<float>(table, x0.view(), t.view(), eps_cpu.view(), x_t_cpu.view());
        std::vector<double> a, s;
        for (std::int64_t b = 0; b < items; ++b) {
            a.push_back(table.sqrt_alphas_cumprod()[static_cast<std::size_t>(t[b])]);
            s.push_back(table.sqrt_one_minus_alphas_cumprod()[static_cast<std::size_t>(t[b])]);
        }
        emulate_launch(
            launch_shape_for(dims.numel()),
            cuda_kernels::q_sample_body<float>{x0.data(), eps.data(), a.data(), s.data(), x_t.data(), items, per_item});
        // In double and rounded once on both sides; only a contracted multiply-add could differ (1 ulp).
        CHECK(worst_relative_gap(x_t.data(), x_t_cpu.data(), dims.numel()) < 2e-7);
    }
}

TEST_CASE("the CUDA group norm bodies agree with ops<cpu>, plain and fused with SiLU") {
    // (B, C, H, W, groups): groups of one channel, of several, a 1×1 map, an odd map.
    const std::int64_t cases[][5] = {{2, 8, 7, 7, 8}, {3, 32, 14, 14, 8}, {1, 6, 1, 1, 3}, {2, 16, 5, 3, 4}};
    for (const auto& c : cases) {
        const std::int64_t b = c[0], ch = c[1], hw = c[2] * c[3], groups = c[4];
        const shape dims{b, ch, c[2], c[3]};
        tensor<float> x = testing::random_tensor<float>(dims, 71, 3.0);
        for (auto& v : x) v += 1.5f;  // a mean away from 0
        const tensor<float> gamma = testing::random_tensor<float>(shape{ch}, 72),
                            beta = testing::random_tensor<float>(shape{ch}, 73);
        tensor<float> y_cpu(dims), mean_cpu(shape{b, groups}), rstd_cpu(shape{b, groups}), ys_cpu(dims),
            coef_cpu(shape{b, ch, 2});
        tensor<float> m2(shape{b, groups}), r2(shape{b, groups});
        ops<cpu>::group_norm_forward<float>(x.view(), gamma.view(), beta.view(), y_cpu.view(), mean_cpu.view(),
                                            rstd_cpu.view(), groups);
        ops<cpu>::group_norm_silu_forward<float>(x.view(), gamma.view(), beta.view(), ys_cpu.view(), m2.view(),
                                                 r2.view(), coef_cpu.view(), groups);
        tensor<float> y(dims), ys(dims), mean(shape{b, groups}), rstd(shape{b, groups}), coef(shape{b, ch, 2});
        emulate_launch(launch_shape_for(b * groups, 32, 1),
                       cuda_kernels::group_norm_stats_body<float>{x.data(), gamma.data(), beta.data(), mean.data(),
                                                                  rstd.data(), coef.data(), b, ch, groups, hw, 1e-5});
        emulate_launch(launch_shape_for(dims.numel(), 64, 3),
                       cuda_kernels::group_norm_apply_body<float, false>{x.data(), coef.data(), y.data(), b * ch, hw});
        emulate_launch(launch_shape_for(dims.numel(), 64, 3),
                       cuda_kernels::group_norm_apply_body<float, true>{x.data(), coef.data(), ys.data(), b * ch, hw});
        INFO("x " << dims << ", groups " << groups);
        // Statistics and coefficients: the CPU sums blocks in float lanes, this body in double.
        CHECK(worst_relative_gap(mean.data(), mean_cpu.data(), b * groups) < 1e-6);
        CHECK(worst_relative_gap(rstd.data(), rstd_cpu.data(), b * groups) < 1e-5);
        CHECK(worst_relative_gap(coef.data(), coef_cpu.data(), 2 * b * ch) < 1e-5);
        CHECK(worst_relative_gap(y.data(), y_cpu.data(), dims.numel()) < 1e-5);
        CHECK(worst_relative_gap(ys.data(), ys_cpu.data(), dims.numel()) < 1e-5);
    }
}

TEST_CASE("the CUDA upsampling and concatenation bodies equal ops<cpu> bit for bit") {
    for (const auto& [h, w] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {7, 7}, {3, 5}}) {
        const std::int64_t b = 2, c = 3, planes = b * c;
        const tensor<float> x = testing::random_tensor<float>(shape{b, c, h, w}, 81);
        const tensor<float> dy = testing::random_tensor<float>(shape{b, c, 2 * h, 2 * w}, 82);
        tensor<float> y_cpu(dy.dims()), y(dy.dims()), dx_cpu(x.dims()), dx(x.dims());
        ops<cpu>::upsample_nearest2x_forward<float>(x.view(), y_cpu.view());
        ops<cpu>::upsample_nearest2x_backward<float>(dy.view(), dx_cpu.view());
        emulate_launch(launch_shape_for(y.numel(), 32, 2),
                       cuda_kernels::upsample_nearest2x_forward_body<float>{x.data(), y.data(), planes, h, w});
        emulate_launch(launch_shape_for(dx.numel(), 32, 2),
                       cuda_kernels::upsample_nearest2x_backward_body<float>{dy.data(), dx.data(), planes, h, w});
        INFO("h = " << h << ", w = " << w);
        CHECK(std::equal(y.begin(), y.end(), y_cpu.begin()));
        CHECK(std::equal(dx.begin(), dx.end(), dx_cpu.begin()));

        const tensor<float> a = testing::random_tensor<float>(shape{b, 2, h, w}, 83),
                            bb = testing::random_tensor<float>(shape{b, 5, h, w}, 84);
        tensor<float> cat_cpu(shape{b, 7, h, w}), cat(shape{b, 7, h, w});
        ops<cpu>::concat_channels_forward<float>(a.view(), bb.view(), cat_cpu.view());
        const std::int64_t na = 2 * h * w, nb = 5 * h * w;
        emulate_launch(launch_shape_for(cat.numel(), 32, 3),
                       cuda_kernels::concat_channels_forward_body<float>{a.data(), bb.data(), cat.data(), b, na, nb});
        CHECK(std::equal(cat.begin(), cat.end(), cat_cpu.begin()));
        tensor<float> da(a.dims()), db(bb.dims());
        emulate_launch(launch_shape_for(cat.numel(), 32, 3),
                       cuda_kernels::concat_channels_backward_body<float>{cat.data(), da.data(), db.data(), b, na, nb});
        CHECK(std::equal(da.begin(), da.end(), a.begin()));  // the split gives back what was joined
        CHECK(std::equal(db.begin(), db.end(), bb.begin()));
    }
}

TEST_CASE("the CUDA embedding bodies equal ops<cpu> bit for bit") {
    const std::int64_t batch = 6;
    tensor<float> t(shape{batch});
    for (std::int64_t b = 0; b < batch; ++b) t[b] = static_cast<float>(b * 173 + 1) + 0.25f;
    for (const std::int64_t dim : {std::int64_t{1}, std::int64_t{7}, std::int64_t{64}}) {
        tensor<float> y_cpu(shape{batch, dim}), y(shape{batch, dim});
        ops<cpu>::sinusoidal_timestep_embedding<float>(t.view(), y_cpu.view());
        emulate_launch(launch_shape_for(batch * dim, 32, 2),
                       cuda_kernels::sinusoidal_embedding_body<float>{t.data(), y.data(), batch, dim, 10000.0});
        const tensor<float> dy = testing::random_tensor<float>(shape{batch, dim}, 91);
        tensor<float> dt_cpu(shape{batch}), dt(shape{batch});
        ops<cpu>::sinusoidal_timestep_embedding_backward<float>(t.view(), dy.view(), dt_cpu.view());
        emulate_launch(launch_shape_for(batch, 32, 1), cuda_kernels::sinusoidal_embedding_backward_body<float>{
                                                           t.data(), dy.data(), dt.data(), batch, dim, 10000.0});
        INFO("dim = " << dim);
        CHECK(std::equal(y.begin(), y.end(), y_cpu.begin()));
        CHECK(std::equal(dt.begin(), dt.end(), dt_cpu.begin()));
    }
    // Labels with repeats: 2 appears three times, so its gradient row sums three rows in order.
    tensor<std::int64_t> labels(shape{batch});
    const std::int64_t values[] = {2, 0, 2, 9, 2, 5};
    std::copy(values, values + batch, labels.begin());
    const std::int64_t classes = 10, dim = 5;
    const tensor<float> table = testing::random_tensor<float>(shape{classes, dim}, 92),
                        dy = testing::random_tensor<float>(shape{batch, dim}, 93);
    tensor<float> y_cpu(shape{batch, dim}), y(shape{batch, dim});
    tensor<float> g_cpu = testing::random_tensor<float>(shape{classes, dim}, 94), g = g_cpu;  // accumulated into
    ops<cpu>::label_embedding_forward<float>(labels.view(), table.view(), y_cpu.view());
    ops<cpu>::label_embedding_backward<float>(labels.view(), dy.view(), g_cpu.view());
    emulate_launch(launch_shape_for(batch * dim, 32, 1), cuda_kernels::label_embedding_forward_body<float>{
                                                             labels.data(), table.data(), y.data(), batch, dim});
    emulate_launch(
        launch_shape_for(classes * dim, 32, 1),
        cuda_kernels::label_embedding_backward_body<float>{labels.data(), dy.data(), g.data(), batch, classes, dim});
    CHECK(std::equal(y.begin(), y.end(), y_cpu.begin()));
    CHECK(std::equal(g.begin(), g.end(), g_cpu.begin()));
}

TEST_CASE("the CUDA group norm backward bodies agree with ops<cpu>, plain and fused with SiLU") {
    const std::int64_t cases[][5] = {{2, 8, 7, 7, 8}, {3, 32, 14, 14, 8}, {1, 6, 1, 1, 3}, {2, 16, 5, 3, 4}};
    for (const auto& c : cases) {
        const std::int64_t b = c[0], ch = c[1], hw = c[2] * c[3], groups = c[4];
        const shape dims{b, ch, c[2], c[3]};
        const tensor<float> x = testing::random_tensor<float>(dims, 101, 2.0),
                            dy = testing::random_tensor<float>(dims, 102);
        const tensor<float> gamma = testing::random_tensor<float>(shape{ch}, 103),
                            beta = testing::random_tensor<float>(shape{ch}, 104);
        tensor<float> y(dims), mean(shape{b, groups}), rstd(shape{b, groups}), coef(shape{b, ch, 2});
        ops<cpu>::group_norm_silu_forward<float>(x.view(), gamma.view(), beta.view(), y.view(), mean.view(),
                                                 rstd.view(), coef.view(), groups);
        for (const bool silu : {false, true}) {
            tensor<float> dx_cpu(dims), dg_cpu = testing::random_tensor<float>(shape{ch}, 105),
                                        db_cpu = testing::random_tensor<float>(shape{ch}, 106);
            tensor<float> dx(dims), dg = dg_cpu, db = db_cpu;  // both accumulate into the same start
            if (silu)
                ops<cpu>::group_norm_silu_backward<float>(x.view(), dy.view(), gamma.view(), mean.view(), rstd.view(),
                                                          coef.view(), dx_cpu.view(), dg_cpu.view(), db_cpu.view());
            else
                ops<cpu>::group_norm_backward<float>(x.view(), dy.view(), gamma.view(), mean.view(), rstd.view(),
                                                     dx_cpu.view(), dg_cpu.view(), db_cpu.view());
            std::vector<double> dev_sums(static_cast<std::size_t>(b * ch)), dy_sums(dev_sums),
                group_coef(static_cast<std::size_t>(2 * b * groups));
            const auto sums_launch = launch_shape_for(b * groups, 32, 1);
            if (silu)
                emulate_launch(sums_launch,
                               cuda_kernels::group_norm_backward_sums_body<float, true>{
                                   x.data(), dy.data(), gamma.data(), mean.data(), rstd.data(), coef.data(), dx.data(),
                                   dev_sums.data(), dy_sums.data(), group_coef.data(), b, ch, groups, hw});
            else
                emulate_launch(sums_launch,
                               cuda_kernels::group_norm_backward_sums_body<float, false>{
                                   x.data(), dy.data(), gamma.data(), mean.data(), rstd.data(), nullptr, nullptr,
                                   dev_sums.data(), dy_sums.data(), group_coef.data(), b, ch, groups, hw});
            emulate_launch(launch_shape_for(dims.numel(), 64, 3),
                           cuda_kernels::group_norm_backward_combine_body<float>{
                               silu ? dx.data() : dy.data(), x.data(), gamma.data(), rstd.data(), group_coef.data(),
                               dx.data(), b, ch, groups, hw});
            emulate_launch(launch_shape_for(ch, 32, 1),
                           cuda_kernels::group_norm_backward_parameters_body<float>{
                               rstd.data(), dev_sums.data(), dy_sums.data(), dg.data(), db.data(), b, ch, groups});
            INFO("x " << dims << ", groups " << groups << (silu ? ", fused with SiLU" : ""));
            // The CPU sums blocks in float lanes, these bodies in double.
            CHECK(worst_relative_gap(dx.data(), dx_cpu.data(), dims.numel()) < 1e-5);
            CHECK(worst_relative_gap(dg.data(), dg_cpu.data(), ch) < 1e-5);
            CHECK(worst_relative_gap(db.data(), db_cpu.data(), ch) < 1e-5);
        }
    }
}

TEST_CASE("the CUDA pooling bodies equal ops<cpu> bit for bit, overlapping windows and ties included") {
    // (H, W, kernel, stride): disjoint, overlapping, and a right edge the floor mode drops.
    const std::int64_t cases[][4] = {{8, 8, 2, 2}, {7, 9, 3, 1}, {9, 7, 3, 2}, {5, 5, 5, 1}};
    for (const auto& c : cases) {
        const std::int64_t b = 2, ch = 3, h = c[0], w = c[1], kernel = c[2], stride = c[3];
        const shape in{b, ch, h, w}, out = pool2d_output_shape(in, kernel, stride);
        tensor<float> x = testing::random_tensor<float>(in, 111);
        for (std::int64_t i = 0; i < x.numel(); i += 5) x[i] = std::round(x[i]);  // ties within windows
        x[7] = std::numeric_limits<float>::quiet_NaN();
        const tensor<float> dy = testing::random_tensor<float>(out, 112);
        const cuda_kernels::pool_geometry g{b * ch, h, w, out[2], out[3], kernel, stride};
        tensor<float> avg_cpu(out), avg(out), davg_cpu(in), davg(in), max_cpu(out), max(out), dmax_cpu(in), dmax(in);
        tensor<std::int64_t> idx_cpu(out), idx(out);
        ops<cpu>::avg_pool2d_forward<float>(x.view(), avg_cpu.view(), kernel, stride);
        ops<cpu>::avg_pool2d_backward<float>(dy.view(), davg_cpu.view(), kernel, stride);
        ops<cpu>::max_pool2d_forward<float>(x.view(), max_cpu.view(), idx_cpu.view(), kernel, stride);
        ops<cpu>::max_pool2d_backward<float>(dy.view(), idx_cpu.view(), dmax_cpu.view());
        emulate_launch(launch_shape_for(out.numel(), 32, 2),
                       cuda_kernels::avg_pool2d_forward_body<float>{x.data(), avg.data(), g});
        emulate_launch(launch_shape_for(in.numel(), 32, 2),
                       cuda_kernels::avg_pool2d_backward_body<float>{dy.data(), davg.data(), g});
        emulate_launch(launch_shape_for(out.numel(), 32, 2),
                       cuda_kernels::max_pool2d_forward_body<float>{x.data(), max.data(), idx.data(), g});
        emulate_launch(launch_shape_for(in.numel(), 32, 2),
                       cuda_kernels::max_pool2d_backward_body<float>{dy.data(), idx.data(), dmax.data(), g});
        INFO("x " << in << ", kernel " << kernel << ", stride " << stride);
        const auto same_bits = [](const tensor<float>& u, const tensor<float>& v) {
            return std::memcmp(u.data(), v.data(), static_cast<std::size_t>(u.numel()) * sizeof(float)) == 0;
        };
        CHECK(same_bits(avg, avg_cpu));
        CHECK(same_bits(davg, davg_cpu));
        CHECK(same_bits(max, max_cpu));
        CHECK(std::equal(idx.begin(), idx.end(), idx_cpu.begin()));
        CHECK(same_bits(dmax, dmax_cpu));
    }
}

TEST_CASE("the CUDA softmax cross-entropy equals ops<cpu>'s bit for bit") {
    for (const auto& [n, k] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {7, 10}, {300, 3}}) {
        tensor<float> logits = testing::random_tensor<float>(shape{n, k}, 121, 8.0);
        logits[0] = 80.f;  // large enough that an unshifted exp would overflow float
        tensor<std::int64_t> labels(shape{n});
        for (std::int64_t i = 0; i < n; ++i) labels[i] = (i * 7) % k;
        tensor<float> g_cpu(shape{n, k}), g(shape{n, k});
        const double loss_cpu = ops<cpu>::softmax_cross_entropy<float>(logits.view(), labels.view(), g_cpu.view());
        std::vector<double> rows(static_cast<std::size_t>(n));
        double loss = 0;
        emulate_launch(launch_shape_for(n, 32, 2), cuda_kernels::softmax_cross_entropy_rows_body<float>{
                                                       logits.data(), labels.data(), g.data(), rows.data(), n, k});
        emulate_launch(launch_shape_for(1, 32),
                       cuda_kernels::mean_of_rows_body{rows.data(), &loss, n, 1.0 / static_cast<double>(n)});
        INFO("N = " << n << ", K = " << k);
        CHECK(std::equal(g.begin(), g.end(), g_cpu.begin()));
        CHECK(loss == loss_cpu);
        if (k > 1) CHECK(loss > 0);
    }
}

TEST_CASE("the CUDA DDIM step body follows diffusion::ddim_step (ε and v prediction, clipped or not, η = 0 and 1)") {
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    const shape dims{3, 1, 5, 7};
    const tensor<float> x_t = testing::random_tensor<float>(dims, 131), out = testing::random_tensor<float>(dims, 132),
                        noise = testing::random_tensor<float>(dims, 133);
    for (const double eta : {0.0, 1.0})
        for (const bool clip : {false, true})
            for (const auto& [t, t_prev] : {std::pair<std::int64_t, std::int64_t>{999, 949}, {50, -1}}) {
                const diffusion::x0_options x0{.mode = clip ? diffusion::x0_mode::clip : diffusion::x0_mode::none};
                // The step's scalars, as ddim_step computes them.
                const double ab = table.alphas_cumprod()[static_cast<std::size_t>(t)],
                             ab_prev = table.alpha_bar(t_prev);
                const double sigma = eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab)) * std::sqrt(1.0 - ab / ab_prev);
                const double a = table.sqrt_alphas_cumprod()[static_cast<std::size_t>(t)];
                const double s = table.sqrt_one_minus_alphas_cumprod()[static_cast<std::size_t>(t)];
                const double direction = std::sqrt(std::max(0.0, 1.0 - ab_prev - sigma * sigma));
                const float* z = sigma > 0 ? noise.data() : nullptr;
                tensor<float> eps_cpu(dims), eps_gpu(dims), v_cpu(dims), v_gpu(dims);
                diffusion::ddim_step<diffusion::epsilon_prediction, float>(
                    table, eta, t, t_prev, x_t.view(), out.view(), noise.view(), eps_cpu.view(), x0);
                diffusion::ddim_step<diffusion::v_prediction, float>(table, eta, t, t_prev, x_t.view(), out.view(),
                                                                     noise.view(), v_cpu.view(), x0);
                const auto shape_ = launch_shape_for(dims.numel(), 32, 2);
                emulate_launch(shape_, cuda_kernels::ddim_step_body<diffusion::epsilon_prediction, float>{
                                           x_t.data(), out.data(), z, eps_gpu.data(), dims.numel(), a, s,
                                           std::sqrt(ab_prev), direction, sigma, clip});
                emulate_launch(shape_, cuda_kernels::ddim_step_body<diffusion::v_prediction, float>{
                                           x_t.data(), out.data(), z, v_gpu.data(), dims.numel(), a, s,
                                           std::sqrt(ab_prev), direction, sigma, clip});
                INFO("eta " << eta << ", clip " << clip << ", t " << t << " -> " << t_prev);
                // In double and rounded once on both sides: at most a contracted multiply-add apart.
                CHECK(worst_relative_gap(eps_gpu.data(), eps_cpu.data(), dims.numel()) < 2e-7);
                CHECK(worst_relative_gap(v_gpu.data(), v_cpu.data(), dims.numel()) < 2e-7);
            }
}

TEST_CASE("the CUDA dropout body keeps the CPU's elements, bit for bit") {
    for (const std::int64_t n : odd_sizes)
        for (const double p : {0.0, 0.1, 0.5, 1.0}) {
            const tensor<float> x = testing::random_tensor<float>(shape{n}, 31);
            tensor<float> y_cpu(shape{n}), mask_cpu(shape{n}), y(shape{n}), mask(shape{n});
            const std::uint64_t seed = 0x1234'5678'9abcULL, step = 7, salt = 3;
            ops<cpu>::dropout_forward<float>(x.view(), y_cpu.view(), mask_cpu.view(), p, seed, step, salt);
            const float scale = p < 1 ? static_cast<float>(1.0 / (1.0 - p)) : 0.f;
            emulate_launch(launch_shape_for((n + 3) / 4, 64, 5),
                           cuda_kernels::dropout_body<float>{x.data(), y.data(), mask.data(), n, seed, step, salt,
                                                             dropout_streams::keep_threshold(p), scale});
            INFO("n = " << n << ", p = " << p);
            CHECK(std::equal(mask.begin(), mask.end(), mask_cpu.begin()));
            CHECK(std::equal(y.begin(), y.end(), y_cpu.begin()));
            if (p == 0.5 && n >= 4099) {  // the masks compared are not trivial: about half are kept
                const auto kept = std::count_if(mask.begin(), mask.end(), [](float m) { return m != 0; });
                CHECK(std::abs(static_cast<double>(kept) / static_cast<double>(n) - 0.5) < 0.05);
            }
        }
}

TEST_CASE("the CUDA AdamW and EMA bodies follow optim::adamw and optim::ema step by step") {
    parameter_store<float> store;
    store.add("a", shape{257});
    store.add("b", shape{31, 3});
    const std::int64_t n = store.size();
    const tensor<float> init = testing::random_tensor<float>(shape{n}, 21);
    std::copy(init.begin(), init.end(), store.values());
    const optim::adamw_options options{.lr = 1e-2, .weight_decay = 0.05};
    optim::adamw<float> cpu_opt(store, options);
    optim::ema<float> cpu_ema(store, {.max_decay = 0.99});

    // The CUDA side's own buffers: parameters, moments, average.
    std::vector<float> p(init.begin(), init.end()), m(static_cast<std::size_t>(n), 0.f), v(m), e(p);
    for (std::int64_t t = 1; t <= 5; ++t) {
        const tensor<float> g = testing::random_tensor<float>(shape{n}, 100 + static_cast<std::uint64_t>(t));
        std::copy(g.begin(), g.end(), store.grads());
        cpu_opt.step(store);
        const double decay = cpu_ema.update(store);
        emulate_launch(
            launch_shape_for(n, 64, 2),  // fewer threads than elements: the grid-stride path
            cuda_kernels::adamw_body<float>{p.data(), m.data(), v.data(), g.data(), n,
                                            optim::adamw_scalars_for<float>(options.lr, options.beta1, options.beta2,
                                                                            options.eps, options.weight_decay, t)});
        emulate_launch(launch_shape_for(n),
                       cuda_kernels::ema_body<float>{e.data(), p.data(), n, static_cast<float>(1.0 - decay)});
        INFO("step " << t);
        // One formula (backend/adamw_update.hpp) on both sides; only the compiler's contraction of
        // multiply-adds into FMAs may differ between the SIMD and the scalar code.
        CHECK(worst_relative_gap(p.data(), store.values(), n) < 1e-6);
        CHECK(worst_relative_gap(m.data(), cpu_opt.exp_avg(), n) < 1e-6);
        CHECK(worst_relative_gap(v.data(), cpu_opt.exp_avg_sq(), n) < 1e-6);
        CHECK(worst_relative_gap(e.data(), cpu_ema.values(), n) < 1e-6);
    }
    // And the step moved the weights (a comparison of two unchanged buffers would pass too).
    CHECK(worst_relative_gap(p.data(), init.data(), n) > 1e-3);
}

TEST_CASE("the CUDA SGD, scale, swap and extrapolation bodies equal the CPU's update ops") {
    const std::int64_t n = 5003;  // not a multiple of any SIMD width
    const auto size = static_cast<std::size_t>(n);
    std::vector<float> p(size), g(size), x(size);
    philox_stream rng(17, rng_purpose::user, 0);
    for (std::size_t i = 0; i < size; ++i) {
        p[i] = static_cast<float>(rng.normal());
        g[i] = static_cast<float>(rng.normal());
        x[i] = static_cast<float>(rng.normal());
    }
    const shape s{n};
    const auto view = [&](std::vector<float>& v) { return tensor_view<float>(v.data(), s); };
    const auto cview = [&](const std::vector<float>& v) { return tensor_view<const float>(v.data(), s); };

    std::vector<float> p_cpu = p, b_cpu(size, 0.f), p_gpu = p, b_gpu(size, 0.f);
    for (int step = 0; step < 3; ++step) {
        ops<cpu>::sgd_step<float>(view(p_cpu), view(b_cpu), cview(g), 0.1f, 0.9f, 0.01f);
        emulate_launch(launch_shape_for(n, 64, 2),
                       cuda_kernels::sgd_body<float>{p_gpu.data(), b_gpu.data(), g.data(), n, 0.1f, 0.9f, 0.01f});
    }
    CHECK(worst_relative_gap(p_gpu.data(), p_cpu.data(), n) < 1e-6);
    CHECK(worst_relative_gap(b_gpu.data(), b_cpu.data(), n) < 1e-6);
    CHECK(worst_relative_gap(p_cpu.data(), p.data(), n) > 1e-3);  // the steps moved the weights

    ops<cpu>::scale<float>(view(p_cpu), 0.25f);
    emulate_launch(launch_shape_for(n), cuda_kernels::scale_body<float>{p_gpu.data(), n, 0.25f});
    CHECK(worst_relative_gap(p_gpu.data(), p_cpu.data(), n) < 1e-6);

    std::vector<float> a_cpu = x, a_gpu = x;
    ops<cpu>::swap_contents<float>(view(a_cpu), view(p_cpu));
    emulate_launch(launch_shape_for(n), cuda_kernels::swap_body<float>{a_gpu.data(), p_gpu.data(), n});
    CHECK(a_gpu == a_cpu);
    CHECK(worst_relative_gap(p_gpu.data(), x.data(), n) == 0);

    ops<cpu>::extrapolate_away<float>(cview(g), view(a_cpu), 0.5f);
    emulate_launch(launch_shape_for(n), cuda_kernels::extrapolate_body<float>{g.data(), a_gpu.data(), n, 0.5f});
    CHECK(worst_relative_gap(a_gpu.data(), a_cpu.data(), n) < 1e-6);
}

TEST_CASE("the CUDA sum of squares and finite check equal the CPU's update ops") {
    for (const std::int64_t n : {1, 7, 4096, 4097, 20000}) {
        std::vector<float> x(static_cast<std::size_t>(n));
        philox_stream rng(23, rng_purpose::user, static_cast<std::uint64_t>(n));
        for (float& v : x) v = static_cast<float>(3.0 * rng.normal());
        const tensor_view<const float> xv(x.data(), shape{n});
        const std::int64_t chunk = 4096, chunks = (n + chunk - 1) / chunk;
        std::vector<double> partial(static_cast<std::size_t>(chunks));
        double total = 0;
        emulate_launch(launch_shape_for(chunks, 32, 1),
                       cuda_kernels::sum_of_squares_chunks_body<float>{x.data(), partial.data(), n, chunk});
        emulate_launch(launch_shape_for(1, 32), cuda_kernels::sum_in_order_body{partial.data(), &total, chunks});
        INFO("n = " << n);
        CHECK(total == ops<cpu>::sum_of_squares<float>(xv));  // the same order, bit for bit

        std::vector<std::int64_t> first(static_cast<std::size_t>(chunks));
        std::int64_t found = 0;
        const auto device_answer = [&] {
            emulate_launch(launch_shape_for(chunks, 32, 1),
                           cuda_kernels::first_non_finite_chunks_body<float>{x.data(), first.data(), n, chunk});
            emulate_launch(launch_shape_for(1, 32), cuda_kernels::first_of_chunks_body{first.data(), &found, chunks});
            return found;
        };
        CHECK(device_answer() == -1);
        CHECK(ops<cpu>::first_non_finite<float>(xv) == -1);
        x[static_cast<std::size_t>(n - 1)] = std::numeric_limits<float>::infinity();
        if (n > 2) x[static_cast<std::size_t>(n / 2)] = std::numeric_limits<float>::quiet_NaN();
        CHECK(device_answer() == ops<cpu>::first_non_finite<float>(xv));
        CHECK(device_answer() == (n > 2 ? n / 2 : n - 1));
    }
}

TEST_CASE("the CUDA linear layer's GEMM plans and bias bodies reproduce ops<cpu>'s linear layer") {
    for (const auto& [rows, in, out] : {std::array<std::int64_t, 3>{1, 1, 1}, {5, 7, 3}, {32, 128, 10}, {3, 2, 9}}) {
        const tensor<float> x = testing::random_tensor<float>(shape{rows, in}, 201),
                            w = testing::random_tensor<float>(shape{out, in}, 202);
        const tensor<float> b = testing::random_tensor<float>(shape{out}, 203),
                            dy = testing::random_tensor<float>(shape{rows, out}, 204);
        tensor<float> y_cpu(shape{rows, out}), dx_cpu(shape{rows, in});
        tensor<float> dw_cpu = testing::random_tensor<float>(shape{out, in}, 205),
                      db_cpu = testing::random_tensor<float>(shape{out}, 206);
        tensor<float> y(shape{rows, out}), dx(shape{rows, in}), dw = dw_cpu,
                                                                db = db_cpu;  // the gradients accumulate from one start
        ops<cpu>::linear_forward<float>(x.view(), w.view(), b.view(), y_cpu.view());
        ops<cpu>::linear_backward<float>(x.view(), dy.view(), w.view(), dx_cpu.view(), dw_cpu.view(), db_cpu.view());

        cuda_kernels::reference_gemm(cuda_kernels::linear_forward_gemm(rows, in, out), w.data(), x.data(), y.data());
        emulate_launch(launch_shape_for(rows * out, 32, 2),
                       cuda_kernels::add_row_vector_body<float>{y.data(), b.data(), rows, out});
        cuda_kernels::reference_gemm(cuda_kernels::linear_input_gradient_gemm(rows, in, out), w.data(), dy.data(),
                                     dx.data());
        cuda_kernels::reference_gemm(cuda_kernels::linear_weight_gradient_gemm(rows, in, out), x.data(), dy.data(),
                                     dw.data());
        emulate_launch(launch_shape_for(out, 32, 1),
                       cuda_kernels::add_column_sums_body<float>{dy.data(), db.data(), rows, out});

        INFO("rows " << rows << ", in " << in << ", out " << out);
        // The GEMMs sum in another order than Eigen (cuBLAS will too): within float rounding.
        CHECK(worst_relative_gap(y.data(), y_cpu.data(), y.numel()) < 1e-5);
        CHECK(worst_relative_gap(dx.data(), dx_cpu.data(), dx.numel()) < 1e-5);
        CHECK(worst_relative_gap(dw.data(), dw_cpu.data(), dw.numel()) < 1e-5);
        CHECK(std::equal(db.begin(), db.end(), db_cpu.begin()));  // the same order in double
    }
}

TEST_CASE("the CUDA convolution's im2col, GEMM plans and col2im reproduce ops<cpu>'s convolution") {
    struct conv_case {
        std::int64_t batch, cin, h, w, cout, k, stride, padding;
    };
    for (const conv_case c : {conv_case{2, 3, 7, 7, 4, 3, 1, 1}, conv_case{1, 2, 8, 6, 5, 3, 2, 1},
                              conv_case{3, 4, 5, 5, 2, 1, 1, 0}, conv_case{2, 2, 9, 9, 3, 3, 2, 0}}) {
        const conv2d_params params{.stride = c.stride, .padding = c.padding};
        const shape xs{c.batch, c.cin, c.h, c.w}, ws{c.cout, c.cin, c.k, c.k};
        const shape ys = conv2d_output_shape(xs, ws, params);
        const tensor<float> x = testing::random_tensor<float>(xs, 301), w = testing::random_tensor<float>(ws, 302);
        const tensor<float> b = testing::random_tensor<float>(shape{c.cout}, 303),
                            dy = testing::random_tensor<float>(ys, 304);
        tensor<float> y_cpu(ys), dx_cpu(xs), dw_cpu = testing::random_tensor<float>(ws, 305),
                                             db_cpu = testing::random_tensor<float>(shape{c.cout}, 306);
        tensor<float> y(ys), dx(xs), dw = dw_cpu, db = db_cpu;
        ops<cpu>::conv2d_forward<float>(x.view(), w.view(), b.view(), y_cpu.view(), params);
        ops<cpu>::conv2d_backward_input<float>(dy.view(), w.view(), dx_cpu.view(), params);
        ops<cpu>::conv2d_backward_weight<float>(x.view(), dy.view(), dw_cpu.view(), db_cpu.view(), params);

        const cuda_kernels::conv_geometry g{c.cin, c.h, c.w, c.cout, c.k, c.stride, c.padding, ys[2], ys[3]};
        std::vector<float> cols(static_cast<std::size_t>(g.taps() * g.pixels())), dcols(cols.size());
        const std::int64_t in_image = c.cin * c.h * c.w, out_image = c.cout * g.pixels();
        for (std::int64_t i = 0; i < c.batch; ++i) {
            emulate_launch(launch_shape_for(static_cast<std::int64_t>(cols.size()), 32, 3),
                           cuda_kernels::im2col_body<float>{x.data() + i * in_image, cols.data(), g});
            cuda_kernels::reference_gemm(cuda_kernels::conv_forward_gemm(g), cols.data(), w.data(),
                                         y.data() + i * out_image);
            cuda_kernels::reference_gemm(cuda_kernels::conv_weight_gradient_gemm(g), cols.data(),
                                         dy.data() + i * out_image, dw.data());
            cuda_kernels::reference_gemm(cuda_kernels::conv_input_gradient_gemm(g), dy.data() + i * out_image, w.data(),
                                         dcols.data());
            emulate_launch(launch_shape_for(in_image, 32, 2),
                           cuda_kernels::col2im_body<float>{dcols.data(), dx.data() + i * in_image, g});
        }
        emulate_launch(launch_shape_for(y.numel(), 64, 2),
                       cuda_kernels::add_channel_bias_body<float>{y.data(), b.data(), c.batch, c.cout, g.pixels()});
        emulate_launch(launch_shape_for(c.cout, 32, 1),
                       cuda_kernels::add_channel_sums_body<float>{dy.data(), db.data(), c.batch, c.cout, g.pixels()});

        INFO("x " << xs << ", w " << ws << ", stride " << c.stride << ", padding " << c.padding);
        CHECK(worst_relative_gap(y.data(), y_cpu.data(), y.numel()) < 1e-5);
        CHECK(worst_relative_gap(dx.data(), dx_cpu.data(), dx.numel()) < 1e-5);
        CHECK(worst_relative_gap(dw.data(), dw_cpu.data(), dw.numel()) < 1e-5);
        CHECK(worst_relative_gap(db.data(), db_cpu.data(), db.numel()) < 1e-5);
    }
}

TEST_CASE("the CUDA attention's batched GEMM plans and softmax bodies reproduce ops<cpu>'s attention") {
    for (const auto& [batch, heads, d, l] :
         {std::array<std::int64_t, 4>{2, 1, 4, 9}, {1, 2, 3, 5}, {3, 4, 2, 1}, {2, 2, 8, 16}}) {
        const std::int64_t c = heads * d;
        const tensor<float> qkv = testing::random_tensor<float>(shape{batch, 3 * c, l}, 401);
        const tensor<float> dout = testing::random_tensor<float>(shape{batch, c, l}, 402);
        tensor<float> out_cpu(shape{batch, c, l}), probs_cpu(shape{batch, heads, l, l}), dqkv_cpu(qkv.dims());
        ops<cpu>::attention_forward<float>(qkv.view(), out_cpu.view(), probs_cpu.view(), heads);
        ops<cpu>::attention_backward<float>(qkv.view(), probs_cpu.view(), dout.view(), dqkv_cpu.view());

        namespace plan = cuda_kernels::attention_plans;
        const cuda_kernels::attention_geometry g{batch * heads, d, l};
        const double scale = 1.0 / std::sqrt(static_cast<double>(d));
        const std::int64_t s3 = g.qkv_stride(), s1 = d * l;
        tensor<float> out(out_cpu.dims()), probs(probs_cpu.dims()), dqkv(qkv.dims()), ds(probs_cpu.dims());
        const float* q = qkv.data();
        cuda_kernels::reference_gemm(plan::scores(g, s3, s3, scale), q + d * l, q, probs.data());
        emulate_launch(launch_shape_for(g.items * l, 32, 1),
                       cuda_kernels::softmax_rows_body<float>{probs.data(), g.items * l, l});
        cuda_kernels::reference_gemm(plan::times_transposed(g, s3, s1, 1.0), probs.data(), q + 2 * d * l, out.data());

        float* dq = dqkv.data();
        cuda_kernels::reference_gemm(plan::times(g, s1, s3, 1.0), probs.data(), dout.data(), dq + 2 * d * l);  // dV
        cuda_kernels::reference_gemm(plan::scores(g, s3, s1, 1.0), q + 2 * d * l, dout.data(), ds.data());     // dP
        emulate_launch(launch_shape_for(g.items * l, 32, 1),
                       cuda_kernels::softmax_rows_backward_body<float>{probs.data(), ds.data(), g.items * l, l});
        cuda_kernels::reference_gemm(plan::times_transposed(g, s3, s3, scale), ds.data(), q + d * l, dq);  // dQ
        cuda_kernels::reference_gemm(plan::times(g, s3, s3, scale), ds.data(), q, dq + d * l);             // dK

        INFO("B " << batch << ", heads " << heads << ", d " << d << ", L " << l);
        CHECK(worst_relative_gap(probs.data(), probs_cpu.data(), probs.numel()) < 1e-5);
        CHECK(worst_relative_gap(out.data(), out_cpu.data(), out.numel()) < 1e-5);
        CHECK(worst_relative_gap(dqkv.data(), dqkv_cpu.data(), dqkv.numel()) < 1e-5);
    }
}
