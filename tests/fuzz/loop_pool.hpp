// Fuzz target loop_pool: a chain's pool files as the loop reads them (loop/pool_files.hpp). The input
// is [2 bytes: L, little-endian][L bytes: the pool file][the rest: a sample file]. The pool file is
// read by load_pool (an index or a whole pool); for an index, the sample file stands for every
// generation the index records, and every item's latent and floats are read through pool_reader
// over a small real set of its own. A header's "data_crc32" is first set to the data's true CRC-32
// (8 hex digits for 8, so no offset moves): the fuzzer could not forge one, and without it every
// input would stop at the checksum, short of the checks behind it.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "fuzz/common.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/loop/pool_files.hpp"

namespace ouro::fuzzing {

namespace detail {

// Sets the "data_crc32" value of a safetensors file's header, if it has one, to its data's CRC-32.
inline void fix_data_crc32(std::string& bytes) {
    if (bytes.size() < 8) return;
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
    if (n > bytes.size() - 8) return;
    const std::string_view header(bytes.data() + 8, static_cast<std::size_t>(n));
    const std::size_t key = header.find("\"data_crc32\"");
    if (key == std::string_view::npos) return;
    const std::size_t open = header.find('"', key + 12);
    if (open == std::string_view::npos || open + 9 >= header.size() || header[open + 9] != '"') return;
    const auto data = reinterpret_cast<const Bytef*>(bytes.data() + 8 + n);
    const std::string crc =
        io::detail::crc_hex(static_cast<std::uint32_t>(crc32_z(0, data, static_cast<z_size_t>(bytes.size() - 8 - n))));
    bytes.replace(8 + open + 1, 8, crc);
}

}  // namespace detail

inline void fuzz_loop_pool(const std::uint8_t* data, std::size_t size) {
    namespace fs = std::filesystem;
    if (size < 2) return;
    const std::size_t length = std::min<std::size_t>(data[0] | std::size_t{data[1]} << 8, size - 2);
    std::string pool_bytes(reinterpret_cast<const char*>(data) + 2, length),
        sample_bytes(reinterpret_cast<const char*>(data) + 2 + length, size - 2 - length);
    detail::fix_data_crc32(pool_bytes);
    detail::fix_data_crc32(sample_bytes);
    const fs::path dir = scratch() / "chain", samples = dir / "samples", pool_file = dir / "pool.safetensors";
    fs::remove_all(dir);
    fs::create_directories(samples);
    write_bytes(pool_file, pool_bytes.data(), pool_bytes.size());

    constexpr std::int64_t item_size = 2, latent_dim = 2;
    std::vector<float> latents;
    loop::detail::pool_sources sources;
    const loop::pool p = loop::detail::load_pool(pool_file, item_size, &latents, 1, &sources);
    if (p.resident_begin() == 0) return;  // a whole pool: load_pool has read all of it

    // An index: a real set as large as its generation 0, and the sample file for every generation.
    std::int64_t real_count = 0;
    for (const std::int64_t g : p.generations()) real_count += g == 0;
    tensor<float> real(shape{std::max<std::int64_t>(real_count, 1), item_size});
    tensor<float> real_latents(shape{real.dim(0), latent_dim});
    std::iota(real.begin(), real.end(), 0.0f);
    std::iota(real_latents.begin(), real_latents.end(), 100.0f);
    sources.real_crc32 = loop::detail::floats_crc32({real.data(), static_cast<std::size_t>(real.numel())});
    for (auto& [g, crc] : sources.sample_crc32) {
        const fs::path file = loop::detail::sample_file(samples, g);
        write_bytes(file, sample_bytes.data(), sample_bytes.size());
        const io::safetensors_metadata m = io::read_safetensors_metadata(file);
        const auto found = m.find(io::safetensors_checksum_key);
        if (found != m.end()) crc = found->second;
    }
    loop::detail::pool_reader reader(p, sources, samples, {real.view(), real_latents.view(), sources.real_crc32}, {});
    (void)reader.latents(0, p.size());
    std::vector<std::int64_t> all(static_cast<std::size_t>(p.size()));
    std::iota(all.begin(), all.end(), std::int64_t{0});
    std::vector<float> floats(all.size() * item_size);
    tensor<float> chosen_latents(shape{p.size(), latent_dim});
    reader.gather(all, floats, chosen_latents.view());
}

}  // namespace ouro::fuzzing
