// Image folders (torchvision's ImageFolder layout: one subfolder per class holding PNG or JPEG
// files) become float images (N, C, S, S) and int64 labels: each image is decoded by stb_image,
// converted to RGB or grey, centre-cropped to a square and resized to S x S.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/mnist.hpp"

// ---------------------------------------------------------------------------------------------------
// stb_image (Sean Barrett, public domain; Debian/Ubuntu: libstb-dev), compiled privately.
//
// stb's implementation must exist once per program, which a header-only library cannot arrange. So
// every translation unit that includes this header compiles its own copy, and that copy must not
// meet a user's own stb_image, whether compiled in another translation unit or in this one, before
// or after this header:
//  - STB_IMAGE_STATIC gives every function internal linkage, so translation units link together;
//  - the copy lives in namespace ouro::data::detail::stb_private, so its internal functions
//    (stbi__*) are not those of a global copy;
//  - its public functions, which stb declares inside extern "C" { } and which therefore keep their
//    plain names as assembler symbols even when static (GCC), are renamed ouro_stbi_*;
//  - every macro stb_image.h defines or reads is saved (push_macro) and undefined before the
//    include and restored (pop_macro) after it: a user's configuration (STBI_NO_JPEG, STBI_MALLOC,
//    ...) does not reach our copy, and ours (include guard, STBIDEF, stbi__err, ...) does not leak.
// Only PNG and JPEG are compiled in, and no stdio: files are read here, which keeps the error
// messages ours (and drops the FILE* functions, which argument-dependent lookup would pair with a
// user's global copy). The C headers stb includes come first, in the global namespace, so that its
// own #includes inside the namespace are no-ops. The lists below are those of stb_image v2.27
// (Debian 12): a later stb works as well on its own, but next to a user's copy in the same
// translation unit, a macro or function the lists miss can break the build.
// ---------------------------------------------------------------------------------------------------
// clang-format off
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define OURO_STBI_HAS_SSE2 1
#endif
#if defined(_MSC_VER)
#include <intrin.h>
#endif

#if __has_include(<stb/stb_image.h>)
#define OURO_STB_IMAGE_HEADER <stb/stb_image.h>
#elif __has_include(<stb_image.h>)
#define OURO_STB_IMAGE_HEADER <stb_image.h>
#else
#error "ouro/data/image_folder.hpp needs stb_image.h (Debian/Ubuntu: apt install libstb-dev)"
#endif

// Every macro stb_image.h (v2.27, as Debian 12 ships it) defines, leaves defined, or reads.
#define OURO_STBI_MACROS(X)                                                                                      \
    X(FAST_BITS) X(STBIDEF) X(STBI_ASSERT) X(STBI_EXTERN) X(STBI_FAILURE_USERMSG) X(STBI_FREE) X(STBI_HAS_LROTL) \
    X(STBI_INCLUDE_STB_IMAGE_H) X(STBI_MALLOC) X(STBI_MAX_DIMENSIONS) X(STBI_MINGW_ENABLE_SSE2) X(STBI_NEON)     \
    X(STBI_NOTUSED) X(STBI_NO_BMP) X(STBI_NO_FAILURE_STRINGS) X(STBI_NO_GIF) X(STBI_NO_HDR) X(STBI_NO_JPEG)      \
    X(STBI_NO_LINEAR) X(STBI_NO_PIC) X(STBI_NO_PNG) X(STBI_NO_PNM) X(STBI_NO_PSD) X(STBI_NO_SIMD)                \
    X(STBI_NO_STDIO) X(STBI_NO_TGA) X(STBI_NO_THREAD_LOCALS) X(STBI_NO_ZLIB) X(STBI_ONLY_BMP) X(STBI_ONLY_GIF)   \
    X(STBI_ONLY_HDR) X(STBI_ONLY_JPEG) X(STBI_ONLY_PIC) X(STBI_ONLY_PNG) X(STBI_ONLY_PNM) X(STBI_ONLY_PSD)       \
    X(STBI_ONLY_TGA) X(STBI_ONLY_ZLIB) X(STBI_REALLOC) X(STBI_REALLOC_SIZED) X(STBI_SIMD_ALIGN) X(STBI_SSE2)     \
    X(STBI_SUPPORT_ZLIB) X(STBI_THREAD_LOCAL) X(STBI_VERSION) X(STBI_WINDOWS_UTF8) X(STBI__BYTECAST)             \
    X(STBI__COMBO) X(STBI__HDR_BUFLEN) X(STBI__IDCT_1D) X(STBI__MARKER_none) X(STBI__PNG_TYPE) X(STBI__RESTART)  \
    X(STBI__X64_TARGET) X(STBI__X86_TARGET) X(STBI__ZFAST_BITS) X(STBI__ZFAST_MASK) X(STBI__ZNSYMS)              \
    X(STB_IMAGE_IMPLEMENTATION) X(STB_IMAGE_STATIC) X(stbi__DNL) X(stbi__EOI) X(stbi__SOF)                       \
    X(stbi__SOF_progressive) X(stbi__SOI) X(stbi__SOS) X(stbi__de_iphone_flag) X(stbi__div16) X(stbi__div4)      \
    X(stbi__err) X(stbi__errpf) X(stbi__errpuc) X(stbi__f2f) X(stbi__float2fixed) X(stbi__float2int) X(stbi__fsh) \
    X(stbi__unpremultiply_on_load) X(stbi__vertically_flip_on_load) X(stbi_inline) X(stbi_lrot)
// The functions stb_image.h declares inside extern "C" { }, renamed ouro_stbi_* in our copy.
#define OURO_STBI_API(X)                                                                                       \
    X(stbi_convert_iphone_png_to_rgb) X(stbi_convert_iphone_png_to_rgb_thread) X(stbi_convert_wchar_to_utf8)   \
    X(stbi_failure_reason) X(stbi_hdr_to_ldr_gamma) X(stbi_hdr_to_ldr_scale) X(stbi_image_free) X(stbi_info)   \
    X(stbi_info_from_callbacks) X(stbi_info_from_file) X(stbi_info_from_memory) X(stbi_is_16_bit)              \
    X(stbi_is_16_bit_from_callbacks) X(stbi_is_16_bit_from_file) X(stbi_is_16_bit_from_memory) X(stbi_is_hdr)  \
    X(stbi_is_hdr_from_callbacks) X(stbi_is_hdr_from_file) X(stbi_is_hdr_from_memory) X(stbi_ldr_to_hdr_gamma) \
    X(stbi_ldr_to_hdr_scale) X(stbi_load) X(stbi_load_16) X(stbi_load_16_from_callbacks)                       \
    X(stbi_load_16_from_memory) X(stbi_load_from_callbacks) X(stbi_load_from_file) X(stbi_load_from_file_16)   \
    X(stbi_load_from_memory) X(stbi_load_gif_from_memory) X(stbi_loadf) X(stbi_loadf_from_callbacks)           \
    X(stbi_loadf_from_file) X(stbi_loadf_from_memory) X(stbi_set_flip_vertically_on_load)                      \
    X(stbi_set_flip_vertically_on_load_thread) X(stbi_set_unpremultiply_on_load)                               \
    X(stbi_set_unpremultiply_on_load_thread) X(stbi_zlib_decode_buffer) X(stbi_zlib_decode_malloc)             \
    X(stbi_zlib_decode_malloc_guesssize) X(stbi_zlib_decode_malloc_guesssize_headerflag)                       \
    X(stbi_zlib_decode_noheader_buffer) X(stbi_zlib_decode_noheader_malloc)
#define OURO_STBI_PRAGMA(text) _Pragma(#text)
#define OURO_STBI_PUSH(name) OURO_STBI_PRAGMA(push_macro(#name))
#define OURO_STBI_POP(name) OURO_STBI_PRAGMA(pop_macro(#name))
OURO_STBI_MACROS(OURO_STBI_PUSH)
OURO_STBI_API(OURO_STBI_PUSH)
#undef FAST_BITS
#undef STBIDEF
#undef STBI_ASSERT
#undef STBI_EXTERN
#undef STBI_FAILURE_USERMSG
#undef STBI_FREE
#undef STBI_HAS_LROTL
#undef STBI_INCLUDE_STB_IMAGE_H
#undef STBI_MALLOC
#undef STBI_MAX_DIMENSIONS
#undef STBI_MINGW_ENABLE_SSE2
#undef STBI_NEON
#undef STBI_NOTUSED
#undef STBI_NO_BMP
#undef STBI_NO_FAILURE_STRINGS
#undef STBI_NO_GIF
#undef STBI_NO_HDR
#undef STBI_NO_JPEG
#undef STBI_NO_LINEAR
#undef STBI_NO_PIC
#undef STBI_NO_PNG
#undef STBI_NO_PNM
#undef STBI_NO_PSD
#undef STBI_NO_SIMD
#undef STBI_NO_STDIO
#undef STBI_NO_TGA
#undef STBI_NO_THREAD_LOCALS
#undef STBI_NO_ZLIB
#undef STBI_ONLY_BMP
#undef STBI_ONLY_GIF
#undef STBI_ONLY_HDR
#undef STBI_ONLY_JPEG
#undef STBI_ONLY_PIC
#undef STBI_ONLY_PNG
#undef STBI_ONLY_PNM
#undef STBI_ONLY_PSD
#undef STBI_ONLY_TGA
#undef STBI_ONLY_ZLIB
#undef STBI_REALLOC
#undef STBI_REALLOC_SIZED
#undef STBI_SIMD_ALIGN
#undef STBI_SSE2
#undef STBI_SUPPORT_ZLIB
#undef STBI_THREAD_LOCAL
#undef STBI_VERSION
#undef STBI_WINDOWS_UTF8
#undef STBI__BYTECAST
#undef STBI__COMBO
#undef STBI__HDR_BUFLEN
#undef STBI__IDCT_1D
#undef STBI__MARKER_none
#undef STBI__PNG_TYPE
#undef STBI__RESTART
#undef STBI__X64_TARGET
#undef STBI__X86_TARGET
#undef STBI__ZFAST_BITS
#undef STBI__ZFAST_MASK
#undef STBI__ZNSYMS
#undef STB_IMAGE_IMPLEMENTATION
#undef STB_IMAGE_STATIC
#undef stbi__DNL
#undef stbi__EOI
#undef stbi__SOF
#undef stbi__SOF_progressive
#undef stbi__SOI
#undef stbi__SOS
#undef stbi__de_iphone_flag
#undef stbi__div16
#undef stbi__div4
#undef stbi__err
#undef stbi__errpf
#undef stbi__errpuc
#undef stbi__f2f
#undef stbi__float2fixed
#undef stbi__float2int
#undef stbi__fsh
#undef stbi__unpremultiply_on_load
#undef stbi__vertically_flip_on_load
#undef stbi_inline
#undef stbi_lrot
#define stbi_convert_iphone_png_to_rgb ouro_stbi_convert_iphone_png_to_rgb
#define stbi_convert_iphone_png_to_rgb_thread ouro_stbi_convert_iphone_png_to_rgb_thread
#define stbi_convert_wchar_to_utf8 ouro_stbi_convert_wchar_to_utf8
#define stbi_failure_reason ouro_stbi_failure_reason
#define stbi_hdr_to_ldr_gamma ouro_stbi_hdr_to_ldr_gamma
#define stbi_hdr_to_ldr_scale ouro_stbi_hdr_to_ldr_scale
#define stbi_image_free ouro_stbi_image_free
#define stbi_info ouro_stbi_info
#define stbi_info_from_callbacks ouro_stbi_info_from_callbacks
#define stbi_info_from_file ouro_stbi_info_from_file
#define stbi_info_from_memory ouro_stbi_info_from_memory
#define stbi_is_16_bit ouro_stbi_is_16_bit
#define stbi_is_16_bit_from_callbacks ouro_stbi_is_16_bit_from_callbacks
#define stbi_is_16_bit_from_file ouro_stbi_is_16_bit_from_file
#define stbi_is_16_bit_from_memory ouro_stbi_is_16_bit_from_memory
#define stbi_is_hdr ouro_stbi_is_hdr
#define stbi_is_hdr_from_callbacks ouro_stbi_is_hdr_from_callbacks
#define stbi_is_hdr_from_file ouro_stbi_is_hdr_from_file
#define stbi_is_hdr_from_memory ouro_stbi_is_hdr_from_memory
#define stbi_ldr_to_hdr_gamma ouro_stbi_ldr_to_hdr_gamma
#define stbi_ldr_to_hdr_scale ouro_stbi_ldr_to_hdr_scale
#define stbi_load ouro_stbi_load
#define stbi_load_16 ouro_stbi_load_16
#define stbi_load_16_from_callbacks ouro_stbi_load_16_from_callbacks
#define stbi_load_16_from_memory ouro_stbi_load_16_from_memory
#define stbi_load_from_callbacks ouro_stbi_load_from_callbacks
#define stbi_load_from_file ouro_stbi_load_from_file
#define stbi_load_from_file_16 ouro_stbi_load_from_file_16
#define stbi_load_from_memory ouro_stbi_load_from_memory
#define stbi_load_gif_from_memory ouro_stbi_load_gif_from_memory
#define stbi_loadf ouro_stbi_loadf
#define stbi_loadf_from_callbacks ouro_stbi_loadf_from_callbacks
#define stbi_loadf_from_file ouro_stbi_loadf_from_file
#define stbi_loadf_from_memory ouro_stbi_loadf_from_memory
#define stbi_set_flip_vertically_on_load ouro_stbi_set_flip_vertically_on_load
#define stbi_set_flip_vertically_on_load_thread ouro_stbi_set_flip_vertically_on_load_thread
#define stbi_set_unpremultiply_on_load ouro_stbi_set_unpremultiply_on_load
#define stbi_set_unpremultiply_on_load_thread ouro_stbi_set_unpremultiply_on_load_thread
#define stbi_zlib_decode_buffer ouro_stbi_zlib_decode_buffer
#define stbi_zlib_decode_malloc ouro_stbi_zlib_decode_malloc
#define stbi_zlib_decode_malloc_guesssize ouro_stbi_zlib_decode_malloc_guesssize
#define stbi_zlib_decode_malloc_guesssize_headerflag ouro_stbi_zlib_decode_malloc_guesssize_headerflag
#define stbi_zlib_decode_noheader_buffer ouro_stbi_zlib_decode_noheader_buffer
#define stbi_zlib_decode_noheader_malloc ouro_stbi_zlib_decode_noheader_malloc
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_ASSERT(x) assert(x)
#if !defined(OURO_STBI_HAS_SSE2)
#define STBI_NO_SIMD
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#endif
namespace ouro::data::detail::stb_private {
#include OURO_STB_IMAGE_HEADER
}  // namespace ouro::data::detail::stb_private
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
OURO_STBI_MACROS(OURO_STBI_POP)
OURO_STBI_API(OURO_STBI_POP)
#undef OURO_STBI_PUSH
#undef OURO_STBI_POP
#undef OURO_STBI_PRAGMA
#undef OURO_STBI_MACROS
#undef OURO_STBI_API
#undef OURO_STBI_HAS_SSE2
#undef OURO_STB_IMAGE_HEADER
// clang-format on
// ---------------------------------------------------------------------------------------------------

namespace ouro::data {

// How an image is resampled to the requested size.
enum class resize_filter {
    // PIL's BILINEAR (Image.resize; the default of torchvision's Resize on PIL images, and
    // antialias=True on tensors): a triangle filter whose support widens by the shrink factor, so
    // shrinking averages every input pixel instead of aliasing; enlarging is plain bilinear
    // interpolation with half-pixel centres (align_corners=False).
    bilinear,
    // Area averaging: each output pixel is the mean of the input over its footprint, with exact
    // fractional coverage (as OpenCV's INTER_AREA when shrinking); enlarging repeats pixels and
    // blends the ones a footprint boundary cuts.
    area,
};

struct image_folder_options {
    std::int64_t channels = 3;                          // 3: RGB; 1: grey (ITU-R 601-2 luma, as PIL's convert("L"))
    bool centre_crop = true;                            // crop the largest centred square first; false: stretch
    resize_filter filter = resize_filter::bilinear;     // used only where an image is not already S x S
    pixel_scale scale = pixel_scale::minus_one_to_one;  // what bytes 0..255 become
    std::int64_t max_per_class = 0;                     // the first K files of each class (sorted); 0: all
    std::string subfolder;                              // e.g. "train": classes live in root/subfolder
    int threads = 0;                                    // decoding threads; 0: OpenMP's current setting
    std::ostream* log = &std::clog;                     // where skipped files are reported; nullptr: nowhere
};

// What list_image_folder found: the files to load, in load order, and what it skipped.
struct image_folder_listing {
    std::filesystem::path directory;                      // root, or root/subfolder
    std::vector<std::string> class_names;                 // label c is class_names[c]; sorted
    std::vector<std::filesystem::path> files;             // sorted by class, then by path within the class
    std::vector<std::int64_t> labels;                     // labels[i] is the class of files[i]
    std::int64_t skipped_files = 0;                       // files that are not .png/.jpg/.jpeg, or hidden
    std::vector<std::filesystem::path> skipped_examples;  // the first few of them
};

// An image folder held in memory: the data set, plus where each item came from.
struct image_folder_dataset : image_dataset {
    std::vector<std::string> class_names;      // label c is class_names[c]
    std::vector<std::filesystem::path> files;  // item i was decoded from files[i]
    std::int64_t skipped_files = 0;
    std::vector<std::filesystem::path> skipped_examples;
};

inline constexpr std::size_t image_folder_skipped_examples = 5;

// True for the extensions load_image_folder reads: .png, .jpg, .jpeg, in any letter case.
inline bool is_supported_image_file(const std::filesystem::path& file) {
    std::string ext = file.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

namespace detail {

inline bool is_hidden(const std::filesystem::path& p) {
    const std::string name = p.filename().string();
    return !name.empty() && name[0] == '.';
}

// The whole file, or an error naming it.
inline std::vector<unsigned char> read_image_file(const std::filesystem::path& file) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(file, ec);  // through symlinks
    if (!fs::exists(st)) fail(file.string(), ": no such file");
    // A FIFO, socket or device would block or never end: refused before it is opened.
    if (!fs::is_regular_file(st)) fail(file.string(), ": not a regular file (a pipe, socket, device or folder)");
    const std::uintmax_t size = fs::file_size(file, ec);
    if (ec) fail(file.string(), ": cannot read its size: ", ec.message());
    if (size == 0) fail(file.string(), ": empty file (0 bytes), expected a PNG or JPEG image");
    if (size > static_cast<std::uintmax_t>(std::numeric_limits<int>::max()))
        fail(file.string(), ": ", size, " bytes, more than stb_image reads (2 GiB)");
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(file.string(), ": cannot open for reading");
    std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
    if (static_cast<std::uintmax_t>(in.gcount()) != size)
        fail(file.string(), ": read ", in.gcount(), " of its ", size, " bytes");
    return bytes;
}

// Whether the JPEG `bytes` has a Huffman table (DHT segment) of more than 256 codes. No valid
// table has (there are 256 byte values to code), but stb_image up to v2.27, Debian 12's, writes
// such a table past its arrays (nothings/stb#1289, fixed in v2.28). So the segments are walked as
// stb walks them, up to EOI: a marker is 0xFF then a byte other than 0x00 and 0xFF, found by
// scanning (entropy-coded data, fill bytes and junk between segments are skipped so), and every
// marker but TEM, RSTn, SOI and EOI is followed by a big-endian length that counts itself. Bytes
// past the end read as 0, as in stb.
inline bool jpeg_has_oversized_huffman_table(const std::vector<unsigned char>& bytes) {
    const std::size_t size = bytes.size();
    std::size_t i = 0;
    while (i < size && bytes[i] == 0xFF) ++i;                   // stb takes FF ... FF D8 for SOI too
    if (i == 0 || i == size || bytes[i] != 0xD8) return false;  // not a JPEG
    ++i;
    auto at = [&](std::size_t k) -> std::size_t { return k < size ? bytes[k] : 0; };
    while (i + 1 < size) {
        if (bytes[i] != 0xFF || bytes[i + 1] == 0x00 || bytes[i + 1] == 0xFF) {
            ++i;
            continue;
        }
        const unsigned marker = bytes[i + 1];
        i += 2;
        if (marker == 0xD9) return false;                                    // EOI
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;  // TEM, RSTn, SOI
        const std::size_t length = at(i) << 8 | at(i + 1);
        if (marker == 0xC4) {
            // Tables of 1 + 16 + n bytes (class and id, the code counts per length, the n symbols)
            // while the segment has bytes left, as stb reads them.
            std::size_t table = i + 2;
            for (std::ptrdiff_t left = static_cast<std::ptrdiff_t>(length) - 2; left > 0;) {
                std::size_t codes = 0;
                for (std::size_t k = 1; k <= 16; ++k) codes += at(table + k);
                if (codes > 256) return true;
                table += 17 + codes;
                left -= static_cast<std::ptrdiff_t>(17 + codes);
            }
        }
        i += length;
    }
    return false;
}

// Decodes `file` to interleaved 8-bit RGB (H, W, 3). stb keeps its failure reason per thread.
struct rgb_pixels {
    std::vector<unsigned char> data;
    std::int64_t height = 0, width = 0;
};

inline rgb_pixels decode_rgb(const std::filesystem::path& file) {
    const std::vector<unsigned char> bytes = read_image_file(file);
    if (jpeg_has_oversized_huffman_table(bytes))
        fail(file.string(), ": corrupt JPEG: a Huffman table (DHT segment) declares more than 256 codes");
    int w = 0, h = 0, in_file = 0;
    unsigned char* pixels =
        stb_private::ouro_stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &in_file, 3);
    if (pixels == nullptr) {
        const char* why = stb_private::ouro_stbi_failure_reason();
        fail(file.string(), ": cannot decode the image (stb_image: ", why != nullptr ? why : "no reason given",
             "); is it a complete PNG or JPEG file?");
    }
    rgb_pixels out;
    out.height = h;
    out.width = w;
    out.data.assign(pixels, pixels + static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3);
    stb_private::ouro_stbi_image_free(pixels);
    return out;
}

// ITU-R 601-2 luma in PIL's integer form (Pillow, Convert.c: L24): L = (19595 R + 38470 G + 7471 B
// + 2^15) >> 16, the weights 0.299, 0.587, 0.114 in 16-bit fixed point. Grey input (R = G = B)
// comes back unchanged, since the weights sum to 2^16.
inline std::uint8_t luma(unsigned r, unsigned g, unsigned b) {
    return static_cast<std::uint8_t>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

// For one axis: output pixel o is the sum over k < count[o] of weight[o * taps + k] times input
// pixel first[o] + k; each row of weights sums to 1.
struct resample_weights {
    std::vector<std::int64_t> first, count;
    std::vector<double> weight;
    std::int64_t taps = 0;
};

inline resample_weights make_resample_weights(std::int64_t in, std::int64_t out, resize_filter filter) {
    resample_weights r;
    r.first.resize(static_cast<std::size_t>(out));
    r.count.resize(static_cast<std::size_t>(out));
    const double scale = static_cast<double>(in) / static_cast<double>(out);
    if (filter == resize_filter::area) {
        // Output o covers input [o in / out, (o + 1) in / out); pixel i covers [i, i + 1).
        r.taps = static_cast<std::int64_t>(std::ceil(scale)) + 1;
        r.weight.assign(static_cast<std::size_t>(out * r.taps), 0.0);
        for (std::int64_t o = 0; o < out; ++o) {
            const double lo = static_cast<double>(o * in) / static_cast<double>(out);
            const double hi = static_cast<double>((o + 1) * in) / static_cast<double>(out);
            const auto i0 = static_cast<std::int64_t>(std::floor(lo));
            const auto i1 = std::min(in, static_cast<std::int64_t>(std::ceil(hi)));
            double* w = r.weight.data() + o * r.taps;
            double sum = 0;
            for (std::int64_t i = i0; i < i1; ++i) {
                w[i - i0] = std::min(hi, static_cast<double>(i + 1)) - std::max(lo, static_cast<double>(i));
                sum += w[i - i0];
            }
            for (std::int64_t k = 0; k < i1 - i0; ++k) w[k] /= sum;
            r.first[static_cast<std::size_t>(o)] = i0;
            r.count[static_cast<std::size_t>(o)] = i1 - i0;
        }
        return r;
    }
    // Pillow, libImaging/Resample.c, precompute_coeffs with the bilinear (triangle) filter of
    // support 1, widened to `scale` when shrinking; pixel centres at i + 0.5.
    const double filterscale = std::max(scale, 1.0);
    const double support = 1.0 * filterscale;
    r.taps = static_cast<std::int64_t>(std::ceil(support)) * 2 + 1;
    r.weight.assign(static_cast<std::size_t>(out * r.taps), 0.0);
    for (std::int64_t o = 0; o < out; ++o) {
        const double centre = (static_cast<double>(o) + 0.5) * scale;
        const std::int64_t i0 =
            std::max<std::int64_t>(static_cast<std::int64_t>(std::floor(centre - support + 0.5)), 0);
        const std::int64_t i1 =
            std::min<std::int64_t>(static_cast<std::int64_t>(std::floor(centre + support + 0.5)), in);
        double* w = r.weight.data() + o * r.taps;
        double sum = 0;
        for (std::int64_t i = i0; i < i1; ++i) {
            const double x = std::abs((static_cast<double>(i) - centre + 0.5) / filterscale);
            w[i - i0] = x < 1.0 ? 1.0 - x : 0.0;
            sum += w[i - i0];
        }
        if (sum != 0)
            for (std::int64_t k = 0; k < i1 - i0; ++k) w[k] /= sum;
        r.first[static_cast<std::size_t>(o)] = i0;
        r.count[static_cast<std::size_t>(o)] = i1 - i0;
    }
    return r;
}

// Resizes the h x w window at row y0, column x0 of each plane of `src` (C planes of `plane_size`
// elements, rows `src_stride` apart) to `dst` (C, out_h, out_w): along rows, then along columns, in
// double; `map` turns each double result into the stored float.
template <class In, class Map>
void resize_planes(const In* src, std::int64_t channels, std::int64_t plane_size, std::int64_t src_stride,
                   std::int64_t y0, std::int64_t x0, std::int64_t h, std::int64_t w, float* dst, std::int64_t out_h,
                   std::int64_t out_w, resize_filter filter, Map map) {
    const resample_weights wx = make_resample_weights(w, out_w, filter);
    const resample_weights wy = make_resample_weights(h, out_h, filter);
    std::vector<double> rows(static_cast<std::size_t>(h * out_w));  // (h, out_w) of one channel
    for (std::int64_t c = 0; c < channels; ++c) {
        const In* plane = src + c * plane_size + y0 * src_stride + x0;
        for (std::int64_t y = 0; y < h; ++y)
            for (std::int64_t o = 0; o < out_w; ++o) {
                const In* p = plane + y * src_stride + wx.first[static_cast<std::size_t>(o)];
                const double* k = wx.weight.data() + o * wx.taps;
                double s = 0;
                for (std::int64_t t = 0; t < wx.count[static_cast<std::size_t>(o)]; ++t)
                    s += k[t] * static_cast<double>(p[t]);
                rows[static_cast<std::size_t>(y * out_w + o)] = s;
            }
        float* out = dst + c * out_h * out_w;
        for (std::int64_t o = 0; o < out_h; ++o) {
            const double* k = wy.weight.data() + o * wy.taps;
            const std::int64_t first = wy.first[static_cast<std::size_t>(o)],
                               count = wy.count[static_cast<std::size_t>(o)];
            for (std::int64_t x = 0; x < out_w; ++x) {
                double s = 0;
                for (std::int64_t t = 0; t < count; ++t)
                    s += k[t] * rows[static_cast<std::size_t>((first + t) * out_w + x)];
                out[o * out_w + x] = map(s);
            }
        }
    }
}

// The centred square of side min(h, w): offsets floor((h - side) / 2), floor((w - side) / 2).
struct crop_box {
    std::int64_t y0 = 0, x0 = 0, h = 0, w = 0;
};

inline crop_box centred_square(std::int64_t h, std::int64_t w) {
    const std::int64_t side = std::min(h, w);
    return {(h - side) / 2, (w - side) / 2, side, side};
}

// Decodes one file into `out` (C, S, S), on `options.scale`.
inline void load_image_into(const std::filesystem::path& file, std::int64_t size, const image_folder_options& options,
                            float* out) {
    const rgb_pixels rgb = decode_rgb(file);
    const std::int64_t c = options.channels, h = rgb.height, w = rgb.width;
    // Planar bytes (C, H, W): the interleaved RGB split into planes, or its luma.
    std::vector<std::uint8_t> planes(static_cast<std::size_t>(c * h * w));
    const unsigned char* px = rgb.data.data();
    if (c == 3) {
        for (std::int64_t i = 0; i < h * w; ++i)
            for (std::int64_t k = 0; k < 3; ++k) planes[static_cast<std::size_t>(k * h * w + i)] = px[3 * i + k];
    } else {
        for (std::int64_t i = 0; i < h * w; ++i)
            planes[static_cast<std::size_t>(i)] = luma(px[3 * i], px[3 * i + 1], px[3 * i + 2]);
    }
    const crop_box box = options.centre_crop ? centred_square(h, w) : crop_box{0, 0, h, w};
    // The formulas of bytes_to_images, in double: a byte that is not resampled gets the same float
    // as in every other loader; resampled values (0..255, not rounded to bytes) go the same way.
    const bool minus_one = options.scale == pixel_scale::minus_one_to_one;
    auto to_scale = [minus_one](double v) { return static_cast<float>(minus_one ? v / 127.5 - 1.0 : v / 255.0); };
    if (box.h == size && box.w == size) {
        for (std::int64_t k = 0; k < c; ++k)
            for (std::int64_t y = 0; y < size; ++y)
                for (std::int64_t x = 0; x < size; ++x)
                    out[(k * size + y) * size + x] =
                        to_scale(planes[static_cast<std::size_t>(k * h * w + (box.y0 + y) * w + box.x0 + x)]);
        return;
    }
    resize_planes(planes.data(), c, h * w, w, box.y0, box.x0, box.h, box.w, out, size, size, options.filter, to_scale);
}

inline std::string directory_label(const std::filesystem::path& dir) {
    std::filesystem::path p = dir.lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    std::string name = p.filename().string();
    return name.empty() || name == "." ? std::string("images") : name;
}

inline bool is_split_name(const std::string& name) {
    return name == "train" || name == "test" || name == "val" || name == "valid" || name == "validation";
}

inline std::string comma_list(const std::vector<std::string>& names) {
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    return list.empty() ? std::string("none") : list;
}

// Appends the images under `dir` (a class folder or one of its subfolders) to `images` and the
// other files to `others`, depth first in sorted order. Directory symlinks are followed, but a
// directory whose canonical path is already in `visited` is not entered again: a link to itself,
// to an ancestor or to another class (all seeded in `visited`) would otherwise be walked until the
// OS gives up with ELOOP, loading the same images dozens of times.
inline void walk_class_folder(const std::filesystem::path& dir, const std::filesystem::path& class_dir,
                              std::set<std::filesystem::path>& visited, std::vector<std::filesystem::path>& images,
                              std::vector<std::filesystem::path>& others) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<fs::directory_entry> entries;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(*it);
    if (ec)
        fail("image folder: cannot list class folder ", class_dir.string(), " (at ", dir.string(), "): ", ec.message());
    std::sort(entries.begin(), entries.end());
    for (const fs::directory_entry& e : entries) {
        const fs::path& p = e.path();
        std::error_code type_ec;
        const bool is_dir = e.is_directory(type_ec);  // through symlinks
        if (is_dir) {
            if (is_hidden(p)) continue;
            std::error_code real_ec;
            const fs::path real = fs::canonical(p, real_ec);
            if (real_ec)
                fail("image folder: cannot resolve ", p.string(), " in class folder ", class_dir.string(), ": ",
                     real_ec.message());
            if (visited.insert(real).second) walk_class_folder(p, class_dir, visited, images, others);
        } else if (!is_hidden(p) && is_supported_image_file(p)) {
            images.push_back(p);
        } else {
            others.push_back(p);
        }
    }
}

inline void check_load_options(std::int64_t size, const image_folder_options& options, const char* what) {
    require(size >= 1, what, ": expected an output size >= 1, found ", size);
    require(options.channels == 1 || options.channels == 3, what,
            ": expected options.channels 1 (grey) or 3 (RGB), found ", options.channels);
    require(options.max_per_class >= 0, what, ": expected options.max_per_class >= 0 (0: all), found ",
            options.max_per_class);
    require(options.threads >= 0, what, ": expected options.threads >= 0 (0: OpenMP's setting), found ",
            options.threads);
}

}  // namespace detail

// Decodes a PNG or JPEG file to bytes (C, H, W): channels 3 gives RGB (grey images repeated in all
// three planes), channels 1 gives grey (luma of RGB as PIL's convert("L") computes it). An alpha
// channel is dropped, not blended.
// Requires: channels 1 or 3; a readable, complete image. Errors name the file and stb's reason.
inline tensor<std::uint8_t> read_image(const std::filesystem::path& file, std::int64_t channels = 3) {
    require(channels == 1 || channels == 3, "read_image: expected channels 1 (grey) or 3 (RGB), found ", channels);
    const detail::rgb_pixels rgb = detail::decode_rgb(file);
    const std::int64_t hw = rgb.height * rgb.width;
    tensor<std::uint8_t> out(shape{channels, rgb.height, rgb.width});  // (C, H, W)
    const unsigned char* px = rgb.data.data();
    for (std::int64_t i = 0; i < hw; ++i) {
        if (channels == 3)
            for (std::int64_t k = 0; k < 3; ++k) out[k * hw + i] = px[3 * i + k];
        else
            out[i] = detail::luma(px[3 * i], px[3 * i + 1], px[3 * i + 2]);
    }
    return out;
}

// The centred square of side min(H, W) of `image` (C, H, W), at row floor((H - side) / 2) and
// column floor((W - side) / 2).
inline tensor<float> centre_crop_square(tensor_view<const float> image) {
    require_rank(image.dims(), 3, "centre_crop_square", "(C, H, W)");
    const std::int64_t c = image.dim(0), h = image.dim(1), w = image.dim(2);
    const detail::crop_box box = detail::centred_square(h, w);
    tensor<float> out(shape{c, box.h, box.w});  // (C, side, side)
    for (std::int64_t k = 0; k < c; ++k)
        for (std::int64_t y = 0; y < box.h; ++y)
            std::copy_n(image.data() + (k * h + box.y0 + y) * w + box.x0, box.w, out.data() + (k * box.h + y) * box.w);
    return out;
}

// Resizes `image` (C, H, W) to (C, height, width) with `filter`, each channel on its own.
// Requires: H, W, height, width all >= 1.
inline tensor<float> resize_image(tensor_view<const float> image, std::int64_t height, std::int64_t width,
                                  resize_filter filter = resize_filter::bilinear) {
    require_rank(image.dims(), 3, "resize_image", "(C, H, W)");
    require(image.dim(1) >= 1 && image.dim(2) >= 1 && height >= 1 && width >= 1,
            "resize_image: expected sizes >= 1, from ", image.dims(), " to (", image.dim(0), ", ", height, ", ", width,
            ")");
    tensor<float> out(shape{image.dim(0), height, width});  // (C, height, width)
    detail::resize_planes(image.data(), image.dim(0), image.dim(1) * image.dim(2), image.dim(2), 0, 0, image.dim(1),
                          image.dim(2), out.data(), height, width, filter,
                          [](double v) { return static_cast<float>(v); });
    return out;
}

// Lists an image folder without decoding anything: the class subfolders of `root` (or of
// root/options.subfolder), sorted by name (byte order; class index = position), and in each the
// .png/.jpg/.jpeg files found at any depth, sorted by path (component by component), the first options.max_per_class of
// them when that is > 0. Hidden entries (names starting with '.') are not classes; hidden files and
// files of other types are skipped and counted, and so are files lying directly in the root.
// Directory symlinks are followed, but each real directory is walked once: a link to a directory
// already walked, to an ancestor (root/b/loop -> . or -> ..) or to another class folder is not
// entered, and a directory reached by two paths is listed under the first in sorted order. Files
// are not merged: a symlink to an image is an item of its own, as a copy would be (as in
// torchvision's ImageFolder); only directory links could repeat a whole tree without the user
// asking for it.
// Requires: the folder exists and has at least one class subfolder; every class has an image;
// the class folders are not splits (train/test/val) holding the classes one level down.
inline image_folder_listing list_image_folder(const std::filesystem::path& root,
                                              const image_folder_options& options = {}) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const std::string layout = "expected one subfolder per class holding .png/.jpg/.jpeg files (root/<class>/<image>)";
    if (!fs::is_directory(root, ec)) fail("image folder ", root.string(), " does not exist or is not a directory");
    fs::path dir = root;
    if (!options.subfolder.empty()) {
        dir = root / options.subfolder;
        if (!fs::is_directory(dir, ec)) {
            std::vector<std::string> present;
            for (const fs::directory_entry& e : fs::directory_iterator(root, ec))
                if (e.is_directory(ec) && !detail::is_hidden(e.path())) present.push_back(e.path().filename().string());
            std::sort(present.begin(), present.end());
            std::string list;
            for (const std::string& p : present) list += (list.empty() ? "" : ", ") + p;
            fail("image folder ", root.string(), " has no subfolder \"", options.subfolder,
                 "\" (options.subfolder); its subfolders: ", list.empty() ? std::string("none") : list);
        }
    }

    image_folder_listing out;
    out.directory = dir;
    auto skip = [&](const fs::path& p) {
        ++out.skipped_files;
        if (out.skipped_examples.size() < image_folder_skipped_examples) out.skipped_examples.push_back(p);
    };
    std::vector<fs::path> root_files;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
        if (detail::is_hidden(e.path())) continue;
        if (e.is_directory(ec)) out.class_names.push_back(e.path().filename().string());
        else
            root_files.push_back(e.path());
    }
    if (ec) fail("image folder ", dir.string(), ": cannot list it: ", ec.message());
    if (out.class_names.empty())
        fail("image folder ", dir.string(), " has no class subfolders (found ", root_files.size(),
             " files at its top level); ", layout);
    std::sort(out.class_names.begin(), out.class_names.end());
    std::sort(root_files.begin(), root_files.end());
    for (const fs::path& p : root_files) skip(p);

    // A root holding train/ and test/ would otherwise load as two classes named after the splits.
    bool all_splits = options.subfolder.empty();
    for (const std::string& name : out.class_names) all_splits = all_splits && detail::is_split_name(name);
    if (all_splits) {
        bool nested_classes = true;
        for (const std::string& name : out.class_names) {
            bool has_dir = false;
            for (const fs::directory_entry& e : fs::directory_iterator(dir / name, ec))
                has_dir = has_dir || (e.is_directory(ec) && !detail::is_hidden(e.path()));
            nested_classes = nested_classes && has_dir;
        }
        if (nested_classes) {
            std::string list;
            for (const std::string& n : out.class_names) list += (list.empty() ? "" : ", ") + n;
            fail("image folder ", dir.string(), ": its subfolders (", list,
                 ") look like splits holding the class folders; choose one with options.subfolder, e.g. \"",
                 out.class_names.front(), "\"");
        }
    }

    // Canonical paths of the directories not to enter: the folder, its ancestors and every class
    // folder, then each directory as it is walked.
    std::set<fs::path> visited;
    auto resolve = [&](const fs::path& p) {
        std::error_code real_ec;
        fs::path real = fs::canonical(p, real_ec);
        if (real_ec) fail("image folder: cannot resolve ", p.string(), ": ", real_ec.message());
        return real;
    };
    for (fs::path a = resolve(dir);; a = a.parent_path()) {
        visited.insert(a);
        if (a == a.parent_path()) break;
    }
    for (const std::string& name : out.class_names) visited.insert(resolve(dir / name));

    for (std::size_t c = 0; c < out.class_names.size(); ++c) {
        const fs::path class_dir = dir / out.class_names[c];
        std::vector<fs::path> images, skipped_here;
        detail::walk_class_folder(class_dir, class_dir, visited, images, skipped_here);
        std::sort(images.begin(), images.end());
        std::sort(skipped_here.begin(), skipped_here.end());
        const auto others = static_cast<std::int64_t>(skipped_here.size());
        for (const fs::path& p : skipped_here) skip(p);
        if (images.empty())
            fail("image folder ", dir.string(), ": class \"", out.class_names[c], "\" (", class_dir.string(),
                 ") has no .png/.jpg/.jpeg images (found ", others, others == 1 ? " other file)" : " other files)");
        if (options.max_per_class > 0 && static_cast<std::int64_t>(images.size()) > options.max_per_class)
            images.resize(static_cast<std::size_t>(options.max_per_class));
        for (fs::path& p : images) {
            out.files.push_back(std::move(p));
            out.labels.push_back(static_cast<std::int64_t>(c));
        }
    }
    return out;
}

namespace detail {
// load_image_folder once the options are checked and the folder listed.
inline image_folder_dataset load_listing(image_folder_listing listing, const std::filesystem::path& root,
                                         std::int64_t size, const image_folder_options& options) {
    if (listing.skipped_files > 0 && options.log != nullptr) {
        *options.log << "load_image_folder: " << listing.directory.string() << ": skipped " << listing.skipped_files
                     << (listing.skipped_files == 1 ? " file" : " files")
                     << " that are not .png/.jpg/.jpeg images or are hidden, e.g. "
                     << listing.skipped_examples.front().string() << "\n";
    }

    const auto n = static_cast<std::int64_t>(listing.files.size());
    const std::int64_t item = options.channels * size * size;
    image_folder_dataset out;
    out.name = directory_label(root) + (options.subfolder.empty() ? "" : "-" + options.subfolder);
    out.num_classes = static_cast<std::int64_t>(listing.class_names.size());
    out.images = tensor<float>(shape{n, options.channels, size, size});  // (N, C, S, S)
    out.labels = tensor<std::int64_t>(shape{n});                         // (N)
    std::copy(listing.labels.begin(), listing.labels.end(), out.labels.begin());

    // Exceptions cannot leave an OpenMP region: each item records its error, and the first one in
    // load order is raised after the loop, whatever the thread count. Decoding times vary from file
    // to file, hence the dynamic schedule; every item writes only its own slot, so the result does
    // not depend on which thread decoded what.
    std::vector<std::string> errors(static_cast<std::size_t>(n));
    float* images = out.images.data();
    const std::vector<std::filesystem::path>& files = listing.files;
    auto decode_one = [&](std::int64_t i) {
        try {
            load_image_into(files[static_cast<std::size_t>(i)], size, options, images + i * item);
        } catch (const std::exception& e) {
            errors[static_cast<std::size_t>(i)] = e.what();
        } catch (...) {
            errors[static_cast<std::size_t>(i)] =
                "unknown exception while decoding " + files[static_cast<std::size_t>(i)].string();
        }
    };
#if defined(_OPENMP)
    const int threads = options.threads > 0 ? options.threads : max_threads();
    if (threads > 1 && n > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
        for (std::int64_t i = 0; i < n; ++i) decode_one(i);
    } else {
        for (std::int64_t i = 0; i < n; ++i) decode_one(i);
    }
#else
    for (std::int64_t i = 0; i < n; ++i) decode_one(i);
#endif
    for (std::int64_t i = 0; i < n; ++i)
        if (!errors[static_cast<std::size_t>(i)].empty())
            fail("load_image_folder: item ", i, " (class \"",
                 listing.class_names[static_cast<std::size_t>(listing.labels[static_cast<std::size_t>(i)])],
                 "\"): ", errors[static_cast<std::size_t>(i)]);

    out.class_names = std::move(listing.class_names);
    out.files = std::move(listing.files);
    out.skipped_files = listing.skipped_files;
    out.skipped_examples = std::move(listing.skipped_examples);
    return out;
}
}  // namespace detail

// Loads an image folder (see list_image_folder for the layout and order) into images
// (N, C, size, size): each file decoded (RGB, or grey when options.channels is 1), centre-cropped
// to a square (options.centre_crop) and resized with options.filter unless already size x size
// (resampled values are not rounded back to bytes), then put on options.scale. Files are decoded in
// parallel, each into its own slot, so the result is the same at any thread count.
// Requires: size >= 1; channels 1 or 3; every listed file decodes. A file that does not raises an
// error naming it and stb_image's reason (the first such file in load order).
// Ensures: labels (N), num_classes = number of class folders, name = "<folder name>[-<subfolder>]";
// class_names, files (item i came from files[i]), skipped_files and skipped_examples as listed; a
// non-zero skipped count is also reported in one line to options.log.
inline image_folder_dataset load_image_folder(const std::filesystem::path& root, std::int64_t size,
                                              const image_folder_options& options = {}) {
    detail::check_load_options(size, options, "load_image_folder");
    return detail::load_listing(list_image_folder(root, options), root, size, options);
}

// Requires that two listings (the train and test splits of one data set) have the same classes:
// labels index the sorted class names, so label c would name different classes in the two, and a
// test-set reference (FID, classifier accuracy) would come from other classes than the training
// set. The error names both folders and the classes found in only one of them.
inline void require_same_classes(const image_folder_listing& train, const image_folder_listing& test) {
    if (train.class_names == test.class_names) return;
    std::vector<std::string> only_train, only_test;
    std::set_difference(train.class_names.begin(), train.class_names.end(), test.class_names.begin(),
                        test.class_names.end(), std::back_inserter(only_train));
    std::set_difference(test.class_names.begin(), test.class_names.end(), train.class_names.begin(),
                        train.class_names.end(), std::back_inserter(only_test));
    fail("image folder splits ", train.directory.string(), " and ", test.directory.string(),
         ": expected the same class folders in both, found ", train.class_names.size(), " and ",
         test.class_names.size(), " classes; only in ", train.directory.string(), ": ", detail::comma_list(only_train),
         "; only in ", test.directory.string(), ": ", detail::comma_list(only_test));
}

// The train and test splits of an image folder: root/<train> and root/<test>, each a folder of
// class folders (see list_image_folder), loaded as load_image_folder with options.subfolder set to
// each in turn (names "<folder name>-<train>" and "<folder name>-<test>").
struct image_folder_splits {
    image_folder_dataset train, test;
};

// Requires: options.subfolder empty (the splits name the subfolders); both splits list the same
// classes (require_same_classes), checked before anything is decoded; what load_image_folder
// requires of each. Ensures: label c names the same class in both splits.
inline image_folder_splits load_image_folder_splits(const std::filesystem::path& root, std::int64_t size,
                                                    const image_folder_options& options = {},
                                                    const std::string& train = "train",
                                                    const std::string& test = "test") {
    detail::check_load_options(size, options, "load_image_folder_splits");
    require(options.subfolder.empty(),
            "load_image_folder_splits: expected an empty options.subfolder (the splits are \"", train, "\" and \"",
            test, "\"), found \"", options.subfolder, "\"");
    image_folder_options train_options = options, test_options = options;
    train_options.subfolder = train;
    test_options.subfolder = test;
    image_folder_listing train_listing = list_image_folder(root, train_options);
    image_folder_listing test_listing = list_image_folder(root, test_options);
    require_same_classes(train_listing, test_listing);
    return {detail::load_listing(std::move(train_listing), root, size, train_options),
            detail::load_listing(std::move(test_listing), root, size, test_options)};
}

}  // namespace ouro::data
