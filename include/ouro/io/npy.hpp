// NumPy .npy files (format versions 1.0-3.0): read float32/float64/int64/uint8 arrays in C order
// into ouro tensors, write float32/float64 ones. Used for golden test data and for feature files
// handed over from Python.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/atomic_file.hpp"

namespace ouro::io {

// What a .npy header says about its array.
struct npy_header {
    std::string dtype;  // NumPy descr, e.g. "<f4"
    bool fortran_order = false;
    shape dims;
    std::size_t data_offset = 0;  // bytes from the start of the file
};

namespace detail {
inline std::string npy_field(const std::string& header, const std::string& key, const std::string& path) {
    const auto k = header.find("'" + key + "'");
    if (k == std::string::npos) fail(path, ": .npy header has no '", key, "' field");
    auto colon = header.find(':', k);
    if (colon == std::string::npos) fail(path, ": malformed .npy header");
    const auto start = header.find_first_not_of(' ', colon + 1);
    if (start == std::string::npos) fail(path, ": .npy header field '", key, "' has no value");
    return header.substr(start);
}

// Whether the float `v` truncates to a value of the integer type T. Casting one that does not
// (NaN, infinities, out of range) is undefined behaviour, not a wrapped or clamped value.
template <class T, class S>
bool fits_integer(S v) {
    const S past = std::ldexp(S{1}, std::numeric_limits<T>::digits);  // 2^digits: the first value above T's
    return std::is_signed_v<T> ? (v >= -past && v < past) : (v > S{-1} && v < past);
}
}  // namespace detail

// Parses the header of the .npy stream `in` (file name `path` for messages).
inline npy_header read_npy_header(std::istream& in, const std::string& path) {
    char magic[8];
    if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
        fail(path, ": not a .npy file (expected the magic \\x93NUMPY)");
    const int major = static_cast<unsigned char>(magic[6]);
    std::uint32_t header_len = 0;
    if (major == 1) {
        unsigned char b[2];
        if (!in.read(reinterpret_cast<char*>(b), 2)) fail(path, ": truncated .npy header");
        header_len = b[0] | (b[1] << 8);
    } else if (major == 2 || major == 3) {
        unsigned char b[4];
        if (!in.read(reinterpret_cast<char*>(b), 4)) fail(path, ": truncated .npy header");
        header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t{b[3]} << 24);
    } else {
        fail(path, ": unsupported .npy format version ", major, " (expected 1, 2 or 3)");
    }
    if (header_len > (1u << 20)) fail(path, ": .npy header of ", header_len, " bytes is implausible");
    std::string header(header_len, '\0');
    if (!in.read(header.data(), header_len)) fail(path, ": truncated .npy header");

    npy_header h;
    h.data_offset = (major == 1 ? 10 : 12) + header_len;
    std::string descr = detail::npy_field(header, "descr", path);
    if (descr.empty() || descr[0] != '\'')
        fail(path, ": .npy descr is not a simple type (structured arrays are not supported)");
    h.dtype = descr.substr(1, descr.find('\'', 1) - 1);
    h.fortran_order = detail::npy_field(header, "fortran_order", path).rfind("True", 0) == 0;
    std::string sh = detail::npy_field(header, "shape", path);
    if (sh.empty() || sh[0] != '(') fail(path, ": malformed .npy shape");
    const auto close = sh.find(')');
    if (close == std::string::npos) fail(path, ": malformed .npy shape");
    std::string body = sh.substr(1, close - 1);
    std::vector<std::int64_t> dims;
    std::size_t pos = 0;
    while (pos < body.size()) {
        while (pos < body.size() && (body[pos] == ' ' || body[pos] == ',')) ++pos;
        if (pos >= body.size()) break;
        std::size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(body.substr(pos), &used);
        } catch (const std::exception&) {
            fail(path, ": malformed .npy shape '(", body, ")'");
        }
        if (v < 0) fail(path, ": negative extent in .npy shape");
        dims.push_back(v);
        pos += used;
    }
    if (dims.size() > static_cast<std::size_t>(shape::max_rank)) fail(path, ": .npy rank ", dims.size(), " above 6");
    switch (dims.size()) {
        case 0: h.dims = shape{}; break;
        case 1: h.dims = shape{dims[0]}; break;
        case 2: h.dims = shape{dims[0], dims[1]}; break;
        case 3: h.dims = shape{dims[0], dims[1], dims[2]}; break;
        case 4: h.dims = shape{dims[0], dims[1], dims[2], dims[3]}; break;
        case 5: h.dims = shape{dims[0], dims[1], dims[2], dims[3], dims[4]}; break;
        default: h.dims = shape{dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]}; break;
    }
    return h;
}

// Reads a .npy file of float32, float64, int64 or uint8 (little-endian, C order) into a tensor of T,
// converting element by element. Refuses Fortran order, other dtypes, truncated data, and (for an
// integer T) a float element that T cannot hold: NaN, an infinity, or a value out of its range.
template <class T>
tensor<T> read_npy(const std::filesystem::path& file) {
    const std::string path = file.string();
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(path, ": cannot open .npy file");
    const npy_header h = read_npy_header(in, path);
    if (h.fortran_order) fail(path, ": expected a C-order array, found fortran_order=True");
    std::error_code ec;
    const std::uintmax_t file_size = std::filesystem::file_size(file, ec);
    if (ec) fail(path, ": cannot read the file size: ", ec.message());
    const std::uintmax_t data_bytes = file_size - std::min<std::uintmax_t>(file_size, h.data_offset);
    tensor<T> out;
    auto read_as = [&]<class S>(S) {
        // The header's shape must account for exactly the bytes that follow it, checked before
        // anything is allocated: a hostile shape (2^61, 8) or (2^40, 8) is refused here, and so
        // are a truncated file and trailing bytes.
        std::int64_t expected = 0;
        try {
            expected = h.dims.bytes(static_cast<std::int64_t>(sizeof(S)));
        } catch (const error&) {
            fail(path, ": .npy shape ", h.dims, " of ", sizeof(S), "-byte elements overflows a 64-bit byte count");
        }
        if (static_cast<std::uintmax_t>(expected) > data_bytes)
            fail(path, ": truncated .npy data: expected ", expected, " bytes for shape ", h.dims, ", found ",
                 data_bytes);
        if (static_cast<std::uintmax_t>(expected) < data_bytes)
            fail(path, ": expected ", expected, " bytes of .npy data for shape ", h.dims, ", found ", data_bytes, " (",
                 data_bytes - static_cast<std::uintmax_t>(expected), " trailing bytes)");
        const std::size_t n = static_cast<std::size_t>(h.dims.numel());
        tensor<T> result(h.dims);
        std::vector<S> raw(n);
        if (!in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(n * sizeof(S))))
            fail(path, ": truncated .npy data: expected ", n * sizeof(S), " bytes for shape ", h.dims);
        for (std::size_t i = 0; i < n; ++i) {
            if constexpr (std::is_integral_v<T> && std::is_floating_point_v<S>)
                if (!detail::fits_integer<T>(raw[i]))
                    fail(path, ": element ", i, " of the .npy data is ", raw[i], ", which a ", 8 * sizeof(T), "-bit ",
                         std::is_signed_v<T> ? "signed" : "unsigned", " integer cannot hold (reading '", h.dtype,
                         "' data as integers)");
            result[static_cast<std::int64_t>(i)] = static_cast<T>(raw[i]);
        }
        out = std::move(result);
    };
    if (h.dtype == "<f4") read_as(float{});
    else if (h.dtype == "<f8")
        read_as(double{});
    else if (h.dtype == "<i8")
        read_as(std::int64_t{});
    else if (h.dtype == "<i4")
        read_as(std::int32_t{});
    else if (h.dtype == "|u1")
        read_as(std::uint8_t{});
    else
        fail(path, ": expected dtype float32 ('<f4'), float64 ('<f8'), int32, int64 or uint8, found '", h.dtype, "'");
    return out;
}

// Writes `t` as a version-1.0 .npy file of float32, float64 or int64, atomically.
template <class T>
requires(std::is_same_v<std::remove_const_t<T>, float> || std::is_same_v<std::remove_const_t<T>, double> ||
         std::is_same_v<std::remove_const_t<T>, std::int64_t>) void write_npy(const std::filesystem::path& file,
                                                                              tensor_view<T> t) {
    using U = std::remove_const_t<T>;
    std::string header = "{'descr': '";
    header += std::is_same_v<U, float> ? "<f4" : std::is_same_v<U, double> ? "<f8" : "<i8";
    header += "', 'fortran_order': False, 'shape': (";
    for (int i = 0; i < t.rank(); ++i) header += std::to_string(t.dim(i)) + (i + 1 < t.rank() ? ", " : "");
    header += t.rank() == 1 ? ",), }" : "), }";  // a 1-tuple needs its comma
    // Pad so that data starts on a 64-byte boundary, header ends with '\n'.
    const std::size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::string bytes = "\x93NUMPY";
    bytes += '\x01';
    bytes += '\x00';
    bytes += static_cast<char>(header.size() & 0xff);
    bytes += static_cast<char>((header.size() >> 8) & 0xff);
    bytes += header;
    bytes.append(reinterpret_cast<const char*>(t.data()), static_cast<std::size_t>(t.numel()) * sizeof(T));
    write_file_atomically(file, bytes);
}

}  // namespace ouro::io
