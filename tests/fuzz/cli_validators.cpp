// libFuzzer entry point of the cli_validators target (tests/fuzz/cli_validators.hpp); built by scripts/fuzz.
#include "fuzz/cli_validators.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_cli_validators, data, size);
}
