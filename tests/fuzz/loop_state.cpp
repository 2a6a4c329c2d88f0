// libFuzzer entry point of the loop_state target (tests/fuzz/loop_state.hpp); built by scripts/fuzz.
#include "fuzz/loop_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_loop_state, data, size);
}
