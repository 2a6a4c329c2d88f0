// The MNIST loss curve of tests/cuda/mnist_curve.hpp on the CPU, written to argv[2] (argv[1]: the
// MNIST folder): the reference benchmarks/gpu-check compares the GPU's curve with.
#include "cuda/mnist_curve.hpp"
#include "ouro/backend/cpu/ops.hpp"

int main(int argc, char** argv) { return ouro::cuda_testing::curve_main<ouro::cpu>(argc, argv, "mnist_curve_cpu"); }
