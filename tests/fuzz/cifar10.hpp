// Fuzz target cifar10: the bytes as a CIFAR-10 binary batch (read_cifar10_batch) and as the
// batches.meta.txt beside it (read_cifar10_class_names).
#pragma once

#include <cstdint>
#include <filesystem>

#include "fuzz/common.hpp"
#include "ouro/data/cifar10.hpp"

namespace ouro::fuzzing {

inline void fuzz_cifar10(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path dir = scratch() / "cifar-10-batches-bin";
    std::filesystem::create_directories(dir);
    write_bytes(dir / "test_batch.bin", data, size);
    write_bytes(dir / "batches.meta.txt", data, size);
    try {
        (void)ouro::data::read_cifar10_batch(dir / "test_batch.bin");
    } catch (const ouro::error&) {
    }
    (void)ouro::data::read_cifar10_class_names(dir);
}

}  // namespace ouro::fuzzing
