// The forward (noising) process q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 − ᾱ_t) I) (Ho et al. 2020,
// eq. (4)), batched with a timestep per item. Noise and timesteps come from Philox keyed by
// (seed, purpose, item index), so an item's draw does not depend on its batch or the thread count.
#pragma once

#include <cstdint>
#include <type_traits>

#include "ouro/core/backend.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/diffusion/parameterization.hpp"
#include "ouro/diffusion/schedule.hpp"

namespace ouro::diffusion {

// Standard normal noise (Box-Muller in float, widened for T = double), item by item: item b of
// out (B, ...) takes its elements, in order, from
// philox_stream(seed, rng_purpose::diffusion_noise, first_index + b). Requires rank >= 1.
template <real_scalar T>
void draw_noise(tensor_view<T> out, std::uint64_t seed, std::uint64_t first_index) {
    require(out.rank() >= 1, "draw_noise: expected a batch (B, ...), found shape ", out.dims());
    const std::int64_t batch = out.dim(0);
    if (batch == 0) return;
    const std::int64_t per_item = out.numel() / batch;
    parallel_for(
        batch,
        [&](std::int64_t b) {
            philox_stream rng(seed, rng_purpose::diffusion_noise, first_index + static_cast<std::uint64_t>(b));
            for (std::int64_t i = b * per_item; i < (b + 1) * per_item; ++i) out[i] = static_cast<T>(rng.normal());
        },
        per_item * 32);
}

// Training timesteps uniform on [0, T): t[b] from philox_stream(seed, rng_purpose::diffusion_time,
// first_index + b). Requires t of rank 1 and T >= 1. Overwrites t.
inline void draw_timesteps(tensor_view<std::int64_t> t, std::int64_t timesteps, std::uint64_t seed,
                           std::uint64_t first_index) {
    require(t.rank() == 1, "draw_timesteps: expected timesteps of shape (B), found ", t.dims());
    require(timesteps >= 1 && timesteps <= 0xffffffffLL,
            "draw_timesteps: expected 1 <= T < 2^32, found T = ", timesteps);
    for (std::int64_t b = 0; b < t.numel(); ++b) {
        philox_stream rng(seed, rng_purpose::diffusion_time, first_index + static_cast<std::uint64_t>(b));
        t[b] = static_cast<std::int64_t>(rng.below(static_cast<std::uint32_t>(timesteps)));
    }
}

// x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε per item (DDPM eq. (4)), in double, rounded once to T.
// Requires x0, eps and x_t of one shape (B, ...), B >= 1, t of shape (B) in [0, T). Overwrites x_t.
template <real_scalar T>
void q_sample(const schedule_table& table, tensor_view<const std::type_identity_t<T>> x0,
              tensor_view<const std::int64_t> t, tensor_view<const std::type_identity_t<T>> eps, tensor_view<T> x_t) {
    require_shape(eps.dims(), x0.dims(), "q_sample eps");
    require_shape(x_t.dims(), x0.dims(), "q_sample x_t");
    detail::combine_per_item<T>(table, x0, eps, t, x_t, "q_sample", [](T x, T e, double a, double s) {
        return a * static_cast<double>(x) + s * static_cast<double>(e);
    });
}

// As above with ε drawn by draw_noise(eps, seed, first_index) and returned in `eps` (the training
// target of ε-prediction). Requires eps and x_t of x0's shape. Overwrites eps and x_t.
template <real_scalar T>
void q_sample(const schedule_table& table, tensor_view<const std::type_identity_t<T>> x0,
              tensor_view<const std::int64_t> t, std::uint64_t seed, std::uint64_t first_index, tensor_view<T> eps,
              tensor_view<T> x_t) {
    require_shape(eps.dims(), x0.dims(), "q_sample eps");
    require_shape(x_t.dims(), x0.dims(), "q_sample x_t");
    detail::require_batch_timesteps(table, x0, t, "q_sample");
    draw_noise(eps, seed, first_index);
    q_sample<T>(table, x0, t, eps, x_t);
}

}  // namespace ouro::diffusion
