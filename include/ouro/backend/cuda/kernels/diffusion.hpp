// CUDA kernel bodies of the forward process: Gaussian noise with the CPU's Philox streams, and
// q_sample. The CPU draws an item's noise from one philox_stream(seed, diffusion_noise, first_index
// + b), a pair of normals per two uniforms (diffusion::draw_noise); a stream's k-th number is word
// k mod 4 of its block k / 4, so the pair j of item b is computed here on its own, statelessly, by
// one thread: the same uniform bits as the CPU, through the same box_muller (core/philox.hpp).
#pragma once

#include <cstdint>

#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"
#include "ouro/core/philox.hpp"

namespace ouro::cuda_kernels {

// out (items, per_item) = standard normals, item b from stream (seed, diffusion_noise,
// first_index + b), elements 2j and 2j + 1 from its uniforms 2j and 2j + 1 (the second dropped
// when per_item is odd and 2j + 1 = per_item, as the CPU's next item starts a new stream).
template <class T>
struct normal_noise_body {
    T* out;  // (items, per_item)
    std::int64_t items, per_item;
    std::uint64_t seed, first_index;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t pairs = (per_item + 1) / 2, total = items * pairs;
        const philox_key key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
        for (std::int64_t w = at.first(); w < total; w += at.stride()) {
            const std::int64_t b = w / pairs, j = w % pairs;
            const std::uint64_t index = first_index + static_cast<std::uint64_t>(b);
            // Uniforms 2j and 2j + 1 lie in one block (2j is even, so 2j mod 4 is 0 or 2).
            const philox_counter r = philox4x32(
                philox_counter{static_cast<std::uint32_t>(2 * j / 4), static_cast<std::uint32_t>(rng_purpose::diffusion_noise),
                               static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32)},
                key);
            const int word = static_cast<int>(2 * j % 4);
            float first = 0, second = 0;
            box_muller(philox_stream::uniform_from_bits(r[word] >> 8), philox_stream::uniform_from_bits(r[word + 1] >> 8),
                       first, second);
            T* item = out + b * per_item;
            item[2 * j] = static_cast<T>(first);
            if (2 * j + 1 < per_item) item[2 * j + 1] = static_cast<T>(second);
        }
    }
};

// x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε per item (DDPM eq. (4)), in double and rounded once, as
// diffusion::q_sample; a[b] and s[b] are item b's two square roots, looked up from its timestep on
// the host.
template <class T>
struct q_sample_body {
    const T* x0;       // (items, per_item)
    const T* eps;      // (items, per_item)
    const double* a;   // (items) sqrt(ᾱ_t)
    const double* s;   // (items) sqrt(1 − ᾱ_t)
    T* x_t;            // (items, per_item)
    std::int64_t items, per_item;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t n = items * per_item;
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const std::int64_t b = i / per_item;
            x_t[i] = static_cast<T>(a[b] * static_cast<double>(x0[i]) + s[b] * static_cast<double>(eps[i]));
        }
    }
};

}  // namespace ouro::cuda_kernels
