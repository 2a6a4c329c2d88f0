// Backend tag types and the Backend concept. A backend is a template parameter, never a macro,
// so CPU and CUDA code can live in one binary and tests compare them op by op.
#pragma once

#include <concepts>

namespace ouro {

// Host memory; kernels through Eigen (GEMM), xsimd (elementwise) and OpenMP (parallel loops).
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

}  // namespace ouro
