// An emulated CUDA launch: every thread of a launch_shape runs a kernel body in turn, on the host.
// It lets the default suite test the CUDA backend's kernel bodies against ops<cpu> on a machine
// without a GPU (tests/test_cuda_emulated.cpp). It is exact for bodies whose threads never talk to
// each other (no shared memory, barriers or atomics: the pointwise family of kernels/pointwise.hpp);
// it cannot find races, and bodies that cooperate within a block need a cooperative emulation,
// which does not exist yet.
#pragma once

#include <cstdint>

#include "ouro/backend/cuda/launch_shape.hpp"

namespace ouro::cuda_kernels {

template <class Body>
void emulate_launch(launch_shape shape, const Body& body) {
    for (std::int64_t b = 0; b < shape.grid; ++b)
        for (std::int64_t t = 0; t < shape.block; ++t)
            body(launch_index{.block = b, .thread = t, .block_dim = shape.block, .grid_dim = shape.grid});
}

}  // namespace ouro::cuda_kernels
