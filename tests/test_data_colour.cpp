// Colour data: CIFAR-10 binary batches and image folders (PNG/JPEG through stb_image), on small
// files each test writes itself; resizing and cropping on known patterns; and, in a [.slow] test,
// a sample of the real CIFAR-10 JPEGs where ../shared/data has them.
#include <catch2/catch.hpp>

// A global, non-static stb_image in the same translation unit as ouro's private copy, defined
// before ouro's header includes it: the worst case for the isolation image_folder.hpp promises.
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "ouro/core/parallel.hpp"
#include "ouro/data/cifar10.hpp"
#include "ouro/data/image_folder.hpp"
#include "support/common.hpp"
#include "support/files.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using ouro::testing::bitwise_equal;
using ouro::testing::scratch_dir;
using ouro::testing::write_text;
using namespace ouro::data;
namespace fs = std::filesystem;

namespace {

void write_bytes(const fs::path& file, const std::vector<std::uint8_t>& bytes) {
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

std::vector<std::uint8_t> read_all(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- CIFAR-10 ----

// Pixel byte (c, y, x) of CIFAR record number `record` (counted across all files of a test).
std::uint8_t cifar_pixel(std::int64_t record, std::int64_t c, std::int64_t y, std::int64_t x) {
    return static_cast<std::uint8_t>((record * 37 + c * 101 + y * 7 + x * 3) & 255);
}

// Records `first` .. first + count - 1, each with label (record * 3) % 10.
std::vector<std::uint8_t> cifar_records(std::int64_t first, std::int64_t count) {
    std::vector<std::uint8_t> out;
    for (std::int64_t r = first; r < first + count; ++r) {
        out.push_back(static_cast<std::uint8_t>((r * 3) % 10));
        for (std::int64_t c = 0; c < 3; ++c)
            for (std::int64_t y = 0; y < 32; ++y)
                for (std::int64_t x = 0; x < 32; ++x) out.push_back(cifar_pixel(r, c, y, x));
    }
    return out;
}

// A binary-version folder: five training batches of 2, 1, 3, 1, 2 records (9 in all) and a test
// batch of `test_records`.
void write_tiny_cifar(const fs::path& dir, std::int64_t test_records = 2) {
    const std::array<std::int64_t, 5> counts{2, 1, 3, 1, 2};
    std::int64_t first = 0;
    for (int b = 0; b < 5; ++b) {
        write_bytes(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"), cifar_records(first, counts[b]));
        first += counts[b];
    }
    write_bytes(dir / "test_batch.bin", cifar_records(100, test_records));
}

float scaled(double byte, pixel_scale s) {
    return static_cast<float>(s == pixel_scale::minus_one_to_one ? byte / 127.5 - 1.0 : byte / 255.0);
}

// ---- image files ----

// An interleaved 8-bit pattern (H, W, comp) with distinct values per channel.
std::vector<std::uint8_t> pixel_pattern(int h, int w, int comp, int seed = 0) {
    std::vector<std::uint8_t> px(static_cast<std::size_t>(h * w * comp));
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int k = 0; k < comp; ++k)
                px[static_cast<std::size_t>((y * w + x) * comp + k)] =
                    static_cast<std::uint8_t>((seed * 53 + y * 29 + x * 11 + k * 85 + x * y) & 255);
    return px;
}

void write_png(const fs::path& file, int h, int w, int comp, const std::vector<std::uint8_t>& px) {
    fs::create_directories(file.parent_path());
    REQUIRE(stbi_write_png(file.string().c_str(), w, h, comp, px.data(), w * comp) != 0);
}

void write_jpg(const fs::path& file, int h, int w, const std::vector<std::uint8_t>& rgb, int quality = 95) {
    fs::create_directories(file.parent_path());
    REQUIRE(stbi_write_jpg(file.string().c_str(), w, h, 3, rgb.data(), quality) != 0);
}

// A smooth RGB image (JPEG keeps it close).
std::vector<std::uint8_t> smooth_rgb(int h, int w) {
    std::vector<std::uint8_t> px(static_cast<std::size_t>(h * w * 3));
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            px[static_cast<std::size_t>((y * w + x) * 3 + 0)] = static_cast<std::uint8_t>(40 + 8 * x);
            px[static_cast<std::size_t>((y * w + x) * 3 + 1)] = static_cast<std::uint8_t>(200 - 6 * y);
            px[static_cast<std::size_t>((y * w + x) * 3 + 2)] = static_cast<std::uint8_t>(90 + 3 * (x + y));
        }
    return px;
}

tensor<float> planes_of(const std::vector<float>& values, std::int64_t c, std::int64_t h, std::int64_t w) {
    tensor<float> t(shape{c, h, w});
    std::copy(values.begin(), values.end(), t.begin());
    return t;
}

// The pattern of the bilinear goldens: v(y, x) = ((y W + x) 5 mod 17) + x / 4 - y / 2.
tensor<float> golden_pattern(std::int64_t h, std::int64_t w) {
    tensor<float> t(shape{1, h, w});
    for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t x = 0; x < w; ++x)
            t[y * w + x] = static_cast<float>(((y * w + x) * 5) % 17) + 0.25f * static_cast<float>(x) -
                           0.5f * static_cast<float>(y);
    return t;
}

image_folder_options quiet(image_folder_options o = {}) {
    o.log = nullptr;
    return o;
}

}  // namespace

// =============================================== CIFAR-10 ===============================================

TEST_CASE("read_cifar10_batch reads each record's label and its R, G, B planes as stored", "[data][cifar10]") {
    scratch_dir root("batch");
    write_bytes(root / "b.bin", cifar_records(4, 3));
    const cifar10_batch b = read_cifar10_batch(root / "b.bin");
    REQUIRE(b.pixels.dims() == shape{3, 3, 32, 32});
    REQUIRE(b.labels.dims() == shape{3});
    CHECK(b.labels[0] == 2);  // (4 * 3) % 10
    CHECK(b.labels[1] == 5);
    CHECK(b.labels[2] == 8);
    // Record 1 (the file's second), G plane, row 5, column 7: byte 3073 + 1 + 1024 + 5 * 32 + 7.
    const std::vector<std::uint8_t> raw = read_all(root / "b.bin");
    CHECK(b.pixels[(1 * 3 + 1) * 1024 + 5 * 32 + 7] == raw[3073 + 1 + 1024 + 5 * 32 + 7]);
    for (std::int64_t i = 0; i < 3; ++i)
        for (std::int64_t c = 0; c < 3; ++c)
            for (std::int64_t y = 0; y < 32; y += 5)
                for (std::int64_t x = 0; x < 32; x += 3)
                    REQUIRE(b.pixels[((i * 3 + c) * 32 + y) * 32 + x] == cifar_pixel(4 + i, c, y, x));
}

TEST_CASE("load_cifar10 concatenates the five training batches in order and scales the pixels", "[data][cifar10]") {
    scratch_dir root("load");
    write_tiny_cifar(root / "cifar-10-batches-bin", 3);
    for (pixel_scale s : {pixel_scale::minus_one_to_one, pixel_scale::zero_to_one}) {
        const image_dataset train = load_cifar10(root / "cifar-10-batches-bin", split::train, s);
        CHECK(train.name == "cifar10-train");
        CHECK(train.num_classes == 10);
        REQUIRE(train.images.dims() == shape{9, 3, 32, 32});
        REQUIRE(train.labels.dims() == shape{9});
        for (std::int64_t i = 0; i < 9; ++i) CHECK(train.labels[i] == (i * 3) % 10);
        for (std::int64_t i = 0; i < 9; ++i)
            for (std::int64_t c = 0; c < 3; ++c)
                for (std::int64_t y = 0; y < 32; y += 7)
                    for (std::int64_t x = 0; x < 32; x += 5)
                        REQUIRE(train.images[((i * 3 + c) * 32 + y) * 32 + x] == scaled(cifar_pixel(i, c, y, x), s));

        const image_dataset test = load_cifar10(root / "cifar-10-batches-bin", split::test, s);
        CHECK(test.name == "cifar10-test");
        REQUIRE(test.images.dims() == shape{3, 3, 32, 32});
        CHECK(test.labels[2] == (102 * 3) % 10);
        CHECK(test.images[(2 * 3 + 2) * 1024 + 31 * 32 + 31] == scaled(cifar_pixel(102, 2, 31, 31), s));
    }
    // Bytes 0 and 255 land exactly on the ends of the scale.
    const image_dataset t = load_cifar10(root / "cifar-10-batches-bin", split::train);
    CHECK(*std::min_element(t.images.begin(), t.images.end()) == -1.0f);
    CHECK(*std::max_element(t.images.begin(), t.images.end()) == 1.0f);
}

TEST_CASE("load_cifar10 also accepts the folder the archive was extracted in", "[data][cifar10]") {
    scratch_dir root("nested");
    write_tiny_cifar(root / "cifar-10-batches-bin");
    const image_dataset a = load_cifar10(root.path, split::train);
    const image_dataset b = load_cifar10(root / "cifar-10-batches-bin", split::train);
    CHECK(bitwise_equal(a.images, b.images));
    CHECK(std::equal(a.labels.begin(), a.labels.end(), b.labels.begin(), b.labels.end()));
}

TEST_CASE("CIFAR-10 class names come from batches.meta.txt when present, else the standard ten", "[data][cifar10]") {
    scratch_dir root("meta");
    write_tiny_cifar(root / "c");
    const std::vector<std::string> standard = read_cifar10_class_names(root / "c");
    REQUIRE(standard.size() == 10);
    CHECK(standard.front() == "airplane");
    CHECK(standard[3] == "cat");
    CHECK(standard.back() == "truck");

    // The published file ends with blank lines; a file with Windows line ends reads the same.
    write_text(root / "c" / "batches.meta.txt", "a0\r\nb1\r\nc2\r\nd3\r\ne4\r\nf5\r\ng6\r\nh7\r\ni8\r\nj9\r\n\r\n\n");
    const std::vector<std::string> names = read_cifar10_class_names(root / "c");
    REQUIRE(names.size() == 10);
    CHECK(names[0] == "a0");
    CHECK(names[9] == "j9");
    CHECK(read_cifar10_class_names(root.path) == standard);  // no cifar-10-batches-bin inside: defaults

    write_text(root / "c" / "batches.meta.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\n\n");
    CHECK_THROWS_WITH(read_cifar10_class_names(root / "c"), Catch::Contains("batches.meta.txt") &&
                                                                Catch::Contains("expected 10 class names") &&
                                                                Catch::Contains("found 9"));
}

TEST_CASE("load_cifar10 names missing batch files and says where the binary version is", "[data][cifar10][errors]") {
    scratch_dir root("missing");
    CHECK_THROWS_WITH(load_cifar10(root / "nowhere", split::train),
                      Catch::Contains("does not exist") && Catch::Contains("cifar-10-binary.tar.gz"));
    write_tiny_cifar(root / "c");
    fs::remove(root / "c" / "data_batch_3.bin");
    fs::remove(root / "c" / "data_batch_5.bin");
    CHECK_THROWS_WITH(load_cifar10(root / "c", split::train),
                      Catch::Contains("has no data_batch_3.bin, data_batch_5.bin") &&
                          Catch::Contains("needs 5 files") &&
                          Catch::Contains("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"));
    CHECK_NOTHROW(load_cifar10(root / "c", split::test));
    fs::remove(root / "c" / "test_batch.bin");
    CHECK_THROWS_WITH(load_cifar10(root / "c", split::test), Catch::Contains("has no test_batch.bin"));

    // The Python version's pickles have no .bin.
    write_text(root / "py" / "data_batch_1", "pickle");
    CHECK_THROWS_WITH(load_cifar10(root / "py", split::train), Catch::Contains("Python version"));
}

TEST_CASE("load_cifar10 refuses files whose size is not whole records, naming expected and found",
          "[data][cifar10][errors]") {
    scratch_dir root("size");
    write_tiny_cifar(root / "c");
    std::vector<std::uint8_t> bytes = cifar_records(0, 2);
    bytes.resize(bytes.size() + 5);
    write_bytes(root / "c" / "data_batch_2.bin", bytes);
    CHECK_THROWS_WITH(load_cifar10(root / "c", split::train),
                      Catch::Contains("data_batch_2.bin") && Catch::Contains("multiple of 3073") &&
                          Catch::Contains("found 6151 bytes") && Catch::Contains("2 records and 5 bytes left over"));

    write_bytes(root / "c" / "data_batch_2.bin", std::vector<std::uint8_t>(2 * 3074, 1));
    CHECK_THROWS_WITH(read_cifar10_batch(root / "c" / "data_batch_2.bin"), Catch::Contains("CIFAR-100"));

    write_bytes(root / "c" / "data_batch_2.bin", {});
    CHECK_THROWS_WITH(read_cifar10_batch(root / "c" / "data_batch_2.bin"), Catch::Contains("empty file"));
    CHECK_THROWS_WITH(read_cifar10_batch(root / "c" / "none.bin"), Catch::Contains("none.bin: no such file"));
}

TEST_CASE("load_cifar10 refuses labels above 9, naming the record", "[data][cifar10][errors]") {
    scratch_dir root("label");
    write_tiny_cifar(root / "c");
    std::vector<std::uint8_t> bytes = cifar_records(0, 3);
    bytes[3073] = 10;
    write_bytes(root / "c" / "test_batch.bin", bytes);
    CHECK_THROWS_WITH(load_cifar10(root / "c", split::test),
                      Catch::Contains("test_batch.bin") && Catch::Contains("record 1") &&
                          Catch::Contains("has label 10") && Catch::Contains("expected 0 to 9"));
}

TEST_CASE("load_cifar10 gives the same floats at 1 and 2 threads", "[data][cifar10][threads]") {
    scratch_dir root("threads");
    write_tiny_cifar(root / "c", 24);  // enough records for parallel_for to split them
    const auto [one, two] = testing::at_one_and_two_threads([&] { return load_cifar10(root / "c", split::test); });
    REQUIRE(one.images.dims() == shape{24, 3, 32, 32});
    CHECK(bitwise_equal(one.images, two.images));
    CHECK(one.images[5 * 3072 + 100] == scaled(cifar_pixel(105, 0, 3, 4), pixel_scale::minus_one_to_one));
}

// ================================================ images ================================================

TEST_CASE("read_image decodes PNG pixels exactly: RGB, grey, grey as RGB, RGBA without alpha", "[data][image]") {
    scratch_dir root("png");
    const int h = 9, w = 7;
    const std::vector<std::uint8_t> rgb = pixel_pattern(h, w, 3);
    write_png(root / "rgb.png", h, w, 3, rgb);
    const tensor<std::uint8_t> a = read_image(root / "rgb.png");
    REQUIRE(a.dims() == shape{3, h, w});
    for (int k = 0; k < 3; ++k)
        for (int i = 0; i < h * w; ++i) REQUIRE(a[k * h * w + i] == rgb[static_cast<std::size_t>(i * 3 + k)]);

    // Grey as PIL's convert("L"): (19595 R + 38470 G + 7471 B + 32768) >> 16.
    const tensor<std::uint8_t> g = read_image(root / "rgb.png", 1);
    REQUIRE(g.dims() == shape{1, h, w});
    for (int i = 0; i < h * w; ++i) {
        const unsigned r = rgb[static_cast<std::size_t>(3 * i)], gg = rgb[static_cast<std::size_t>(3 * i + 1)],
                       b = rgb[static_cast<std::size_t>(3 * i + 2)];
        REQUIRE(g[i] == ((r * 19595 + gg * 38470 + b * 7471 + 32768) >> 16));
    }
    // A pixel checked by hand: (200, 100, 50) -> 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2 -> 124.
    write_png(root / "one.png", 1, 1, 3, {200, 100, 50});
    CHECK(read_image(root / "one.png", 1)[0] == 124);

    const std::vector<std::uint8_t> grey = pixel_pattern(h, w, 1, 3);
    write_png(root / "grey.png", h, w, 1, grey);
    const tensor<std::uint8_t> g1 = read_image(root / "grey.png", 1);
    const tensor<std::uint8_t> g3 = read_image(root / "grey.png", 3);
    for (int i = 0; i < h * w; ++i) {
        REQUIRE(g1[i] == grey[static_cast<std::size_t>(i)]);
        for (int k = 0; k < 3; ++k) REQUIRE(g3[k * h * w + i] == grey[static_cast<std::size_t>(i)]);
    }

    const std::vector<std::uint8_t> rgba = pixel_pattern(h, w, 4, 5);
    write_png(root / "rgba.png", h, w, 4, rgba);
    const tensor<std::uint8_t> c = read_image(root / "rgba.png");
    REQUIRE(c.dims() == shape{3, h, w});
    for (int k = 0; k < 3; ++k)
        for (int i = 0; i < h * w; ++i) REQUIRE(c[k * h * w + i] == rgba[static_cast<std::size_t>(i * 4 + k)]);

    CHECK_THROWS_WITH(read_image(root / "rgb.png", 2), Catch::Contains("channels 1 (grey) or 3 (RGB), found 2"));
}

TEST_CASE("read_image decodes a JPEG close to the pixels it encoded", "[data][image]") {
    scratch_dir root("jpg");
    const int h = 16, w = 24;
    const std::vector<std::uint8_t> rgb = smooth_rgb(h, w);
    write_jpg(root / "a.jpg", h, w, rgb);
    const tensor<std::uint8_t> a = read_image(root / "a.jpg");
    REQUIRE(a.dims() == shape{3, h, w});
    int worst = 0;
    double total = 0;
    for (int k = 0; k < 3; ++k)
        for (int i = 0; i < h * w; ++i) {
            const int d = std::abs(int{a[k * h * w + i]} - int{rgb[static_cast<std::size_t>(i * 3 + k)]});
            worst = std::max(worst, d);
            total += d;
        }
    // Quality 95 with 4:2:0 chroma on a smooth image: within a few levels everywhere.
    CHECK(worst <= 8);
    CHECK(total / (3.0 * h * w) < 2.0);
    // ".JPEG" in capitals is a JPEG too.
    fs::copy_file(root / "a.jpg", root / "b.JPEG");
    CHECK(is_supported_image_file(root / "b.JPEG"));
    const tensor<std::uint8_t> b = read_image(root / "b.JPEG");
    CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
}

TEST_CASE("ouro's private stb_image decodes exactly as a global copy in the same translation unit", "[data][image]") {
    // This file compiles a global stb_image (STB_IMAGE_IMPLEMENTATION above ouro's header): the two
    // copies are distinct functions, and both decode the same bytes to the same pixels.
    CHECK(reinterpret_cast<const void*>(&::stbi_load_from_memory) !=
          reinterpret_cast<const void*>(&ouro::data::detail::stb_private::ouro_stbi_load_from_memory));
    scratch_dir root("stb");
    write_png(root / "a.png", 7, 6, 3, pixel_pattern(7, 6, 3, 2));
    write_jpg(root / "b.jpg", 16, 24, smooth_rgb(16, 24));
    for (const char* name : {"a.png", "b.jpg"}) {
        const std::vector<std::uint8_t> bytes = read_all(root / name);
        int w = 0, h = 0, n = 0;
        stbi_uc* px = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n, 3);
        REQUIRE(px != nullptr);
        const tensor<std::uint8_t> ours = read_image(root / name);
        REQUIRE(ours.dims() == shape{3, h, w});
        bool same = true;
        for (int k = 0; k < 3; ++k)
            for (int i = 0; i < h * w; ++i) same = same && ours[k * h * w + i] == px[3 * i + k];
        stbi_image_free(px);
        CHECK(same);
    }
    // Each copy keeps its own failure reason.
    const std::uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int w = 0, h = 0, n = 0;
    CHECK(stbi_load_from_memory(junk, 8, &w, &h, &n, 3) == nullptr);
    CHECK(std::string(stbi_failure_reason()) == "unknown image type");
}

// ================================================ resize ================================================

TEST_CASE("area resizing averages exact footprints: 2x2 blocks, fractional 3 -> 2, repeats when enlarging",
          "[data][resize]") {
    // (1, 4, 4) -> (1, 2, 2): the means of the 2 x 2 blocks.
    const tensor<float> a = planes_of({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 1, 4, 4);
    const tensor<float> a2 = resize_image(a.view(), 2, 2, resize_filter::area);
    REQUIRE(a2.dims() == shape{1, 2, 2});
    CHECK(a2[0] == 3.5f);  // (1 + 2 + 5 + 6) / 4
    CHECK(a2[1] == 5.5f);
    CHECK(a2[2] == 11.5f);
    CHECK(a2[3] == 13.5f);

    // A row of 3 -> 2: output 0 covers [0, 1.5): (x0 + x1 / 2) / 1.5; output 1 covers [1.5, 3).
    const tensor<float> b = planes_of({3, 6, 12}, 1, 1, 3);
    const tensor<float> b2 = resize_image(b.view(), 1, 2, resize_filter::area);
    CHECK(b2[0] == Approx((3 + 6 * 0.5) / 1.5).epsilon(1e-7));   // 4
    CHECK(b2[1] == Approx((6 * 0.5 + 12) / 1.5).epsilon(1e-7));  // 10

    // Enlarging 2 -> 4 repeats; 2 -> 3 blends the middle pixel that straddles the boundary.
    const tensor<float> c = planes_of({10, 20}, 1, 1, 2);
    const tensor<float> c4 = resize_image(c.view(), 1, 4, resize_filter::area);
    CHECK(std::vector<float>(c4.begin(), c4.end()) == std::vector<float>{10, 10, 20, 20});
    const tensor<float> c3 = resize_image(c.view(), 1, 3, resize_filter::area);
    CHECK(c3[0] == 10.0f);
    CHECK(c3[1] == Approx(15.0).epsilon(1e-7));
    CHECK(c3[2] == 20.0f);

    // Two channels resize independently, and the same size is the identity.
    const tensor<float> d = planes_of({1, 2, 3, 4, 100, 200, 300, 400}, 2, 2, 2);
    const tensor<float> d1 = resize_image(d.view(), 1, 1, resize_filter::area);
    CHECK(d1[0] == 2.5f);
    CHECK(d1[1] == 250.0f);
    CHECK(bitwise_equal(resize_image(d.view(), 2, 2, resize_filter::area), d));
    CHECK(bitwise_equal(resize_image(d.view(), 2, 2, resize_filter::bilinear), d));
}

TEST_CASE("bilinear resizing matches PIL's Image.resize(BILINEAR) when shrinking, enlarging and both",
          "[data][resize]") {
    // Goldens: PIL 9.4 on mode "F" images of golden_pattern, e.g.
    //   Image.fromarray(a, mode="F").resize((out_w, out_h), Image.BILINEAR)
    // torch.nn.functional.interpolate(..., mode="bilinear", antialias=True) agrees within 1e-6.
    struct golden_case {
        std::int64_t h, w, out_h, out_w;
        std::vector<float> expected;
    };
    const std::vector<golden_case> cases = {
        {5,
         7,
         3,
         3,
         {4.71428585f, 10.9642859f, 10.2142859f, 5.5f, 6.30555534f, 11.0f, 6.28571415f, 5.53571415f, 8.31632614f}},
        {3, 2, 5, 4, {0.0f,        1.3125f, 3.9375f,  5.25f,    3.79999995f, 5.11250019f, 7.73750019f,
                      9.05000019f, 9.5f,    10.8125f, 13.4375f, 14.75f,      5.0f,        6.3125f,
                      8.9375f,     10.25f,  2.0f,     3.3125f,  5.9375f,     7.25f}},
        {4, 9, 6, 4, {4.3499999f,  10.8353662f, 9.18902397f, 7.05000019f, 7.89999962f, 10.0731716f,
                      8.42682934f, 7.44285727f, 10.9333334f, 9.05691051f, 7.75609779f, 7.80476189f,
                      8.86666679f, 8.04065037f, 8.1219511f,  7.68095255f, 8.25714302f, 8.06097603f,
                      7.45121956f, 6.10000038f, 8.16428566f, 8.33536625f, 6.68902445f, 4.55000019f}},
    };
    for (const golden_case& g : cases) {
        INFO("(" << g.h << ", " << g.w << ") -> (" << g.out_h << ", " << g.out_w << ")");
        const tensor<float> out =
            resize_image(golden_pattern(g.h, g.w).view(), g.out_h, g.out_w, resize_filter::bilinear);
        REQUIRE(out.dims() == shape{1, g.out_h, g.out_w});
        for (std::int64_t i = 0; i < out.numel(); ++i)
            CHECK(out[i] == Approx(g.expected[static_cast<std::size_t>(i)]).epsilon(1e-6).margin(1e-6));
    }
}

TEST_CASE("both filters keep a constant image constant at any sizes", "[data][resize]") {
    for (resize_filter f : {resize_filter::bilinear, resize_filter::area})
        for (auto [h, w, oh, ow] :
             std::vector<std::array<std::int64_t, 4>>{{7, 5, 3, 4}, {5, 3, 11, 13}, {1, 1, 3, 2}, {32, 48, 17, 1}}) {
            const tensor<float> c(shape{2, h, w}, 0.375f);
            const tensor<float> out = resize_image(c.view(), oh, ow, f);
            REQUIRE(out.dims() == shape{2, oh, ow});
            for (float v : out) REQUIRE(v == Approx(0.375).epsilon(1e-6));
        }
    CHECK_THROWS_WITH(resize_image(tensor<float>(shape{1, 2, 2}).view(), 0, 2), Catch::Contains("expected sizes >= 1"));
    CHECK_THROWS_WITH(resize_image(tensor<float>(shape{2, 2}).view(), 1, 1),
                      Catch::Contains("(C, H, W)") && Catch::Contains("(2, 2)"));
}

TEST_CASE("centre_crop_square keeps the centred square, rounding the offset down", "[data][resize]") {
    tensor<float> a(shape{2, 4, 6});  // (C, H, W)
    for (std::int64_t i = 0; i < a.numel(); ++i) a[i] = static_cast<float>(i);
    const tensor<float> ca = centre_crop_square(a.view());
    REQUIRE(ca.dims() == shape{2, 4, 4});
    CHECK(ca[0] == 1.0f);                         // row 0, column 1
    CHECK(ca[3] == 4.0f);                         // row 0, column 4
    CHECK(ca[4] == 7.0f);                         // row 1, column 1
    CHECK(ca[16] == static_cast<float>(24 + 1));  // channel 1

    tensor<float> b(shape{1, 7, 3});
    for (std::int64_t i = 0; i < b.numel(); ++i) b[i] = static_cast<float>(i);
    const tensor<float> cb = centre_crop_square(b.view());
    REQUIRE(cb.dims() == shape{1, 3, 3});
    CHECK(cb[0] == 6.0f);  // rows 2..4: offset floor((7 - 3) / 2) = 2
    CHECK(cb[8] == 14.0f);

    // Odd differences round down: (1, 6, 3) keeps rows 1..3, (1, 4, 7) keeps columns 1..4.
    tensor<float> e(shape{1, 6, 3});
    for (std::int64_t i = 0; i < e.numel(); ++i) e[i] = static_cast<float>(i);
    CHECK(centre_crop_square(e.view())[0] == 3.0f);
    tensor<float> f(shape{1, 4, 7});
    for (std::int64_t i = 0; i < f.numel(); ++i) f[i] = static_cast<float>(i);
    const tensor<float> cf = centre_crop_square(f.view());
    REQUIRE(cf.dims() == shape{1, 4, 4});
    CHECK(cf[0] == 1.0f);
    CHECK(cf[15] == 3.0f * 7 + 4);
}

// ============================================= image folder =============================================

TEST_CASE("load_image_folder orders classes by sorted name and files by sorted path, pixels exact for PNG",
          "[data][image_folder]") {
    scratch_dir root("order");
    const fs::path dir = root / "pets";
    // Byte order: "Mango" < "apple" < "zebra"; in apple, "10.png" < "2.png" < "b/1.png".
    const int s = 6;
    write_png(dir / "zebra" / "z.png", s, s, 3, pixel_pattern(s, s, 3, 1));
    write_png(dir / "apple" / "2.png", s, s, 3, pixel_pattern(s, s, 3, 2));
    write_png(dir / "apple" / "10.png", s, s, 3, pixel_pattern(s, s, 3, 3));
    write_png(dir / "apple" / "b" / "1.png", s, s, 3, pixel_pattern(s, s, 3, 4));
    write_png(dir / "Mango" / "m.png", s, s, 1, pixel_pattern(s, s, 1, 5));

    for (pixel_scale scale : {pixel_scale::minus_one_to_one, pixel_scale::zero_to_one}) {
        image_folder_options o = quiet();
        o.scale = scale;
        const image_folder_dataset d = load_image_folder(dir, s, o);
        CHECK(d.name == "pets");
        CHECK(d.num_classes == 3);
        CHECK(d.class_names == std::vector<std::string>{"Mango", "apple", "zebra"});
        REQUIRE(d.images.dims() == shape{5, 3, s, s});
        REQUIRE(d.labels.dims() == shape{5});
        CHECK(std::vector<std::int64_t>(d.labels.begin(), d.labels.end()) == std::vector<std::int64_t>{0, 1, 1, 1, 2});
        REQUIRE(d.files.size() == 5);
        CHECK(d.files[1].filename() == "10.png");
        CHECK(d.files[2].filename() == "2.png");
        CHECK(d.files[3] == dir / "apple" / "b" / "1.png");
        CHECK(d.skipped_files == 0);
        const std::array<int, 5> seeds{5, 3, 2, 4, 1};
        for (int i = 0; i < 5; ++i) {
            const int comp = i == 0 ? 1 : 3;
            const std::vector<std::uint8_t> px = pixel_pattern(s, s, comp, seeds[static_cast<std::size_t>(i)]);
            for (int k = 0; k < 3; ++k)
                for (int p = 0; p < s * s; ++p)
                    REQUIRE(d.images[(i * 3 + k) * s * s + p] ==
                            scaled(px[static_cast<std::size_t>(p * comp + (comp == 1 ? 0 : k))], scale));
        }
    }
    // The loaded dataset is an image_dataset.
    const image_dataset& base = load_image_folder(dir, s, quiet());
    CHECK(base.size() == 5);
    CHECK(base.channels() == 3);
}

TEST_CASE("load_image_folder centre-crops, then resizes, as centre_crop_square and resize_image do",
          "[data][image_folder]") {
    scratch_dir root("crop");
    const fs::path dir = root / "set";
    const int h = 8, w = 13;
    const std::vector<std::uint8_t> px = pixel_pattern(h, w, 3, 7);
    write_png(dir / "a" / "wide.png", h, w, 3, px);
    write_png(dir / "b" / "tall.png", w, h, 3, pixel_pattern(w, h, 3, 8));

    image_folder_options o = quiet();
    o.filter = resize_filter::area;
    o.scale = pixel_scale::zero_to_one;
    const image_folder_dataset d = load_image_folder(dir, 4, o);
    REQUIRE(d.images.dims() == shape{2, 3, 4, 4});
    // By hand: the 8 x 8 square at column floor((13 - 8) / 2) = 2, each output the mean of a 2 x 2
    // block, over 255.
    for (int k = 0; k < 3; ++k)
        for (int y = 0; y < 4; ++y)
            for (int x = 0; x < 4; ++x) {
                double sum = 0;
                for (int dy = 0; dy < 2; ++dy)
                    for (int dx = 0; dx < 2; ++dx)
                        sum += px[static_cast<std::size_t>(((2 * y + dy) * w + 2 + 2 * x + dx) * 3 + k)];
                REQUIRE(d.images[(k * 4 + y) * 4 + x] == Approx(sum / 4 / 255).epsilon(1e-6));
            }
    // Through the public pieces, with the bilinear filter and a size that is not a divisor.
    for (const auto& [i, file] : {std::pair{0, dir / "a" / "wide.png"}, std::pair{1, dir / "b" / "tall.png"}}) {
        const tensor<std::uint8_t> bytes = read_image(file);
        tensor<float> f(bytes.dims());
        std::copy(bytes.begin(), bytes.end(), f.begin());
        const tensor<float> expected = resize_image(centre_crop_square(f.view()).view(), 5, 5, resize_filter::bilinear);
        o.filter = resize_filter::bilinear;
        const image_folder_dataset e = load_image_folder(dir, 5, o);
        for (std::int64_t j = 0; j < 75; ++j)
            REQUIRE(e.images[i * 75 + j] == Approx(expected[j] / 255.0).epsilon(1e-6));
    }
    // Without the crop, the image is stretched: 8 x 13 to 4 x 4 gives output (0, 0) the footprint
    // rows [0, 2), columns [0, 3.25): columns 0..2 whole and a quarter of column 3.
    o.centre_crop = false;
    o.filter = resize_filter::area;
    const image_folder_dataset st = load_image_folder(dir, 4, o);
    double sum = 0;
    for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 4; ++dx) sum += (dx == 3 ? 0.25 : 1.0) * px[static_cast<std::size_t>((dy * w + dx) * 3)];
    CHECK(st.images[0] == Approx(sum / 6.5 / 255).epsilon(1e-6));
}

TEST_CASE("load_image_folder converts to grey on request and reads JPEGs approximately", "[data][image_folder]") {
    scratch_dir root("grey");
    const fs::path dir = root / "g";
    const std::vector<std::uint8_t> rgb = pixel_pattern(4, 4, 3, 9);
    write_png(dir / "png" / "a.png", 4, 4, 3, rgb);
    const std::vector<std::uint8_t> smooth = smooth_rgb(16, 16);
    write_jpg(dir / "jpg" / "b.jpg", 16, 16, smooth);

    image_folder_options o = quiet();
    o.channels = 1;
    o.scale = pixel_scale::zero_to_one;
    const image_folder_dataset g = load_image_folder(dir, 4, o);
    REQUIRE(g.images.dims() == shape{2, 1, 4, 4});
    CHECK(g.class_names == std::vector<std::string>{"jpg", "png"});
    for (int p = 0; p < 16; ++p) {
        const unsigned r = rgb[static_cast<std::size_t>(3 * p)], gg = rgb[static_cast<std::size_t>(3 * p + 1)],
                       b = rgb[static_cast<std::size_t>(3 * p + 2)];
        REQUIRE(g.images[16 + p] ==
                scaled((r * 19595 + gg * 38470 + b * 7471 + 32768) >> 16, pixel_scale::zero_to_one));
    }

    o.channels = 3;
    const image_folder_dataset c = load_image_folder(dir, 16, o);
    REQUIRE(c.images.dims() == shape{2, 3, 16, 16});
    double worst = 0;
    for (int k = 0; k < 3; ++k)
        for (int p = 0; p < 256; ++p)
            worst =
                std::max(worst, std::abs(c.images[k * 256 + p] * 255.0 - smooth[static_cast<std::size_t>(p * 3 + k)]));
    CHECK(worst <= 8.0);
}

TEST_CASE("load_image_folder takes the first files of each class and a split subfolder", "[data][image_folder]") {
    scratch_dir root("split");
    const fs::path dir = root / "cifar";
    for (const char* split_dir : {"train", "test"})
        for (const char* cls : {"cat", "dog"})
            for (int i = 0; i < 3; ++i)
                write_png(dir / split_dir / cls / ("000" + std::to_string(i) + ".png"), 2, 2, 3,
                          pixel_pattern(2, 2, 3, i + (std::string(split_dir) == "test" ? 10 : 0)));
    image_folder_options o = quiet();
    o.subfolder = "test";
    o.max_per_class = 2;
    const image_folder_dataset d = load_image_folder(dir, 2, o);
    CHECK(d.name == "cifar-test");
    REQUIRE(d.images.dims() == shape{4, 3, 2, 2});
    CHECK(std::vector<std::int64_t>(d.labels.begin(), d.labels.end()) == std::vector<std::int64_t>{0, 0, 1, 1});
    CHECK(d.files[3] == dir / "test" / "dog" / "0001.png");
    CHECK(d.images[3 * 12] == scaled(pixel_pattern(2, 2, 3, 11)[0], pixel_scale::minus_one_to_one));

    // Without a subfolder, train/ and test/ would load as two classes: refused, with the way out.
    CHECK_THROWS_WITH(load_image_folder(dir, 2, quiet()),
                      Catch::Contains("look like splits") && Catch::Contains("options.subfolder"));
    o.subfolder = "val";
    CHECK_THROWS_WITH(load_image_folder(dir, 2, o),
                      Catch::Contains("has no subfolder \"val\"") && Catch::Contains("its subfolders: test, train"));
}

TEST_CASE("load_image_folder walks each real directory once through directory symlink loops", "[data][image_folder]") {
    scratch_dir root("symlink_loop");
    const fs::path dir = root / "loops";
    write_png(dir / "a" / "1.png", 2, 2, 3, pixel_pattern(2, 2, 3, 1));
    write_png(dir / "a" / "2.png", 2, 2, 3, pixel_pattern(2, 2, 3, 2));
    write_png(dir / "b" / "1.png", 2, 2, 3, pixel_pattern(2, 2, 3, 3));
    write_png(dir / "b" / "sub" / "2.png", 2, 2, 3, pixel_pattern(2, 2, 3, 4));
    write_png(dir / "b" / "sub" / "3.png", 2, 2, 3, pixel_pattern(2, 2, 3, 5));
    write_png(root / "extra" / "4.png", 2, 2, 3, pixel_pattern(2, 2, 3, 6));
    fs::create_directory_symlink(".", dir / "b" / "loop");           // b itself
    fs::create_directory_symlink("..", dir / "b" / "up");            // the image folder
    fs::create_directory_symlink("..", dir / "b" / "sub" / "back");  // b, from below
    fs::create_directory_symlink("../a", dir / "b" / "to_a");        // another class
    fs::create_directory_symlink("sub", dir / "b" / "alias");        // b/sub by a second path
    fs::create_directory_symlink(root / "extra", dir / "a" / "extra");
    fs::create_directory_symlink(root / "extra", dir / "a" / "extra_again");
    fs::create_symlink("1.png", dir / "a" / "1_link.png");  // a file link is an item of its own

    const image_folder_dataset d = load_image_folder(dir, 2, quiet());
    // a: 1.png, 1_link.png, 2.png, extra/4.png; b: 1.png and b/sub's two, listed once (as alias/,
    // first in sorted order). Followed to ELOOP, b alone gave dozens of copies.
    REQUIRE(d.size() == 7);
    CHECK(d.class_names == std::vector<std::string>{"a", "b"});
    CHECK(std::vector<std::int64_t>(d.labels.begin(), d.labels.end()) ==
          std::vector<std::int64_t>{0, 0, 0, 0, 1, 1, 1});
    CHECK(d.files == std::vector<fs::path>{dir / "a" / "1.png", dir / "a" / "1_link.png", dir / "a" / "2.png",
                                           dir / "a" / "extra" / "4.png", dir / "b" / "1.png",
                                           dir / "b" / "alias" / "2.png", dir / "b" / "alias" / "3.png"});
    CHECK(d.skipped_files == 0);
    CHECK(d.images[1 * 12] == d.images[0]);  // the link decodes to its target
    CHECK(d.images[3 * 12] == scaled(pixel_pattern(2, 2, 3, 6)[0], pixel_scale::minus_one_to_one));
    CHECK(d.images[6 * 12] == scaled(pixel_pattern(2, 2, 3, 5)[0], pixel_scale::minus_one_to_one));
}

TEST_CASE(
    "load_image_folder reads names with spaces and non-ASCII; refuses a FIFO or a dangling link without "
    "waiting",
    "[data][image_folder]") {
    scratch_dir root("hostile_names");
    const fs::path dir = root / "folder with spaces";
    write_png(dir / "ch\u00e8vre" / "photo 1.png", 2, 2, 3, pixel_pattern(2, 2, 3, 1));
    write_png(dir / "\u732b" / "\u00e9t\u00e9 #2.png", 2, 2, 3, pixel_pattern(2, 2, 3, 2));
    const image_folder_dataset d = load_image_folder(dir, 2, quiet());
    REQUIRE(d.size() == 2);
    CHECK(d.class_names == std::vector<std::string>{"ch\u00e8vre", "\u732b"});
    CHECK(d.files[1] == dir / "\u732b" / "\u00e9t\u00e9 #2.png");

    // A named pipe with an image's name would block a plain open() until a writer comes: refused
    // as not a regular file instead (the loader never opens it).
    const fs::path fifo = dir / "\u732b" / "pipe.png";
    REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
    CHECK_THROWS_WITH(load_image_folder(dir, 2, quiet()),
                      Catch::Contains(fifo.string()) && Catch::Contains("not a regular file"));
    fs::remove(fifo);
    fs::create_symlink("gone.png", dir / "\u732b" / "dangling.png");
    CHECK_THROWS_WITH(load_image_folder(dir, 2, quiet()),
                      Catch::Contains((dir / "\u732b" / "dangling.png").string()) && Catch::Contains("no such file"));
}

TEST_CASE("load_image_folder_splits refuses train and test folders with different classes", "[data][image_folder]") {
    scratch_dir root("split_classes");
    const fs::path dir = root / "pets";
    for (const char* split_dir : {"train", "test"})
        for (const char* cls : {"cat", "dog"})
            for (int i = 0; i < 2; ++i)
                write_png(dir / split_dir / cls / (std::to_string(i) + ".png"), 2, 2, 3,
                          pixel_pattern(2, 2, 3, i + (std::string(split_dir) == "test" ? 10 : 0)));
    write_png(dir / "train" / "emu" / "0.png", 2, 2, 3, pixel_pattern(2, 2, 3, 20));
    write_png(dir / "train" / "gnu" / "0.png", 2, 2, 3, pixel_pattern(2, 2, 3, 21));
    write_png(dir / "test" / "fox" / "0.png", 2, 2, 3, pixel_pattern(2, 2, 3, 22));
    const std::string train = (dir / "train").string(), test = (dir / "test").string();
    CHECK_THROWS_WITH(
        load_image_folder_splits(dir, 2, quiet()),
        Catch::Contains("image folder splits " + train + " and " + test) && Catch::Contains("found 4 and 3 classes") &&
            Catch::Contains("only in " + train + ": emu, gnu;") && Catch::Contains("only in " + test + ": fox"));
    // Classes missing from one side only: the other list says none.
    fs::remove_all(dir / "test" / "fox");
    CHECK_THROWS_WITH(load_image_folder_splits(dir, 2, quiet()), Catch::Contains("only in " + train + ": emu, gnu;") &&
                                                                     Catch::Contains("only in " + test + ": none"));

    fs::remove_all(dir / "train" / "emu");
    fs::remove_all(dir / "train" / "gnu");
    const image_folder_splits s = load_image_folder_splits(dir, 2, quiet());
    CHECK(s.train.name == "pets-train");
    CHECK(s.test.name == "pets-test");
    CHECK(s.train.class_names == std::vector<std::string>{"cat", "dog"});
    CHECK(s.test.class_names == s.train.class_names);
    REQUIRE(s.test.size() == 4);
    CHECK(std::vector<std::int64_t>(s.test.labels.begin(), s.test.labels.end()) ==
          std::vector<std::int64_t>{0, 0, 1, 1});
    CHECK(s.test.files[3] == dir / "test" / "dog" / "1.png");
    CHECK(s.test.images[3 * 12] == scaled(pixel_pattern(2, 2, 3, 11)[0], pixel_scale::minus_one_to_one));
    CHECK(s.train.images[3 * 12] == scaled(pixel_pattern(2, 2, 3, 1)[0], pixel_scale::minus_one_to_one));

    image_folder_options o = quiet();
    o.subfolder = "train";
    CHECK_THROWS_WITH(load_image_folder_splits(dir, 2, o),
                      Catch::Contains("expected an empty options.subfolder") && Catch::Contains("found \"train\""));
}

TEST_CASE("load_image_folder counts and reports skipped files instead of hiding them", "[data][image_folder]") {
    scratch_dir root("skip");
    const fs::path dir = root / "s";
    write_png(dir / "a" / "1.png", 2, 2, 3, pixel_pattern(2, 2, 3));
    write_text(dir / "a" / "notes.txt", "not an image");
    write_text(dir / "a" / ".DS_Store", "hidden");
    write_text(dir / "README.md", "top-level file");
    fs::create_directories(dir / ".cache" / "x");  // a hidden folder is not a class
    write_png(dir / "b" / "2.PNG", 2, 2, 3, pixel_pattern(2, 2, 3, 1));

    std::ostringstream log;
    image_folder_options o;
    o.log = &log;
    const image_folder_dataset d = load_image_folder(dir, 2, o);
    CHECK(d.class_names == std::vector<std::string>{"a", "b"});
    CHECK(d.size() == 2);
    CHECK(d.skipped_files == 3);
    REQUIRE(d.skipped_examples.size() == 3);
    CHECK(d.skipped_examples[0].filename() == "README.md");
    CHECK(d.skipped_examples[1].filename() == ".DS_Store");
    CHECK(d.skipped_examples[2].filename() == "notes.txt");
    CHECK_THAT(log.str(), Catch::Contains("skipped 3 files") && Catch::Contains("README.md"));

    const image_folder_listing l = list_image_folder(dir);
    CHECK(l.files.size() == 2);
    CHECK(l.skipped_files == 3);
}

TEST_CASE("load_image_folder errors name the folder, the class or the file and what was wrong",
          "[data][image_folder][errors]") {
    scratch_dir root("errors");
    CHECK_THROWS_WITH(load_image_folder(root / "nowhere", 8),
                      Catch::Contains("nowhere") && Catch::Contains("does not exist"));

    write_text(root / "flat" / "a.png", "x");
    write_text(root / "flat" / "b.png", "x");
    CHECK_THROWS_WITH(load_image_folder(root / "flat", 8, quiet()), Catch::Contains("has no class subfolders") &&
                                                                        Catch::Contains("found 2 files") &&
                                                                        Catch::Contains("one subfolder per class"));

    write_png(root / "empty" / "a" / "1.png", 2, 2, 3, pixel_pattern(2, 2, 3));
    write_text(root / "empty" / "b" / "readme.txt", "x");
    CHECK_THROWS_WITH(load_image_folder(root / "empty", 2, quiet()),
                      Catch::Contains("class \"b\"") && Catch::Contains("has no .png/.jpg/.jpeg images") &&
                          Catch::Contains("found 1 other file"));

    // A file that is not an image, a PNG cut short, an empty JPEG: each named, with stb's reason.
    write_png(root / "bad" / "a" / "good.png", 4, 4, 3, pixel_pattern(4, 4, 3));
    write_text(root / "bad" / "b" / "junk.png", "this is not a PNG file at all");
    CHECK_THROWS_WITH(load_image_folder(root / "bad", 4, quiet()),
                      Catch::Contains("junk.png") && Catch::Contains("stb_image: unknown image type") &&
                          Catch::Contains("class \"b\""));
    fs::remove(root / "bad" / "b" / "junk.png");
    std::vector<std::uint8_t> png = read_all(root / "bad" / "a" / "good.png");
    png.resize(png.size() / 2);
    write_bytes(root / "bad" / "b" / "cut.png", png);
    CHECK_THROWS_WITH(load_image_folder(root / "bad", 4, quiet()),
                      Catch::Contains("cut.png: cannot decode the image (stb_image: "));
    fs::remove(root / "bad" / "b" / "cut.png");
    write_bytes(root / "bad" / "b" / "empty.jpg", {});
    CHECK_THROWS_WITH(load_image_folder(root / "bad", 4, quiet()), Catch::Contains("empty.jpg: empty file (0 bytes)"));

    CHECK_THROWS_WITH(load_image_folder(root / "empty", 0), Catch::Contains("output size >= 1, found 0"));
    image_folder_options o = quiet();
    o.channels = 4;
    CHECK_THROWS_WITH(load_image_folder(root / "empty", 2, o),
                      Catch::Contains("channels 1 (grey) or 3 (RGB), found 4"));
}

TEST_CASE("load_image_folder reports the first bad file in load order at any thread count",
          "[data][image_folder][threads]") {
    scratch_dir root("first_bad");
    const fs::path dir = root / "d";
    for (int i = 0; i < 12; ++i)
        write_png(dir / "a" / ("f" + std::to_string(10 + i) + ".png"), 3, 3, 3, pixel_pattern(3, 3, 3, i));
    write_text(dir / "a" / "f15.png", "bad");
    write_text(dir / "a" / "f19.png", "bad too");
    for (int threads : {1, 2}) {
        image_folder_options o = quiet();
        o.threads = threads;
        CHECK_THROWS_WITH(load_image_folder(dir, 3, o), Catch::Contains("item 5 ") && Catch::Contains("f15.png"));
    }
}

TEST_CASE("load_image_folder gives the same floats at 1 and 2 threads", "[data][image_folder][threads]") {
    scratch_dir root("threads");
    const fs::path dir = root / "t";
    // Sizes that need cropping and resizing, in PNG and JPEG.
    for (int i = 0; i < 24; ++i) {
        const int h = 9 + i % 5, w = 7 + (i * 3) % 11;
        if (i % 3 == 0)
            write_jpg(dir / ("c" + std::to_string(i % 4)) / ("j" + std::to_string(i) + ".jpg"), h, w, smooth_rgb(h, w));
        else
            write_png(dir / ("c" + std::to_string(i % 4)) / ("p" + std::to_string(i) + ".png"), h, w, 3,
                      pixel_pattern(h, w, 3, i));
    }
    for (resize_filter f : {resize_filter::bilinear, resize_filter::area}) {
        image_folder_options o = quiet();
        o.filter = f;
        o.threads = 1;
        const image_folder_dataset one = load_image_folder(dir, 8, o);
        o.threads = 2;
        const image_folder_dataset two = load_image_folder(dir, 8, o);
        // threads = 0 follows OpenMP's setting.
        const int saved = max_threads();
        set_threads(2);
        o.threads = 0;
        const image_folder_dataset omp = load_image_folder(dir, 8, o);
        set_threads(saved);
        REQUIRE(one.images.dims() == shape{24, 3, 8, 8});
        CHECK(bitwise_equal(one.images, two.images));
        CHECK(bitwise_equal(one.images, omp.images));
        CHECK(one.files == two.files);
        CHECK(std::equal(one.labels.begin(), one.labels.end(), two.labels.begin(), two.labels.end()));
    }
}

// ==================================== the real CIFAR-10 JPEGs (slow) ====================================

TEST_CASE("a sample of the real CIFAR-10 JPEG folder loads as 32 x 32 RGB with PIL's mean pixel",
          "[data][image_folder][real][.slow]") {
    const fs::path tarball = fs::path(OURO_SOURCE_DIR) / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz";
    if (!fs::exists(tarball)) {
        WARN(tarball.string() << " is absent; the sample of real CIFAR-10 JPEGs was not checked");
        return;
    }
    scratch_dir root("real");
    // train/airplane and train/automobile, files 0000..0099 of each.
    const std::string cmd = "tar -xzf '" + tarball.string() + "' -C '" + root.path.string() +
                            "' --wildcards 'train/airplane/00[0-9][0-9].jpg' 'train/automobile/00[0-9][0-9].jpg'";
    REQUIRE(std::system(cmd.c_str()) == 0);
    image_folder_options o = quiet();
    o.subfolder = "train";
    o.scale = pixel_scale::zero_to_one;
    const image_folder_dataset d = load_image_folder(root.path, 32, o);
    REQUIRE(d.images.dims() == shape{200, 3, 32, 32});
    CHECK(d.class_names == std::vector<std::string>{"airplane", "automobile"});
    CHECK(std::count(d.labels.begin(), d.labels.end(), 0) == 100);
    CHECK(d.files[0].filename() == "0000.jpg");
    CHECK(d.skipped_files == 0);
    // The files are 32 x 32 already: the bytes go through untouched.
    const tensor<std::uint8_t> first = read_image(d.files[0]);
    REQUIRE(first.dims() == shape{3, 32, 32});
    for (std::int64_t i = 0; i < first.numel(); ++i) REQUIRE(d.images[i] == scaled(first[i], pixel_scale::zero_to_one));
    // PIL 9.4 (libjpeg) gives a mean of 0.5120617 over these 200 files (/usr/bin/python3:
    // np.mean([np.asarray(Image.open(f).convert("RGB")) for f in files]) / 255); stb's JPEG decoder
    // rounds differently, so the means agree to about a tenth of a grey level, not exactly.
    double sum = 0;
    for (float v : d.images) sum += v;
    CHECK(sum / static_cast<double>(d.images.numel()) == Approx(0.5120617).margin(1e-3));
}

// =================================== the real CIFAR-10 binary batches ===================================

TEST_CASE("the real CIFAR-10 binary batches have the published sizes, first labels and channel means",
          "[data][cifar10][real]") {
    const fs::path dir = fs::path(OURO_SOURCE_DIR) / "data" / "cifar10";
    if (!fs::exists(dir)) {
        WARN(dir.string() << " is absent; put CIFAR-10's binary version there (" << cifar10_binary_url
                          << ", extracted) to check the real batches");
        return;
    }
    const image_dataset train = load_cifar10(dir, split::train, pixel_scale::zero_to_one);
    REQUIRE(train.images.dims() == shape{50000, 3, 32, 32});
    const std::array<std::int64_t, 10> first_train{6, 9, 9, 4, 1, 1, 2, 7, 8, 3};  // frog, truck, truck, deer, ...
    for (int i = 0; i < 10; ++i) CHECK(train.labels[i] == first_train[static_cast<std::size_t>(i)]);
    CHECK(std::count(train.labels.begin(), train.labels.end(), 3) == 5000);
    // The per-channel means behind the familiar Normalize((0.4914, 0.4822, 0.4465), ...).
    const std::array<double, 3> mean_train{0.4914, 0.4822, 0.4465};
    for (std::int64_t c = 0; c < 3; ++c) {
        double sum = 0;
        for (std::int64_t i = 0; i < 50000; ++i)
            for (std::int64_t k = 0; k < 1024; ++k) sum += train.images[(i * 3 + c) * 1024 + k];
        CHECK(sum / (50000.0 * 1024) == Approx(mean_train[static_cast<std::size_t>(c)]).margin(1e-4));
    }
    const image_dataset test = load_cifar10(dir, split::test);
    REQUIRE(test.images.dims() == shape{10000, 3, 32, 32});
    const std::array<std::int64_t, 10> first_test{3, 8, 8, 0, 6, 6, 1, 6, 3, 1};  // cat, ship, ship, airplane, ...
    for (int i = 0; i < 10; ++i) CHECK(test.labels[i] == first_test[static_cast<std::size_t>(i)]);
    CHECK(std::count(test.labels.begin(), test.labels.end(), 9) == 1000);
    CHECK(read_cifar10_class_names(dir)[9] == "truck");
}
