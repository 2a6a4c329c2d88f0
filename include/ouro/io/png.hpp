// PNG images and image grids (sample sheets of a generation), written atomically.
//
// The encoder is written here on zlib (deflate + crc32, already a dependency of ouro) rather than
// taken from stb_image_write: stb is a single-file library whose implementation must be compiled in
// exactly one translation unit, and a header-only library cannot promise that; its
// STB_IMAGE_WRITE_STATIC mode would instead compile a private copy into every translation unit,
// warn about each unused function under -Wall, and clash with a user's own non-static include of
// the same header (one include guard, two configurations). A PNG writer is small: 8-bit gray,
// gray+alpha, RGB or RGBA, no interlacing, one IDAT chunk (W3C PNG Specification, 2nd ed., 2003).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <zlib.h>

#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/atomic_file.hpp"

namespace ouro::io {

// What the float values of an image mean: [-1, 1] is the data range of diffusion models (DDPM
// scales pixels to it), [0, 1] the usual one elsewhere. Values outside are clamped.
enum class pixel_range { minus_one_to_one, zero_to_one };

// How write_png_grid arranges N images: like torchvision.utils.make_grid, `padding` pixels of
// `padding_value` around every cell (the outer border included), cells left to right, top to bottom.
struct grid_layout {
    std::int64_t cols = 0;  // images per row; 0: from `rows`, or ceil(sqrt(N)) if both are 0
    std::int64_t rows = 0;  // 0: as many as the images need
    pixel_range range = pixel_range::minus_one_to_one;
    std::int64_t padding = 2;
    std::uint8_t padding_value = 0;
};

namespace detail {
inline void put_u32_be(std::string& out, std::uint32_t v) {
    out += static_cast<char>((v >> 24) & 0xff);
    out += static_cast<char>((v >> 16) & 0xff);
    out += static_cast<char>((v >> 8) & 0xff);
    out += static_cast<char>(v & 0xff);
}

inline void put_png_chunk(std::string& out, const char type[4], const std::string& data) {
    put_u32_be(out, static_cast<std::uint32_t>(data.size()));
    const std::size_t start = out.size();
    out.append(type, 4);
    out += data;
    // The CRC covers the chunk type and data, not the length (PNG spec 5.3).
    const uLong crc =
        crc32(0L, reinterpret_cast<const Bytef*>(out.data() + start), static_cast<uInt>(out.size() - start));
    put_u32_be(out, static_cast<std::uint32_t>(crc));
}

// PNG spec 9.4: the Paeth predictor.
inline int paeth(int a, int b, int c) {
    const int p = a + b - c;
    const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    if (pb <= pc) return b;
    return c;
}

// 8-bit float-to-byte conversion of torchvision.utils.save_image: floor(clamp(255 x + 0.5, 0, 255)).
inline std::uint8_t to_byte(float v, pixel_range range) {
    float x = range == pixel_range::minus_one_to_one ? (v + 1.0f) * 0.5f : v;
    x = x * 255.0f + 0.5f;
    x = x < 0.0f ? 0.0f : (x > 255.0f ? 255.0f : x);
    return static_cast<std::uint8_t>(x);
}
}  // namespace detail

// Encodes 8-bit pixels as PNG bytes. `pixels` holds height rows of width * channels bytes,
// channels interleaved: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. Each row gets the filter with the
// least sum of absolute filtered bytes (the heuristic of PNG spec 12.8); the result is
// deterministic for a given zlib.
inline std::string encode_png(const std::uint8_t* pixels, std::int64_t width, std::int64_t height, int channels) {
    if (channels < 1 || channels > 4) fail("encode_png: expected 1 to 4 channels, found ", channels);
    constexpr std::int64_t max_extent = 0x7fffffff;  // PNG spec 11.2.2: width and height fit in 31 bits
    if (width < 1 || height < 1 || width > max_extent || height > max_extent)
        fail("encode_png: expected width and height in [1, 2^31 - 1], found ", width, " x ", height);

    const std::int64_t stride = width * channels;
    std::vector<std::uint8_t> filtered(static_cast<std::size_t>((stride + 1) * height));
    std::vector<std::uint8_t> candidate(static_cast<std::size_t>(stride));
    for (std::int64_t y = 0; y < height; ++y) {
        const std::uint8_t* row = pixels + y * stride;
        const std::uint8_t* up = y > 0 ? row - stride : nullptr;
        std::uint8_t* out = filtered.data() + y * (stride + 1);
        std::int64_t best_cost = -1;
        for (int type = 0; type <= 4; ++type) {
            std::int64_t cost = 0;
            for (std::int64_t i = 0; i < stride; ++i) {
                const int a = i >= channels ? row[i - channels] : 0;  // left
                const int b = up ? up[i] : 0;                         // above
                const int c = up && i >= channels ? up[i - channels] : 0;
                int pred = 0;
                switch (type) {
                    case 1: pred = a; break;
                    case 2: pred = b; break;
                    case 3: pred = (a + b) / 2; break;
                    case 4: pred = detail::paeth(a, b, c); break;
                    default: break;
                }
                const auto f = static_cast<std::uint8_t>(row[i] - pred);
                candidate[static_cast<std::size_t>(i)] = f;
                cost += f < 128 ? f : 256 - f;  // the byte as a signed difference
            }
            if (best_cost < 0 || cost < best_cost) {
                best_cost = cost;
                out[0] = static_cast<std::uint8_t>(type);
                std::copy(candidate.begin(), candidate.end(), out + 1);
            }
        }
    }

    uLongf packed_size = compressBound(static_cast<uLong>(filtered.size()));
    std::string packed(packed_size, '\0');
    const int rc = compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size, filtered.data(),
                             static_cast<uLong>(filtered.size()), Z_DEFAULT_COMPRESSION);
    if (rc != Z_OK) fail("encode_png: zlib compress2 failed with code ", rc);
    packed.resize(packed_size);

    static constexpr int color_type[5] = {0, 0, 4, 2, 6};  // by channel count (PNG spec 11.2.2)
    std::string ihdr;
    detail::put_u32_be(ihdr, static_cast<std::uint32_t>(width));
    detail::put_u32_be(ihdr, static_cast<std::uint32_t>(height));
    ihdr += static_cast<char>(8);  // bit depth
    ihdr += static_cast<char>(color_type[channels]);
    ihdr += '\0';  // compression method: deflate
    ihdr += '\0';  // filter method: adaptive, five types
    ihdr += '\0';  // no interlace

    std::string png("\x89PNG\r\n\x1a\n", 8);
    detail::put_png_chunk(png, "IHDR", ihdr);
    detail::put_png_chunk(png, "IDAT", packed);
    detail::put_png_chunk(png, "IEND", std::string());
    return png;
}

// Writes 8-bit interleaved pixels (see encode_png) to `file`, atomically.
inline void write_png(const std::filesystem::path& file, const std::uint8_t* pixels, std::int64_t width,
                      std::int64_t height, int channels) {
    write_file_atomically(file, encode_png(pixels, width, height, channels));
}

// Lays out images (N, C, H, W), C in {1, 3}, as one 8-bit picture (H_grid, W_grid, C) with
// H_grid = rows * (H + padding) + padding and W_grid likewise. Requires finite values: a NaN in a
// sample sheet means a diverged model, which should be reported, not drawn as black.
inline tensor<std::uint8_t> make_image_grid(tensor_view<const float> images, const grid_layout& layout = {}) {
    require_rank(images.dims(), 4, "make_image_grid", "(N, C, H, W)");
    const std::int64_t n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3);
    if (c != 1 && c != 3)
        fail("make_image_grid: expected 1 or 3 channels in (N, C, H, W), found shape ", images.dims());
    if (n == 0 || h == 0 || w == 0)
        fail("make_image_grid: expected at least one non-empty image, found shape ", images.dims());
    if (layout.padding < 0 || layout.cols < 0 || layout.rows < 0)
        fail("make_image_grid: expected non-negative cols, rows and padding, found ", layout.cols, ", ", layout.rows,
             ", ", layout.padding);

    std::int64_t cols = layout.cols, rows = layout.rows;
    if (cols == 0 && rows == 0) {
        cols = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
        while (cols * cols < n) ++cols;  // guard against sqrt rounding down
    }
    if (cols == 0) cols = (n + rows - 1) / rows;
    if (rows == 0) rows = (n + cols - 1) / cols;
    if (rows * cols < n)
        fail("make_image_grid: a grid of ", rows, " rows x ", cols, " cols holds ", rows * cols, " images, found ", n,
             " in shape ", images.dims());

    const std::int64_t p = layout.padding;
    const std::int64_t grid_h = rows * (h + p) + p, grid_w = cols * (w + p) + p;
    tensor<std::uint8_t> grid(shape{grid_h, grid_w, c}, layout.padding_value);  // (H_grid, W_grid, C)
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t y0 = p + (i / cols) * (h + p), x0 = p + (i % cols) * (w + p);
        for (std::int64_t ch = 0; ch < c; ++ch) {
            const float* plane = images.data() + (i * c + ch) * h * w;  // (H, W)
            for (std::int64_t y = 0; y < h; ++y)
                for (std::int64_t x = 0; x < w; ++x) {
                    const float v = plane[y * w + x];
                    if (!std::isfinite(v))
                        fail("make_image_grid: image ", i, " has a non-finite value (", v, ") at channel ", ch,
                             ", row ", y, ", column ", x);
                    grid[((y0 + y) * grid_w + (x0 + x)) * c + ch] = detail::to_byte(v, layout.range);
                }
        }
    }
    return grid;
}

// Writes images (N, C, H, W), C in {1, 3}, as one PNG grid (see make_image_grid), atomically.
inline void write_png_grid(const std::filesystem::path& file, tensor_view<const float> images,
                           const grid_layout& layout = {}) {
    const tensor<std::uint8_t> grid = make_image_grid(images, layout);  // (H_grid, W_grid, C)
    write_png(file, grid.data(), grid.dim(1), grid.dim(0), static_cast<int>(grid.dim(2)));
}

// Writes one image (C, H, W), C in {1, 3}, as a PNG without padding, atomically.
inline void write_png(const std::filesystem::path& file, tensor_view<const float> image,
                      pixel_range range = pixel_range::minus_one_to_one) {
    require_rank(image.dims(), 3, "write_png", "(C, H, W)");
    const tensor_view<const float> one(image.data(), shape{1, image.dim(0), image.dim(1), image.dim(2)});
    write_png_grid(file, one, grid_layout{.cols = 1, .rows = 1, .range = range, .padding = 0});
}

}  // namespace ouro::io
