// The CUDA backend's linear layer: its cuBLAS calls as plain data (no CUDA here), so the
// transposes and leading dimensions are tested on any machine (tests/test_cuda_emulated.cpp runs
// each plan through reference_gemm, a column-major GEMM with cuBLAS's semantics, against
// ops<cpu>), and the bodies of its bias and bias gradient.
//
// cuBLAS is column-major; ouro's tensors are row-major, and a row-major (r, c) matrix is the same
// memory as a column-major (c, r) one. So y = x·Wᵀ (row-major) is yᵀ = W·xᵀ (column-major), etc.
#pragma once

#include <cstdint>

#include "ouro/backend/cuda/launch_shape.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// C = alpha·op(A)·op(B) + beta·C with op(M) = Mᵀ when transposed: cublasSgemm's arguments; m × k
// times k × n into m × n, leading dimensions lda, ldb, ldc (column-major). With batch > 1, the
// same product for item i at A + i·stride_a, B + i·stride_b, C + i·stride_c
// (cublasSgemmStridedBatched).
struct gemm_call {
    bool transpose_a = false, transpose_b = false;
    std::int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0;
    double beta = 0;
    double alpha = 1;
    std::int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
};

// linear_forward, y (N, out) = x (N, in)·Wᵀ with W (out, in): A = W, B = x, C = y.
inline gemm_call linear_forward_gemm(std::int64_t rows, std::int64_t in, std::int64_t out) {
    return {.transpose_a = true,
            .transpose_b = false,
            .m = out,
            .n = rows,
            .k = in,
            .lda = in,
            .ldb = in,
            .ldc = out,
            .beta = 0};
}

// linear_backward's dx (N, in) = dy (N, out)·W: A = W, B = dy, C = dx (overwritten).
inline gemm_call linear_input_gradient_gemm(std::int64_t rows, std::int64_t in, std::int64_t out) {
    return {.transpose_a = false,
            .transpose_b = false,
            .m = in,
            .n = rows,
            .k = out,
            .lda = in,
            .ldb = out,
            .ldc = in,
            .beta = 0};
}

// linear_backward's dW (out, in) += dyᵀ·x: A = x, B = dy, C = dW (accumulated: beta = 1).
inline gemm_call linear_weight_gradient_gemm(std::int64_t rows, std::int64_t in, std::int64_t out) {
    return {.transpose_a = false,
            .transpose_b = true,
            .m = in,
            .n = out,
            .k = rows,
            .lda = in,
            .ldb = out,
            .ldc = in,
            .beta = 1};
}

// What cuBLAS computes for `call` (in double, then rounded once), for tests on the host.
template <class T>
void reference_gemm(const gemm_call& call, const T* a0, const T* b0, T* c0) {
    for (std::int64_t item = 0; item < call.batch; ++item) {
        const T* a = a0 + item * call.stride_a;
        const T* b = b0 + item * call.stride_b;
        T* c = c0 + item * call.stride_c;
        for (std::int64_t j = 0; j < call.n; ++j)
            for (std::int64_t i = 0; i < call.m; ++i) {
                double sum = 0;
                for (std::int64_t l = 0; l < call.k; ++l) {
                    const T av = call.transpose_a ? a[l + i * call.lda] : a[i + l * call.lda];
                    const T bv = call.transpose_b ? b[j + l * call.ldb] : b[l + j * call.ldb];
                    sum += static_cast<double>(av) * static_cast<double>(bv);
                }
                T& out = c[i + j * call.ldc];
                out = static_cast<T>(call.beta * static_cast<double>(out) + call.alpha * sum);
            }
    }
}

// y[r, c] += b[c] over rows × cols (the bias of linear_forward).
template <class T>
struct add_row_vector_body {
    T* y;        // (rows, cols)
    const T* b;  // (cols)
    std::int64_t rows, cols;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t i = at.first(); i < rows * cols; i += at.stride()) y[i] += b[i % cols];
    }
};

// db[c] += Σ_r dy[r, c], rows in order, in double, one thread per column (the CPU's db, bit for bit).
template <class T>
struct add_column_sums_body {
    const T* dy;  // (rows, cols)
    T* db;        // (cols)
    std::int64_t rows, cols;
    OURO_HOST_DEVICE void operator()(launch_index at) const {
        for (std::int64_t c = at.first(); c < cols; c += at.stride()) {
            double sum = 0;
            for (std::int64_t r = 0; r < rows; ++r) sum += static_cast<double>(dy[r * cols + c]);
            db[c] += static_cast<T>(sum);
        }
    }
};

}  // namespace ouro::cuda_kernels
