// CUDA kernel bodies that reduce: per-channel sums, the mean squared error, the softmax
// cross-entropy, clipping's sum of squares and the finite check. Each sum is taken in
// one fixed order whatever the grid, so a launch gives the same bits every time (the determinism
// promise of the CUDA backend: fixed for a given launch shape, not across shapes). Written without
// shared memory or atomics for now, so the emulated launch (emulation.hpp) runs them exactly: a
// thread per output (sum_per_channel), or a thread per strided slice and a second, one-thread
// pass over the slices (mse_loss). Block-cooperative versions are faster and come with a
// cooperative emulation.
#pragma once

#include <cmath>
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

// Softmax cross-entropy, first pass: one thread per row i of logits (N, K): row_loss[i] =
// m + log Σ_j exp(z_j − m) − z_{y_i} with m the row's maximum, and dlogits[i, j] = (softmax_j −
// [j = y_i]) / N when dlogits is not null, all in double as the CPU. The second pass is
// mean_of_rows_body. Labels are checked on the host before the launch.
template <class T>
struct softmax_cross_entropy_rows_body {
    const T* logits;             // (N, K)
    const std::int64_t* labels;  // (N), each in [0, K)
    T* dlogits;                  // (N, K) or null
    double* row_loss;            // (N)
    std::int64_t n, k;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const double inv_n = 1.0 / static_cast<double>(n);
        for (std::int64_t i = at.first(); i < n; i += at.stride()) {
            const T* z = logits + i * k;
            double m = static_cast<double>(z[0]);
            for (std::int64_t j = 1; j < k; ++j) m = static_cast<double>(z[j]) > m ? static_cast<double>(z[j]) : m;
            double sum = 0;
            for (std::int64_t j = 0; j < k; ++j) sum += exp_double(static_cast<double>(z[j]) - m);
            const double log_sum = log_double(sum);
            const std::int64_t y = labels[i];
            row_loss[i] = m + log_sum - static_cast<double>(z[y]);
            if (dlogits)
                for (std::int64_t j = 0; j < k; ++j) {
                    const double p = exp_double(static_cast<double>(z[j]) - m - log_sum);
                    dlogits[i * k + j] = static_cast<T>((j == y ? p - 1.0 : p) * inv_n);
                }
        }
    }
    OURO_HOST_DEVICE static double exp_double(double v) {
#if defined(__CUDA_ARCH__)
        return ::exp(v);
#else
        return std::exp(v);
#endif
    }
    OURO_HOST_DEVICE static double log_double(double v) {
#if defined(__CUDA_ARCH__)
        return ::log(v);
#else
        return std::log(v);
#endif
    }
};

// total[0] = (Σ_i rows[i], in order) · scale, by one thread: the second pass of the cross-entropy
// (scale = 1/N).
struct mean_of_rows_body {
    const double* rows;  // (n)
    double* total;       // (1)
    std::int64_t n;
    double scale;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        if (at.first() != 0) return;
        double sum = 0;
        for (std::int64_t i = 0; i < n; ++i) sum += rows[i];
        total[0] = sum * scale;
    }
};

// Σ x² in the CPU's order (backend/cpu/update.hpp, sum_of_squares): one thread per chunk of
// `chunk` elements, 8 partial sums in double within it (element i into lane (i − begin) mod 8,
// the tail into lane 0), then the lanes in order; partial[c] is chunk c's sum.
template <class T>
struct sum_of_squares_chunks_body {
    const T* x;       // (n)
    double* partial;  // (chunks)
    std::int64_t n, chunk;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t chunks = (n + chunk - 1) / chunk;
        for (std::int64_t c = at.first(); c < chunks; c += at.stride()) {
            const std::int64_t begin = c * chunk, end = begin + chunk < n ? begin + chunk : n;
            double acc[8] = {};
            std::int64_t i = begin;
            for (; i + 8 <= end; i += 8)
                for (int k = 0; k < 8; ++k) {
                    const double v = static_cast<double>(x[i + k]);
                    acc[k] += v * v;
                }
            for (; i < end; ++i) {
                const double v = static_cast<double>(x[i]);
                acc[0] += v * v;
            }
            double sum = 0;
            for (int k = 0; k < 8; ++k) sum += acc[k];
            partial[c] = sum;
        }
    }
};

// total[0] = Σ_c partial[c] in chunk order, by one thread.
struct sum_in_order_body {
    const double* partial;  // (count)
    double* total;          // (1)
    std::int64_t count;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        if (at.first() != 0) return;
        double sum = 0;
        for (std::int64_t c = 0; c < count; ++c) sum += partial[c];
        total[0] = sum;
    }
};

// The first NaN or ±Inf: first[c] = the index of chunk c's first non-finite element, or −1 (one
// thread per chunk, x − x ≠ 0 exactly for NaN and ±Inf); then the first chunk's answer that is not −1.
template <class T>
struct first_non_finite_chunks_body {
    const T* x;           // (n)
    std::int64_t* first;  // (chunks)
    std::int64_t n, chunk;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        const std::int64_t chunks = (n + chunk - 1) / chunk;
        for (std::int64_t c = at.first(); c < chunks; c += at.stride()) {
            const std::int64_t begin = c * chunk, end = begin + chunk < n ? begin + chunk : n;
            std::int64_t found = -1;
            for (std::int64_t i = begin; i < end && found < 0; ++i)
                if (!(x[i] - x[i] == T(0))) found = i;
            first[c] = found;
        }
    }
};

struct first_of_chunks_body {
    const std::int64_t* first;  // (count)
    std::int64_t* result;       // (1)
    std::int64_t count;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        if (at.first() != 0) return;
        std::int64_t r = -1;
        for (std::int64_t c = 0; c < count && r < 0; ++c) r = first[c];
        result[0] = r;
    }
};

}  // namespace ouro::cuda_kernels
