// train_mnist's run, as a template over the backend its U-Net trains and samples on: train_mnist.cpp
// instantiates it on the CPU, train_mnist_cuda.cu (nvcc; CMake option OURO_EXAMPLES_ON_CUDA) on
// ouro::cuda. What it does: examples/train_mnist.cpp's header.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/diffusion/training_progress.hpp"
#include "ouro/io/npy.hpp"
#include "ouro/io/png.hpp"
#include "ouro/metrics/feature_extractor.hpp"
#include "ouro/presets/unet.hpp"

namespace train_mnist {

using namespace ouro;
namespace fs = std::filesystem;

struct options {
    fs::path data = "data/mnist";
    fs::path out = "runs/train_mnist";
    std::int64_t steps = 2000, batch = 64, per_label = 100, ddim_steps = 50;
    double lr = 5e-4, guidance = 2.0;
    std::uint64_t seed = 1;
    bool bf16 = false;
    fs::path samples;  // empty: not written
    std::string device = "cpu";
};

// The run on ouro::cuda: defined in train_mnist_cuda.cu, in builds with OURO_EXAMPLES_ON_CUDA.
int run_on_cuda(const options& o);

inline double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The whole run with the U-Net on backend B (cpu here; ouro::cuda from train_mnist_cuda.cu).
template <backend B>
int run(const options& o) {
    constexpr nn::unet_spec spec = presets::mnist_unet;
    const auto train_set = data::load_mnist(o.data, data::split::train);
    std::printf("spec: %s\n", spec.str().c_str());
    std::printf("data: %lld training images; %d threads\n", static_cast<long long>(train_set.size()), max_threads());

    nn::unet<B, spec> model;
    model.reset_parameters(o.seed);
    std::printf("model: %lld parameters\n", static_cast<long long>(model.store().parameter_count()));

    // DDPM's schedule (Ho et al. 2020): linear betas 1e-4 -> 0.02 over T = 1000.
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    diffusion::trainer_options topt;
    topt.batch_size = o.batch;
    topt.steps = o.steps;
    topt.lr = o.lr;
    topt.warmup_steps = 200;
    topt.seed = o.seed;
    topt.log_every = 50;
    topt.checkpoint_dir = o.out / "checkpoints";
    topt.checkpoint_every = 250;
    diffusion::trainer trainer(model, train_set, table, topt);

    const auto start = std::chrono::steady_clock::now();
    if (trainer.resume()) std::printf("resumed at step %lld\n", static_cast<long long>(trainer.step_count()));
    const auto result =
        trainer.train(diffusion::training_progress({.label = "train_mnist", .log_every = topt.log_every}));
    if (result.steps_run > 0) trainer.save_checkpoint();
    const double train_seconds = seconds_since(start);
    std::printf("training: %lld steps this run, last loss %.4f, %.1f s\n", static_cast<long long>(result.steps_run),
                result.last_loss, train_seconds);

    // Sample with the EMA weights.
    if (trainer.ema()) trainer.ema()->copy_to(model.store());
    diffusion::save_model(o.out / "model_ema.safetensors", model, trainer.step_count());
    if (o.bf16) {
        if constexpr (!cpu_kernels::gemm::has_bf16_products)
            std::fprintf(stderr,
                         "train_mnist: note: this build has no AVX512-BF16 products, so --bf16 emulates them and "
                         "samples slower than fp32 (benchmarks/RESULTS.md)\n");
        model.set_predict_precision(matmul_precision::bf16);
    }
    const diffusion::ddim<50> sampler(table, 0.0, {.guidance_scale = o.guidance, .null_class = spec.classes});
    const std::int64_t count = 10 * o.per_label;
    tensor<std::int64_t> labels(shape{count});
    for (std::int64_t i = 0; i < count; ++i) labels[i] = i / o.per_label;  // (label-major)
    tensor<float> samples(shape{count, 1, 28, 28});
    const auto sample_start = std::chrono::steady_clock::now();
    constexpr std::int64_t chunk = 50;  // samples depend only on (seed, index), not on the chunking
    for (std::int64_t begin = 0; begin < count; begin += chunk) {
        const std::int64_t n = std::min(chunk, count - begin);
        const tensor_view<const std::int64_t> chunk_labels(labels.data() + begin, shape{n});
        const tensor<float> s =
            sampler.sample(model, shape{1, 28, 28}, chunk_labels, o.seed + 1000, static_cast<std::uint64_t>(begin));
        std::copy(s.begin(), s.end(), samples.data() + begin * 28 * 28);
        std::fprintf(stderr, "sampling: %lld/%lld (%.0f s)\n", static_cast<long long>(begin + n),
                     static_cast<long long>(count), seconds_since(sample_start));
    }
    std::printf("sampling: %lld images (DDIM 50, guidance %.1f, %s products) in %.1f s\n",
                static_cast<long long>(count), o.guidance, o.bf16 ? "bf16" : "fp32", seconds_since(sample_start));
    if (!o.samples.empty()) {
        io::write_npy(o.samples, samples.view());
        std::printf("samples: %s\n", o.samples.string().c_str());
    }

    // The grid: row d holds the first 10 samples of digit d.
    tensor<float> grid_images(shape{100, 1, 28, 28});
    for (std::int64_t d = 0; d < 10; ++d)
        for (std::int64_t j = 0; j < 10; ++j) {
            const std::int64_t src = d * o.per_label + std::min(j, o.per_label - 1);
            std::copy(samples.data() + src * 784, samples.data() + (src + 1) * 784,
                      grid_images.data() + (d * 10 + j) * 784);
        }
    io::write_png_grid(o.out / "grid.png", grid_images.view(), {.cols = 10});
    std::printf("grid: %s\n", (o.out / "grid.png").string().c_str());

    // The judge: a LeNet trained on real digits (cached beside the run).
    metrics::lenet_feature_extractor lenet;
    lenet.train_or_load(train_set, o.out.parent_path() / "cache" / "lenet_mnist.safetensors");
    const tensor<std::int64_t> predicted = lenet.classify(samples.view());
    std::int64_t agree = 0;
    for (std::int64_t i = 0; i < count; ++i) agree += predicted[i] == labels[i];
    std::printf("wall time: %.1f s\n", seconds_since(start));
    std::printf("label_agreement %.4f\n", static_cast<double>(agree) / static_cast<double>(count));
    return 0;
}

}  // namespace train_mnist
