// The MNIST loss curve of tests/cuda/mnist_curve.hpp with the U-Net on the GPU, written to argv[2]
// (argv[1]: the MNIST folder). Exits 77 (skipped) without a GPU. Built on demand and run by
// benchmarks/gpu-check, which compares it with the CPU's curve (mnist_curve_cpu).
#include "common.hpp"
#include "mnist_curve.hpp"
#include "ouro/backend/cuda/ops.cuh"

int main(int argc, char** argv) {
    if (argc == 3 && !ouro::cuda_testing::have_device("ouro_cuda_mnist_curve")) return 77;
    return ouro::cuda_testing::curve_main<ouro::cuda>(argc, argv, "ouro_cuda_mnist_curve");
}
