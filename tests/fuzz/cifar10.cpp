// libFuzzer entry point of the cifar10 target (tests/fuzz/cifar10.hpp); built by scripts/fuzz.
#include "fuzz/cifar10.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ouro::fuzzing::run_target(ouro::fuzzing::fuzz_cifar10, data, size);
}
