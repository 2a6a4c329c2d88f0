// What the device test programs share: reproducible pseudo-random inputs (no dependence on the
// library's own generators, which the tests check) and the "no GPU: skipped" exit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "ouro/backend/cuda/memory.cuh"
#include "ouro/core/error.hpp"

namespace ouro::cuda_testing {

// n values uniform on [-scale, scale) from a linear congruential generator keyed by seed.
inline std::vector<float> pseudo_random(std::size_t n, std::uint32_t seed, float scale) {
    std::vector<float> v(n);
    std::uint32_t s = seed * 2654435761u + 1;
    for (auto& x : v) {
        s = s * 1664525u + 1013904223u;
        x = scale * (static_cast<float>(s >> 8) / 16777216.0f * 2.0f - 1.0f);
    }
    return v;
}

// True when a CUDA device is usable; otherwise prints why `program` skips (CTest: exit code 77).
inline bool have_device(const char* program) {
    try {
        (void)cuda_kernels::require_device();
        return true;
    } catch (const ouro::error& e) {
        std::printf("%s: skipped: %s\n", program, e.what());
        return false;
    }
}

}  // namespace ouro::cuda_testing
