// The timesteps and class labels a diffusion model takes from the host (the trainer and the
// samplers draw them there), in the memory of the model's backend: t converted to the model's
// scalar type for the sinusoidal embedding, the labels as they are for the label embedding.
// On ouro::cpu the labels are the host view itself; elsewhere both are copied once per call
// (B values each, nothing beside a forward pass).
#pragma once

#include <cstdint>
#include <type_traits>

#include "ouro/core/backend.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::nn {

template <backend B, real_scalar T>
class host_inputs {
public:
    // t (B) -> t as T (B), in B's memory. The view stays valid until the next call or release().
    tensor_view<const T, B> timesteps(tensor_view<const std::int64_t> t) {
        t_host_.resize(t.dims());
        for (std::int64_t i = 0; i < t.numel(); ++i) t_host_[i] = static_cast<T>(t[i]);
        t_.resize(t.dims());
        copy_from_host(t_host_.view(), t_.view());
        return t_.view();
    }

    // y (B) or (0) -> the same labels in B's memory.
    tensor_view<const std::int64_t, B> labels(tensor_view<const std::int64_t> y) {
        if constexpr (std::is_same_v<B, cpu>) {
            return y;
        } else {
            y_.resize(y.dims());
            copy_from_host(y, y_.view());
            return y_.view();
        }
    }

    void release() noexcept {
        t_host_.release();
        t_.release();
        y_.release();
    }

private:
    tensor<T> t_host_;           // (B) on the host
    tensor<T, B> t_;             // (B)
    tensor<std::int64_t, B> y_;  // (B), only where B is not ouro::cpu
};

}  // namespace ouro::nn
