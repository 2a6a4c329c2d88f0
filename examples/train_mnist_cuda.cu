// train_mnist on ouro::cuda (`--device cuda`): nvcc compiles the same run template as the CPU's
// (train_mnist_run.hpp) with the U-Net on the GPU. Built where CMake's OURO_EXAMPLES_ON_CUDA is on.
#include "ouro/backend/cuda/ops.cuh"
#include "train_mnist_run.hpp"

int train_mnist::run_on_cuda(const options& o) { return run<ouro::cuda>(o); }
