// Throughput of ouro's U-Net on a GPU (ouro::cuda), one measurement per process, for
// benchmarks/gpu-check (beside torch_unet.py --device cuda where PyTorch has CUDA):
//
//   bench_unet_cuda --spec S|M --mode train|sample [--reps R]
//
// train: forward + backward + AdamW at batch 128; sample: one forward (predict) at batch 256; the
// same U-Nets and batches as bench_unet (unet_specs.hpp). Timed from a synchronised device to a
// synchronised device. Prints one JSON line: side, spec, mode, images_per_s, device_peak_mib (the
// most device memory in use, as cudaMemGetInfo saw it after each call). Exits 77 without a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ouro/backend/cuda/ops.cuh"
#include "ouro/core/philox.hpp"
#include "ouro/optim/adamw.hpp"
#include "unet_specs.hpp"

using namespace ouro;

namespace {

double device_used_mib() {
    std::size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
    return static_cast<double>(total - free) / (1024.0 * 1024.0);
}

template <nn::unet_spec Spec>
double measure(std::string_view mode, int reps, double& peak_mib) {
    nn::unet<cuda, Spec> net;
    net.reset_parameters(1);
    const std::int64_t batch = mode == "train" ? 128 : 256;
    const shape dims{batch, Spec.in_channels, Spec.image_size, Spec.image_size};
    tensor<float> x_host(dims);
    philox_stream rng(2, rng_purpose::user);
    for (float& v : x_host) v = rng.normal();
    tensor<float, cuda> x(dims);
    copy_from_host(x_host.view(), x.view());
    tensor<std::int64_t> t(shape{batch}), y(shape{batch});  // host: the U-Net copies them over
    for (std::int64_t i = 0; i < batch; ++i) {
        t[i] = (i * 37) % 1000;
        y[i] = i % Spec.classes;
    }
    tensor<float, cuda> dout(dims);
    optim::adamw<float, cuda> opt(net.store());
    if (mode == "train") {
        tensor<float> d_host(dims);
        for (std::int64_t i = 0; i < d_host.numel(); ++i) d_host[i] = 1e-3f * static_cast<float>(i % 7);
        copy_from_host(d_host.view(), dout.view());
    }
    auto once = [&] {
        if (mode == "train") {
            net.forward(x.view(), t.view(), y.view(), {.training = true});
            net.store().zero_grad();
            net.backward(dout.view());
            opt.step(net.store());
        } else {
            net.predict(x.view(), t.view(), y.view());
        }
        cudaDeviceSynchronize();
        peak_mib = std::max(peak_mib, device_used_mib());
    };
    once();  // warm-up: the caching allocator and cuBLAS fill here
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) once();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / reps;
    return static_cast<double>(batch) / s;
}

}  // namespace

int main(int argc, char** argv) {
    std::string spec = "S", mode = "train";
    int reps = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--spec") {
            spec = argv[i + 1];
        } else if (flag == "--mode") {
            mode = argv[i + 1];
        } else if (flag == "--reps") {
            reps = std::atoi(argv[i + 1]);
        } else {
            std::fprintf(stderr, "bench_unet_cuda: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if ((spec != "S" && spec != "M") || (mode != "train" && mode != "sample") || reps < 1) {
        std::fprintf(stderr, "usage: bench_unet_cuda --spec S|M --mode train|sample [--reps R]\n");
        return 2;
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::fprintf(stderr, "bench_unet_cuda: no CUDA device; nothing measured\n");
        return 77;
    }
    try {
        double peak = 0;
        const double ips =
            spec == "S" ? measure<bench::spec_s>(mode, reps, peak) : measure<bench::spec_m>(mode, reps, peak);
        std::printf(
            "{\"side\": \"ouro\", \"device\": \"cuda\", \"spec\": \"%s\", \"mode\": \"%s\", \"images_per_s\": %.3f, "
            "\"device_peak_mib\": %.1f}\n",
            spec.c_str(), mode.c_str(), ips, peak);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_unet_cuda: %s\n", e.what());
        return 1;
    }
    return 0;
}
