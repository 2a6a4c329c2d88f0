// Throughput of the MNIST U-Net preset on the CPU backend: training images/s (forward + backward +
// AdamW at batch 128) and sampling images/s (one forward at batch 256). Run side by side with
// benchmarks/torch_unet.py (the same architecture in PyTorch) to get the ratio:
//   build/release/benchmarks/bench_unet && /usr/bin/python3 benchmarks/torch_unet.py
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/presets/unet.hpp"

using namespace ouro;

namespace {

template <class F>
double seconds_per_call(F&& f, int warmup, int reps) {
    for (int i = 0; i < warmup; ++i) f();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / reps;
}

}  // namespace

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
    constexpr auto spec = presets::mnist_unet;
    nn::unet<cpu, spec> net;
    net.reset_parameters(1);
    std::printf("spec %s, %lld parameters, %d threads\n", spec.str().c_str(),
                static_cast<long long>(net.store().parameter_count()), max_threads());

    auto inputs = [&](std::int64_t batch) {
        tensor<float> x(shape{batch, spec.in_channels, spec.image_size, spec.image_size});
        philox_stream rng(2, rng_purpose::user);
        for (float& v : x) v = rng.normal();
        tensor<std::int64_t> t(shape{batch}), y(shape{batch});
        for (std::int64_t i = 0; i < batch; ++i) {
            t[i] = (i * 37) % 1000;
            y[i] = i % spec.classes;
        }
        return std::tuple{std::move(x), std::move(t), std::move(y)};
    };

    {
        auto [x, t, y] = inputs(128);
        tensor<float> dout(x.dims());
        for (std::int64_t i = 0; i < dout.numel(); ++i) dout[i] = 1e-3f * static_cast<float>(i % 7);
        optim::adamw<float> opt(net.store());
        const double s = seconds_per_call([&] {
            net.forward(x, t, y, {.training = true});
            net.store().zero_grad();
            net.backward(dout);
            opt.step(net.store());
        }, 1, reps);
        std::printf("train  batch 128: %.3f s/step, %.1f images/s\n", s, 128 / s);
    }
    {
        auto [x, t, y] = inputs(256);
        const double s = seconds_per_call([&] { net.predict(x, t, y); }, 1, reps);
        std::printf("sample batch 256: %.3f s/forward, %.1f images/s\n", s, 256 / s);
    }
}
