// libFuzzer entry point of the idx_gzip target (tests/fuzz/idx.hpp); built by scripts/fuzz.
#include "fuzz/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_idx_gzip, data, size);
}
