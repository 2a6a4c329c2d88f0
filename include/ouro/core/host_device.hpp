// OURO_HOST_DEVICE: marks a function that runs on the host and, compiled by nvcc, on a CUDA device
// too. The formulas both backends share (backend/adamw_update.hpp) and the CUDA kernel bodies
// (backend/cuda/) carry it, so a body compiled by g++ is the body nvcc compiles, and the tests run
// it on the CPU (backend/cuda/emulation.hpp) where no GPU is present.
#pragma once

#if defined(__CUDACC__)
#define OURO_HOST_DEVICE __host__ __device__
#else
#define OURO_HOST_DEVICE
#endif
