// Every fuzz target by name, for tests/test_fuzz_replay.cpp: the name is that of its source
// (tests/fuzz/<name>.cpp) and of its folders under tests/fuzz/corpus/ and tests/fuzz/regressions/.
#pragma once

#include <string_view>

#include "fuzz/checkpoint_manifest.hpp"
#include "fuzz/cifar10.hpp"
#include "fuzz/common.hpp"
#include "fuzz/idx.hpp"
#include "fuzz/image_folder.hpp"
#include "fuzz/loop_config.hpp"
#include "fuzz/loop_pool.hpp"
#include "fuzz/loop_state.hpp"
#include "fuzz/npy.hpp"
#include "fuzz/safetensors.hpp"
#if __has_include(<CLI/CLI.hpp>)  // CLI11 comes with the examples, which a test build may go without
#include "fuzz/cli_validators.hpp"
#define OURO_FUZZ_HAS_CLI11 1
#endif

namespace ouro::fuzzing {

struct named_target {
    std::string_view name;
    target_body body;
};

inline constexpr named_target all_targets[] = {
    {"npy", fuzz_npy},
    {"idx", fuzz_idx},
    {"idx_gzip", fuzz_idx_gzip},
    {"cifar10", fuzz_cifar10},
    {"image_folder", fuzz_image_folder},
    {"safetensors", fuzz_safetensors},
    {"checkpoint_manifest", fuzz_checkpoint_manifest},
    {"loop_state", fuzz_loop_state},
    {"loop_config", fuzz_loop_config},
    {"loop_pool", fuzz_loop_pool},
#if defined(OURO_FUZZ_HAS_CLI11)
    {"cli_validators", fuzz_cli_validators},
#endif
};

}  // namespace ouro::fuzzing
