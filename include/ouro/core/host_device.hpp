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

// OURO_DEVICE_PASS: 1 while nvcc compiles for the device (__CUDA_ARCH__ defined), else 0. nvcc's
// device pass parses host functions as well and instantiates the OURO_HOST_DEVICE templates they
// call; a CPU kernel that hands SIMD batches (a type device code cannot hold) to a shared formula
// hides that call from the device pass with `#if !OURO_DEVICE_PASS`. Its host code is unchanged.
#if defined(__CUDA_ARCH__)
#define OURO_DEVICE_PASS 1
#else
#define OURO_DEVICE_PASS 0
#endif
