// Backend tag types and the Backend concept. A backend is a template parameter, never a macro,
// so CPU and CUDA code can live in one binary and tests compare them op by op.
#pragma once

#include <concepts>

namespace ouro {

// Host memory; kernels written with xsimd (GEMM micro-kernels, elementwise) and OpenMP (parallel loops).
struct cpu {
    static constexpr const char* name = "cpu";
    static constexpr bool host_memory = true;
};

// Device memory; kernels in translation units compiled by nvcc (include/ouro/backend/cuda/).
struct cuda {
    static constexpr const char* name = "cuda";
    static constexpr bool host_memory = false;
};

template <class B>
concept backend = requires {
    { B::name } -> std::convertible_to<const char*>;
    { B::host_memory } -> std::convertible_to<bool>;
};

// Scalars the CPU kernels are written for: float for training, double for gradient checks.
template <class T>
concept real_scalar = std::same_as<T, float> || std::same_as<T, double>;

// The precision of the products inside convolutions (their multiply-adds, not the tensors between
// layers): fp32, or operands rounded to bfloat16 with fp32 sums (an opt-in for sampling: forward
// only, float tensors only; see backend/cpu/gemm_bf16.hpp).
enum class matmul_precision { fp32, bf16 };

}  // namespace ouro
