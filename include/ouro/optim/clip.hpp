// Gradient clipping by the global L2 norm of all gradients of a parameter store, as
// torch.nn.utils.clip_grad_norm_ (norm_type 2), with the norm summed in double in a fixed order
// (ops<B>::sum_of_squares) so it is the same at any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"

namespace ouro::optim {

// The L2 norm of all gradients of `store` (the zero padding between parameters adds nothing).
// NaN when a gradient is NaN, +inf when one is infinite; also +inf when the squares overflow
// double (gradients beyond ~1e154, which only a diverged run produces).
template <real_scalar T, backend B>
double grad_norm(const parameter_store<T, B>& store) {
    return std::sqrt(ops<B>::template sum_of_squares<T>(tensor_view<const T, B>(store.grads(), shape{store.size()})));
}

// Scales all gradients of `store` by max_norm / (norm + 1e-6) when that factor is below 1, as
// torch.nn.utils.clip_grad_norm_, and returns the norm before clipping.
// Requires max_norm > 0 (+inf never clips). A NaN or infinite norm is returned as it is and the
// gradients are left untouched: scaling by it would turn every gradient into NaN or zero and hide
// where the problem came from; the caller checks the returned value (std::isfinite).
template <real_scalar T, backend B>
double clip_grad_norm(parameter_store<T, B>& store, double max_norm) {
    require(max_norm > 0, "clip_grad_norm: max_norm must be positive, found ", max_norm);
    const double norm = grad_norm(store);
    if (!std::isfinite(norm)) return norm;
    const double coef = max_norm / (norm + 1e-6);
    if (coef >= 1) return norm;
    ops<B>::template scale<T>(tensor_view<T, B>(store.grads(), shape{store.size()}), static_cast<T>(coef));
    return norm;
}

}  // namespace ouro::optim
