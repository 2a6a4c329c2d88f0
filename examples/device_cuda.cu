// examples::cuda_device_name (device.hpp) for the examples built with --device cuda
// (CMake's OURO_EXAMPLES_ON_CUDA): the one place they ask the CUDA runtime which GPU they run on.
#include "device.hpp"
#include "ouro/backend/cuda/memory.cuh"

std::string examples::cuda_device_name() { return ouro::cuda_kernels::require_device(); }
