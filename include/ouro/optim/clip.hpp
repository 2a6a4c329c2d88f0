// Gradient clipping by the global L2 norm of all gradients of a parameter store, as
// torch.nn.utils.clip_grad_norm_ (norm_type 2), with the norm summed in double in a fixed order
// so it is the same at any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/parameter_store.hpp"

namespace ouro::optim {

namespace clip_detail {

// Work item of the parallel loops; the partial sums are added in chunk order.
inline constexpr std::int64_t chunk_elements = 4096;
// Independent partial sums within a chunk: a fixed count, not the SIMD width, so the order of
// the sum (and the norm's last bits) is the same on every instruction set.
inline constexpr int lanes = 8;

// Σ x[i]² over [begin, end), each square formed and summed in double.
template <real_scalar T>
double sum_of_squares(const T* x, std::int64_t begin, std::int64_t end) {
    double acc[lanes] = {};
    std::int64_t i = begin;
    for (; i + lanes <= end; i += lanes)
        for (int k = 0; k < lanes; ++k) {
            const double v = static_cast<double>(x[i + k]);
            acc[k] += v * v;
        }
    for (; i < end; ++i) {
        const double v = static_cast<double>(x[i]);
        acc[0] += v * v;
    }
    double sum = 0;
    for (int k = 0; k < lanes; ++k) sum += acc[k];
    return sum;
}

}  // namespace clip_detail

// The L2 norm of all gradients of `store` (the zero padding between parameters adds nothing).
// NaN when a gradient is NaN, +inf when one is infinite; also +inf when the squares overflow
// double (gradients beyond ~1e154, which only a diverged run produces).
template <real_scalar T>
double grad_norm(const parameter_store<T>& store) {
    const std::int64_t n = store.size();
    const std::int64_t chunks = (n + clip_detail::chunk_elements - 1) / clip_detail::chunk_elements;
    std::vector<double> partial(static_cast<std::size_t>(chunks));
    const T* g = store.grads();
    parallel_for(
        chunks,
        [&](std::int64_t c) {
            const std::int64_t begin = c * clip_detail::chunk_elements;
            const std::int64_t end = std::min(n, begin + clip_detail::chunk_elements);
            partial[static_cast<std::size_t>(c)] = clip_detail::sum_of_squares(g, begin, end);
        },
        clip_detail::chunk_elements * 2);
    double total = 0;
    for (double s : partial) total += s;
    return std::sqrt(total);
}

// Scales all gradients of `store` by max_norm / (norm + 1e-6) when that factor is below 1, as
// torch.nn.utils.clip_grad_norm_, and returns the norm before clipping.
// Requires max_norm > 0 (+inf never clips). A NaN or infinite norm is returned as it is and the
// gradients are left untouched: scaling by it would turn every gradient into NaN or zero and hide
// where the problem came from; the caller checks the returned value (std::isfinite).
template <real_scalar T>
double clip_grad_norm(parameter_store<T>& store, double max_norm) {
    require(max_norm > 0, "clip_grad_norm: max_norm must be positive, found ", max_norm);
    const double norm = grad_norm(store);
    if (!std::isfinite(norm)) return norm;
    const double coef = max_norm / (norm + 1e-6);
    if (coef >= 1) return norm;
    const T scale = static_cast<T>(coef);
    const std::int64_t n = store.size();
    const std::int64_t chunks = (n + clip_detail::chunk_elements - 1) / clip_detail::chunk_elements;
    T* g = store.grads();
    parallel_for(
        chunks,
        [&](std::int64_t c) {
            const std::int64_t begin = c * clip_detail::chunk_elements;
            const std::int64_t end = std::min(n, begin + clip_detail::chunk_elements);
            for (std::int64_t i = begin; i < end; ++i) g[i] *= scale;
        },
        clip_detail::chunk_elements);
    return norm;
}

}  // namespace ouro::optim
