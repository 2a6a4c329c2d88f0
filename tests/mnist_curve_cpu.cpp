// The MNIST loss curve of tests/cuda/mnist_curve.hpp on the CPU, written to argv[2] (argv[1]: the
// MNIST folder): the reference benchmarks/gpu-check compares the GPU's curve with.
#include <cstdio>
#include <exception>

#include "cuda/mnist_curve.hpp"
#include "ouro/backend/cpu/ops.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: mnist_curve_cpu MNIST_DIR OUT.txt\n");
        return 2;
    }
    try {
        ouro::cuda_testing::write_curve(argv[2], ouro::cuda_testing::mnist_loss_curve<ouro::cpu>(argv[1]));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mnist_curve_cpu: %s\n", e.what());
        return 1;
    }
    return 0;
}
