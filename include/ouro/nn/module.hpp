// What a module is. A module registers its parameters in a parameter_store when built, runs
// forward (keeping what its backward needs) and backward (returning the input gradient and
// accumulating parameter gradients in the store). Outputs are views of buffers the module owns and
// reuses, so a training step allocates nothing after the first one.
//
//   template <backend B, real_scalar T> class conv2d {
//     conv2d(parameter_store<T>& store, std::string_view name, ...);   // registers "name.weight", ...
//     void reset_parameters(std::uint64_t seed);                        // PyTorch's default init
//     tensor_view<const T> forward(tensor_view<const T> x, const forward_context& ctx = {});
//     tensor_view<const T> backward(tensor_view<const T> dy);
//   };
//
// A view returned by forward/backward stays valid until the next call of the same function, or
// until release(), which frees every buffer a module holds (to the buffer cache).
#pragma once

#include <concepts>
#include <cstdint>

#include "ouro/core/backend.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::nn {

// Per-call state shared by all modules of a forward pass: train/eval mode and the keys of the
// randomness used in training (dropout), so a step is reproducible from (seed, step).
//
// `inference` promises that no backward follows (sampling, feature extraction), as torch.no_grad:
// modules keep no views for backward, and a block frees each intermediate as soon as its consumer
// has run, so the pass holds only the live activations instead of every layer's output. The
// outputs are the same; a backward after such a forward is an error.
//
// `matmul` = matmul_precision::bf16 (with `inference` only) runs the convolutions' products on
// operands rounded to bfloat16 with fp32 sums, about twice the multiply-adds per cycle on CPUs
// with AVX512-BF16; norms, activations, attention and the tensors between layers stay fp32.
struct forward_context {
    bool training = false;
    bool inference = false;
    std::uint64_t seed = 0;
    std::uint64_t step = 0;
    matmul_precision matmul = matmul_precision::fp32;

    // Whether a layer may run fused with its neighbour (nn::norm_silu_conv, res_block, upsample):
    // inference, so nothing is kept for a backward, and not training, so no dropout falls between
    // them. The fused paths give the same outputs.
    bool fusable() const { return inference && !training; }
};

// A module with one input and one output.
template <class M, class T>
concept unary_module = requires(M m, tensor_view<const T> x, const forward_context& ctx, std::uint64_t seed) {
    { m.forward(x, ctx) } -> std::convertible_to<tensor_view<const T>>;
    { m.backward(x) } -> std::convertible_to<tensor_view<const T>>;
    m.reset_parameters(seed);
};

// Initial values are drawn on the host, in element order, whatever the backend: a seed gives
// the same parameters on every backend. For a backend without host memory the values are made in
// a host tensor and copied over (once per parameter, at initialisation only).
template <class T, backend B, class Draw>
void fill_on_host(tensor_view<T, B> v, Draw&& draw) {
    if constexpr (B::host_memory) {
        for (auto& x : v) x = draw();
    } else {
        tensor<T> host(v.dims());
        for (auto& x : host) x = draw();
        copy_from_host(tensor_view<const T>(host.view()), v);
    }
}

template <class T, backend B>
void fill_constant(tensor_view<T, B> v, T value) {
    fill_on_host(v, [value] { return value; });
}

// PyTorch's default initialisation of Linear and Conv2d (kaiming_uniform with a = sqrt(5)):
// weights and biases uniform on [-1/sqrt(fan_in), 1/sqrt(fan_in)], drawn from Philox keyed by
// (seed, init, salt) so every parameter has its own stream.
template <class T, backend B>
void fill_uniform(tensor_view<T, B> v, T bound, std::uint64_t seed, std::uint64_t salt) {
    philox_stream rng(seed, rng_purpose::init, salt);
    fill_on_host(v, [&] { return static_cast<T>((2.0 * rng.uniform_double() - 1.0) * bound); });
}

// N(0, 1) values from Philox keyed by (seed, init, salt): torch.nn.Embedding's initialisation.
template <class T, backend B>
void fill_normal(tensor_view<T, B> v, std::uint64_t seed, std::uint64_t salt) {
    philox_stream rng(seed, rng_purpose::init, salt);
    fill_on_host(v, [&] { return static_cast<T>(rng.normal()); });
}

}  // namespace ouro::nn
