// I/O and progress: safetensors checkpoints (against the reference serializer's bytes and files
// written in Python), PNG grids (decoded by stb_image, an independent decoder), progress output
// and the compile-time callback protocol.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>
#include <zlib.h>

#include <csignal>

#include "ouro/core/parameter_store.hpp"
#include "ouro/core/progress.hpp"
#include "ouro/io/png.hpp"
#include "ouro/io/safetensors.hpp"
#include "support/files.hpp"
#include "support/golden.hpp"

// stb_image decodes our PNGs in this one translation unit (its implementation lives here only).
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

using namespace ouro;
using ouro::testing::scratch_dir;
namespace fs = std::filesystem;

namespace {

std::string file_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream os;
    os << in.rdbuf();
    return os.str();
}

void write_all(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file from a header text and a data section, for the malformed cases.
std::string make_safetensors(const std::string& header, const std::string& data) {
    std::string bytes;
    std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i, n >>= 8) bytes += static_cast<char>(n & 0xff);
    return bytes + header + data;
}

std::vector<unsigned char> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

// A small model's parameters with distinct, exactly representable values.
template <class T>
parameter_store<T> small_model() {
    parameter_store<T> store;
    store.add("conv.weight", shape{4, 3, 3, 3});
    store.add("conv.bias", shape{4});
    store.add("norm.weight", shape{4});
    store.add("out.weight", shape{10, 36});
    std::int64_t k = 0;
    for (const auto& e : store.entries())
        for (std::int64_t i = 0; i < e.dims.numel(); ++i)
            store.values()[e.offset + i] = static_cast<T>(0.125 * (k++ % 97) - 3.0);
    return store;
}

}  // namespace

// ---- safetensors ----------------------------------------------------------------------------

TEST_CASE("safetensors_writer reproduces the reference serializer's known-answer bytes", "[io][safetensors]") {
    // The expected bytes are the test vectors of huggingface/safetensors (tensor.rs:
    // test_serialization, test_empty).
    const float values[6] = {0, 1, 2, 3, 4, 5};
    io::safetensors_writer w;
    w.add("attn.0", tensor_view<const float>(values, shape{1, 2, 3}));
    const std::vector<unsigned char> expected = {
        64,  0,  0,   0,  0,   0,  0,   0,   123, 34,  97,  116, 116, 110, 46,  48, 34, 58, 123, 34, 100, 116, 121, 112,
        101, 34, 58,  34, 70,  51, 50,  34,  44,  34,  115, 104, 97,  112, 101, 34, 58, 91, 49,  44, 50,  44,  51,  93,
        44,  34, 100, 97, 116, 97, 95,  111, 102, 102, 115, 101, 116, 115, 34,  58, 91, 48, 44,  50, 52,  93,  125, 125,
        0,   0,  0,   0,  0,   0,  128, 63,  0,   0,   0,   64,  0,   0,   64,  64, 0,  0,  128, 64, 0,   0,   160, 64};
    CHECK(bytes_of(w.serialize()) == expected);

    const std::vector<unsigned char> empty = {8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32};
    CHECK(bytes_of(io::safetensors_writer().serialize()) == empty);

    io::safetensors_writer meta_only;
    meta_only.set_metadata("framework", "pt");
    const std::vector<unsigned char> with_metadata = {
        40,  0,  0,   0,   0,  0,   0,   0,   123, 34,  95,  95, 109, 101, 116, 97,  100, 97,  116, 97, 95, 95, 34, 58,
        123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58,  34,  112, 116, 34,  125, 125, 32, 32, 32, 32, 32};
    CHECK(bytes_of(meta_only.serialize()) == with_metadata);
}

TEST_CASE("a safetensors file written in Python reads back exactly, every dtype", "[io][safetensors]") {
    io::safetensors_reader r(testing::golden_path("io/python_written.safetensors"));
    CHECK(r.metadata() == io::safetensors_metadata{{"format", "pt"},
                                                   {"model", "unet{base=8,mult=[1,2]}"},
                                                   {"note", "a \"quote\", a\nnewline, \xc2\xb5"}});
    // Entries come in data order: by dtype alignment, then by name.
    std::vector<std::string> names;
    for (const auto& e : r.entries()) names.push_back(e.name);
    CHECK(names ==
          std::vector<std::string>{"adam.step", "labels", "ema.decay", "conv.bias", "conv.weight", "counts", "mask"});

    const tensor<float> w = r.read<float>("conv.weight");
    REQUIRE(w.dims() == shape{2, 1, 3, 3});
    for (int i = 0; i < 18; ++i) CHECK(w[i] == 0.25f * static_cast<float>(i) - 2.0f);
    const tensor<float> b = r.read<float>("conv.bias");
    CHECK(b.dims() == shape{2});
    CHECK(b[0] == 0.5f);
    CHECK(b[1] == -1.5f);
    const tensor<double> decay = r.read<double>("ema.decay");
    CHECK(decay[0] == 0.9999);
    CHECK(decay[1] == 1.0 / 3.0);
    const tensor<std::int64_t> step = r.read<std::int64_t>("adam.step");
    CHECK(step.rank() == 0);
    CHECK(step[0] == 12345678901);
    const tensor<std::int64_t> labels = r.read<std::int64_t>("labels");
    CHECK(std::vector<std::int64_t>(labels.begin(), labels.end()) ==
          std::vector<std::int64_t>{0, 9, -3, std::int64_t{1} << 40, -(std::int64_t{1} << 62)});
    const tensor<std::int32_t> counts = r.read<std::int32_t>("counts");
    CHECK(std::vector<std::int32_t>(counts.begin(), counts.end()) == std::vector<std::int32_t>{-1, 0, 2147483647});
    const tensor<std::uint8_t> mask = r.read<std::uint8_t>("mask");
    CHECK(mask.dims() == shape{2, 3});
    CHECK(std::vector<int>(mask.begin(), mask.end()) == std::vector<int>{0, 1, 255, 7, 128, 3});

    CHECK_THROWS_WITH(r.read<double>("conv.weight"),
                      Catch::Contains("tensor 'conv.weight': expected dtype F64, found F32"));
    CHECK_THROWS_WITH(r.read<float>("nothing"), Catch::Contains("no tensor named 'nothing'"));
    tensor<float> wrong(shape{2, 9});
    CHECK_THROWS_WITH(r.read_into<float>("conv.weight", wrong.view()),
                      Catch::Contains("expected shape (2, 9), found (2, 1, 3, 3)"));
}

TEST_CASE("ouro writes byte for byte the file Python's serializer wrote for the same tensors", "[io][safetensors]") {
    const std::string golden = file_text(testing::golden_path("io/python_written.safetensors"));
    io::safetensors_reader r(testing::golden_path("io/python_written.safetensors"));
    const tensor<float> w = r.read<float>("conv.weight"), b = r.read<float>("conv.bias");
    const tensor<double> decay = r.read<double>("ema.decay");
    const tensor<std::int64_t> step = r.read<std::int64_t>("adam.step"), labels = r.read<std::int64_t>("labels");
    const tensor<std::int32_t> counts = r.read<std::int32_t>("counts");
    const tensor<std::uint8_t> mask = r.read<std::uint8_t>("mask");

    // Added in an order unlike the file's, to show the writer sorts as the reference does.
    io::safetensors_writer out;
    out.add("mask", mask);
    out.add("conv.weight", w);
    out.add("labels", labels);
    out.add("counts", counts);
    out.add("conv.bias", b);
    out.add("adam.step", step);
    out.add("ema.decay", decay);
    out.set_metadata(r.metadata());
    CHECK(out.serialize() == golden);

    scratch_dir dir("same_bytes");
    out.write(dir / "ouro.safetensors");
    CHECK(file_text(dir / "ouro.safetensors") == golden);
    CHECK(testing::count_temporaries(dir.path) == 0);
}

TEST_CASE("a legal file unlike the reference writer's (unsorted, unpadded header) still reads", "[io][safetensors]") {
    io::safetensors_reader r(testing::golden_path("io/python_unordered.safetensors"));
    CHECK(r.metadata().empty());
    REQUIRE(r.entries().size() == 2);
    CHECK(r.entries()[0].name == "a");
    const tensor<float> a = r.read<float>("a");
    CHECK(std::vector<float>(a.begin(), a.end()) == std::vector<float>{1.5f, -2.5f, 3.25f});
    const tensor<std::int64_t> b = r.read<std::int64_t>("b");
    CHECK(b.dims() == shape{2, 2});
    CHECK(std::vector<std::int64_t>(b.begin(), b.end()) == std::vector<std::int64_t>{10, 20, 30, 40});
}

TEST_CASE("parameter stores round-trip through safetensors checkpoints with their metadata", "[io][safetensors]") {
    scratch_dir dir("params");
    const parameter_store<float> saved = small_model<float>();
    io::save_parameters(dir / "ckpt" / "model.safetensors", saved, {{"model_spec", "unet{base=8}"}, {"step", "1200"}});
    CHECK(testing::count_temporaries(dir.path) == 0);

    // The file holds exactly the parameters, under their names, without the store's padding.
    io::safetensors_reader r(dir / "ckpt" / "model.safetensors");
    CHECK(r.entries().size() == 4);
    CHECK(r.at("out.weight").dims == shape{10, 36});
    CHECK(r.at("conv.bias").dtype == io::safetensors_dtype::f32);
    CHECK(r.entries().back().end == static_cast<std::uint64_t>(saved.parameter_count()) * 4);
    CHECK(io::read_safetensors_metadata(dir / "ckpt" / "model.safetensors").at("step") == "1200");

    parameter_store<float> loaded = small_model<float>();
    std::fill(loaded.values(), loaded.values() + loaded.size(), 0.0f);
    const io::safetensors_metadata meta =
        io::load_parameters(dir / "ckpt" / "model.safetensors", loaded, {{"model_spec", "unet{base=8}"}});
    CHECK(meta.at("model_spec") == "unet{base=8}");
    CHECK(meta.at("step") == "1200");
    CHECK(std::memcmp(loaded.values(), saved.values(), static_cast<std::size_t>(saved.size()) * sizeof(float)) == 0);

    // double stores use F64
    const parameter_store<double> saved64 = small_model<double>();
    io::save_parameters(dir / "model64.safetensors", saved64);
    parameter_store<double> loaded64 = small_model<double>();
    std::fill(loaded64.values(), loaded64.values() + loaded64.size(), 0.0);
    CHECK(io::load_parameters(dir / "model64.safetensors", loaded64).empty());
    CHECK(std::memcmp(loaded64.values(), saved64.values(), static_cast<std::size_t>(saved64.size()) * sizeof(double)) ==
          0);
    CHECK(io::safetensors_reader(dir / "model64.safetensors").at("conv.weight").dtype == io::safetensors_dtype::f64);
}

TEST_CASE("trainer state: several parameter buffers under prefixes and scalars share one file", "[io][safetensors]") {
    scratch_dir dir("state");
    const parameter_store<float> model = small_model<float>();
    // Adam's moments: buffers laid out like the values.
    std::vector<float> m(static_cast<std::size_t>(model.size())), v(m.size());
    for (std::size_t i = 0; i < m.size(); ++i) {
        m[i] = 0.001f * static_cast<float>(i);
        v[i] = 1.0f / static_cast<float>(i + 1);
    }
    const tensor<std::int64_t> step(shape{}, 4242);
    const tensor<std::uint8_t> rng_state(shape{16}, 0xab);
    const tensor<double> loss_history(shape{3}, 0.25);

    io::safetensors_writer w;
    io::add_parameter_buffer(w, model, model.values(), "model.");
    io::add_parameter_buffer(w, model, m.data(), "adam.m.");
    io::add_parameter_buffer(w, model, v.data(), "adam.v.");
    w.add("step", step);
    w.add("rng", rng_state);
    w.add("loss_history", loss_history);
    w.set_metadata("kind", "trainer_state");
    w.write(dir / "state.safetensors");

    io::safetensors_reader r(dir / "state.safetensors");
    CHECK(r.entries().size() == 15);
    parameter_store<float> back = small_model<float>();
    std::vector<float> m2(m.size()), v2(v.size());
    std::fill(back.values(), back.values() + back.size(), 0.0f);
    io::read_parameter_buffer(r, back, back.values(), "model.");
    io::read_parameter_buffer(r, back, m2.data(), "adam.m.");
    io::read_parameter_buffer(r, back, v2.data(), "adam.v.");
    CHECK(std::memcmp(back.values(), model.values(), m.size() * sizeof(float)) == 0);
    // Padding between parameters is not in the file; only the parameters' own elements compare.
    for (const auto& e : model.entries())
        for (std::int64_t i = 0; i < e.dims.numel(); ++i) {
            REQUIRE(m2[static_cast<std::size_t>(e.offset + i)] == m[static_cast<std::size_t>(e.offset + i)]);
            REQUIRE(v2[static_cast<std::size_t>(e.offset + i)] == v[static_cast<std::size_t>(e.offset + i)]);
        }
    CHECK(r.read<std::int64_t>("step")[0] == 4242);
    CHECK(r.read<std::uint8_t>("rng")[15] == 0xab);
    CHECK(r.read<double>("loss_history")[2] == 0.25);
    CHECK(r.metadata().at("kind") == "trainer_state");

    // Without a prefix, the optimizer's tensors are unexpected for the model.
    parameter_store<float> plain = small_model<float>();
    CHECK_THROWS_WITH(
        io::read_parameter_buffer(r, plain, plain.values()),
        Catch::Contains("unexpected tensor 'adam.m.conv.bias'") && Catch::Contains("missing tensor 'conv.bias'"));
}

TEST_CASE("loading a checkpoint that does not fit the model names every mismatch and changes nothing",
          "[io][safetensors]") {
    scratch_dir dir("mismatch");
    parameter_store<float> other;
    other.add("conv.weight", shape{4, 3, 5, 5});  // shape differs
    other.add("conv.bias", shape{4});
    other.add("out.weight", shape{10, 36});
    other.add("extra.weight", shape{2});  // the model has no such parameter; norm.weight is missing
    io::save_parameters(dir / "other.safetensors", other, {{"model_spec", "unet{base=16}"}});

    parameter_store<float> model = small_model<float>();
    const std::vector<float> before(model.values(), model.values() + model.size());
    try {
        io::load_parameters(dir / "other.safetensors", model);
        FAIL("no error raised");
    } catch (const error& e) {
        const std::string msg = e.what();
        CHECK_THAT(msg, Catch::Contains("other.safetensors: the tensors do not match the model's parameters"));
        CHECK_THAT(
            msg,
            Catch::Contains(
                "tensor 'conv.weight': expected shape (4, 3, 3, 3) (the model's), found (4, 3, 5, 5) (the file's)"));
        CHECK_THAT(msg, Catch::Contains("missing tensor 'norm.weight' (the model's parameter of shape (4))"));
        CHECK_THAT(msg, Catch::Contains("unexpected tensor 'extra.weight' of shape (2)"));
        CHECK_THAT(msg, !Catch::Contains("conv.bias"));
    }
    CHECK(std::vector<float>(model.values(), model.values() + model.size()) == before);

    // A spec mismatch is found before the tensors are looked at.
    CHECK_THROWS_WITH(io::load_parameters(dir / "other.safetensors", model, {{"model_spec", "unet{base=8}"}}),
                      Catch::Contains("metadata 'model_spec': expected 'unet{base=8}', found 'unet{base=16}'"));
    CHECK_THROWS_WITH(io::load_parameters(dir / "other.safetensors", model, {{"seed", "1"}}),
                      Catch::Contains("metadata 'seed': expected '1', found no such key"));

    // A double checkpoint does not load into a float model.
    io::save_parameters(dir / "model64.safetensors", small_model<double>());
    CHECK_THROWS_WITH(io::load_parameters(dir / "model64.safetensors", model),
                      Catch::Contains("tensor 'conv.weight': expected dtype F32, found F64"));
    CHECK(std::vector<float>(model.values(), model.values() + model.size()) == before);
}

TEST_CASE("missing, truncated and foreign files are refused with the reason", "[io][safetensors]") {
    scratch_dir dir("bad");
    parameter_store<float> model = small_model<float>();
    CHECK_THROWS_WITH(io::load_parameters(dir / "absent.safetensors", model),
                      Catch::Contains("absent.safetensors: cannot open safetensors file: no such file"));

    io::save_parameters(dir / "good.safetensors", model);
    const std::string good = file_text(dir / "good.safetensors");

    // Cut inside the data: the last tensor's offsets reach past the end.
    write_all(dir / "cut_data.safetensors", good.substr(0, good.size() - 10));
    CHECK_THROWS_WITH(io::safetensors_reader(dir / "cut_data.safetensors"),
                      Catch::Contains("truncated safetensors file: tensor 'out.weight' has data_offsets [464, 1904], "
                                      "past the end of the 1894-byte data section") &&
                          Catch::Contains("past the end of the"));
    // Cut inside the header.
    write_all(dir / "cut_header.safetensors", good.substr(0, 40));
    CHECK_THROWS_WITH(io::safetensors_reader(dir / "cut_header.safetensors"),
                      Catch::Contains("truncated safetensors file: the header length says") &&
                          Catch::Contains("but only 32 bytes follow it"));
    write_all(dir / "tiny.safetensors", "abc");
    CHECK_THROWS_WITH(io::safetensors_reader(dir / "tiny.safetensors"),
                      Catch::Contains("not a safetensors file: it has 3 bytes"));
    // Another kind of file: its first 8 bytes read as an absurd header length.
    write_all(dir / "text.safetensors", "this is a plain text file, not tensors\n");
    CHECK_THROWS_WITH(io::safetensors_reader(dir / "text.safetensors"),
                      Catch::Contains("not a safetensors file: its first 8 bytes give a header length of"));
    // A plausible length but no JSON behind it.
    write_all(dir / "json.safetensors", make_safetensors("{\"a\": [1, 2", ""));
    CHECK_THROWS_WITH(io::safetensors_reader(dir / "json.safetensors"),
                      Catch::Contains("not a safetensors file: its header is not valid JSON"));
    write_all(dir / "array.safetensors", make_safetensors("[1, 2]  ", ""));
    CHECK_THROWS_WITH(io::safetensors_reader(dir / "array.safetensors"),
                      Catch::Contains("its header does not start with '{'"));
    write_all(dir / "number.safetensors", make_safetensors("{\"a\":1}", ""));
    CHECK_THROWS_WITH(io::safetensors_reader(dir / "number.safetensors"),
                      Catch::Contains("the header entry of tensor 'a' is not a JSON object"));
    // Trailing bytes after the file's end (a file appended to)
    write_all(dir / "long.safetensors", good + "xx");
    CHECK_THROWS_WITH(io::safetensors_reader(dir / "long.safetensors"),
                      Catch::Contains("the data section has 2 bytes after its last tensor"));
}

TEST_CASE("headers whose entries contradict the format are refused, naming the tensor", "[io][safetensors]") {
    scratch_dir dir("header");
    const std::string data(24, '\0');
    auto refused = [&](const std::string& header, const std::string& bytes) {
        write_all(dir / "f.safetensors", make_safetensors(header, bytes));
        try {
            io::safetensors_reader r(dir / "f.safetensors");
        } catch (const error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK_THAT(refused(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,24]}})", data),
               Catch::Contains(
                   "tensor 'w' of dtype F32 and shape (2, 2) needs 16 bytes, but its data_offsets [0, 24] span 24"));
    CHECK_THAT(
        refused(
            R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})",
            data),
        Catch::Contains("tensor 'v' starts at byte 16 of the data section, expected 8"));
    CHECK_THAT(refused(R"({"w":{"dtype":"Q4","shape":[6],"data_offsets":[0,24]}})", data),
               Catch::Contains("tensor 'w' has dtype 'Q4', which ouro does not know"));
    CHECK_THAT(refused(R"({"w":{"dtype":"F32","shape":[-6],"data_offsets":[0,24]}})", data),
               Catch::Contains("tensor 'w' has a shape entry that is not a non-negative integer: -6"));
    CHECK_THAT(refused(R"({"w":{"dtype":"F32","shape":[6]}})", data),
               Catch::Contains("tensor 'w' has no \"data_offsets\" pair"));
    CHECK_THAT(refused(R"({"__metadata__":{"step":12},"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})", data),
               Catch::Contains("\"__metadata__\" value of 'step' is not a string"));
    CHECK_THAT(refused(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,6],"data_offsets":[0,24]}})", data),
               Catch::Contains("tensor 'w' has rank 7, above ouro's limit of 6"));
    CHECK(refused(R"({"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})", data) == "accepted");
    // Bytes the header declares for other dtypes still validate, though ouro reads only its five.
    CHECK(refused(R"({"h":{"dtype":"BF16","shape":[12],"data_offsets":[0,24]}})", data) == "accepted");
}

TEST_CASE("safetensors_writer refuses duplicate, reserved and non-UTF-8 names", "[io][safetensors]") {
    const tensor<float> t(shape{2}, 1.0f);
    io::safetensors_writer w;
    w.add("a", t);
    CHECK_THROWS_WITH(w.add("a", t), Catch::Contains("a tensor named 'a' was already added"));
    CHECK_THROWS_WITH(w.add("__metadata__", t), Catch::Contains("'__metadata__' is reserved"));
    w.add(std::string("bad\xff"), t);
    CHECK_THROWS_WITH(w.serialize(), Catch::Contains("must be valid UTF-8"));
}

// ---- PNG ------------------------------------------------------------------------------------

namespace {
struct png_chunk {
    std::string type;
    std::string data;
    bool crc_ok;
};

// Splits PNG bytes into chunks and checks each CRC (stb_image does not).
std::vector<png_chunk> png_chunks(const std::string& png) {
    std::vector<png_chunk> chunks;
    REQUIRE(png.size() >= 8);
    REQUIRE(png.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) == 0);
    std::size_t pos = 8;
    auto u32 = [&](std::size_t at) {
        return (std::uint32_t(std::uint8_t(png[at])) << 24) | (std::uint32_t(std::uint8_t(png[at + 1])) << 16) |
               (std::uint32_t(std::uint8_t(png[at + 2])) << 8) | std::uint32_t(std::uint8_t(png[at + 3]));
    };
    while (pos + 12 <= png.size()) {
        const std::uint32_t len = u32(pos);
        REQUIRE(pos + 12 + len <= png.size());
        const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(png.data() + pos + 4), len + 4);
        chunks.push_back({png.substr(pos + 4, 4), png.substr(pos + 8, len), crc == u32(pos + 8 + len)});
        pos += 12 + len;
    }
    CHECK(pos == png.size());
    return chunks;
}

// Decodes with stb_image into interleaved 8-bit pixels, keeping the file's channel count.
std::vector<std::uint8_t> decode_png(const std::string& png, int& w, int& h, int& c) {
    unsigned char* p = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(png.data()), static_cast<int>(png.size()),
                                             &w, &h, &c, 0);
    INFO("stb_image: " << (p ? "ok" : stbi_failure_reason()));
    REQUIRE(p != nullptr);
    std::vector<std::uint8_t> out(p, p + static_cast<std::size_t>(w) * h * c);
    stbi_image_free(p);
    return out;
}
}  // namespace

TEST_CASE("encode_png writes valid chunks that an independent decoder reads back exactly", "[io][png]") {
    for (int channels : {1, 2, 3, 4}) {
        // Gradients, edges and noise, so every row filter (none, sub, up, average, Paeth) gets chosen.
        const std::int64_t w = 37, h = 23;
        std::vector<std::uint8_t> px(static_cast<std::size_t>(w * h * channels));
        std::uint32_t state = 12345;
        for (std::int64_t y = 0; y < h; ++y)
            for (std::int64_t x = 0; x < w; ++x)
                for (int c = 0; c < channels; ++c) {
                    state = state * 1664525u + 1013904223u;
                    const std::uint8_t v = y < 6    ? static_cast<std::uint8_t>(x * 7 + c * 50)
                                           : y < 12 ? static_cast<std::uint8_t>(y * 11 + c)
                                           : y < 18 ? static_cast<std::uint8_t>((x / 4 + y / 4) % 2 ? 255 : 0)
                                                    : static_cast<std::uint8_t>(state >> 24);
                    px[static_cast<std::size_t>((y * w + x) * channels + c)] = v;
                }
        const std::string png = io::encode_png(px.data(), w, h, channels);
        const std::vector<png_chunk> chunks = png_chunks(png);
        REQUIRE(chunks.size() == 3);
        CHECK(chunks[0].type == "IHDR");
        CHECK(chunks[1].type == "IDAT");
        CHECK(chunks[2].type == "IEND");
        for (const png_chunk& ch : chunks) CHECK(ch.crc_ok);
        const int color_type[5] = {0, 0, 4, 2, 6};
        CHECK(chunks[0].data == std::string("\0\0\0\x25\0\0\0\x17\x08", 9) + static_cast<char>(color_type[channels]) +
                                    std::string(3, '\0'));
        // Every filter type occurs among the rows.
        std::vector<std::uint8_t> raw(static_cast<std::size_t>((w * channels + 1) * h));
        uLongf raw_size = static_cast<uLongf>(raw.size());
        REQUIRE(uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(chunks[1].data.data()),
                           static_cast<uLong>(chunks[1].data.size())) == Z_OK);
        CHECK(raw_size == raw.size());
        std::vector<int> used(5, 0);
        for (std::int64_t y = 0; y < h; ++y) ++used.at(raw[static_cast<std::size_t>(y * (w * channels + 1))]);
        INFO("channels " << channels << ": rows per filter " << used[0] << " " << used[1] << " " << used[2] << " "
                         << used[3] << " " << used[4]);
        CHECK(used[0] + used[1] + used[2] + used[3] + used[4] == h);
        CHECK(std::count(used.begin(), used.end(), 0) <= 2);

        int dw = 0, dh = 0, dc = 0;
        const std::vector<std::uint8_t> back = decode_png(png, dw, dh, dc);
        CHECK(dw == w);
        CHECK(dh == h);
        CHECK(dc == channels);
        CHECK(back == px);
    }
    const std::uint8_t one = 0;
    CHECK_THROWS_WITH(io::encode_png(&one, 1, 1, 5), Catch::Contains("expected 1 to 4 channels, found 5"));
    CHECK_THROWS_WITH(io::encode_png(&one, 0, 1, 1), Catch::Contains("found 0 x 1"));
}

TEST_CASE("make_image_grid lays out images as torchvision's make_grid and converts values as save_image", "[io][png]") {
    // 5 RGB images of 2x3, each filled with its own value per channel, in a 3-column grid.
    tensor<float> images(shape{5, 3, 2, 3});                 // (N, C, H, W)
    const float fill[5] = {-1.0f, 1.0f, 0.0f, 2.0f, -3.0f};  // clamps at both ends
    for (int n = 0; n < 5; ++n)
        for (int c = 0; c < 3; ++c)
            for (int i = 0; i < 6; ++i) images[(n * 3 + c) * 6 + i] = c == 0 ? fill[n] : (c == 1 ? 0.5f : -0.5f);
    const tensor<std::uint8_t> grid = io::make_image_grid(images, {.cols = 3, .padding = 1, .padding_value = 9});
    REQUIRE(grid.dims() == shape{2 * 3 + 1, 3 * 4 + 1, 3});  // (H_grid, W_grid, C)
    auto px = [&](std::int64_t y, std::int64_t x, std::int64_t c) { return int(grid[(y * 13 + x) * 3 + c]); };
    // floor(255 * (v + 1) / 2 + 0.5): -1 -> 0, 1 -> 255, 0 -> 128, 0.5 -> 191, -0.5 -> 64
    const int red[5] = {0, 255, 128, 255, 0};
    for (int n = 0; n < 5; ++n) {
        const std::int64_t y0 = 1 + (n / 3) * 3, x0 = 1 + (n % 3) * 4;
        for (std::int64_t y = 0; y < 2; ++y)
            for (std::int64_t x = 0; x < 3; ++x) {
                REQUIRE(px(y0 + y, x0 + x, 0) == red[n]);
                REQUIRE(px(y0 + y, x0 + x, 1) == 191);
                REQUIRE(px(y0 + y, x0 + x, 2) == 64);
            }
    }
    CHECK(px(0, 0, 0) == 9);   // outer border
    CHECK(px(1, 4, 1) == 9);   // between columns
    CHECK(px(3, 2, 2) == 9);   // between rows
    CHECK(px(4, 10, 0) == 9);  // the empty sixth cell
    CHECK(px(6, 12, 0) == 9);

    // [0, 1] range and the default square layout: 5 images -> 3 columns, 2 rows.
    tensor<float> gray(shape{5, 1, 4, 4}, 0.5f);
    const tensor<std::uint8_t> g = io::make_image_grid(gray, {.range = io::pixel_range::zero_to_one});
    CHECK(g.dims() == shape{2 * 6 + 2, 3 * 6 + 2, 1});
    CHECK(int(g[(2 * 20 + 2)]) == 128);
    CHECK(io::make_image_grid(gray, {.rows = 5, .padding = 0}).dims() == shape{20, 4, 1});
}

TEST_CASE("write_png_grid writes a PNG whose pixels decode to the grid", "[io][png]") {
    scratch_dir dir("png");
    tensor<float> images(shape{6, 3, 5, 7});  // (N, C, H, W)
    for (std::int64_t i = 0; i < images.numel(); ++i) images[i] = std::sin(0.37f * static_cast<float>(i));
    io::write_png_grid(dir / "grids" / "gen_1.png", images, {.cols = 4});
    CHECK(testing::count_temporaries(dir.path) == 0);
    const std::string png = file_text(dir / "grids" / "gen_1.png");
    for (const png_chunk& ch : png_chunks(png)) CHECK(ch.crc_ok);
    int w = 0, h = 0, c = 0;
    const std::vector<std::uint8_t> back = decode_png(png, w, h, c);
    const tensor<std::uint8_t> grid = io::make_image_grid(images, {.cols = 4});
    CHECK(h == 2 * 7 + 2);
    CHECK(w == 4 * 9 + 2);
    CHECK(c == 3);
    CHECK(back == std::vector<std::uint8_t>(grid.begin(), grid.end()));

    // One grayscale image without padding.
    tensor<float> one(shape{1, 3, 2}, -1.0f);  // (C, H, W)
    one[5] = 1.0f;
    io::write_png(dir / "one.png", one);
    const std::vector<std::uint8_t> pixels = decode_png(file_text(dir / "one.png"), w, h, c);
    CHECK(w == 2);
    CHECK(h == 3);
    CHECK(c == 1);
    CHECK(pixels == std::vector<std::uint8_t>{0, 0, 0, 0, 0, 255});
}

TEST_CASE("image grids refuse bad shapes, impossible layouts and non-finite values", "[io][png]") {
    scratch_dir dir("png_bad");
    const tensor<float> two_channels(shape{2, 2, 4, 4});
    CHECK_THROWS_WITH(io::write_png_grid(dir / "x.png", two_channels),
                      Catch::Contains("expected 1 or 3 channels in (N, C, H, W), found shape (2, 2, 4, 4)"));
    const tensor<float> flat(shape{3, 16});
    CHECK_THROWS_WITH(io::write_png_grid(dir / "x.png", flat),
                      Catch::Contains("expected a rank-4 tensor (N, C, H, W), found shape (3, 16)"));
    const tensor<float> none(shape{0, 3, 4, 4});
    CHECK_THROWS_WITH(io::write_png_grid(dir / "x.png", none), Catch::Contains("found shape (0, 3, 4, 4)"));
    const tensor<float> five(shape{5, 1, 2, 2});
    CHECK_THROWS_WITH(io::write_png_grid(dir / "x.png", five, {.cols = 2, .rows = 2}),
                      Catch::Contains("a grid of 2 rows x 2 cols holds 4 images, found 5"));
    tensor<float> bad(shape{2, 1, 2, 2});
    bad[6] = NAN;
    CHECK_THROWS_WITH(io::write_png_grid(dir / "x.png", bad), Catch::Contains("image 1 has a non-finite value"));
    CHECK_FALSE(fs::exists(dir / "x.png"));
}

// ---- progress and callbacks -------------------------------------------------------------------

TEST_CASE("durations and rates format as tqdm prints them", "[core][progress]") {
    CHECK(format_duration(0) == "00:00");
    CHECK(format_duration(59.9) == "00:59");
    CHECK(format_duration(61) == "01:01");
    CHECK(format_duration(3599) == "59:59");
    CHECK(format_duration(3600) == "1:00:00");
    CHECK(format_duration(3725.5) == "1:02:05");
    CHECK(format_duration(-1) == "?");
    CHECK(format_duration(INFINITY) == "?");
    CHECK(format_duration(NAN) == "?");

    CHECK(format_rate(12.5) == "12.50 it/s");
    CHECK(format_rate(1500, "img") == "1.50k img/s");
    CHECK(format_rate(2.5e6) == "2.50M it/s");
    CHECK(format_rate(0.4) == "2.50 s/it");
    CHECK(format_rate(0) == "? it/s");
    CHECK(format_rate(NAN, "img") == "? img/s");

    const progress_value values[2] = {{"loss", 0.031234}, {"lr", 1e-4}};
    CHECK(format_values(values) == "loss=0.03123 lr=0.0001");
}

namespace {
// A clock the test moves by hand.
struct fake_clock {
    double now = 0;
};
}  // namespace

TEST_CASE("progress in log style prints a line every N steps with rate and ETA", "[core][progress]") {
    std::ostringstream out;
    auto clock = std::make_shared<fake_clock>();
    {
        progress p(
            1000,
            {.label = "train", .log_every = 100, .items_per_step = 10, .unit = "img", .out = &out, .clock = [clock] {
                 return clock->now;
             }});
        CHECK_FALSE(p.draws_bar());
        for (int step = 1; step <= 1000; ++step) {
            clock->now = 0.1 * step;  // 10 steps/s
            p.update(step, {{"loss", 0.5}});
        }
        p.finish();  // already shown: prints nothing more
    }
    std::vector<std::string> lines;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    REQUIRE(lines.size() == 10);
    CHECK(lines[0] == "train 100/1000 (10%) loss=0.5 | 100.00 img/s, elapsed 00:10, eta 01:30");
    CHECK(lines[9] == "train 1000/1000 (100%) loss=0.5 | 100.00 img/s, elapsed 01:40, eta 00:00");
}

TEST_CASE("progress logs when a step crosses a multiple of N, and finish shows the last step", "[core][progress]") {
    std::ostringstream out;
    double now = 0;
    progress p(0, {.log_every = 100, .style = progress_style::log, .out = &out, .clock = [&] { return now; }});
    for (std::int64_t step : {1, 150, 199, 250, 260}) {
        now += 1;
        p.update(step);
    }
    p.finish();
    CHECK(out.str() ==
          "step 150 | 75.00 it/s, elapsed 00:02\n"
          "step 250 | 62.50 it/s, elapsed 00:04\n"
          "step 260 | 52.00 it/s, elapsed 00:05\n");
}

TEST_CASE("progress in bar style redraws one line, throttled, and ends it", "[core][progress]") {
    std::ostringstream out;
    double now = 0;
    {
        progress p(100, {.style = progress_style::bar,
                         .out = &out,
                         .clock = [&] { return now; },
                         .redraw_interval = 1.0,
                         .bar_width = 10});
        CHECK(p.draws_bar());
        for (int step = 1; step <= 50; ++step) {
            now = 0.125 * step;  // 8 steps/s, in binary-exact times
            p.update(step, {{"loss", 2.0}});
        }
    }  // destroyed mid-way: the line is ended
    const std::string s = out.str();
    // Drawn at the first step, then at most once a second: steps 1, 9, 17, 25, 33, 41, 49.
    CHECK(std::count(s.begin(), s.end(), '\r') == 7);
    CHECK_THAT(s, Catch::Contains("\r 41% [####......] 41/100 loss=2 | 8.00 it/s, elapsed 00:05, eta 00:07\x1b[K\r"));
    CHECK(s.back() == '\n');
    CHECK(std::count(s.begin(), s.end(), '\n') == 1);

    std::ostringstream done;
    progress q(4, {.style = progress_style::bar, .out = &done, .clock = [&] { return now; }, .bar_width = 4});
    for (int step = 1; step <= 4; ++step) {
        now += 1;
        q.update(step);
    }
    CHECK_THAT(done.str(), Catch::EndsWith("\r100% [####] 4/4 | 1.00 it/s, elapsed 00:04, eta 00:00\x1b[K\n"));
    CHECK_THROWS_WITH(([&] { progress bad(10, {.log_every = 0, .out = &done}); }()),
                      Catch::Contains("log_every must be at least 1, found 0"));
}

namespace {
struct step_event {
    std::int64_t step;
};
struct epoch_event {
    int epoch;
};

struct early_stopper {
    int calls = 0;
    bool on_step(const step_event& e) {
        ++calls;
        return e.step >= 3;
    }
};
struct epoch_logger {
    std::vector<int> epochs;
    void on_epoch_end(const epoch_event& e) { epochs.push_back(e.epoch); }
};
struct misspelt {
    void onstep(const step_event&) {}
};
struct bad_return {
    int on_step(const step_event&) { return 1; }
};
}  // namespace

TEST_CASE("callbacks are found by their hooks at compile time and may ask to stop", "[core][callback]") {
    STATIC_REQUIRE(training_callback<early_stopper, step_event, epoch_event>);
    STATIC_REQUIRE(training_callback<epoch_logger, step_event, epoch_event>);
    STATIC_REQUIRE_FALSE(training_callback<misspelt, step_event, epoch_event>);
    STATIC_REQUIRE_FALSE(has_hook<epoch_logger, on_step_hook, const step_event&>);
    STATIC_REQUIRE_FALSE(has_hook<early_stopper, on_step_hook, const epoch_event&>);  // wrong event type
    STATIC_REQUIRE(has_hook<bad_return, on_step_hook, const step_event&>);

    early_stopper stopper;
    epoch_logger logger;
    CHECK_FALSE(invoke_if_present(on_step, stopper, step_event{1}));
    CHECK(invoke_if_present(on_step, stopper, step_event{3}));
    CHECK(stopper.calls == 2);
    CHECK_FALSE(invoke_if_present(on_step, logger, step_event{3}));  // no such hook: nothing happens
    CHECK_FALSE(invoke_if_present(on_epoch_end, logger, epoch_event{7}));
    CHECK(logger.epochs == std::vector<int>{7});

    // Every callback hears the event even when an earlier one asks to stop.
    epoch_logger second;
    const auto all = std::tie(stopper, logger, second);
    CHECK(invoke_each(on_step, all, step_event{5}));
    CHECK(stopper.calls == 3);
    CHECK_FALSE(invoke_each(on_epoch_end, all, epoch_event{8}));
    CHECK(logger.epochs == std::vector<int>{7, 8});
    CHECK(second.epochs == std::vector<int>{8});
}

TEST_CASE("a data checksum in the metadata is verified on every open; a changed byte is refused", "[io][safetensors]") {
    scratch_dir dir("checksum");
    tensor<float> w(shape{4, 5});
    for (std::int64_t i = 0; i < w.numel(); ++i) w[i] = 0.25f * static_cast<float>(i);
    io::safetensors_writer out;
    out.add("w", w);
    out.set_data_checksum();
    out.write(dir / "w.safetensors");
    {
        io::safetensors_reader r(dir / "w.safetensors");
        CHECK(r.has_data_checksum());
        CHECK(r.metadata().at("data_crc32").size() == 8);
        const tensor<float> back = r.read<float>("w");
        CHECK(std::equal(back.begin(), back.end(), w.begin(), w.end()));
    }
    // Scale one weight, as a careless edit would, leaving the header alone.
    std::string bytes = file_text(dir / "w.safetensors");
    float x = 0;
    std::memcpy(&x, bytes.data() + bytes.size() - 8, 4);
    x *= 40.0f;
    std::memcpy(bytes.data() + bytes.size() - 8, &x, 4);
    std::ofstream(dir / "w.safetensors", std::ios::binary | std::ios::trunc) << bytes;
    CHECK_THROWS_WITH(io::safetensors_reader(dir / "w.safetensors"),
                      Catch::Contains("w.safetensors") && Catch::Contains("corrupt safetensors file"));
    // Metadata-only reads skip the data; a file without the key is refused where one is required.
    CHECK(io::read_safetensors_metadata(dir / "w.safetensors").contains("data_crc32"));
    io::safetensors_writer plain;
    plain.add("w", w);
    plain.write(dir / "plain.safetensors");
    io::safetensors_reader r(dir / "plain.safetensors");
    CHECK_FALSE(r.has_data_checksum());
    CHECK_THROWS_WITH(r.require_data_checksum(), Catch::Contains("plain.safetensors") && Catch::Contains("CRC-32"));
}

TEST_CASE("atomic writes leave the old file intact and no temporary when the disk is full", "[io][atomic]") {
    scratch_dir dir("full");
    const fs::path file = dir / "state.json";
    io::write_file_atomically(file, "old contents\n");
    // RLIMIT_FSIZE turns a large write into EFBIG, as a full disk would (no root, no mount needed).
    struct rlimit saved {};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = saved;
    small.rlim_cur = 4096;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string message;
    try {
        io::write_file_atomically(file, std::string(100'000, 'x'));
    } catch (const error& e) {
        message = e.what();
    }
    setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);
    CHECK_THAT(message, Catch::Contains("state.json") && Catch::Contains("disk full?"));
    CHECK(file_text(file) == "old contents\n");
    CHECK(testing::count_temporaries(dir.path) == 0);
    // Lifted, the same write succeeds.
    io::write_file_atomically(file, std::string(100'000, 'x'));
    CHECK(fs::file_size(file) == 100'000);
}

TEST_CASE("an atomic write sends its pieces in order, empty ones included, as one file", "[io][atomic]") {
    scratch_dir dir("pieces");
    const fs::path file = dir / "pool.bin";
    const std::string big(70'000, 'p');  // several pages, between two small pieces
    const std::vector<std::string_view> pieces{"head:", "", big, "", ":tail"};
    io::write_file_atomically(file, pieces);
    CHECK(file_text(file) == "head:" + big + ":tail");
    const std::vector<std::string_view> none;
    io::write_file_atomically(file, none);
    CHECK(fs::file_size(file) == 0);
    CHECK(testing::count_temporaries(dir.path) == 0);
}

TEST_CASE("temporaries get unique names and stale ones are removed", "[io][atomic]") {
    scratch_dir dir("stale");
    const fs::path a = io::detail::temporary_name(dir / "x"), b = io::detail::temporary_name(dir / "x");
    CHECK(a != b);
    std::ofstream(a) << "left by a killed run";
    fs::create_directories(dir / "sub");
    std::ofstream(io::detail::temporary_name(dir / "sub" / "y")) << "also";
    std::ofstream(dir / "keep.json") << "{}";
    CHECK(testing::count_temporaries(dir.path) == 2);
    CHECK(io::remove_stale_temporaries(dir.path) == 2);
    CHECK(testing::count_temporaries(dir.path) == 0);
    CHECK(fs::exists(dir / "keep.json"));
}

TEST_CASE("a run directory is locked by one holder at a time", "[io][atomic]") {
    scratch_dir dir("lock");
    {
        const io::run_directory_lock first(dir.path);
        CHECK_THROWS_WITH(io::run_directory_lock(dir.path),
                          Catch::Contains("another run is using this run directory") &&
                              Catch::Contains("process " + std::to_string(::getpid())));
    }
    CHECK_NOTHROW(io::run_directory_lock(dir.path));  // released with its holder
}
