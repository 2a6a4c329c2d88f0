// CUDA kernel bodies of the forward process and the sampler: Gaussian noise with the CPU's Philox
// streams, q_sample, and the DDIM step. The CPU draws an item's noise from one philox_stream(seed, diffusion_noise,
// first_index
// + b), a pair of normals per two uniforms (diffusion::draw_noise); a stream's k-th number is word
// k mod 4 of its block k / 4, so the pair j of item b is computed here on its own, statelessly, by
// one thread: the same uniform bits as the CPU, through the same box_muller (core/philox.hpp).
#pragma once

#include <cstdint>

#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/diffusion/prediction.hpp"

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
            const philox_counter r =
                philox4x32(philox_counter{static_cast<std::uint32_t>(2 * j / 4),
                                          static_cast<std::uint32_t>(rng_purpose::diffusion_noise),
                                          static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32)},
                           key);
            const int word = static_cast<int>(2 * j % 4);
            float first = 0, second = 0;
            box_muller(philox_stream::uniform_from_bits(r[word] >> 8),
                       philox_stream::uniform_from_bits(r[word + 1] >> 8), first, second);
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
    const T* x0;      // (items, per_item)
    const T* eps;     // (items, per_item)
    const double* a;  // (items) sqrt(ᾱ_t)
    const double* s;  // (items) sqrt(1 − ᾱ_t)
    T* x_t;           // (items, per_item)
    std::int64_t items, per_item;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t n = items * per_item;
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const std::int64_t b = i / per_item;
            x_t[i] = static_cast<T>(a[b] * static_cast<double>(x0[i]) + s[b] * static_cast<double>(eps[i]));
        }
    }
};

// One DDIM step (Song et al. 2021, eq. (12)) per element, as diffusion::ddim_step with x_0 left as
// predicted or clipped to [−1, 1] (dynamic thresholding sorts each item, which this body does not
// do: the host refuses it), in double and rounded once:
//   x̂_0 = P::to_x0(out, x_t, a, s) (clipped when clip),  ε̂ = clip ? (x_t − a x̂_0)/s : P::to_eps(...)
//   x_prev = a_prev x̂_0 + direction ε̂ + σ z   (σ z only when noise is not null)
// with a, s, a_prev, direction and σ the step's scalars, computed on the host as ddim_step does.
template <class P, class T>
struct ddim_step_body {
    const T* x_t;           // (n)
    const T* model_output;  // (n)
    const T* noise;         // (n) or null (σ = 0)
    T* x_prev;              // (n), may be x_t
    std::int64_t n;
    double a, s, a_prev, direction, sigma;
    bool clip;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const double xt = static_cast<double>(x_t[i]), out = static_cast<double>(model_output[i]);
            double x0 = P::to_x0(out, xt, a, s);
            if (clip) x0 = x0 < -1.0 ? -1.0 : (x0 > 1.0 ? 1.0 : x0);
            const double eps = clip ? diffusion::eps_from_x0(x0, xt, a, s) : P::to_eps(out, xt, a, s);
            double v = a_prev * x0 + direction * eps;
            if (noise) v += sigma * static_cast<double>(noise[i]);
            x_prev[i] = static_cast<T>(v);
        }
    }
};

}  // namespace ouro::cuda_kernels
