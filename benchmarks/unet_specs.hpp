// The three U-Nets of the comparison with PyTorch (issue #10), shared by the CPU and CUDA
// benchmarks (bench_unet.cpp, bench_unet_cuda.cu) and mirrored by torch_unet.py's SPECS:
// S the MNIST preset, M a wider one of ~6.5 M parameters, Q the quick profile's small U-Net.
#pragma once

#include "ouro/nn/unet.hpp"
#include "ouro/presets/unet.hpp"

namespace ouro::bench {

inline constexpr nn::unet_spec spec_s = presets::mnist_unet;
inline constexpr nn::unet_spec spec_m{.in_channels = 1,
                                      .image_size = 28,
                                      .base = 64,
                                      .mult = {1, 2, 2},
                                      .res_blocks = 2,
                                      .attention = {false, false, true},
                                      .heads = 1,
                                      .groups = 8,
                                      .dropout = 0.1,
                                      .classes = 10};
inline constexpr nn::unet_spec spec_q = presets::small_unet(1, 28, 10);

}  // namespace ouro::bench
