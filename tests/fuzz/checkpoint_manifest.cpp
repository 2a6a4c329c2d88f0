// libFuzzer entry point of the checkpoint_manifest target (tests/fuzz/checkpoint_manifest.hpp); built by scripts/fuzz.
#include "fuzz/checkpoint_manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_checkpoint_manifest, data, size);
}
