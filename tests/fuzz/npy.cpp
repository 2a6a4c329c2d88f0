// libFuzzer entry point of the npy target (tests/fuzz/npy.hpp); built by scripts/fuzz.
#include "fuzz/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_npy, data, size);
}
