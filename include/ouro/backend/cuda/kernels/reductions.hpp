// CUDA kernel bodies that reduce: per-channel sums and the mean squared error. Each sum is taken in
// one fixed order whatever the grid, so a launch gives the same bits every time (the determinism
// promise of the CUDA backend: fixed for a given launch shape, not across shapes). Written without
// shared memory or atomics for now, so the emulated launch (emulation.hpp) runs them exactly: a
// thread per output (sum_per_channel), or a thread per strided slice and a second, one-thread
// pass over the slices (mse_loss). Block-cooperative versions are faster and come with a
// cooperative emulation.
#pragma once

#include <cstdint>

#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// y[p] = Σ_i x[p, i] in index order in double, one thread per plane p: the CPU's sum_per_channel,
// bit for bit.
template <class T>
struct sum_per_channel_body {
    const T* x;  // (planes, plane)
    T* y;        // (planes)
    std::int64_t planes, plane;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t p = at.first(); p < planes; p += at.stride()) {
            double sum = 0;
            for (std::int64_t i = 0; i < plane; ++i) sum += static_cast<double>(x[p * plane + i]);
            y[p] = static_cast<T>(sum);
        }
    }
};

// The first pass of mse_loss: partial[s] = Σ (pred − target)² over the elements s, s + slices,
// s + 2·slices, … in double (slices = the launch's thread count, one slice per thread), and
// dpred = 2·(pred − target)/n when dpred is not null (the CPU's gradient, bit for bit).
template <class T>
struct mse_partial_body {
    const T* pred;    // (n)
    const T* target;  // (n)
    T* dpred;         // (n) or null
    double* partial;  // (slices)
    std::int64_t n, slices;
    T scale;  // 2 / n, rounded to T once as on the CPU
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t s = at.first(); s < slices; s += at.stride()) {
            double sum = 0;
            for (std::int64_t i = s; i < n; i += slices) {
                const T d = pred[i] - target[i];
                sum += static_cast<double>(d) * static_cast<double>(d);
                if (dpred) dpred[i] = scale * d;
            }
            partial[s] = sum;
        }
    }
};

// The second pass: total[0] = Σ_s partial[s] / n, in slice order, by one thread.
struct mse_total_body {
    const double* partial;  // (slices)
    double* total;          // (1)
    std::int64_t slices, n;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        if (at.first() != 0) return;
        double sum = 0;
        for (std::int64_t s = 0; s < slices; ++s) sum += partial[s];
        total[0] = sum / static_cast<double>(n);
    }
};

}  // namespace ouro::cuda_kernels
