// What a diffusion model predicts, batched: the training target of each item from (x_0, ε, t), and
// a model output turned back into (x_0, ε) given x_t and t. The parameterization concept and the
// three scalar maps (ε, x_0, v) are in prediction.hpp.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "ouro/core/backend.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/diffusion/prediction.hpp"
#include "ouro/diffusion/schedule.hpp"

namespace ouro::diffusion {

// ---- Batched over (B, ...) with a timestep per item --------------------------------------------

namespace detail {
// Requires x of rank >= 1 with B = x.dim(0) >= 1 and t of shape (B) with every t_b in [0, T).
template <class T>
std::int64_t require_batch_timesteps(const schedule_table& table, tensor_view<const T> x,
                                     tensor_view<const std::int64_t> t, const char* who) {
    require(x.rank() >= 1 && x.dim(0) >= 1, who, ": expected a non-empty batch (B, ...), found shape ", x.dims());
    const std::int64_t batch = x.dim(0);
    if (!(t.dims() == shape{batch}))
        fail(who, ": expected timesteps of shape ", shape{batch}, " (one per item), found ", t.dims());
    for (std::int64_t b = 0; b < batch; ++b) table.require_timestep(t[b], who);
    return batch;
}

// out[i] = combine(x0[i], eps[i], a, s) over every element i of item b, with a = sqrt(ᾱ_t) and
// s = sqrt(1 − ᾱ_t) in double at t = t[b], rounded once to T: the forward process (q_sample) and
// the training targets differ only in `combine`. Requires what require_batch_timesteps does; the
// callers check the operands' shapes.
template <class T, class Combine>
void combine_per_item(const schedule_table& table, tensor_view<const T> x0, tensor_view<const T> eps,
                      tensor_view<const std::int64_t> t, tensor_view<T> out, const char* who, Combine combine) {
    const std::int64_t batch = require_batch_timesteps(table, x0, t, who);
    const std::int64_t per_item = x0.numel() / batch;
    parallel_for(
        batch,
        [&](std::int64_t b) {
            const auto k = static_cast<std::size_t>(t[b]);
            const double a = table.sqrt_alphas_cumprod()[k], s = table.sqrt_one_minus_alphas_cumprod()[k];
            for (std::int64_t i = b * per_item; i < (b + 1) * per_item; ++i)
                out[i] = static_cast<T>(combine(x0[i], eps[i], a, s));
        },
        per_item * 4);
}
}  // namespace detail

// target = P::target(x0, eps, t) per item, e.g. v = a ε − s x_0 for v_prediction.
// Requires x0, eps and target of one shape (B, ...), t of shape (B) in [0, T). Overwrites target.
template <parameterization P, real_scalar T>
void training_target(const schedule_table& table, tensor_view<const std::type_identity_t<T>> x0,
                     tensor_view<const std::type_identity_t<T>> eps, tensor_view<const std::int64_t> t,
                     tensor_view<T> target) {
    require_shape(eps.dims(), x0.dims(), "training_target eps");
    require_shape(target.dims(), x0.dims(), "training_target target");
    detail::combine_per_item<T>(table, x0, eps, t, target, "training_target",
                                [](T x, T e, double a, double s) { return P::target(x, e, a, s); });
}

// (x0, eps) of a model output at (x_t, t) per item. Requires output, x_t, x0 and eps of one shape
// (B, ...), t of shape (B) in [0, T). Overwrites x0 and eps.
template <parameterization P, real_scalar T>
void split_prediction(const schedule_table& table, tensor_view<const std::type_identity_t<T>> output,
                      tensor_view<const std::type_identity_t<T>> x_t, tensor_view<const std::int64_t> t,
                      tensor_view<T> x0, tensor_view<T> eps) {
    require_shape(x_t.dims(), output.dims(), "split_prediction x_t");
    require_shape(x0.dims(), output.dims(), "split_prediction x0");
    require_shape(eps.dims(), output.dims(), "split_prediction eps");
    const std::int64_t batch = detail::require_batch_timesteps(table, output, t, "split_prediction");
    const std::int64_t per_item = output.numel() / batch;
    parallel_for(
        batch,
        [&](std::int64_t b) {
            const auto k = static_cast<std::size_t>(t[b]);
            const double a = table.sqrt_alphas_cumprod()[k], s = table.sqrt_one_minus_alphas_cumprod()[k];
            for (std::int64_t i = b * per_item; i < (b + 1) * per_item; ++i) {
                x0[i] = static_cast<T>(P::to_x0(output[i], x_t[i], a, s));
                eps[i] = static_cast<T>(P::to_eps(output[i], x_t[i], a, s));
            }
        },
        per_item * 8);
}

}  // namespace ouro::diffusion
