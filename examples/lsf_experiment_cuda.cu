// lsf_experiment on ouro::cuda (`--device cuda`): nvcc compiles the same run template as the CPU's
// (lsf_experiment_run.hpp) with every U-Net of the loop on the GPU. Built where CMake's
// OURO_EXAMPLES_ON_CUDA is on.
#include "lsf_experiment_run.hpp"
#include "ouro/backend/cuda/ops.cuh"

int lsf_experiment::run_on_cuda(const options& o, const datasets& d) { return run_on<ouro::cuda>(o, d); }
