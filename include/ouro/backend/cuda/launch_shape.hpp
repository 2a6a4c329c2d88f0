// How the CUDA backend lays a 1-D kernel over n elements, and where one thread stands in it. Kernel
// bodies (backend/cuda/kernels/) are functors `void operator()(launch_index) const` that loop over
// their elements grid-stride, so any grid covers any n; they read nothing else of CUDA, which lets
// the same body run in a real launch (launch.cuh, nvcc) and in an emulated one (emulation.hpp, any
// compiler). No class-type template arguments reach a kernel (nvcc 13 with g++ 12 cannot compile them).
#pragma once

#include <algorithm>
#include <cstdint>

#include "ouro/core/error.hpp"
#include "ouro/core/host_device.hpp"

namespace ouro::cuda_kernels {

// One thread of a 1-D launch: blockIdx.x, threadIdx.x, blockDim.x and gridDim.x.
struct launch_index {
    std::int64_t block = 0, thread = 0, block_dim = 1, grid_dim = 1;
    OURO_HOST_DEVICE std::int64_t first() const { return block * block_dim + thread; }  // its first element
    OURO_HOST_DEVICE std::int64_t stride() const { return block_dim * grid_dim; }       // then every stride-th
};

// A 1-D launch: `grid` blocks of `block` threads.
struct launch_shape {
    std::int64_t grid = 1, block = 256;
};

// The launch for n elements: `block` threads a block (a multiple of the warp's 32), enough blocks to
// give each thread one element, at most max_blocks (the grid-stride loop covers the rest; 4,096 blocks
// of 256 fill an H100's 132 SMs many times over). n = 0 still gives one block (whose threads do nothing).
inline launch_shape launch_shape_for(std::int64_t n, std::int64_t block = 256, std::int64_t max_blocks = 4096) {
    require(n >= 0, "launch_shape_for: expected n >= 0 elements, found ", n);
    require(block >= 32 && block <= 1024 && block % 32 == 0,
            "launch_shape_for: expected a block of 32 to 1024 threads, a multiple of 32, found ", block);
    require(max_blocks >= 1, "launch_shape_for: expected max_blocks >= 1, found ", max_blocks);
    return {.grid = std::clamp<std::int64_t>((n + block - 1) / block, 1, max_blocks), .block = block};
}

}  // namespace ouro::cuda_kernels
