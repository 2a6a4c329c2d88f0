// libFuzzer entry point of the loop_config target (tests/fuzz/loop_config.hpp); built by scripts/fuzz.
#include "fuzz/loop_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_loop_config, data, size);
}
