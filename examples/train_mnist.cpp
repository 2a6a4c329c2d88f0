// Teaches: training a class-conditional DDPM on MNIST with ouro, and measuring it. Trains the
// presets::mnist_unet U-Net, writes a sample grid (one row per digit) and a checkpoint, then
// generates 100 samples per label with DDIM (50 steps, classifier-free guidance) and has a LeNet
// trained on real digits classify them. Its last line is `label_agreement <fraction>`: the share of
// samples classified as the label they were generated for.
//
//   train_mnist [--data data/mnist] [--out runs/train_mnist] [--steps 2000] [--batch 64] [--lr 5e-4]
//               [--per-label 100] [--ddim-steps 50] [--guidance 2] [--seed 1] [--bf16] [--samples FILE.npy]
//               [--device cpu|cuda]
// --device cuda trains and samples on the GPU (builds with OURO_EXAMPLES_ON_CUDA; examples/device.hpp).
// The run itself is examples/train_mnist_run.hpp, a template over the backend.
// Interrupt it at any time: the same command resumes from the last checkpoint.
#include <cstdio>
#include <optional>

#include "cli.hpp"
#include "device.hpp"
#include "train_mnist_run.hpp"

using train_mnist::options;

namespace {

// The command line, every value range-checked before the data is read or the run directory written.
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "Trains a class-conditional DDPM (presets::mnist_unet) on MNIST, samples digits with DDIM and "
        "classifier-free guidance, and has a LeNet judge whether they show the digit asked for.",
        "train_mnist"};
    examples::setup(app);
    app.add_option("--data", o.data, "Directory of the MNIST IDX files")->check(CLI::ExistingDirectory);
    app.add_option("--out", o.out, "Run directory: checkpoints, model_ema.safetensors, grid.png (resumed if present)");
    app.add_option("--steps", o.steps, "Training steps (optimizer updates)")->check(examples::whole_in(1, 10'000'000));
    app.add_option("--batch", o.batch, "Images per training step")->check(examples::whole_in(1, 60'000));
    app.add_option("--lr", o.lr, "Adam learning rate, reached after a 200-step linear warm-up")
        ->check(examples::finite_above(0));
    app.add_option("--per-label", o.per_label, "Samples generated per digit (10 digits)")
        ->check(examples::whole_in(1, 100'000));
    app.add_option("--ddim-steps", o.ddim_steps, "DDIM sampling steps (this example is compiled for 50 only)")
        ->check(examples::whole_in(50, 50));
    app.add_option("--guidance", o.guidance, "Classifier-free guidance scale w (1: none, 0: unconditional)")
        ->check(examples::finite_at_least(0));
    app.add_option("--seed", o.seed, "Seed of the weights, the batches and the samples")
        ->check(examples::unsigned_integer);
    app.add_flag(
        "--bf16", o.bf16,
        "Sample with the convolutions' products in bf16 (fp32 sums; faster on CPUs with AVX512-BF16, slower without)");
    app.add_option("--samples", o.samples,
                   "Also write the samples (N, 1, 28, 28) float32 in [-1, 1], label-major (.npy)");
    examples::add_device_option(app, o.device);
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    if (o.bf16 && o.device == "cuda") {
        std::fprintf(stderr, "train_mnist: error: --bf16 is a CPU option (AVX512-BF16); ouro::cuda samples in fp32\n");
        exit_code = 2;
        return std::nullopt;
    }
    if (exit_code = examples::check_device_built(app, o.device); exit_code >= 0) return std::nullopt;
    return o;
}

}  // namespace

#ifndef OURO_EXAMPLES_ON_CUDA
// Never reached: parse() refuses --device cuda in a build without CUDA (examples/device.hpp).
int train_mnist::run_on_cuda(const options&) { return 2; }
#endif

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("train_mnist", [&] {
        if (o->device == "cuda") {
            // No usable GPU: one line, before the data is read.
            std::printf("device: %s\n", examples::cuda_device_name().c_str());
            return train_mnist::run_on_cuda(*o);
        }
        std::printf("device: cpu\n");
        return train_mnist::run<ouro::cpu>(*o);
    });
}
