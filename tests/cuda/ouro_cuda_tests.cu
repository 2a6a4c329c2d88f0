// The CUDA backend's kernels in real launches on a GPU, against the same bodies run on the host
// (backend/cuda/emulation.hpp; tests/test_cuda_emulated.cpp checks those against ops<cpu>), and
// every op of ops<cuda> against ops<cpu> from the same inputs (backend/compare.hpp). With no GPU
// it says so and exits 77, which CTest reports as skipped.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "common.hpp"
#include "ouro/backend/compare.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/backend/cuda/emulation.hpp"
#include "ouro/backend/cuda/kernels/diffusion.hpp"
#include "ouro/backend/cuda/kernels/pointwise.hpp"
#include "ouro/backend/cuda/kernels/reductions.hpp"
#include "ouro/backend/cuda/kernels/resample.hpp"
#include "ouro/backend/cuda/launch.cuh"
#include "ouro/backend/cuda/ops.cuh"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/nn/activation.hpp"
#include "ouro/nn/linear.hpp"

using namespace ouro::cuda_kernels;

namespace {

int failures = 0;

void check_cuda(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        std::fprintf(stderr, "ouro_cuda_tests: %s: %s\n", what, cudaGetErrorString(e));
        std::exit(1);
    }
}

// A device copy of a host vector, freed at scope exit.
struct device_buffer {
    float* data = nullptr;
    std::size_t n = 0;
    explicit device_buffer(const std::vector<float>& host) : n(host.size()) {
        check_cuda(cudaMalloc(&data, n * sizeof(float)), "cudaMalloc");
        check_cuda(cudaMemcpy(data, host.data(), n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy to device");
    }
    ~device_buffer() { cudaFree(data); }
    std::vector<float> to_host() const {
        std::vector<float> out(n);
        check_cuda(cudaMemcpy(out.data(), data, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
        return out;
    }
};

using ouro::cuda_testing::pseudo_random;

// The device's and the host's results within `tolerance` relative (the device's expf and sqrtf
// are not the host's to the last bit, and nvcc contracts multiply-adds differently).
void compare(const char* what, std::int64_t n, const std::vector<float>& device, const std::vector<float>& host,
             double tolerance) {
    double worst = 0;
    for (std::size_t i = 0; i < host.size(); ++i)
        worst =
            std::max(worst, std::abs(double(device[i]) - double(host[i])) / std::max(1.0, std::abs(double(host[i]))));
    const bool ok = worst <= tolerance;
    std::printf("%s %s n=%lld: worst relative gap %.3g (tolerance %.3g)\n", ok ? "ok  " : "FAIL", what,
                static_cast<long long>(n), worst, tolerance);
    if (!ok) ++failures;
}

// Every op of ops<cuda>, instantiated for float (never called: it makes nvcc compile each wrapper
// whatever the checks below happen to call).
[[maybe_unused]] void instantiate_every_op(ouro::tensor_view<const float, ouro::cuda> c,
                                           ouro::tensor_view<float, ouro::cuda> v,
                                           ouro::tensor_view<const std::int64_t, ouro::cuda> ci,
                                           ouro::tensor_view<std::int64_t, ouro::cuda> vi) {
    using O = ouro::ops<ouro::cuda>;
    O::silu_forward<float>(c, v);
    O::linear_forward<float>(c, c, c, v);
    O::attention_forward<float>(c, v, v, 2);
    O::attention_backward<float>(c, c, c, v);
    O::conv2d_forward<float>(c, c, c, v, ouro::conv2d_params{});
    O::conv2d_backward_input<float>(c, c, v, ouro::conv2d_params{});
    O::conv2d_backward_weight<float>(c, c, v, v, ouro::conv2d_params{});
    O::linear_backward<float>(c, c, c, v, v, v);
    O::linear_forward<double>(ouro::tensor_view<const double, ouro::cuda>{},
                              ouro::tensor_view<const double, ouro::cuda>{},
                              ouro::tensor_view<const double, ouro::cuda>{}, ouro::tensor_view<double, ouro::cuda>{});
    O::group_norm_forward<float>(c, c, c, v, v, v, 4);
    O::group_norm_silu_forward<float>(c, c, c, v, 4);
    O::group_norm_silu_forward<float>(c, c, c, v, v, v, v, 4);
    O::group_norm_backward<float>(c, c, c, c, c, v, v, v);
    O::group_norm_silu_backward<float>(c, c, c, c, c, c, v, v, v);
    (void)O::mse_loss<float>(c, c, v);
    (void)O::softmax_cross_entropy<float>(c, ci, v);
    O::silu_backward<float>(c, c, v);
    O::relu_forward<float>(c, v);
    O::relu_backward<float>(c, c, v);
    O::elementwise_add<float>(c, c, v);
    O::accumulate<float>(c, v);
    O::add_per_channel<float>(c, c, v);
    O::sum_per_channel<float>(c, v);
    O::upsample_nearest2x_forward<float>(c, v);
    O::upsample_nearest2x_backward<float>(c, v);
    O::concat_channels_forward<float>(c, c, v);
    O::concat_channels_backward<float>(c, v, v);
    O::avg_pool2d_forward<float>(c, v, 2, 2);
    O::avg_pool2d_backward<float>(c, v, 2, 2);
    O::max_pool2d_forward<float>(c, v, vi, 2, 2);
    O::max_pool2d_backward<float>(c, ci, v, 2, 2);
    O::dropout_forward<float>(c, v, v, 0.1, 1, 2, 3);
    O::dropout_forward<float>(c, v, 0.1, 1, 2, 3);
    O::dropout_backward<float>(c, v, 0.1, 1, 2, 3);
    O::sinusoidal_timestep_embedding<float>(c, v);
    O::sinusoidal_timestep_embedding_backward<float>(c, c, v);
    O::label_embedding_forward<float>(ci, c, v);
    O::label_embedding_backward<float>(ci, c, v);
    O::adamw_step<float>(v, v, v, c, ouro::optim::adamw_scalars_for<float>(1e-3, 0.9, 0.999, 1e-8, 0.0, 1));
    O::sgd_step<float>(v, v, c, 0.1f, 0.9f, 0.0f);
    O::ema_blend<float>(v, c, 0.1f);
    O::swap_contents<float>(v, v);
    O::scale<float>(v, 0.5f);
    O::extrapolate_away<float>(c, v, 0.5f);
    (void)O::sum_of_squares<float>(c);
    (void)O::first_non_finite<float>(c);
}

}  // namespace

int main() {
    if (!ouro::cuda_testing::have_device("ouro_cuda_tests")) return 77;
    for (const std::int64_t n : {1, 31, 257, 70001, 1 << 22}) {
        const auto size = static_cast<std::size_t>(n);
        const std::vector<float> x = pseudo_random(size, 1, 4.0f), dy = pseudo_random(size, 2, 1.0f);
        const launch_shape shape = launch_shape_for(n);

        std::vector<float> y(size), dx(size);
        emulate_launch(shape, silu_forward_body<float>{x.data(), y.data(), n});
        emulate_launch(shape, silu_backward_body<float>{x.data(), dy.data(), dx.data(), n});
        device_buffer dx_dev(x), ddy(dy), dy_out(y), ddx(dx);
        check_cuda(launch(shape, silu_forward_body<float>{dx_dev.data, dy_out.data, n}), "silu_forward");
        check_cuda(launch(shape, silu_backward_body<float>{dx_dev.data, ddy.data, ddx.data, n}), "silu_backward");
        check_cuda(cudaDeviceSynchronize(), "synchronize");
        compare("silu_forward", n, dy_out.to_host(), y, 1e-6);
        compare("silu_backward", n, ddx.to_host(), dx, 1e-6);

        // ReLU, add, and the mean squared error's two passes (its gradient exact, its value in double).
        std::vector<float> relu(size), relu_grad(size), added(size), dmse(size);
        emulate_launch(shape, relu_forward_body<float>{x.data(), relu.data(), n});
        emulate_launch(shape, relu_backward_body<float>{relu.data(), dy.data(), relu_grad.data(), n});
        emulate_launch(shape, add_body<float>{x.data(), dy.data(), added.data(), n});
        const std::int64_t slices = shape.grid * shape.block;
        std::vector<double> partial(static_cast<std::size_t>(slices));
        double loss = 0;
        const float scale2 = static_cast<float>(2.0 / static_cast<double>(n));
        emulate_launch(shape,
                       mse_partial_body<float>{x.data(), dy.data(), dmse.data(), partial.data(), n, slices, scale2});
        emulate_launch(launch_shape_for(1, 32), mse_total_body{partial.data(), &loss, slices, n});
        device_buffer drelu(relu), drelu_grad(relu_grad), dadded(added), ddmse(dmse);
        double* dpartial = nullptr;
        double* dloss = nullptr;
        check_cuda(cudaMalloc(&dpartial, partial.size() * sizeof(double)), "cudaMalloc");
        check_cuda(cudaMalloc(&dloss, sizeof(double)), "cudaMalloc");
        check_cuda(launch(shape, relu_forward_body<float>{dx_dev.data, drelu.data, n}), "relu_forward");
        check_cuda(launch(shape, relu_backward_body<float>{drelu.data, ddy.data, drelu_grad.data, n}), "relu_backward");
        check_cuda(launch(shape, add_body<float>{dx_dev.data, ddy.data, dadded.data, n}), "add");
        check_cuda(
            launch(shape, mse_partial_body<float>{dx_dev.data, ddy.data, ddmse.data, dpartial, n, slices, scale2}),
            "mse_partial");
        check_cuda(launch(launch_shape_for(1, 32), mse_total_body{dpartial, dloss, slices, n}), "mse_total");
        double device_loss = 0;
        check_cuda(cudaMemcpy(&device_loss, dloss, sizeof(double), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
        cudaFree(dpartial);
        cudaFree(dloss);
        compare("relu_forward", n, drelu.to_host(), relu, 0);
        compare("relu_backward", n, drelu_grad.to_host(), relu_grad, 0);
        compare("add", n, dadded.to_host(), added, 0);
        compare("mse gradient", n, ddmse.to_host(), dmse, 0);
        compare("mse loss", n, {static_cast<float>(device_loss)}, {static_cast<float>(loss)}, 1e-6);

        // Philox normals: the device's logf, sinf and cosf against the host's (a few ulps).
        {
            const std::int64_t items = 3, per_item = (n + 2) / 3;
            const auto total = static_cast<std::size_t>(items * per_item);
            std::vector<float> noise(total);
            const launch_shape pairs = launch_shape_for(items * ((per_item + 1) / 2));
            emulate_launch(pairs, normal_noise_body<float>{noise.data(), items, per_item, 5, 11});
            device_buffer dnoise(noise);
            check_cuda(launch(pairs, normal_noise_body<float>{dnoise.data, items, per_item, 5, 11}), "normal_noise");
            check_cuda(cudaDeviceSynchronize(), "synchronize");
            compare("normal noise", items * per_item, dnoise.to_host(), noise, 1e-5);
        }

        // Dropout: the device keeps exactly the host's elements (the tolerance is 0).
        std::vector<float> y_drop(size), mask(size);
        const std::uint32_t keep_from = ouro::dropout_streams::keep_threshold(0.3);
        const float scale = static_cast<float>(1.0 / 0.7);
        const launch_shape blocks = launch_shape_for((n + 3) / 4);
        emulate_launch(blocks,
                       dropout_body<float>{x.data(), y_drop.data(), mask.data(), n, 42, 7, 3, keep_from, scale});
        device_buffer dy_drop(y_drop), dmask(mask);
        check_cuda(
            launch(blocks, dropout_body<float>{dx_dev.data, dy_drop.data, dmask.data, n, 42, 7, 3, keep_from, scale}),
            "dropout");
        check_cuda(cudaDeviceSynchronize(), "synchronize");
        compare("dropout mask", n, dmask.to_host(), mask, 0);
        compare("dropout output", n, dy_drop.to_host(), y_drop, 0);

        std::vector<float> p = x, m(size, 0.f), v(size, 0.f), e = x;
        device_buffer dp(p), dm(m), dv(v), de(e), dg(dy);
        for (std::int64_t t = 1; t <= 3; ++t) {
            const auto s =
                ouro::optim::adamw_scalars_for<float>(/*lr=*/1e-2, 0.9, 0.999, 1e-8, /*weight_decay=*/0.05, t);
            emulate_launch(shape, adamw_body<float>{p.data(), m.data(), v.data(), dy.data(), n, s});
            emulate_launch(shape, ema_body<float>{e.data(), p.data(), n, 0.1f});
            check_cuda(launch(shape, adamw_body<float>{dp.data, dm.data, dv.data, dg.data, n, s}), "adamw");
            check_cuda(launch(shape, ema_body<float>{de.data, dp.data, n, 0.1f}), "ema");
        }
        check_cuda(cudaDeviceSynchronize(), "synchronize");
        compare("adamw parameters", n, dp.to_host(), p, 1e-6);
        compare("adamw first moments", n, dm.to_host(), m, 1e-6);
        compare("adamw second moments", n, dv.to_host(), v, 1e-6);
        compare("ema", n, de.to_host(), e, 1e-6);
    }

    // The seam on the device: tensor<float, cuda>, parameter_store<float, cuda> and ops<cuda>,
    // against the same bodies emulated on the host.
    {
        using ouro::cuda;
        const std::int64_t n = 70001;
        const auto size = static_cast<std::size_t>(n);
        const std::vector<float> x = pseudo_random(size, 3, 4.0f), g = pseudo_random(size, 4, 1.0f);
        const ouro::tensor_view<const float> xv(x.data(), ouro::shape{n}), gv(g.data(), ouro::shape{n});

        ouro::tensor<float, cuda> xd(ouro::shape{n});
        ouro::copy_from_host(xv, xd.view());
        compare("tensor<float, cuda> round trip", n,
                std::vector<float>(ouro::to_host(xd.view()).begin(), ouro::to_host(xd.view()).end()), x, 0);

        // A module on the device: SiLU through ops<cuda>.
        ouro::nn::silu<cuda, float> act;
        const auto y = ouro::to_host(act.forward(xd.view()));
        std::vector<float> y_host(size);
        emulate_launch(launch_shape_for(n), silu_forward_body<float>{x.data(), y_host.data(), n});
        compare("nn::silu<cuda>", n, std::vector<float>(y.begin(), y.end()), y_host, 1e-6);

        // A store that grows keeps its values; AdamW, SGD, EMA, swap and scale through ops<cuda>.
        ouro::parameter_store<float, cuda> store;
        const ouro::parameter w = store.add("w", ouro::shape{n});
        ouro::copy_from_host(xv, store.value(w));
        store.add("b", ouro::shape{5});
        ouro::copy_from_host(gv, store.grad(w));
        compare("parameter_store<float, cuda> growth", n,
                std::vector<float>(ouro::to_host(store.value(w)).begin(), ouro::to_host(store.value(w)).end()), x, 0);

        std::vector<float> p = x, m(size, 0.f), v(size, 0.f), b(size, 0.f);
        ouro::tensor<float, cuda> md(ouro::shape{n}), vd(ouro::shape{n}), bd(ouro::shape{n}), pd2(ouro::shape{n});
        ouro::copy_from_host(xv, pd2.view());
        std::vector<float> p2 = x;
        for (std::int64_t t = 1; t <= 3; ++t) {
            const auto s = ouro::optim::adamw_scalars_for<float>(1e-2, 0.9, 0.999, 1e-8, 0.05, t);
            emulate_launch(launch_shape_for(n), adamw_body<float>{p.data(), m.data(), v.data(), g.data(), n, s});
            ouro::ops<cuda>::adamw_step<float>(store.value(w), md.view(), vd.view(), store.grad(w), s);
            emulate_launch(launch_shape_for(n), sgd_body<float>{p2.data(), b.data(), g.data(), n, 0.1f, 0.9f, 0.01f});
            ouro::ops<cuda>::sgd_step<float>(pd2.view(), bd.view(), store.grad(w), 0.1f, 0.9f, 0.01f);
        }
        const auto pw = ouro::to_host(store.value(w));
        compare("ops<cuda>::adamw_step", n, std::vector<float>(pw.begin(), pw.end()), p, 1e-6);
        const auto ps = ouro::to_host(pd2.view());
        compare("ops<cuda>::sgd_step", n, std::vector<float>(ps.begin(), ps.end()), p2, 1e-6);
        // Upsampling through ops<cuda> against its emulated body (2 planes of 3x5).
        {
            const std::vector<float> small = pseudo_random(30, 9, 1.0f);
            ouro::tensor<float, cuda> sd(ouro::shape{1, 2, 3, 5}), bd(ouro::shape{1, 2, 6, 10});
            ouro::copy_from_host(ouro::tensor_view<const float>(small.data(), sd.dims()), sd.view());
            ouro::ops<cuda>::upsample_nearest2x_forward<float>(sd.view(), bd.view());
            std::vector<float> big(120);
            emulate_launch(launch_shape_for(120),
                           upsample_nearest2x_forward_body<float>{small.data(), big.data(), 2, 3, 5});
            const auto got = ouro::to_host(bd.view());
            compare("ops<cuda>::upsample_nearest2x_forward", 120, std::vector<float>(got.begin(), got.end()), big, 0);
        }
        // nn::linear on the device (cuBLAS) against y = x·Wᵀ + b on the host, from the same weights.
        {
            ouro::parameter_store<float, cuda> fc_store;
            ouro::nn::linear<cuda, float> fc(fc_store, "fc", 7, 3);
            fc.reset_parameters(5);
            const std::vector<float> xs = pseudo_random(35, 11, 1.0f);
            ouro::tensor<float, cuda> x_dev(ouro::shape{5, 7});
            ouro::copy_from_host(ouro::tensor_view<const float>(xs.data(), x_dev.dims()), x_dev.view());
            const auto got = ouro::to_host(fc.forward(x_dev.view()));
            const auto wh = ouro::to_host(fc_store.value(fc_store.find("fc.weight")));
            const auto bh = ouro::to_host(fc_store.value(fc_store.find("fc.bias")));
            std::vector<float> want(15);
            for (int r = 0; r < 5; ++r)
                for (int o = 0; o < 3; ++o) {
                    double sum = bh[o];
                    for (int i = 0; i < 7; ++i)
                        sum += double(xs[static_cast<std::size_t>(r * 7 + i)]) * double(wh[o * 7 + i]);
                    want[static_cast<std::size_t>(r * 3 + o)] = static_cast<float>(sum);
                }
            compare("nn::linear<cuda> (cuBLAS)", 15, std::vector<float>(got.begin(), got.end()), want, 1e-5);
        }
        ouro::ops<cuda>::scale<float>(pd2.view(), 0.5f);
        for (float& e : p2) e *= 0.5f;
        const auto scaled = ouro::to_host(pd2.view());
        compare("ops<cuda>::scale", n, std::vector<float>(scaled.begin(), scaled.end()), p2, 0);
    }

    // Every op of ops<cuda> against ops<cpu>, output by output, with a tolerance per op.
    {
        const auto reports = ouro::backend_compare::compare_ops<ouro::cpu, ouro::cuda>();
        std::fputs(ouro::backend_compare::format(reports).c_str(), stdout);
        for (const auto& r : reports)
            if (!r.passed()) ++failures;
    }

    if (failures) {
        std::printf("%d comparison(s) failed\n", failures);
        return 1;
    }
    std::printf("all CUDA comparisons passed\n");
    return 0;
}
