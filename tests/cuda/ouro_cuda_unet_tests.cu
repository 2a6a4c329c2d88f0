// A whole U-Net and its trainer on a GPU (ouro::cuda): built, initialised on the host and copied
// over, four training steps with AdamW, clipping and EMA. Kept out of the default suite's build
// (nvcc takes about two minutes over the U-Net and the trainer): `cmake --build --preset test
// --target ouro_cuda_unet_tests && (cd build/test && ctest -L gpu)`. Exits 77 (skipped) without a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "common.hpp"
#include "ouro/backend/cuda/ops.cuh"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/nn/unet.hpp"

namespace {

using ouro::cuda_testing::pseudo_random;

constexpr ouro::nn::unet_spec tiny_unet{.in_channels = 1,
                                        .image_size = 8,
                                        .base = 8,
                                        .mult = {1, 2},
                                        .attention = {false, true},
                                        .groups = 4,
                                        .dropout = 0.1,
                                        .classes = 3};

// A whole U-Net on the device: built, initialised (on the host, copied over), one training
// forward and backward, and four trainer steps (AdamW, clipping, EMA). Returns the losses.
std::vector<double> unet_on_device() {
    ouro::nn::unet<ouro::cuda, tiny_unet> net;
    net.reset_parameters(3);
    ouro::data::image_dataset data;
    data.name = "noise";
    data.num_classes = 3;
    data.images = ouro::tensor<float>(ouro::shape{12, 1, 8, 8});
    data.labels = ouro::tensor<std::int64_t>(ouro::shape{12});
    const std::vector<float> pixels = pseudo_random(12 * 64, 21, 0.8f);
    std::copy(pixels.begin(), pixels.end(), data.images.begin());
    for (std::int64_t i = 0; i < 12; ++i) data.labels[i] = i % 3;
    ouro::diffusion::trainer<ouro::nn::unet<ouro::cuda, tiny_unet>> t(
        net, data, {ouro::diffusion::linear_ho2020{}, 100}, {.batch_size = 4, .steps = 4, .lr = 1e-3, .seed = 3});
    std::vector<double> losses;
    for (int i = 0; i < 4; ++i) losses.push_back(t.step().loss);
    return losses;
}

}  // namespace

int main() {
    if (!ouro::cuda_testing::have_device("ouro_cuda_unet_tests")) return 77;
    const std::vector<double> losses = unet_on_device();
    bool ok = true;
    for (double l : losses) ok = ok && std::isfinite(l) && l > 0;
    std::printf("%s nn::unet<cuda> trainer steps: losses %.4f %.4f %.4f %.4f\n", ok ? "ok  " : "FAIL", losses[0],
                losses[1], losses[2], losses[3]);
    return ok ? 0 : 1;
}
