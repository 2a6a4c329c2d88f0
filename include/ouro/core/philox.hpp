// Philox4x32-10, the counter-based RNG of Salmon, Moraes, Dror & Shaw, "Parallel random numbers:
// as easy as 1, 2, 3" (SC 2011). Every random number in ouro is a pure function of
// (seed, purpose, index, draw), so results never depend on thread count, batch size or backend.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "ouro/core/host_device.hpp"

namespace ouro {

using philox_counter = std::array<std::uint32_t, 4>;
using philox_key = std::array<std::uint32_t, 2>;

namespace detail {
inline constexpr std::uint32_t philox_m0 = 0xD2511F53u;  // round multipliers (Salmon et al., Table 2)
inline constexpr std::uint32_t philox_m1 = 0xCD9E8D57u;
inline constexpr std::uint32_t philox_w0 = 0x9E3779B9u;  // key bumps: golden ratio, sqrt(3) - 1
inline constexpr std::uint32_t philox_w1 = 0xBB67AE85u;

OURO_HOST_DEVICE constexpr void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
    const std::uint64_t p = std::uint64_t{a} * std::uint64_t{b};
    hi = static_cast<std::uint32_t>(p >> 32);
    lo = static_cast<std::uint32_t>(p);
}
}  // namespace detail

// One Philox4x32 block with `rounds` rounds (10 is the standard, crush-resistant choice). Also a
// device function, so the CUDA backend draws the CPU's numbers (std::array's members are constexpr:
// ouro::cuda compiles with --expt-relaxed-constexpr).
template <int rounds = 10>
OURO_HOST_DEVICE constexpr philox_counter philox4x32(philox_counter ctr, philox_key key) {
    for (int r = 0; r < rounds; ++r) {
        if (r > 0) {
            key[0] += detail::philox_w0;
            key[1] += detail::philox_w1;
        }
        std::uint32_t hi0, lo0, hi1, lo1;
        detail::mulhilo(detail::philox_m0, ctr[0], hi0, lo0);
        detail::mulhilo(detail::philox_m1, ctr[2], hi1, lo1);
        ctr = {hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0};
    }
    return ctr;
}

// The standard normal pair of Box–Muller (Box & Muller 1958) from two uniforms on (0, 1):
// first = r·cos θ, second = r·sin θ, r = sqrt(−2 ln u1), θ = 2π·u2, in float. philox_stream::normal
// returns first, then second; the CUDA backend's noise kernels call it too (with the device's
// logf, sqrtf, sinf and cosf there, which may differ from the host's in the last bits).
OURO_HOST_DEVICE inline void box_muller(float u1, float u2, float& first, float& second) {
#if defined(__CUDA_ARCH__)
    const float r = ::sqrtf(-2.0f * ::logf(u1));
    const float theta = 6.28318530717958647692f * u2;
    second = r * ::sinf(theta);
    first = r * ::cosf(theta);
#else
    const float r = std::sqrt(-2.0f * std::log(u1));
    const float theta = 6.28318530717958647692f * u2;
    second = r * std::sin(theta);
    first = r * std::cos(theta);
#endif
}

// Purposes keep streams that share a seed apart (noise for training, dropout, shuffling, ...).
enum class rng_purpose : std::uint32_t {
    init = 1,
    shuffle = 2,
    dropout = 3,
    diffusion_noise = 4,
    diffusion_time = 5,
    sampler = 6,
    label_drop = 7,
    // The numbers below are also used by the golden scripts in tests/golden/: keep them.
    metrics_subset = 101,  // KID's random subsets
    kmeans_seeding = 102,
    eigen_start = 103,
    metrics_bootstrap = 104,  // FID's bootstrap resamples
    probe_holdout = 111,
    filter_random = 121,
    filter_stage = 122,
    latent_noise = 131,
    toy_data = 141,
    loop_seeds = 151,  // the self-consuming loop's per-(method, generation) seeds
    user = 1000,
};

// A stream of random numbers keyed by (seed, purpose, index): the key holds the seed, the counter
// holds (block, purpose, index). Two streams with different keys or indices never overlap.
class philox_stream {
public:
    constexpr philox_stream(std::uint64_t seed, rng_purpose purpose, std::uint64_t index = 0)
        : key_{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)},
          purpose_(static_cast<std::uint32_t>(purpose)),
          index_(index) {}

    constexpr std::uint32_t next_u32() {
        if (used_ == 4) {
            block_ = philox4x32(philox_counter{block_index_, purpose_, static_cast<std::uint32_t>(index_),
                                               static_cast<std::uint32_t>(index_ >> 32)},
                                key_);
            ++block_index_;
            used_ = 0;
        }
        return block_[used_++];
    }

    // Uniform on the open interval (0, 1), 24 random bits. (k + 0.5)·2^-24 rounds to 1.0f for the
    // top k, which is therefore mapped to the largest float below 1.
    constexpr float uniform() { return uniform_from_bits(next_u32() >> 8); }
    OURO_HOST_DEVICE static constexpr float uniform_from_bits(std::uint32_t k24) {
        const float u = (static_cast<float>(k24) + 0.5f) * 0x1p-24f;
        return u < 1.0f ? u : 0x1.fffffep-1f;
    }

    // Uniform on (0, 1) with 53 random bits.
    double uniform_double() {
        const std::uint64_t hi = next_u32() >> 5, lo = next_u32() >> 6;  // 27 + 26 bits
        return (static_cast<double>((hi << 26) | lo) + 0.5) * 0x1p-53;
    }

    // Standard normal by Box-Muller (Box & Muller 1958); both values of a pair are used.
    float normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        const float u1 = uniform(), u2 = uniform();
        float first = 0;
        box_muller(u1, u2, first, spare_);
        has_spare_ = true;
        return first;
    }

    // Uniform integer in [0, n) by Lemire's multiply-shift, with rejection for exactness.
    std::uint32_t below(std::uint32_t n) {
        std::uint64_t m = std::uint64_t{next_u32()} * n;
        auto low = static_cast<std::uint32_t>(m);
        if (low < n) {
            const std::uint32_t threshold = (0u - n) % n;
            while (low < threshold) {
                m = std::uint64_t{next_u32()} * n;
                low = static_cast<std::uint32_t>(m);
            }
        }
        return static_cast<std::uint32_t>(m >> 32);
    }

private:
    philox_key key_;
    std::uint32_t purpose_;
    std::uint64_t index_;
    std::uint32_t block_index_ = 0;
    philox_counter block_{};
    int used_ = 4;
    float spare_ = 0.0f;
    bool has_spare_ = false;
};

}  // namespace ouro
