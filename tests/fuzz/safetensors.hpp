// Fuzz target safetensors: the bytes as a safetensors file, opened by safetensors_reader (which
// verifies a "data_crc32" when the header has one), then every tensor read, as raw bytes and, where
// the dtype is one ouro reads, as a tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "fuzz/common.hpp"
#include "ouro/io/safetensors.hpp"

namespace ouro::fuzzing {

inline void fuzz_safetensors(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path file = scratch() / "input.safetensors";
    write_bytes(file, data, size);
    (void)io::read_safetensors_metadata(file);
    io::safetensors_reader reader(file);
    for (const io::safetensors_entry& e : reader.entries()) {
        std::vector<unsigned char> raw(static_cast<std::size_t>(e.end - e.begin));
        reader.read_bytes(e, raw.data());
        switch (e.dtype) {
            case io::safetensors_dtype::f32: (void)reader.read<float>(e.name); break;
            case io::safetensors_dtype::f64: (void)reader.read<double>(e.name); break;
            case io::safetensors_dtype::i32: (void)reader.read<std::int32_t>(e.name); break;
            case io::safetensors_dtype::i64: (void)reader.read<std::int64_t>(e.name); break;
            case io::safetensors_dtype::u8: (void)reader.read<std::uint8_t>(e.name); break;
            default: break;
        }
    }
}

}  // namespace ouro::fuzzing
