// libFuzzer entry point of the image_folder target (tests/fuzz/image_folder.hpp); built by scripts/fuzz.
#include "fuzz/image_folder.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_image_folder, data, size);
}
