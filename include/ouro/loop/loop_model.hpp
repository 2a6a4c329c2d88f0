// What the self-consuming loop asks of its model and its sampler (loop::self_consuming's first two
// template arguments), each as a concept with a check_* that says in words which part a type lacks.
#pragma once

#include <concepts>
#include <cstdint>

#include "ouro/core/parameter_store.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/latent/latents.hpp"

namespace ouro::loop {

// A model the loop can run: the trainer fits it (trainable_model: forward, backward, store, a static
// spec with in_channels, image_size, classes, str and hash), the sampler draws from it (denoiser:
// predict) and its encoder gives the latents (encode), it is default-constructible, so the loop
// can hold one per method, reset_parameters(seed) initialises G0 and a const store() gives its
// weights to copy. nn::unet and
// loop::toy::mlp_denoiser are two. check_loop_model says in words which part a type lacks.
template <class M>
concept loop_model = diffusion::trainable_model<M> && diffusion::denoiser<M> && latent::encoder<M> &&
                     std::default_initializable<M> && requires(M& m, const M& cm, std::uint64_t seed) {
                         m.reset_parameters(seed);
                         { cm.store() } -> std::convertible_to<const parameter_store<float>&>;
                     };

// A sampler the loop can run: a diffusion::sampler that also names the parameterisation its model
// predicts (parameterization_type), which the loop's trainers then fit.
template <class S>
concept loop_sampler = diffusion::sampler<S> && requires { typename S::parameterization_type; };

template <class S>
constexpr bool check_loop_sampler() {
    static_assert(diffusion::check_sampler<S>());
    static_assert(requires { typename S::parameterization_type; },
                  "a loop sampler needs `using parameterization_type = ...;` (e.g. diffusion::epsilon_prediction), "
                  "what its model predicts: the loop trains every model with it");
    return loop_sampler<S>;
}

template <class M>
constexpr bool check_loop_model() {
    static_assert(diffusion::check_trainable_model<M>());
    static_assert(diffusion::check_denoiser<M>());
    static_assert(latent::check_encoder<M>());
    static_assert(std::default_initializable<M>,
                  "a loop model must be default-constructible: the loop holds one model per method");
    static_assert(requires(M& m, std::uint64_t seed) { m.reset_parameters(seed); },
                  "a loop model needs `void reset_parameters(std::uint64_t seed)` to initialise G0");
    static_assert(requires(const M& m) { { m.store() } -> std::convertible_to<const parameter_store<float>&>; },
                  "a loop model needs `const parameter_store<float>& store() const`: the loop copies G0's weights "
                  "from a const model");
    return loop_model<M>;
}

}  // namespace ouro::loop
