// libFuzzer entry point of the safetensors target (tests/fuzz/safetensors.hpp); built by scripts/fuzz.
#include "fuzz/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_safetensors, data, size);
}
