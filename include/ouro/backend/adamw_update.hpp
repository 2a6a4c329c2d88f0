// The AdamW update of one element, or of one SIMD batch of elements: the formula every backend
// runs (the CPU's kernel with xsimd batches, the CUDA kernel body per element), in torch's order of
// operations (_single_tensor_adamw), from scalars computed once per step on the host. It sits in
// backend/, beside op_params.hpp, because every backend's kernels include it; optim::adamw
// computes the scalars. Nothing here depends on a backend: the caller passes the square root its
// lanes need.
#pragma once

#include <cmath>
#include <cstdint>

#include "ouro/core/host_device.hpp"

namespace ouro::optim {

// A step's scalars, each rounded to the parameters' type once (as torch passes Python floats to
// its kernels): for step t with learning rate lr and weight decay wd,
//   decay = 1 − lr·wd,  sqrt_bias_correction2 = sqrt(1 − β2^t),  neg_step_size = −lr / (1 − β1^t).
template <class T>
struct adamw_step_scalars {
    T decay, beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bias_correction2, eps, neg_step_size;
};

// The scalars of step t (counted from 1) of AdamW with these hyper-parameters (host code).
template <class T>
adamw_step_scalars<T> adamw_scalars_for(double lr, double beta1, double beta2, double eps, double weight_decay,
                                        std::int64_t t) {
    const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(t));
    const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(t));
    return {.decay = static_cast<T>(1.0 - lr * weight_decay),
            .beta1 = static_cast<T>(beta1),
            .one_minus_beta1 = static_cast<T>(1.0 - beta1),
            .beta2 = static_cast<T>(beta2),
            .one_minus_beta2 = static_cast<T>(1.0 - beta2),
            .sqrt_bias_correction2 = static_cast<T>(std::sqrt(bias_correction2)),
            .eps = static_cast<T>(eps),
            .neg_step_size = static_cast<T>(-(lr / bias_correction1))};
}

// p *= decay;  m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²;
// p += neg_step_size · m / (sqrt(v) / sqrt_bias_correction2 + eps)
// (Loshchilov & Hutter 2019, Algorithm 2, with torch's bias corrections). V is T or a SIMD batch
// of T; sqrt(v) is the caller's square root of V.
template <class V, class T, class Sqrt>
OURO_HOST_DEVICE void adamw_update(V& p, V& m, V& v, const V& g, const adamw_step_scalars<T>& s, Sqrt sqrt) {
    p = p * V(s.decay);
    m = m * V(s.beta1) + g * V(s.one_minus_beta1);
    v = v * V(s.beta2) + V(s.one_minus_beta2) * g * g;
    const V denom = sqrt(v) / V(s.sqrt_bias_correction2) + V(s.eps);
    p = p + V(s.neg_step_size) * m / denom;
}

}  // namespace ouro::optim
