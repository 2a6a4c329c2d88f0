// CUDA kernel bodies of the embeddings, as ops<cpu>'s embedding_ops: the sinusoidal timestep
// embedding (guided-diffusion's timestep_embedding: cos first) with its gradient, and the class
// label lookup with its gradient. The label gradient takes one thread per (class, column) and adds
// the batch's rows in order, as the CPU does, so repeated labels sum to the same bits without
// atomics. Labels are checked on the host before a launch (a body cannot raise an ouro::error).
#pragma once

#include <cmath>
#include <cstdint>

#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// cos, sin, exp and log in double, from CUDA's math library on the device and <cmath> on the host.
struct double_math {
#if defined(__CUDA_ARCH__)
    OURO_HOST_DEVICE static double cos(double v) { return ::cos(v); }
    OURO_HOST_DEVICE static double sin(double v) { return ::sin(v); }
    OURO_HOST_DEVICE static double exp(double v) { return ::exp(v); }
    OURO_HOST_DEVICE static double log(double v) { return ::log(v); }
#else
    static double cos(double v) { return std::cos(v); }
    static double sin(double v) { return std::sin(v); }
    static double exp(double v) { return std::exp(v); }
    static double log(double v) { return std::log(v); }
#endif
    // freq_i = exp(−ln(max_period)·i / half), the CPU's frequency_.
    OURO_HOST_DEVICE static double frequency(std::int64_t i, std::int64_t half, double max_period) {
        return exp(-log(max_period) * static_cast<double>(i) / static_cast<double>(half));
    }
};

// y[b] = [cos(t_b·freq_0 …), sin(t_b·freq_0 …), 0 if dim is odd]: one thread per (b, i < half),
// the zero column by the thread of i = 0.
template <class T>
struct sinusoidal_embedding_body {
    const T* t;  // (batch)
    T* y;        // (batch, dim)
    std::int64_t batch, dim;
    double max_period;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t half = dim / 2, n = batch * (half > 0 ? half : 1);
        for (std::int64_t k = at.first(); k < n; k += at.stride()) {
            const std::int64_t b = half > 0 ? k / half : k, i = half > 0 ? k % half : 0;
            T* row = y + b * dim;
            if (half > 0) {
                const double arg = static_cast<double>(t[b]) * double_math::frequency(i, half, max_period);
                row[i] = static_cast<T>(double_math::cos(arg));
                row[half + i] = static_cast<T>(double_math::sin(arg));
            }
            if (i == 0 && dim % 2) row[dim - 1] = T(0);
        }
    }
};

// dt_b = Σ_i freq_i·(dy[b, half + i]·cos(t_b·freq_i) − dy[b, i]·sin(t_b·freq_i)), in order, in
// double: one thread per b.
template <class T>
struct sinusoidal_embedding_backward_body {
    const T* t;   // (batch)
    const T* dy;  // (batch, dim)
    T* dt;        // (batch)
    std::int64_t batch, dim;
    double max_period;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t half = dim / 2;
        for (std::int64_t b = at.first(); b < batch; b += at.stride()) {
            const T* row = dy + b * dim;
            double sum = 0;
            for (std::int64_t i = 0; i < half; ++i) {
                const double f = double_math::frequency(i, half, max_period), arg = static_cast<double>(t[b]) * f;
                sum += f * (static_cast<double>(row[half + i]) * double_math::cos(arg) -
                            static_cast<double>(row[i]) * double_math::sin(arg));
            }
            dt[b] = static_cast<T>(sum);
        }
    }
};

// y[b, j] = table[labels[b], j].
template <class T>
struct label_embedding_forward_body {
    const std::int64_t* labels;  // (batch), each in [0, classes)
    const T* table;              // (classes, dim)
    T* y;                        // (batch, dim)
    std::int64_t batch, dim;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t k = at.first(); k < batch * dim; k += at.stride())
            y[k] = table[labels[k / dim] * dim + k % dim];
    }
};

// dtable[c, j] += Σ_{b: labels[b] = c} dy[b, j], b in order: one thread per (c, j).
template <class T>
struct label_embedding_backward_body {
    const std::int64_t* labels;  // (batch)
    const T* dy;                 // (batch, dim)
    T* dtable;                   // (classes, dim)
    std::int64_t batch, classes, dim;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t k = at.first(); k < classes * dim; k += at.stride()) {
            const std::int64_t c = k / dim, j = k % dim;
            T v = dtable[k];
            for (std::int64_t b = 0; b < batch; ++b)
                if (labels[b] == c) v += dy[b * dim + j];
            dtable[k] = v;
        }
    }
};

}  // namespace ouro::cuda_kernels
