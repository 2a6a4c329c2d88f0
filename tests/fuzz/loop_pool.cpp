// libFuzzer entry point of the loop_pool target (tests/fuzz/loop_pool.hpp); built by scripts/fuzz.
#include "fuzz/loop_pool.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_loop_pool, data, size);
}
