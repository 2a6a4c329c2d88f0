// Data: the IDX reader (plain and gzip'd, malformed files), the MNIST loader, the xtensor adapters,
// and, when scripts/fetch-data has run, the real MNIST and Fashion-MNIST files.
#include <catch2/catch.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include "ouro/core/parallel.hpp"
#include "ouro/data/idx.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/data/xtensor_adapt.hpp"
#include "support/common.hpp"
#include "support/files.hpp"

using namespace ouro;
using ouro::testing::scratch_dir;
using namespace ouro::data;
namespace fs = std::filesystem;

namespace {

void write_bytes(const fs::path& file, const std::vector<std::uint8_t>& bytes, bool gzip) {
    if (gzip) {
        gzFile f = gzopen(file.string().c_str(), "wb");
        REQUIRE(f != nullptr);
        REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
        REQUIRE(gzclose(f) == Z_OK);
    } else {
        std::ofstream out(file, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        REQUIRE(out.good());
    }
}

// The bytes of an IDX file: magic, big-endian extents, data.
std::vector<std::uint8_t> idx_bytes(std::uint32_t magic, const std::vector<std::uint32_t>& extents,
                                    const std::vector<std::uint8_t>& data) {
    std::vector<std::uint8_t> out;
    auto put32 = [&](std::uint32_t v) {
        for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
    };
    put32(magic);
    for (std::uint32_t e : extents) put32(e);
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

// Deterministic, poorly compressible bytes.
std::vector<std::uint8_t> pattern(std::size_t n, std::uint32_t seed = 1) {
    std::vector<std::uint8_t> v(n);
    std::uint32_t x = seed * 2654435761u + 12345u;
    for (auto& b : v) {
        x = x * 1664525u + 1013904223u;  // Numerical Recipes LCG
        b = static_cast<std::uint8_t>(x >> 24);
    }
    return v;
}

void write_idx(const fs::path& file, std::uint32_t magic, const std::vector<std::uint32_t>& extents,
               const std::vector<std::uint8_t>& data, bool gzip = false) {
    write_bytes(file, idx_bytes(magic, extents, data), gzip);
}

std::vector<std::uint8_t> read_all(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("read_idx_images reads a plain IDX file into (N, rows, cols) bytes", "[data][idx]") {
    scratch_dir dir("plain");
    const auto data = pattern(3 * 5 * 7);
    write_idx(dir / "images", idx_magic_images, {3, 5, 7}, data);
    const tensor<std::uint8_t> images = read_idx_images(dir / "images");
    REQUIRE(images.dims() == shape{3, 5, 7});
    for (std::size_t i = 0; i < data.size(); ++i) REQUIRE(images[static_cast<std::int64_t>(i)] == data[i]);
}

TEST_CASE("gzip'd IDX files read the same as plain ones", "[data][idx]") {
    scratch_dir dir("gzip");
    const auto data = pattern(4 * 9 * 11, 7);
    const std::vector<std::uint8_t> label_bytes{5, 0, 4, 1};
    write_idx(dir / "images", idx_magic_images, {4, 9, 11}, data, false);
    write_idx(dir / "images.gz", idx_magic_images, {4, 9, 11}, data, true);
    write_idx(dir / "labels.gz", idx_magic_labels, {4}, label_bytes, true);
    const auto raw = read_all(dir / "images.gz");
    REQUIRE(raw.size() > 2);
    CHECK(raw[0] == 0x1f);  // really gzip'd on disk
    CHECK(raw[1] == 0x8b);

    const auto plain = read_idx_images(dir / "images");
    const auto zipped = read_idx_images(dir / "images.gz");
    REQUIRE(zipped.dims() == shape{4, 9, 11});
    CHECK(std::equal(plain.begin(), plain.end(), zipped.begin()));
    const auto labels = read_idx_labels(dir / "labels.gz");
    REQUIRE(labels.dims() == shape{4});
    CHECK(labels[0] == 5);
    CHECK(labels[3] == 1);
}

TEST_CASE("bytes after a gzip'd IDX file's stream are refused, as they are after a plain one", "[data][idx][errors]") {
    scratch_dir dir("gzip_trailing");
    const std::vector<std::uint8_t> label_bytes{5, 0, 4, 1};
    write_idx(dir / "labels.gz", idx_magic_labels, {4}, label_bytes, true);
    auto raw = read_all(dir / "labels.gz");
    // Two gzip members one after the other are one valid gzip file; the second holds nothing here.
    auto two_members = raw;
    write_bytes(dir / "empty.gz", {}, true);
    const auto empty_member = read_all(dir / "empty.gz");
    two_members.insert(two_members.end(), empty_member.begin(), empty_member.end());
    write_bytes(dir / "two.gz", two_members, false);
    CHECK(read_idx_labels(dir / "two.gz")[2] == 4);
    for (const std::vector<std::uint8_t>& tail :
         {std::vector<std::uint8_t>{'x'}, std::vector<std::uint8_t>{'j', 'u', 'n', 'k', '!'}}) {
        auto bad = raw;
        bad.insert(bad.end(), tail.begin(), tail.end());
        write_bytes(dir / "trailing.gz", bad, false);
        CHECK_THROWS_WITH(
            read_idx_labels(dir / "trailing.gz"),
            Catch::Contains("trailing.gz") && Catch::Contains(std::to_string(tail.size()) + " trailing bytes"));
    }
}

TEST_CASE("read_idx_labels widens label bytes to int64 and accepts values above 9", "[data][idx]") {
    scratch_dir dir("labels");
    write_idx(dir / "labels", idx_magic_labels, {5}, {0, 9, 10, 200, 255});
    const tensor<std::int64_t> labels = read_idx_labels(dir / "labels");
    REQUIRE(labels.dims() == shape{5});
    CHECK(labels[0] == 0);
    CHECK(labels[1] == 9);
    CHECK(labels[2] == 10);
    CHECK(labels[3] == 200);
    CHECK(labels[4] == 255);  // unsigned: not -1
}

TEST_CASE("an IDX file with zero items reads as an empty tensor", "[data][idx]") {
    scratch_dir dir("empty");
    write_idx(dir / "images", idx_magic_images, {0, 28, 28}, {});
    const auto images = read_idx_images(dir / "images");
    CHECK(images.dims() == shape{0, 28, 28});
}

TEST_CASE("a missing IDX file raises an error naming its path", "[data][idx][errors]") {
    scratch_dir dir("missing");
    const std::string path = (dir / "no-such-file-idx3-ubyte").string();
    CHECK_THROWS_WITH(read_idx_images(path), Catch::Contains(path) && Catch::Contains("no such file"));
    CHECK_THROWS_WITH(read_idx_labels(dir.path), Catch::Contains("is a directory"));
}

TEST_CASE("wrong magic, dtype or rank raise errors naming expected and found in hex", "[data][idx][errors]") {
    scratch_dir dir("magic");
    SECTION("not an IDX file at all") {
        write_bytes(dir / "f", {0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 0}, false);
        CHECK_THROWS_WITH(read_idx_images(dir / "f"), Catch::Contains("not an IDX file") &&
                                                          Catch::Contains("expected magic 0x00000803") &&
                                                          Catch::Contains("found 0x12345678"));
        CHECK_THROWS_WITH(read_idx_labels(dir / "f"), Catch::Contains("expected magic 0x00000801"));
    }
    SECTION("float32 data where uint8 is expected") {
        write_idx(dir / "f", 0x00000D03, {1, 1, 1}, {0, 0, 0, 0});
        CHECK_THROWS_WITH(read_idx_images(dir / "f"),
                          Catch::Contains("wrong IDX dtype byte: expected 0x08 (uint8), found 0x0D (float32)") &&
                              Catch::Contains("found 0x00000D03"));
    }
    SECTION("a labels file given as images, and the other way round") {
        write_idx(dir / "labels", idx_magic_labels, {2}, {1, 2});
        write_idx(dir / "images", idx_magic_images, {1, 1, 2}, {1, 2});
        CHECK_THROWS_WITH(read_idx_images(dir / "labels"),
                          Catch::Contains("wrong IDX rank") && Catch::Contains("expected magic 0x00000803") &&
                              Catch::Contains("found 0x00000801") && Catch::Contains("swapped"));
        CHECK_THROWS_WITH(read_idx_labels(dir / "images"),
                          Catch::Contains("expected magic 0x00000801") && Catch::Contains("found 0x00000803"));
    }
}

TEST_CASE("truncated IDX files raise errors naming expected and found byte counts", "[data][idx][errors]") {
    scratch_dir dir("truncated");
    SECTION("data cut short, plain") {
        auto bytes = idx_bytes(idx_magic_images, {3, 5, 7}, pattern(105));
        bytes.resize(bytes.size() - 5);
        write_bytes(dir / "f", bytes, false);
        CHECK_THROWS_WITH(read_idx_images(dir / "f"),
                          Catch::Contains("truncated IDX data of (N, rows, cols) = (3, 5, 7)") &&
                              Catch::Contains("expected 105 bytes") && Catch::Contains("found 100"));
    }
    SECTION("data cut short, gzip'd content") {
        auto bytes = idx_bytes(idx_magic_labels, {10}, pattern(4));
        write_bytes(dir / "f.gz", bytes, true);
        CHECK_THROWS_WITH(read_idx_labels(dir / "f.gz"), Catch::Contains("expected 10 bytes") &&
                                                             Catch::Contains("found 4") && Catch::Contains("gzip'd"));
    }
    SECTION("gzip stream itself cut short") {
        write_idx(dir / "f.gz", idx_magic_images, {3, 50, 50}, pattern(7500), true);
        auto raw = read_all(dir / "f.gz");
        REQUIRE(raw.size() > 4000);  // the pattern does not compress much
        raw.resize(raw.size() / 2);
        write_bytes(dir / "f.gz", raw, false);
        CHECK_THROWS_WITH(read_idx_images(dir / "f.gz"),
                          Catch::Contains("cut-short gzip stream (zlib: unexpected end of file)") &&
                              Catch::Contains("IDX data of (N, rows, cols) = (3, 50, 50)") &&
                              Catch::Contains("expected 7500 bytes"));
    }
    SECTION("gzip stream corrupted") {
        write_idx(dir / "f.gz", idx_magic_images, {3, 50, 50}, pattern(7500), true);
        auto raw = read_all(dir / "f.gz");
        raw[raw.size() - 6] ^= 0xff;  // the CRC-32 in the gzip trailer
        write_bytes(dir / "f.gz", raw, false);
        CHECK_THROWS_WITH(read_idx_images(dir / "f.gz"),
                          Catch::Contains("corrupt or cut-short gzip stream (zlib: incorrect data check)"));
    }
    SECTION("gzip stream corrupted far from the header") {
        // Larger than zlib's buffers, so the bad checksum is met after the header has been read.
        write_idx(dir / "f.gz", idx_magic_images, {3, 500, 500}, pattern(750000), true);
        auto raw = read_all(dir / "f.gz");
        raw[raw.size() - 6] ^= 0xff;
        write_bytes(dir / "f.gz", raw, false);
        CHECK_THROWS_WITH(read_idx_images(dir / "f.gz"),
                          Catch::Contains("corrupt") && Catch::Contains("zlib: incorrect data check"));
    }
    SECTION("header cut short") {
        write_bytes(dir / "f", {0, 0, 8, 3, 0, 0, 0, 2, 0}, false);
        CHECK_THROWS_WITH(read_idx_images(dir / "f"), Catch::Contains("truncated IDX header") &&
                                                          Catch::Contains("expected 16 bytes") &&
                                                          Catch::Contains("found 9"));
    }
    SECTION("more data than the header says") {
        write_idx(dir / "f", idx_magic_labels, {3}, {1, 2, 3, 4});
        CHECK_THROWS_WITH(read_idx_labels(dir / "f"),
                          Catch::Contains("needs 3 bytes of data, found 4") && Catch::Contains("1 extra"));
    }
    SECTION("a header promising terabytes") {
        write_idx(dir / "f", idx_magic_images, {0xffffffffu, 0xffffffffu, 2}, {1});
        CHECK_THROWS_WITH(read_idx_images(dir / "f"), Catch::Contains("more than 1 TiB"));
    }
}

namespace {
// A tiny MNIST-layout directory: 4 training images of 3x2 and their labels, some files gzip'd.
void write_tiny_mnist(const fs::path& dir, std::uint32_t label_count = 4) {
    fs::create_directories(dir);
    write_idx(dir / "train-images-idx3-ubyte.gz", idx_magic_images, {4, 3, 2},
              {0, 255, 51, 127, 128, 204, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}, true);
    std::vector<std::uint8_t> labels{3, 0, 9, 1, 2, 2};
    labels.resize(label_count);
    write_idx(dir / "train-labels-idx1-ubyte", idx_magic_labels, {label_count}, labels);
}
}  // namespace

TEST_CASE("load_mnist scales pixels to [-1, 1] or [0, 1] and keeps the labels", "[data][mnist]") {
    scratch_dir root("load");
    write_tiny_mnist(root / "tiny-mnist");
    const image_dataset a = load_mnist(root / "tiny-mnist", split::train);
    CHECK(a.name == "tiny-mnist-train");
    CHECK(a.num_classes == 10);
    REQUIRE(a.images.dims() == shape{4, 1, 3, 2});
    REQUIRE(a.labels.dims() == shape{4});
    CHECK(a.size() == 4);
    CHECK(a.channels() == 1);
    CHECK(a.height() == 3);
    CHECK(a.width() == 2);
    CHECK(a.images[0] == -1.0f);
    CHECK(a.images[1] == 1.0f);
    CHECK(a.images[2] == static_cast<float>(51 / 127.5 - 1.0));
    CHECK(a.images[3] == static_cast<float>(127 / 127.5 - 1.0));
    CHECK(a.images[23] == static_cast<float>(18 / 127.5 - 1.0));
    CHECK(a.labels[0] == 3);
    CHECK(a.labels[2] == 9);
    CHECK(a.labels[3] == 1);

    const image_dataset b = load_mnist((root / "tiny-mnist").string() + "/", split::train, pixel_scale::zero_to_one);
    CHECK(b.name == "tiny-mnist-train");
    CHECK(b.images[0] == 0.0f);
    CHECK(b.images[1] == 1.0f);
    CHECK(b.images[2] == 0.2f);  // 51 / 255
    CHECK(b.images[5] == static_cast<float>(204 / 255.0));
}

TEST_CASE("load_mnist refuses image and label files whose counts differ, naming both", "[data][mnist][errors]") {
    scratch_dir root("mismatch");
    write_tiny_mnist(root / "m", 5);
    CHECK_THROWS_WITH(load_mnist(root / "m", split::train),
                      Catch::Contains("has 4 images") && Catch::Contains("has 5 labels") &&
                          Catch::Contains("train-images-idx3-ubyte.gz") && Catch::Contains("train-labels-idx1-ubyte"));
}

TEST_CASE("load_mnist refuses labels outside 0..9", "[data][mnist][errors]") {
    scratch_dir root("badlabel");
    write_tiny_mnist(root / "m");
    write_idx(root / "m" / "train-labels-idx1-ubyte", idx_magic_labels, {4}, {3, 0, 10, 1});
    CHECK_THROWS_WITH(load_mnist(root / "m", split::train),
                      Catch::Contains("label 2 is 10") && Catch::Contains("expected 0 to 9"));
}

TEST_CASE("load_mnist says how to fetch the data when the directory or files are missing", "[data][mnist][errors]") {
    scratch_dir root("nodata");
    CHECK_THROWS_WITH(load_mnist(root / "mnist", split::train),
                      Catch::Contains("does not exist") && Catch::Contains("run scripts/fetch-data mnist"));
    fs::create_directories(root / "fashion-mnist");
    CHECK_THROWS_WITH(load_mnist(root / "fashion-mnist", split::test),
                      Catch::Contains("t10k-images-idx3-ubyte") && Catch::Contains(".gz") &&
                          Catch::Contains("run scripts/fetch-data fashion-mnist"));
    write_tiny_mnist(root / "m");
    fs::remove(root / "m" / "train-labels-idx1-ubyte");
    CHECK_THROWS_WITH(load_mnist(root / "m", split::train), Catch::Contains("has no train-labels-idx1-ubyte"));
}

TEST_CASE("bytes_to_images gives the same floats at 1 and 2 threads", "[data][mnist][threads]") {
    const auto bytes = pattern(64 * 28 * 28, 3);
    tensor<std::uint8_t> t(shape{64, 28, 28});
    std::copy(bytes.begin(), bytes.end(), t.begin());
    const auto [one, two] = testing::at_one_and_two_threads([&] { return bytes_to_images(t.view(), pixel_scale::minus_one_to_one); });
    REQUIRE(one.dims() == shape{64, 1, 28, 28});
    CHECK(std::memcmp(one.data(), two.data(), sizeof(float) * static_cast<std::size_t>(one.numel())) == 0);
    CHECK(one[5] == static_cast<float>(bytes[5] / 127.5 - 1.0));
    CHECK_THROWS_WITH(bytes_to_images(t.view().reshaped(shape{64, 784}), pixel_scale::zero_to_one),
                      Catch::Contains("(N, H, W)") && Catch::Contains("(64, 784)"));
}

TEST_CASE("xtensor adapters share memory with ouro tensors and copy data set images", "[data][xtensor]") {
    tensor<float> t(shape{2, 3, 4});
    for (std::int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(i);
    auto x = as_xtensor<3>(t.view());
    REQUIRE(x.shape()[0] == 2);
    REQUIRE(x.shape()[1] == 3);
    REQUIRE(x.shape()[2] == 4);
    CHECK(x(1, 2, 3) == 23.0f);  // row-major
    x(0, 1, 2) = -5.0f;          // no copy: writes reach the tensor
    CHECK(t[6] == -5.0f);
    const tensor<float>& ct = t;
    auto cx = as_xtensor<3>(ct.view());
    CHECK(cx(1, 0, 0) == 12.0f);
    CHECK_THROWS_WITH(as_xtensor<4>(t.view()), Catch::Contains("rank-4") && Catch::Contains("(2, 3, 4)"));

    xt::xtensor<double, 2> a = {{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}};
    tensor_view<double> v = as_tensor_view(a);
    CHECK(v.dims() == shape{2, 3});
    CHECK(v[4] == 5.0);
    v[5] = 60.0;
    CHECK(a(1, 2) == 60.0);

    scratch_dir root("xt");
    write_tiny_mnist(root / "m");
    const image_dataset d = load_mnist(root / "m", split::train);
    const xt::xtensor<float, 4> images = images_as_xtensor(d);
    REQUIRE(images.shape()[0] == 4);
    REQUIRE(images.shape()[1] == 1);
    REQUIRE(images.shape()[2] == 3);
    REQUIRE(images.shape()[3] == 2);
    CHECK(images(0, 0, 0, 1) == 1.0f);
    CHECK(images(3, 0, 2, 1) == d.images[23]);
    CHECK(images.data() != d.images.data());  // an owning copy
}

namespace {
fs::path data_dir(const std::string& set) { return fs::path(OURO_SOURCE_DIR) / "data" / set; }

std::array<std::int64_t, 10> histogram(const tensor<std::int64_t>& labels) {
    std::array<std::int64_t, 10> h{};
    for (std::int64_t y : labels) ++h[static_cast<std::size_t>(y)];
    return h;
}

double mean_of(const tensor<float>& t) {
    double s = 0;
    for (float v : t) s += v;
    return s / static_cast<double>(t.numel());
}
}  // namespace

TEST_CASE("the real MNIST files have the published sizes, first labels and class counts", "[data][mnist][real]") {
    if (!fs::exists(data_dir("mnist"))) {
        WARN("data/mnist is absent; run scripts/fetch-data mnist to check the real MNIST files");
        return;
    }
    const image_dataset train = load_mnist(data_dir("mnist"), split::train, pixel_scale::zero_to_one);
    CHECK(train.name == "mnist-train");
    REQUIRE(train.images.dims() == shape{60000, 1, 28, 28});
    REQUIRE(train.labels.dims() == shape{60000});
    const std::array<std::int64_t, 10> first{5, 0, 4, 1, 9, 2, 1, 3, 1, 4};
    for (int i = 0; i < 10; ++i) CHECK(train.labels[i] == first[static_cast<std::size_t>(i)]);
    // Class counts as published with the data set (LeCun, Cortes, Burges).
    CHECK(histogram(train.labels) ==
          std::array<std::int64_t, 10>{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949});
    // The mean pixel behind the familiar Normalize((0.1307,), (0.3081,)).
    CHECK(std::abs(mean_of(train.images) - 0.1307) < 1e-4);

    const image_dataset test = load_mnist(data_dir("mnist"), split::test);
    REQUIRE(test.images.dims() == shape{10000, 1, 28, 28});
    CHECK(histogram(test.labels) ==
          std::array<std::int64_t, 10>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
    CHECK(*std::min_element(test.images.begin(), test.images.end()) == -1.0f);
    CHECK(*std::max_element(test.images.begin(), test.images.end()) == 1.0f);
}

TEST_CASE("the real Fashion-MNIST files have balanced classes and the known first labels", "[data][mnist][real]") {
    if (!fs::exists(data_dir("fashion-mnist"))) {
        WARN("data/fashion-mnist is absent; run scripts/fetch-data fashion-mnist to check the real files");
        return;
    }
    const image_dataset train = load_mnist(data_dir("fashion-mnist"), split::train, pixel_scale::zero_to_one);
    CHECK(train.name == "fashion-mnist-train");
    REQUIRE(train.images.dims() == shape{60000, 1, 28, 28});
    const std::array<std::int64_t, 10> first{9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    for (int i = 0; i < 10; ++i) CHECK(train.labels[i] == first[static_cast<std::size_t>(i)]);
    std::array<std::int64_t, 10> six_thousand;
    six_thousand.fill(6000);
    CHECK(histogram(train.labels) == six_thousand);
    CHECK(std::abs(mean_of(train.images) - 0.2860) < 1e-4);  // Zalando's published mean

    const image_dataset test = load_mnist(data_dir("fashion-mnist"), split::test);
    REQUIRE(test.images.dims() == shape{10000, 1, 28, 28});
    std::array<std::int64_t, 10> one_thousand;
    one_thousand.fill(1000);
    CHECK(histogram(test.labels) == one_thousand);
}

TEST_CASE("load_mnist reads Debian's gzip'd Fashion-MNIST the same as the fetched plain files", "[data][mnist][real]") {
    const fs::path debian = "/usr/share/datasets/fashion-mnist";
    if (!fs::exists(debian / "t10k-images-idx3-ubyte.gz") || !fs::exists(data_dir("fashion-mnist"))) {
        WARN("needs " << debian << " (Debian package dataset-fashion-mnist) and data/fashion-mnist");
        return;
    }
    const image_dataset zipped = load_mnist(debian, split::test);
    const image_dataset plain = load_mnist(data_dir("fashion-mnist"), split::test);
    CHECK(zipped.name == "fashion-mnist-test");
    REQUIRE(zipped.images.dims() == plain.images.dims());
    CHECK(std::equal(zipped.images.begin(), zipped.images.end(), plain.images.begin()));
    CHECK(std::equal(zipped.labels.begin(), zipped.labels.end(), plain.labels.begin()));
}
