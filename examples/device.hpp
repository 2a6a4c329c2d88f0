// --device cpu|cuda: which backend an example's U-Nets run on. The CPU is always there. ouro::cuda is
// there in a build configured with OURO_EXAMPLES_ON_CUDA=ON (examples/CMakeLists.txt), where nvcc
// compiles the example's <name>_cuda.cu: the same run template as the CPU's, instantiated with
// nn::unet<cuda, ...>. Data, metrics, the probe and the LeNet judge stay on the host either way.
//
// A request the build or the machine cannot serve ends in one line before any work: a build without
// the CUDA translation unit at parse time (exit 2, naming the CMake option), a machine without a
// usable GPU as the run starts (cuda_kernels::require_device: CUDA's own reason).
#pragma once

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "ouro/core/error.hpp"

namespace examples {

#ifdef OURO_EXAMPLES_ON_CUDA
inline constexpr bool built_with_cuda = true;
#else
inline constexpr bool built_with_cuda = false;
#endif

inline CLI::Option* add_device_option(CLI::App& app, std::string& device) {
    return app
        .add_option("--device", device,
                    built_with_cuda ? "Where the U-Nets train and sample: cpu, or cuda (the first GPU)"
                                    : "Where the U-Nets train and sample: cpu (this build has no CUDA; configure with "
                                      "-DOURO_EXAMPLES_ON_CUDA=ON for cuda)")
        ->check(CLI::IsMember({"cpu", "cuda"}));
}

// After parsing: -1 to go on, or 2 after one line on stderr when --device cuda meets a build
// without CUDA.
inline int check_device_built(const CLI::App& app, const std::string& device) {
    if (device != "cuda" || built_with_cuda) return -1;
    std::fprintf(stderr,
                 "%s: error: --device cuda: this build has no CUDA backend (configure with -DOURO_ENABLE_CUDA=ON "
                 "-DOURO_EXAMPLES_ON_CUDA=ON, which needs nvcc, and rebuild)\n",
                 app.get_name().c_str());
    return 2;
}

// The GPU ouro::cuda runs on ("name (sm_XY, N MiB)"), or an ouro::error saying why none is usable
// (cuda_kernels::require_device): defined in device_cuda.cu, which nvcc compiles into the examples
// with --device cuda. Never called in a build without it (check_device_built refuses first).
#ifdef OURO_EXAMPLES_ON_CUDA
std::string cuda_device_name();
#else
inline std::string cuda_device_name() { ouro::fail("this build has no CUDA backend"); }
#endif

}  // namespace examples
