// Fuzz target npy: a .npy file, through read_npy_header on a stream and read_npy from a file.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>

#include "fuzz/common.hpp"
#include "ouro/io/npy.hpp"

namespace ouro::fuzzing {

inline void fuzz_npy(const std::uint8_t* data, std::size_t size) {
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    (void)io::read_npy_header(in, "input.npy");
    const std::filesystem::path file = scratch() / "input.npy";
    write_bytes(file, data, size);
    // float: what golden data and feature files are read as; int64: labels (a float file read as
    // int64 converts every element).
    try {
        (void)io::read_npy<float>(file);
    } catch (const ouro::error&) {
    }
    (void)io::read_npy<std::int64_t>(file);
}

}  // namespace ouro::fuzzing
