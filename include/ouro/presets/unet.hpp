// U-Net specs for the datasets of the paper, sized for CPU training. The layout follows the DDPM /
// guided-diffusion U-Net (Ho et al. 2020; Dhariwal & Nichol 2021); the sizes are ours, chosen so a
// class-conditional MNIST model trains in well under an hour on 2 cores (see README).
#pragma once

#include "ouro/nn/unet.hpp"

namespace ouro::presets {

// 28×28 grey digits, 10 classes: 28 -> 14 -> 7, attention at 7×7 only.
inline constexpr nn::unet_spec mnist_unet{.in_channels = 1,
                                          .image_size = 28,
                                          .base = 32,
                                          .mult = {1, 2, 2},
                                          .res_blocks = 1,
                                          .attention = {false, false, true},
                                          .heads = 1,
                                          .groups = 8,
                                          .dropout = 0.1,
                                          .classes = 10};

// 32×32 RGB (CIFAR-10): 32 -> 16 -> 8, attention at 16×16 as in DDPM's CIFAR-10 model, narrower.
inline constexpr nn::unet_spec cifar10_unet{.in_channels = 3,
                                            .image_size = 32,
                                            .base = 64,
                                            .mult = {1, 2, 2},
                                            .res_blocks = 2,
                                            .attention = {false, true, false},
                                            .heads = 1,
                                            .groups = 16,
                                            .dropout = 0.1,
                                            .classes = 10};

// 64×64 RGB (CelebA): 64 -> 32 -> 16 -> 8.
inline constexpr nn::unet_spec celeba_unet{.in_channels = 3,
                                           .image_size = 64,
                                           .base = 64,
                                           .mult = {1, 2, 2, 4},
                                           .res_blocks = 2,
                                           .attention = {false, false, true, false},
                                           .heads = 1,
                                           .groups = 16,
                                           .dropout = 0.1,
                                           .classes = 0};

// Small U-Nets for the smoke and quick profiles (ours): two downsamplings, no attention.
constexpr nn::unet_spec small_unet(int in_channels, int image_size, int classes) {
    return {.in_channels = in_channels,
            .image_size = image_size,
            .base = 16,
            .mult = {1, 2, 2},
            .res_blocks = 1,
            .attention = {},
            .heads = 1,
            .groups = 8,
            .dropout = 0.1,
            .classes = classes};
}

}  // namespace ouro::presets
