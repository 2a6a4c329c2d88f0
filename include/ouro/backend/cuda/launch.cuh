// Real launches of the CUDA backend's kernel bodies (kernels/*.hpp), for translation units
// compiled by nvcc. A body is passed by value as the kernel's one argument (its pointers are
// device pointers); the same body runs on the host through emulation.hpp.
#pragma once

#if !defined(__CUDACC__)
#error "ouro/backend/cuda/launch.cuh is for translation units compiled by nvcc (link ouro::cuda)"
#endif

#include <cuda_runtime.h>

#include "ouro/backend/cuda/launch_shape.hpp"

namespace ouro::cuda_kernels {

template <class Body>
__global__ void run_body(Body body) {
    body(launch_index{.block = blockIdx.x, .thread = threadIdx.x, .block_dim = blockDim.x, .grid_dim = gridDim.x});
}

// Launches `body` over `shape` on `stream`; returns the launch's error (cudaSuccess when queued).
template <class Body>
cudaError_t launch(launch_shape shape, const Body& body, cudaStream_t stream = nullptr) {
    run_body<<<static_cast<unsigned>(shape.grid), static_cast<unsigned>(shape.block), 0, stream>>>(body);
    return cudaGetLastError();
}

}  // namespace ouro::cuda_kernels
