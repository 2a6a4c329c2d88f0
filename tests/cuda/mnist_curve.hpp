// The MNIST training run that benchmarks/gpu-check runs on both backends and compares: the
// README's MNIST U-Net (presets::mnist_unet: attention at 7×7, 10 classes) on the first 100
// training images of each class, 200 AdamW steps of batch 64 (lr 1e-3 after 20 warm-up steps,
// clipping and EMA as the trainer's defaults), seed 1. The CPU's curve (tests/mnist_curve_cpu.cpp,
// g++) and the GPU's (tests/cuda/ouro_cuda_mnist_curve.cu, nvcc) are written one loss per line;
// gpu-check compares their means over windows of 20 steps (the two backends round differently, so
// single steps drift apart; the curve must not).
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/data/subset.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/presets/unet.hpp"

namespace ouro::cuda_testing {

inline constexpr std::int64_t curve_steps = 200;

// The per-step training losses of the run above with its model on backend B.
template <class B>
std::vector<double> mnist_loss_curve(const std::filesystem::path& mnist_dir) {
    using model = nn::unet<B, presets::mnist_unet>;
    model net;
    net.reset_parameters(1);
    const data::image_dataset train = data::load_mnist(mnist_dir, data::split::train);
    const data::image_dataset d = data::first_per_class(train, 100, "mnist-first-100-per-class");
    diffusion::trainer<model> t(net, d, {diffusion::linear_ho2020{}, 1000},
                                {.batch_size = 64, .steps = curve_steps, .lr = 1e-3, .warmup_steps = 20, .seed = 1});
    std::vector<double> losses;
    for (std::int64_t i = 0; i < curve_steps; ++i) losses.push_back(t.step().loss);
    return losses;
}

// One loss per line ("%.9g"), or an ouro::error naming the file.
inline void write_curve(const std::filesystem::path& file, const std::vector<double>& losses) {
    std::FILE* f = std::fopen(file.c_str(), "w");
    if (!f) fail(file.string(), ": cannot open for writing");
    bool ok = true;
    for (double l : losses) ok = ok && std::fprintf(f, "%.9g\n", l) > 0;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) fail(file.string(), ": writing the loss curve failed");
}

// The main of both programs: argv[1] the MNIST folder, argv[2] the file the curve goes to.
template <class B>
int curve_main(int argc, char** argv, const char* program) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MNIST_DIR OUT.txt\n", program);
        return 2;
    }
    try {
        write_curve(argv[2], mnist_loss_curve<B>(argv[1]));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", program, e.what());
        return 1;
    }
    return 0;
}

}  // namespace ouro::cuda_testing
