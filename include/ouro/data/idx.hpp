// IDX files (the MNIST format, LeCun et al. http://yann.lecun.com/exdb/mnist/): uint8 images
// (N, rows, cols) and uint8 labels (N), plain or gzip'd. Every malformed file gets an ouro::error
// that names the file and the expected and found magic, dtype, rank or byte count.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::data {

// IDX layout: bytes 0-1 are zero, byte 2 the element type, byte 3 the rank; then `rank` big-endian
// uint32 extents; then the elements in row-major order.
inline constexpr std::uint8_t idx_dtype_uint8 = 0x08;
inline constexpr std::uint32_t idx_magic_images = 0x00000803;  // uint8, rank 3: (N, rows, cols)
inline constexpr std::uint32_t idx_magic_labels = 0x00000801;  // uint8, rank 1: (N)

namespace detail {

inline std::string hex(std::uint32_t value, int digits) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%0*X", digits, static_cast<unsigned>(value));
    return buf;
}

inline const char* idx_dtype_name(std::uint8_t dtype) {
    switch (dtype) {
        case 0x08: return "uint8";
        case 0x09: return "int8";
        case 0x0B: return "int16";
        case 0x0C: return "int32";
        case 0x0D: return "float32";
        case 0x0E: return "float64";
        default: return "not an IDX type";
    }
}

// True when `file` starts with the gzip magic bytes 1f 8b (RFC 1952, section 2.3.1).
inline bool is_gzip_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    unsigned char magic[2] = {0, 0};
    in.read(reinterpret_cast<char*>(magic), 2);
    return in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

// A file read through zlib, which decompresses gzip'd files and passes plain ones through.
class gz_reader {
public:
    explicit gz_reader(const std::filesystem::path& file) : path_(file.string()) {
        namespace fs = std::filesystem;
        std::error_code ec;
        if (!fs::exists(file, ec)) fail(path_, ": no such file");
        if (fs::is_directory(file, ec)) fail(path_, ": is a directory, expected an IDX file");
        gzip_ = is_gzip_file(file);
        handle_ = gzopen(path_.c_str(), "rb");
        if (handle_ == nullptr) fail(path_, ": cannot open: ", std::strerror(errno));
        gzbuffer(handle_, 1 << 18);
    }
    gz_reader(const gz_reader&) = delete;
    gz_reader& operator=(const gz_reader&) = delete;
    ~gz_reader() {
        if (handle_ != nullptr) gzclose_r(handle_);
    }

    // Reads up to `n` bytes; returns how many it got. A short count means end of data, and then
    // error() says why when the end was not a clean one (a truncated or corrupt gzip stream).
    std::size_t read(void* out, std::size_t n) {
        std::size_t got = 0;
        auto* dst = static_cast<unsigned char*>(out);
        while (got < n) {
            const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
            const int r = gzread(handle_, dst + got, chunk);
            if (r <= 0) break;
            got += static_cast<std::size_t>(r);
        }
        return got;
    }

    // zlib's complaint after a short read, or "" when the file simply ended.
    std::string error() const {
        int code = Z_OK;
        const char* msg = gzerror(handle_, &code);
        if (code == Z_OK) return "";
        if (code == Z_ERRNO) return std::strerror(errno);
        std::string m = msg;
        if (m.rfind(path_ + ": ", 0) == 0) m.erase(0, path_.size() + 2);  // zlib prefixes the path
        return m;
    }

    bool gzip() const { return gzip_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    gzFile handle_ = nullptr;
    bool gzip_ = false;
};

// Bytes after the last gzip member of `file` (0 when the file ends with a member). zlib's gzread
// skips such trailing bytes silently, which would let garbage after the data pass, so the raw
// file is walked member by member here (concatenated members are valid gzip, RFC 1952 §2.2).
inline std::uint64_t gzip_trailing_bytes(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) fail(path, ": cannot open for reading");
    z_stream z{};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        std::fclose(f);
        fail(path, ": zlib inflateInit2 failed");
    }
    std::vector<unsigned char> in(1 << 16), out(1 << 16);
    std::uint64_t trailing = 0;
    bool in_member = true, done = false;
    while (!done) {
        const std::size_t got = std::fread(in.data(), 1, in.size(), f);
        if (got == 0) break;
        z.next_in = in.data();
        z.avail_in = static_cast<uInt>(got);
        while (z.avail_in > 0) {
            if (!in_member) {
                // A new member must start with the gzip magic; anything else is trailing data.
                if (z.next_in[0] != 0x1f || (z.avail_in >= 2 && z.next_in[1] != 0x8b)) {
                    trailing += z.avail_in;
                    done = true;
                    break;
                }
                inflateReset(&z);
                in_member = true;
            }
            z.next_out = out.data();
            z.avail_out = static_cast<uInt>(out.size());
            const int rc = inflate(&z, Z_NO_FLUSH);
            if (rc == Z_STREAM_END) in_member = false;
            else if (rc != Z_OK && rc != Z_BUF_ERROR) {
                done = true;
                break;
            }  // gzread reported corruption already
        }
    }
    if (done && trailing > 0)
        for (std::size_t got; (got = std::fread(in.data(), 1, in.size(), f)) > 0;) trailing += got;
    inflateEnd(&z);
    std::fclose(f);
    return trailing;
}

// Fails after a short read of `what`: a gzip stream that zlib found corrupt or cut short, or else
// a file (or gzip'd content) that simply ends too early.
[[noreturn]] inline void fail_short_read(const gz_reader& in, const std::string& what, std::size_t expected,
                                         std::size_t found) {
    const std::string why = in.error();
    if (!why.empty())
        fail(in.path(), ": corrupt or cut-short gzip stream (zlib: ", why, ") while reading the ", what, ": expected ",
             expected, " bytes, found ", found);
    fail(in.path(), ": truncated ", what, ": expected ", expected, " bytes, found ", found,
         in.gzip() ? " (in the gzip'd file's content)" : "");
}

inline std::string layout_of(int rank) { return rank == 3 ? "(N, rows, cols)" : rank == 1 ? "(N)" : "(...)"; }

// Reads a whole uint8 IDX array of rank `rank` (1 to 3) from `file`.
inline tensor<std::uint8_t> read_idx_uint8(const std::filesystem::path& file, int rank) {
    require(rank >= 1 && rank <= 3, "read_idx_uint8: expected rank 1 to 3, found ", rank);
    gz_reader in(file);
    const std::string& path = in.path();
    const std::uint32_t expected_magic = (std::uint32_t{idx_dtype_uint8} << 8) | static_cast<std::uint32_t>(rank);
    const std::string expected_hex = hex(expected_magic, 8);

    unsigned char magic[4];
    const std::size_t got_magic = in.read(magic, 4);
    if (got_magic < 4) fail_short_read(in, "IDX header (magic " + expected_hex + ")", 4, got_magic);
    const std::uint32_t found_magic = (std::uint32_t{magic[0]} << 24) | (std::uint32_t{magic[1]} << 16) |
                                      (std::uint32_t{magic[2]} << 8) | std::uint32_t{magic[3]};
    const std::string found_hex = hex(found_magic, 8);
    if (magic[0] != 0 || magic[1] != 0)
        fail(path, ": not an IDX file: expected magic ", expected_hex, " (uint8, rank ", rank, "), found ", found_hex);
    if (magic[2] != idx_dtype_uint8)
        fail(path, ": wrong IDX dtype byte: expected ", hex(idx_dtype_uint8, 2), " (uint8), found ", hex(magic[2], 2),
             " (", idx_dtype_name(magic[2]), "); magic expected ", expected_hex, ", found ", found_hex);
    if (magic[3] != rank)
        fail(path, ": wrong IDX rank: expected magic ", expected_hex, " (rank ", rank, ", ", layout_of(rank),
             "), found ", found_hex, " (rank ", int{magic[3]}, ", ", layout_of(magic[3]),
             "); are the images and labels files swapped?");

    unsigned char extents_be[4 * 3];
    const std::size_t header_bytes = 4 + 4 * static_cast<std::size_t>(rank);
    const std::size_t got_extents = in.read(extents_be, 4 * static_cast<std::size_t>(rank));
    if (got_extents < 4 * static_cast<std::size_t>(rank))
        fail_short_read(in, "IDX header", header_bytes, 4 + got_extents);
    shape dims;
    switch (rank) {
        case 1: dims = shape{0}; break;
        case 2: dims = shape{0, 0}; break;
        default: dims = shape{0, 0, 0}; break;
    }
    // Caps the data at 1 TiB so a corrupt header fails here, not in the allocator.
    constexpr std::uint64_t max_bytes = std::uint64_t{1} << 40;
    std::uint64_t data_bytes = 1;
    for (int a = 0; a < rank; ++a) {
        const unsigned char* b = extents_be + 4 * a;
        const std::uint32_t e = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
                                std::uint32_t{b[3]};
        dims[a] = e;
        // Saturates above the cap instead of overflowing; a zero extent empties the array.
        data_bytes = e == 0 ? 0 : (data_bytes > max_bytes / e ? max_bytes + 1 : data_bytes * e);
    }
    if (data_bytes > max_bytes)
        fail(path, ": IDX header describes ", layout_of(rank), " = ", dims,
             ", more than 1 TiB of data; the header is corrupt");

    // Read in chunks that grow with what was read (64 KiB, then doubling), so that a header that
    // promises more than the file holds costs memory in proportion to the bytes that are there.
    std::vector<std::uint8_t> bytes;
    const std::size_t want = static_cast<std::size_t>(data_bytes);
    while (bytes.size() < want) {
        const std::size_t chunk =
            std::min<std::size_t>(want - bytes.size(), std::max<std::size_t>(bytes.size(), std::size_t{64} << 10));
        const std::size_t old = bytes.size();
        bytes.resize(old + chunk);
        const std::size_t got = in.read(bytes.data() + old, chunk);
        bytes.resize(old + got);
        if (got < chunk) break;
    }
    if (bytes.size() < want)
        fail_short_read(in,
                        "IDX data of " + layout_of(rank) + " = " + dims.str() + " after the " +
                            std::to_string(header_bytes) + "-byte header",
                        want, bytes.size());
    std::uint64_t trailing = 0;
    unsigned char scratch[4096];
    for (std::size_t got; (got = in.read(scratch, sizeof scratch)) > 0;) trailing += got;
    if (trailing > 0)
        fail(path, ": IDX file is longer than its header says: ", layout_of(rank), " = ", dims, " needs ", want,
             " bytes of data, found ", want + trailing, " (", trailing, " extra)");
    const std::string late = in.error();
    if (!late.empty()) fail(path, ": corrupt gzip stream after the IDX data: zlib: ", late);
    if (in.gzip())
        if (const std::uint64_t extra = gzip_trailing_bytes(path); extra > 0)
            fail(path, ": expected the file to end with its gzip stream, found ", extra, " trailing bytes after it");

    tensor<std::uint8_t> out(dims);
    std::copy(bytes.begin(), bytes.end(), out.begin());
    return out;
}

}  // namespace detail

// Reads an IDX images file (magic 0x00000803), plain or gzip'd.
// Ensures: a tensor of shape (N, rows, cols) holding the raw pixel bytes.
inline tensor<std::uint8_t> read_idx_images(const std::filesystem::path& file) {
    return detail::read_idx_uint8(file, 3);
}

// Reads an IDX labels file (magic 0x00000801), plain or gzip'd.
// Ensures: a tensor of shape (N) with the label bytes widened to int64. Any byte value is accepted
// here; the data set loader decides which labels are valid.
inline tensor<std::int64_t> read_idx_labels(const std::filesystem::path& file) {
    const tensor<std::uint8_t> raw = detail::read_idx_uint8(file, 1);
    tensor<std::int64_t> labels(raw.dims());
    std::copy(raw.begin(), raw.end(), labels.begin());
    return labels;
}

}  // namespace ouro::data
