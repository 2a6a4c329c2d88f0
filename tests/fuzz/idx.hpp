// Fuzz targets idx and idx_gzip: an IDX file (MNIST's format) through read_idx_images and
// read_idx_labels. idx takes the bytes as the file (plain or, from gzip'd seeds, gzip);
// idx_gzip gzips them first, so that mutations reach the IDX parser behind zlib, not only
// zlib's refusal of a broken stream.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "fuzz/common.hpp"
#include "ouro/data/idx.hpp"

namespace ouro::fuzzing {

namespace detail {
inline void read_idx_both_ways(const std::filesystem::path& file) {
    try {
        (void)ouro::data::read_idx_images(file);
    } catch (const ouro::error&) {
    }
    (void)ouro::data::read_idx_labels(file);
}

// `size` bytes at `data` as one gzip member (RFC 1952).
inline std::string gzip(const std::uint8_t* data, std::size_t size) {
    z_stream z{};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("fuzz harness: deflateInit2 failed");
    std::string out(deflateBound(&z, static_cast<uLong>(size)) + 32, '\0');
    z.next_in = const_cast<Bytef*>(data);
    z.avail_in = static_cast<uInt>(size);
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw std::runtime_error("fuzz harness: deflate did not finish");
    return out;
}
}  // namespace detail

inline void fuzz_idx(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path file = scratch() / "input.idx";
    write_bytes(file, data, size);
    detail::read_idx_both_ways(file);
}

inline void fuzz_idx_gzip(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path file = scratch() / "input.idx.gz";
    const std::string packed = detail::gzip(data, size);
    write_bytes(file, packed.data(), packed.size());
    detail::read_idx_both_ways(file);
}

}  // namespace ouro::fuzzing
