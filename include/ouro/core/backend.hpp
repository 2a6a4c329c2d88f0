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

// The backend a model, layer or network runs on: the `backend_type` it declares (nn::unet, nn::lenet
// and the toy MLP do), cpu for a type that declares none (a user's own model written before backends
// were a choice).
template <class M>
struct backend_of {
    using type = cpu;
};
template <class M>
requires requires { typename M::backend_type; }
struct backend_of<M> {
    using type = typename M::backend_type;
};
template <class M>
using backend_of_t = typename backend_of<M>::type;

// Scalars the CPU kernels are written for: float for training, double for gradient checks.
template <class T>
concept real_scalar = std::same_as<T, float> || std::same_as<T, double>;

// The precision of the products inside convolutions (their multiply-adds, not the tensors between
// layers): fp32, or operands rounded to bfloat16 with fp32 sums (an opt-in for sampling: forward
// only, float tensors only; see backend/cpu/gemm_bf16.hpp).
enum class matmul_precision { fp32, bf16 };

}  // namespace ouro
