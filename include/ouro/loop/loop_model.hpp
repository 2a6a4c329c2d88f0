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
// The two parts of a loop model that no other concept names, each once: check_loop_model asserts
// these same concepts, so the concept and its explanation cannot drift apart.
template <class M>
concept initialisable_model = requires(M& m, std::uint64_t seed) {
    m.reset_parameters(seed);
};
template <class M>
concept model_with_const_store = requires(const M& cm) {
    { cm.store() } -> std::convertible_to<const parameter_store<float, backend_of_t<M>>&>;
};

template <class M>
concept loop_model = diffusion::trainable_model<M> && diffusion::denoiser<M> && latent::encoder<M> &&
    std::default_initializable<M> && initialisable_model<M> && model_with_const_store<M>;

// A sampler the loop can run: a diffusion::sampler that also names the parameterisation its model
// predicts (parameterization_type), which the loop's trainers then fit.
template <class S>
concept loop_sampler = diffusion::sampler<S> && requires {
    typename S::parameterization_type;
};

template <class S>
constexpr bool check_loop_sampler() {
    static_assert(diffusion::check_sampler<S>());
    static_assert(
        requires { typename S::parameterization_type; },
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
    static_assert(initialisable_model<M>,
                  "a loop model needs `void reset_parameters(std::uint64_t seed)` to initialise G0");
    static_assert(model_with_const_store<M>,
                  "a loop model needs `const parameter_store<float, B>& store() const` (B: its backend): the loop "
                  "copies G0's weights from a const model");
    return loop_model<M>;
}

}  // namespace ouro::loop
