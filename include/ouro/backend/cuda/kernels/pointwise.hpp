// CUDA kernel bodies of the pointwise family: SiLU and ReLU with their gradients, sums, the
// per-channel shift, dropout, and the optimisers' passes (AdamW, SGD, the EMA's update and swap,
// clipping's scale, SIMS's extrapolation). Each is a functor over a 1-D launch (launch_shape.hpp) that loops
// grid-stride over its n elements; the same body runs in a real launch (launch.cuh) and, in the tests, in an emulated
// one (emulation.hpp). Each thread touches only its own elements, so any grid gives the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#include "ouro/backend/adamw_update.hpp"
#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/backend/op_params.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// exp and sqrt of float or double, from CUDA's math library on the device and <cmath> on the host.
template <class T>
OURO_HOST_DEVICE T exp_of(T v) {
#if defined(__CUDA_ARCH__)
    if constexpr (sizeof(T) == 4) return ::expf(v);
    else
        return ::exp(v);
#else
    return std::exp(v);
#endif
}
struct sqrt_of {
    template <class T>
    OURO_HOST_DEVICE T operator()(T v) const {
#if defined(__CUDA_ARCH__)
        if constexpr (sizeof(T) == 4) return ::sqrtf(v);
        else
            return ::sqrt(v);
#else
        return std::sqrt(v);
#endif
    }
};

// y = x·σ(x) = x / (1 + exp(−x)), as the CPU's silu_lanes.
template <class T>
struct silu_forward_body {
    const T* x;  // (n)
    T* y;        // (n)
    std::int64_t n;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) y[i] = x[i] / (T(1) + exp_of(-x[i]));
    }
};

// dx = dy·σ(x)·(1 + x·(1 − σ(x))), as the CPU's silu_grad_lanes.
template <class T>
struct silu_backward_body {
    const T* x;   // (n) the forward's input
    const T* dy;  // (n)
    T* dx;        // (n)
    std::int64_t n;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const T s = T(1) / (T(1) + exp_of(-x[i]));
            dx[i] = dy[i] * s * (x[i] * (T(1) - s) + T(1));
        }
    }
};

// y = max(x, 0), NaN kept (as torch.relu and the CPU's select).
template <class T>
struct relu_forward_body {
    const T* x;  // (n)
    T* y;        // (n)
    std::int64_t n;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) y[i] = x[i] < T(0) ? T(0) : x[i];
    }
};

// dx = dy where y > 0, else 0 (y: the forward's output).
template <class T>
struct relu_backward_body {
    const T* y;   // (n)
    const T* dy;  // (n)
    T* dx;        // (n)
    std::int64_t n;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) dx[i] = y[i] > T(0) ? dy[i] : T(0);
    }
};

// y = a + b: elementwise_add, and accumulate (y += x) with a = y.
template <class T>
struct add_body {
    const T* a;  // (n)
    const T* b;  // (n)
    T* y;        // (n), may be a
    std::int64_t n;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) y[i] = a[i] + b[i];
    }
};

// y[p, i] = x[p, i] + v[p] over planes p = (b, c) of `plane` elements each (add_per_channel).
template <class T>
struct add_per_channel_body {
    const T* x;  // (planes, plane)
    const T* v;  // (planes)
    T* y;        // (planes, plane)
    std::int64_t planes, plane;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t n = planes * plane;
        for (std::int64_t i = at.first(); i < n; i += at.stride()) y[i] = x[i] + v[i / plane];
    }
};

// Inverted dropout with the CPU's mask, bit for bit: element i is kept when the top 24 bits of its
// Philox draw (dropout_streams::block, the layout every backend shares) reach keep_from
// (dropout_streams::keep_threshold(p), computed on the host), and then scaled by scale = 1/(1 − p).
// One thread per block of 4 elements, as one Philox block gives 4 draws. mask may be null (the
// backward draws it again with the same seed, step and salt).
template <class T>
struct dropout_body {
    const T* x;  // (n)
    T* y;        // (n)
    T* mask;     // (n) or null
    std::int64_t n;
    std::uint64_t seed, step, salt;
    std::uint32_t keep_from;
    T scale;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t q = at.first(); 4 * q < n; q += at.stride()) {
            const philox_counter r = dropout_streams::block(seed, step, salt, q);
            for (int j = 0; j < 4 && 4 * q + j < n; ++j) {
                const std::int64_t i = 4 * q + j;
                const T m = (r[j] >> 8) >= keep_from ? scale : T(0);
                if (mask) mask[i] = m;
                y[i] = x[i] * m;
            }
        }
    }
};

// One AdamW step over a flat parameter buffer and its moments (backend/adamw_update.hpp, the CPU's formula).
template <class T>
struct adamw_body {
    T* p;        // (n) parameters
    T* m;        // (n) first moments
    T* v;        // (n) second moments
    const T* g;  // (n) gradients
    std::int64_t n;
    optim::adamw_step_scalars<T> s;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride())
            optim::adamw_update(p[i], m[i], v[i], g[i], s, sqrt_of{});
    }
};

// The EMA's update e −= (1 − decay)·(e − p) (optim::ema, diffusers' EMAModel.step form).
template <class T>
struct ema_body {
    T* e;        // (n) the average
    const T* p;  // (n) the current weights
    std::int64_t n;
    T one_minus_decay;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) e[i] -= one_minus_decay * (e[i] - p[i]);
    }
};

// SGD with momentum and L2 weight decay (the CPU's sgd_step): d = g + wd·p; b = μ·b + d; p −= lr·b.
template <class T>
struct sgd_body {
    T* p;        // (n) parameters
    T* b;        // (n) momentum buffer
    const T* g;  // (n) gradients
    std::int64_t n;
    T lr, mu, wd;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const T d = g[i] + wd * p[i];
            b[i] = mu * b[i] + d;
            p[i] -= lr * b[i];
        }
    }
};

// x *= s (gradient clipping's scaling).
template <class T>
struct scale_body {
    T* x;  // (n)
    std::int64_t n;
    T s;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) x[i] *= s;
    }
};

// Exchanges a and b element by element (the EMA's swap with the model's weights).
template <class T>
struct swap_body {
    T* a;  // (n)
    T* b;  // (n)
    std::int64_t n;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const T t = a[i];
            a[i] = b[i];
            b[i] = t;
        }
    }
};

// y = (1 + w)·y − w·x (SIMS's negative guidance, the CPU's extrapolate_away).
template <class T>
struct extrapolate_body {
    const T* x;  // (n)
    T* y;        // (n)
    std::int64_t n;
    T w;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < n; i += at.stride()) y[i] = (T(1) + w) * y[i] - w * x[i];
    }
};

}  // namespace ouro::cuda_kernels
