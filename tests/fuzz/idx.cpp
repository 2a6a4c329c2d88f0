// libFuzzer entry point of the idx target (tests/fuzz/idx.hpp); built by scripts/fuzz.
#include "fuzz/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_idx, data, size);
}
