// Writes the seed corpus of every fuzz target (tests/fuzz/corpus/<target>/): small valid files of
// each format, made with ouro's own writers where it has one. The seeds are committed; run this
// again only to change them:
//   c++ -std=c++20 -O1 -I include -I tests -I /usr/include/eigen3 tests/fuzz/make_corpus.cpp -o /tmp/make_corpus -lz
//   /tmp/make_corpus tests/fuzz/corpus
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/loop_config.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/npy.hpp"
#include "ouro/io/png.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/loop/report.hpp"
#include "ouro/loop/self_consuming.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace fs = std::filesystem;
using namespace ouro;

namespace {

fs::path root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
    fs::create_directories(root / target);
    std::ofstream(root / target / name, std::ios::binary) << bytes;
}

std::string read(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string gzip(const std::string& bytes) {
    z_stream z{};
    deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    std::string out(deflateBound(&z, static_cast<uLong>(bytes.size())) + 32, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    z.avail_in = static_cast<uInt>(bytes.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

// An IDX file of uint8 with the given extents, elements 0, 1, 2, ...
std::string idx(std::vector<std::uint32_t> extents) {
    std::string out{'\0', '\0', '\x08', static_cast<char>(extents.size())};
    std::size_t n = 1;
    for (std::uint32_t e : extents) {
        for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((e >> s) & 0xff);
        n *= e;
    }
    for (std::size_t i = 0; i < n; ++i) out += static_cast<char>(i * 37 % 256);
    return out;
}

void npy_seeds() {
    const fs::path tmp = fs::temp_directory_path() / "ouro-make-corpus.npy";
    tensor<float> f(shape{2, 3});
    for (std::int64_t i = 0; i < 6; ++i) f[i] = 0.5f * static_cast<float>(i) - 1.0f;
    io::write_npy(tmp, f.view());
    put("npy", "f4_2x3.npy", read(tmp));
    tensor<double> d(shape{4});
    for (std::int64_t i = 0; i < 4; ++i) d[i] = static_cast<double>(i) * 1.25;
    io::write_npy(tmp, d.view());
    const std::string f8 = read(tmp);
    put("npy", "f8_4.npy", f8);
    // int64 labels 0..3: the same header with another descr (same length), then the elements.
    std::string i8 = f8.substr(0, f8.size() - 32);
    i8.replace(i8.find("<f8"), 3, "<i8");
    for (std::int64_t v = 0; v < 4; ++v)
        for (int b = 0; b < 8; ++b) i8 += static_cast<char>((v >> (8 * b)) & 0xff);
    put("npy", "i8_4.npy", i8);
    tensor<float> scalar(shape{});
    scalar[0] = 3.0f;
    io::write_npy(tmp, scalar.view());
    put("npy", "f4_scalar.npy", read(tmp));
    fs::remove(tmp);
}

void idx_seeds() {
    const std::string images = idx({2, 3, 3}), labels = idx({4});
    put("idx", "images_2x3x3.idx", images);
    put("idx", "labels_4.idx", labels);
    put("idx", "images_2x3x3.idx.gz", gzip(images));
    put("idx", "labels_4.idx.gz", gzip(labels));
    put("idx_gzip", "images_2x3x3.idx", images);
    put("idx_gzip", "labels_4.idx", labels);
}

void cifar10_seeds() {
    std::string record(3073, '\0');
    record[0] = 3;
    for (std::size_t i = 1; i < record.size(); ++i) record[i] = static_cast<char>(i * 7 % 256);
    put("cifar10", "one_record.bin", record);
    put("cifar10", "batches.meta.txt", "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
}

void image_seeds() {
    auto pixels = [](int w, int h, int c) {
        std::vector<std::uint8_t> p(static_cast<std::size_t>(w * h * c));
        for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(i * 29 % 256);
        return p;
    };
    const auto rgb = pixels(5, 3, 3), grey = pixels(4, 4, 1), rgba = pixels(3, 6, 4), big = pixels(9, 9, 3);
    put("image_folder", "rgb_5x3.png", io::encode_png(rgb.data(), 5, 3, 3));
    put("image_folder", "grey_4x4.png", io::encode_png(grey.data(), 4, 4, 1));
    put("image_folder", "rgba_3x6.png", io::encode_png(rgba.data(), 3, 6, 4));
    std::string jpeg;
    auto append = [](void* context, void* data, int size) {
        static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<std::size_t>(size));
    };
    stbi_write_jpg_to_func(append, &jpeg, 9, 9, 3, big.data(), 80);
    put("image_folder", "rgb_9x9.jpg", jpeg);
}

void safetensors_seeds() {
    tensor<float> w(shape{2, 2});
    for (std::int64_t i = 0; i < 4; ++i) w[i] = static_cast<float>(i) - 1.5f;
    tensor<std::int64_t> ids(shape{3});
    for (std::int64_t i = 0; i < 3; ++i) ids[i] = 10 + i;
    tensor<std::uint8_t> bytes(shape{5});
    for (std::int64_t i = 0; i < 5; ++i) bytes[i] = static_cast<std::uint8_t>(i);
    tensor<double> empty(shape{0, 4});
    io::safetensors_writer plain;
    plain.add("weight", w);
    plain.add("ids", ids);
    plain.add("bytes", bytes);
    plain.add("empty", empty);
    plain.set_metadata("format", "ouro-model/1");
    put("safetensors", "plain.safetensors", plain.serialize());
    io::safetensors_writer checked;
    checked.add("weight", w);
    checked.set_data_checksum();
    put("safetensors", "checksum.safetensors", checked.serialize());
}

void json_seeds() {
    const nlohmann::json manifest = {{"format", "ouro-checkpoint/1"},
                                     {"spec", "unet(c=1,s=28)"},
                                     {"spec_hash", "0123456789abcdef"},
                                     {"ouro_version", "0.1.0"},
                                     {"checkpoints",
                                      {{{"step", 200},
                                        {"model", "model-00000200-1a2b3c4d.safetensors"},
                                        {"model_bytes", 1024},
                                        {"model_crc32", "1a2b3c4d"},
                                        {"trainer", "trainer-00000200-5e6f7a8b.safetensors"},
                                        {"trainer_bytes", 2048},
                                        {"trainer_crc32", "5e6f7a8b"}},
                                       {{"step", 100},
                                        {"model", "model-00000100-00000000.safetensors"},
                                        {"model_bytes", 1024},
                                        {"model_crc32", "00000000"},
                                        {"trainer", "trainer-00000100-ffffffff.safetensors"},
                                        {"trainer_bytes", 2048},
                                        {"trainer_crc32", "ffffffff"}}}}};
    put("checkpoint_manifest", "checkpoint.json", manifest.dump(2) + "\n");

    // state.json as self_consuming::commit_state_ writes it, with its CRC-32.
    loop::metric_row m0{"ACU", 0, 41.5, 0.6, 0.5, 0.9, 0.8, 0.02, 12.5};
    loop::metric_row m1{"ACU", 1, 45.25, 0.55, 0.45, 0.85, 0.75, NAN, 11.0};
    loop::diagnostic_row d1{"ACU", 1, 200, 100, 0.125, NAN, {0.9, 0.8, 0.92, 0.97}, {0.95, 0.9, 0.96, 0.99}, 0.5, 0.5};
    nlohmann::json state;
    state["g0_evaluated"] = true;
    state["g0_crc32"] = "89abcdef";
    state["metrics"] = {loop::to_json(m0), loop::to_json(m1)};
    state["diagnostics"] = {loop::to_json(d1)};
    state["checksum"] = loop::detail::text_crc32(state.dump());
    put("loop_state", "state.json", state.dump(1) + "\n");

    const nlohmann::json& config = fuzzing::resuming_config();
    put("loop_config", "same.json", config.dump(2) + "\n");
    nlohmann::json other = config;
    other["latents"]["timestep"] = 250;
    other["methods"] = {"ACU"};
    other.erase("extra");
    other["added"] = {{"x", nullptr}};
    put("loop_config", "differs.json", other.dump(2) + "\n");
}

// [2 bytes: the pool file's length][the pool file][a sample file], as fuzz_loop_pool reads them.
std::string framed_pool(const std::string& pool, const std::string& sample) {
    std::string out{static_cast<char>(pool.size() & 0xff), static_cast<char>(pool.size() >> 8 & 0xff)};
    return out + pool + sample;
}

void pool_seeds() {
    const fs::path tmp = fs::temp_directory_path() / "ouro_make_corpus_pool";
    fs::create_directories(tmp);
    // An index of D_r (3 items of 2 floats) and S_1 (2 items), and S_1's sample file.
    loop::pool p = loop::pool::without_floats(2, std::vector<std::int64_t>{0, 1, 0}, std::vector<std::int64_t>(3, 0));
    p.add(std::vector<float>{0.5f, 1.0f, -0.5f, 2.0f}, std::vector<std::int64_t>{1, 0}, 1);
    const std::vector<float> latents{1, 2, 3, 4};  // (2, D = 2)
    loop::detail::pool_sources sources{.real_crc32 = "00000000"};
    sources.sample_crc32[1] = loop::detail::save_sample_file(tmp / "gen1.safetensors", p, 3, 2,
                                                             tensor_view<const float>(latents.data(), shape{2, 2}), 1);
    loop::detail::save_pool_index(tmp / "pool.safetensors", p, sources);
    put("loop_pool", "index_and_sample.bin",
        framed_pool(read(tmp / "pool.safetensors"), read(tmp / "gen1.safetensors")));
    // A whole pool (its floats and latents inside), as the loop wrote pools before sample files.
    loop::pool whole(2);
    whole.add(std::vector<float>{0.5f, 1.0f, -0.5f, 2.0f}, std::vector<std::int64_t>{0, 1}, 0);
    loop::detail::save_pool(tmp / "whole.safetensors", whole, latents);
    put("loop_pool", "whole.bin", framed_pool(read(tmp / "whole.safetensors"), ""));
    fs::remove_all(tmp);
}

void cli_seeds() {
    const char* values[] = {"12", "-1", "0.5", "1e-3", "1e309", "nan", "18446744073709551616", "7abc", ""};
    int i = 0;
    for (const char* v : values) put("cli_validators", "value_" + std::to_string(i++), v);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_corpus tests/fuzz/corpus\n");
        return 2;
    }
    root = argv[1];
    npy_seeds();
    idx_seeds();
    cifar10_seeds();
    image_seeds();
    safetensors_seeds();
    json_seeds();
    pool_seeds();
    cli_seeds();
    return 0;
}
