// Throughput and memory of ouro's CPU U-Net, one measurement per process, for
// benchmarks/run-vs-pytorch (which runs benchmarks/torch_unet.py on identical U-Nets beside it):
//
//   bench_unet --spec S|M|Q --mode train|sample|sample-bf16|peak [--threads N] [--reps R]
//
// train: forward + backward + AdamW at batch 128; sample: one forward (no grad) at batch 256;
// sample-bf16: the same with the convolutions' products in bf16 (unet::set_predict_precision);
// peak: the FP32 FMA rate this machine reaches on N threads (independent FMA chains in registers).
// Prints one JSON line: side, spec, mode, threads, images_per_s (or gflops for peak), peak_rss_mib.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

// ops.hpp first: it includes xsimd inside the region that silences GCC 12's false -Wuninitialized
// in its AVX-512 intrinsics (backend/cpu/detail/simd_warnings_off.hpp, GCC bug 105593).
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/presets/experiments.hpp"
#include "ouro/presets/unet.hpp"
#include "unet_specs.hpp"

using namespace ouro;

namespace {

using bench::spec_m;
using bench::spec_q;
using bench::spec_s;

double peak_rss_mib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

template <class F>
double seconds_per_call(F&& f, int warmup, int reps) {
    for (int i = 0; i < warmup; ++i) f();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / reps;
}

template <nn::unet_spec Spec>
double measure(std::string_view mode, int reps) {
    nn::unet<cpu, Spec> net;
    net.reset_parameters(1);
    const std::int64_t batch = mode == "train" ? 128 : 256;
    tensor<float> x(shape{batch, Spec.in_channels, Spec.image_size, Spec.image_size});
    philox_stream rng(2, rng_purpose::user);
    for (float& v : x) v = rng.normal();
    tensor<std::int64_t> t(shape{batch}), y(shape{batch});
    for (std::int64_t i = 0; i < batch; ++i) {
        t[i] = (i * 37) % 1000;
        y[i] = i % Spec.classes;
    }
    if (mode == "train") {
        tensor<float> dout(x.dims());
        for (std::int64_t i = 0; i < dout.numel(); ++i) dout[i] = 1e-3f * static_cast<float>(i % 7);
        optim::adamw<float> opt(net.store());
        const double s = seconds_per_call(
            [&] {
                net.forward(x, t, y, {.training = true});
                net.store().zero_grad();
                net.backward(dout);
                opt.step(net.store());
            },
            1, reps);
        return static_cast<double>(batch) / s;
    }
    if (mode == "sample-bf16") net.set_predict_precision(matmul_precision::bf16);
    const double s = seconds_per_call([&] { net.predict(x, t, y); }, 1, reps);
    return static_cast<double>(batch) / s;
}

// GFLOP/s of FP32 FMAs: per thread, 12 independent accumulator chains of one SIMD register each
// (enough to cover the FMA latency), 2 FLOPs per lane per FMA.
double peak_gflops() {
    using batch = xsimd::batch<float>;
    constexpr int chains = 12;
    constexpr std::int64_t iterations = 40'000'000;
    double total = 0;
    const auto start = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : total)
    {
        batch acc[chains];
        for (int c = 0; c < chains; ++c) acc[c] = batch(1.0f + 1e-7f * static_cast<float>(c));
        const batch a(0.999999f), b(1e-7f);
        for (std::int64_t i = 0; i < iterations; ++i)
            for (int c = 0; c < chains; ++c) acc[c] = xsimd::fma(acc[c], a, b);
        float keep = 0;
        for (int c = 0; c < chains; ++c) keep += xsimd::hadd(acc[c]);
        total += keep;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (total == 12345.0f) std::puts("");  // keeps the loop from being optimised away
    return 2.0 * static_cast<double>(batch::size) * chains * static_cast<double>(iterations) * max_threads() / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    std::string spec = "S", mode = "train";
    int reps = 3, threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--spec") spec = argv[i + 1];
        else if (flag == "--mode")
            mode = argv[i + 1];
        else if (flag == "--reps")
            reps = std::atoi(argv[i + 1]);
        else if (flag == "--threads")
            threads = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr, "bench_unet: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if ((spec != "S" && spec != "M" && spec != "Q") ||
        (mode != "train" && mode != "sample" && mode != "sample-bf16" && mode != "peak") || reps < 1 || threads < 0) {
        std::fprintf(stderr,
                     "usage: bench_unet --spec S|M|Q --mode train|sample|sample-bf16|peak [--threads N] [--reps R]\n");
        return 2;
    }
    if (threads > 0) set_threads(threads);
    if (mode == "peak") {
        std::printf("{\"side\": \"ouro\", \"mode\": \"peak\", \"threads\": %d, \"gflops\": %.2f}\n", max_threads(),
                    peak_gflops());
        return 0;
    }
    const double ips = spec == "S"   ? measure<spec_s>(mode, reps)
                       : spec == "M" ? measure<spec_m>(mode, reps)
                                     : measure<spec_q>(mode, reps);
    // Where the resident memory goes: the most bytes of large tensor blocks in use at once, and
    // what the buffer cache holds free at the end.
    const auto& cache = buffer_cache::instance();
    std::printf(
        "{\"side\": \"ouro\", \"spec\": \"%s\", \"mode\": \"%s\", \"threads\": %d, \"images_per_s\": %.3f, "
        "\"peak_rss_mib\": %.1f, \"tensor_peak_mib\": %.1f, \"tensor_cached_mib\": %.1f}\n",
        spec.c_str(), mode.c_str(), max_threads(), ips, peak_rss_mib(),
        static_cast<double>(cache.peak_live_bytes()) / (1 << 20),
        static_cast<double>(cache.cached_bytes()) / (1 << 20));
    return 0;
}
