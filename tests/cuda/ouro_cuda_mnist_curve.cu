// The MNIST loss curve of tests/cuda/mnist_curve.hpp with the U-Net on the GPU, written to argv[2]
// (argv[1]: the MNIST folder). Exits 77 (skipped) without a GPU. Built on demand and run by
// benchmarks/gpu-check, which compares it with the CPU's curve (mnist_curve_cpu).
#include <cstdio>
#include <exception>

#include "common.hpp"
#include "mnist_curve.hpp"
#include "ouro/backend/cuda/ops.cuh"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: ouro_cuda_mnist_curve MNIST_DIR OUT.txt\n");
        return 2;
    }
    if (!ouro::cuda_testing::have_device("ouro_cuda_mnist_curve")) return 77;
    try {
        ouro::cuda_testing::write_curve(argv[2], ouro::cuda_testing::mnist_loss_curve<ouro::cuda>(argv[1]));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ouro_cuda_mnist_curve: %s\n", e.what());
        return 1;
    }
    return 0;
}
