// The CUDA backend's self-attention (ops<cpu>'s attention_forward/backward: Vaswani et al. 2017,
// eq. (1), the channel layout of guided-diffusion's QKVAttentionLegacy): per (batch, head) item,
// strided-batched GEMMs over all items at once (an item's q, k, v, probs and output sit at fixed
// strides: 3dL, L², dL), planned as plain data and tested on the CPU through reference_gemm, and
// the row-wise softmax and its Jacobian as bodies (one thread per row).
//
// Per item, row-major, Q, K, V, O (d, L), P (L, L), s = 1/sqrt(d):
//   P = softmax_rows(s·Qᵀ K);  O = V Pᵀ
//   dV = dO P;  dP = dOᵀ V;  dS = P ∘ (dP − rowsum(P ∘ dP));  dQ = s·K dSᵀ;  dK = s·Q dS
#pragma once

#include <cmath>
#include <cstdint>

#include "ouro/backend/cuda/kernels/linear.hpp"
#include "ouro/backend/cuda/kernels/pointwise.hpp"
#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// B·heads items of head size d over L positions.
struct attention_geometry {
    std::int64_t items, d, l;
    OURO_HOST_DEVICE std::int64_t qkv_stride() const { return 3 * d * l; }
};

namespace attention_plans {
// Column-major C (L, L) = alpha·Aᵀ-free (L, d) · (L, d)ᵀ: with A = K, B = Q it is (Qᵀ K)ᵀ, i.e.
// row-major Qᵀ K; with A = V, B = dO it is row-major dOᵀ V. The operands are the (d, L) slices.
inline gemm_call scores(const attention_geometry& g, std::int64_t stride_a, std::int64_t stride_b, double alpha) {
    return {.transpose_a = false,
            .transpose_b = true,
            .m = g.l,
            .n = g.l,
            .k = g.d,
            .lda = g.l,
            .ldb = g.l,
            .ldc = g.l,
            .beta = 0,
            .alpha = alpha,
            .batch = g.items,
            .stride_a = stride_a,
            .stride_b = stride_b,
            .stride_c = g.l * g.l};
}
// Row-major (d, L) = M·Pᵀ (transposed) or M·P for P (L, L) and M (d, L): column-major C (L, d) =
// P-col (transposed or not) · M-col.
inline gemm_call times_p(const attention_geometry& g, bool transposed, std::int64_t stride_m, std::int64_t stride_c,
                         double alpha) {
    return {.transpose_a = transposed,
            .transpose_b = false,
            .m = g.l,
            .n = g.d,
            .k = g.l,
            .lda = g.l,
            .ldb = g.l,
            .ldc = g.l,
            .beta = 0,
            .alpha = alpha,
            .batch = g.items,
            .stride_a = g.l * g.l,
            .stride_b = stride_m,
            .stride_c = stride_c};
}
// Row-major (d, L) = M·Pᵀ.
inline gemm_call times_transposed(const attention_geometry& g, std::int64_t stride_m, std::int64_t stride_c,
                                  double alpha) {
    return times_p(g, true, stride_m, stride_c, alpha);
}
// Row-major (d, L) = M·P.
inline gemm_call times(const attention_geometry& g, std::int64_t stride_m, std::int64_t stride_c, double alpha) {
    return times_p(g, false, stride_m, stride_c, alpha);
}
}  // namespace attention_plans

// In-place softmax of each row of p (rows × n): max-subtracted, the sum in double.
template <class T>
struct softmax_rows_body {
    T* p;  // (rows, n)
    std::int64_t rows, n;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t r = at.first(); r < rows; r += at.stride()) {
            T* row = p + r * n;
            T m = row[0];
            for (std::int64_t i = 1; i < n; ++i) m = row[i] > m ? row[i] : m;
            double sum = 0;
            for (std::int64_t i = 0; i < n; ++i) {
                row[i] = exp_of(row[i] - m);
                sum += static_cast<double>(row[i]);
            }
            const T total = static_cast<T>(sum);
            for (std::int64_t i = 0; i < n; ++i) row[i] /= total;
        }
    }
};

// d ← p ∘ (d − <p, d>) row by row (the softmax Jacobian), the dot in double.
template <class T>
struct softmax_rows_backward_body {
    const T* p;  // (rows, n)
    T* d;        // (rows, n)
    std::int64_t rows, n;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t r = at.first(); r < rows; r += at.stride()) {
            const T* pr = p + r * n;
            T* dr = d + r * n;
            double dot = 0;
            for (std::int64_t i = 0; i < n; ++i) dot += static_cast<double>(pr[i]) * static_cast<double>(dr[i]);
            const T t = static_cast<T>(dot);
            for (std::int64_t i = 0; i < n; ++i) dr[i] = pr[i] * (dr[i] - t);
        }
    }
};

}  // namespace ouro::cuda_kernels
