// CPU kernels: the training losses, mean squared error (the simple DDPM objective, Ho et al. 2020
// eq. (14)) and softmax cross-entropy (the probe), each returning the loss and its gradient.
// Reductions run over fixed chunks summed in order, in double.
#pragma once

#include "ouro/backend/cpu/detail/simd_warnings_off.hpp"  // xsimd, GCC bug 105593

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ouro/backend/op_params.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

struct loss_ops {
    // L = Σ (pred − target)² / n over all n elements (torch.nn.functional.mse_loss, mean reduction).
    // dpred = 2·(pred − target) / n = dL/dpred, or not computed when dpred is absent (a
    // default-constructed view). Requires target (and dpred) of pred's shape, n >= 1. Returns L.
    template <real_scalar T>
    static double mse_loss(tensor_view<const T> pred, tensor_view<const T> target, tensor_view<T> dpred) {
        const bool with_grad = !dpred.absent();
        check_mse_loss(pred.dims(), target.dims(), dpred.dims(), with_grad);
        const std::int64_t n = pred.numel();
        const std::int64_t chunks = (n + chunk_ - 1) / chunk_;
        std::vector<double>& partial = scratch_(chunks);
        const T scale = static_cast<T>(2.0 / static_cast<double>(n));
        parallel_for(
            chunks,
            [&](std::int64_t c) {
                using batch = xsimd::batch<T>;
                constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
                const std::int64_t begin = c * chunk_, end = std::min(n, begin + chunk_);
                const std::int64_t vec_end = begin + (end - begin) / w * w;
                const T* p = pred.data();
                const T* q = target.data();
                // Within a chunk, SIMD lanes in T; at most chunk_ / w terms per lane.
                batch acc(T(0));
                const batch sv(scale);
                for (std::int64_t i = begin; i < vec_end; i += w) {
                    const batch d = xsimd::load_unaligned(p + i) - xsimd::load_unaligned(q + i);
                    acc = xsimd::fma(d, d, acc);
                    if (with_grad) (sv * d).store_unaligned(dpred.data() + i);
                }
                double sum = static_cast<double>(xsimd::hadd(acc));
                for (std::int64_t i = vec_end; i < end; ++i) {
                    const T d = p[i] - q[i];
                    sum += static_cast<double>(d) * static_cast<double>(d);
                    if (with_grad) dpred[i] = scale * d;
                }
                partial[static_cast<std::size_t>(c)] = sum;
            },
            chunk_ * 4);
        double total = 0;
        for (std::int64_t c = 0; c < chunks; ++c) total += partial[static_cast<std::size_t>(c)];
        return total / static_cast<double>(n);
    }

    // Mean softmax cross-entropy over N rows of K logits (torch.nn.functional.cross_entropy, mean
    // reduction), computed with the log-sum-exp shifted by the row maximum, so large logits neither
    // overflow nor lose the answer:
    //   L = (1/N) Σ_n [ m_n + log Σ_k exp(z_nk − m_n) − z_{n, y_n} ],   m_n = max_k z_nk
    //   dL/dz_nk = (softmax(z_n)_k − [k = y_n]) / N
    // Requires logits (N, K) with N, K >= 1, labels (N) in [0, K), dlogits (N, K) or absent.
    // Overwrites dlogits; returns L.
    template <real_scalar T>
    static double softmax_cross_entropy(tensor_view<const T> logits,             // (N, K)
                                        tensor_view<const std::int64_t> labels,  // (N)
                                        tensor_view<T> dlogits) {                // (N, K) or absent
        const bool with_grad = !dlogits.absent();
        check_softmax_cross_entropy(logits.dims(), labels.dims(), dlogits.dims(), with_grad);
        const std::int64_t n = logits.dim(0), k = logits.dim(1);
        for (std::int64_t i = 0; i < n; ++i)
            if (labels[i] < 0 || labels[i] >= k)
                fail("softmax_cross_entropy: label ", labels[i], " at index ", i, " is out of range for ", k,
                     " classes (expected 0 <= label < ", k, ")");

        std::vector<double>& row_loss = scratch_(n);
        const double inv_n = 1.0 / static_cast<double>(n);
        parallel_for(
            n,
            [&](std::int64_t i) {
                const T* z = logits.data() + i * k;
                double m = static_cast<double>(z[0]);
                for (std::int64_t j = 1; j < k; ++j) m = std::max(m, static_cast<double>(z[j]));
                double sum = 0;
                for (std::int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(z[j]) - m);
                const double log_sum = std::log(sum);
                const std::int64_t y = labels[i];
                row_loss[static_cast<std::size_t>(i)] = m + log_sum - static_cast<double>(z[y]);
                if (with_grad) {
                    T* g = dlogits.data() + i * k;
                    for (std::int64_t j = 0; j < k; ++j) {
                        const double p = std::exp(static_cast<double>(z[j]) - m - log_sum);
                        g[j] = static_cast<T>(((j == y ? p - 1.0 : p)) * inv_n);
                    }
                }
            },
            40 * k);
        double total = 0;
        for (std::int64_t i = 0; i < n; ++i) total += row_loss[static_cast<std::size_t>(i)];
        return total * inv_n;
    }

private:
    static constexpr std::int64_t chunk_ = 4096;

    // Per-thread buffer for per-chunk or per-row partial sums; no allocation once it has grown.
    static std::vector<double>& scratch_(std::int64_t size) {
        thread_local std::vector<double> buffer;
        buffer.resize(static_cast<std::size_t>(size));
        return buffer;
    }
};

}  // namespace ouro::cpu_kernels

#include "ouro/backend/cpu/detail/simd_warnings_on.hpp"
