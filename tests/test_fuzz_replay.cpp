// Replays the fuzz corpora without a fuzzing engine: every seed under tests/fuzz/corpus/<target>/
// and every input that once broke a reader, under tests/fuzz/regressions/<target>/, goes through
// its target (tests/fuzz/<target>.hpp), which may refuse it with ouro::error and nothing else.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/targets.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path fuzz_dir = fs::path(OURO_SOURCE_DIR) / "tests" / "fuzz";

std::vector<std::uint8_t> file_bytes(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const ouro::fuzzing::named_target* target_named(const std::string& name) {
    for (const auto& t : ouro::fuzzing::all_targets)
        if (t.name == name) return &t;
    return nullptr;
}

// The files of `dir`, sorted, so that a failure names the same input every time.
std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

// What `target` does with `file`: "" when it reads it or refuses it with ouro::error.
std::string replay(const ouro::fuzzing::named_target& target, const fs::path& file) {
    const std::vector<std::uint8_t> bytes = file_bytes(file);
    try {
        target.body(bytes.data(), bytes.size());
    } catch (const ouro::error&) {
    } catch (const std::exception& e) {
        return "threw " + std::string(e.what());
    } catch (...) {
        return "threw something that is not a std::exception";
    }
    return "";
}

}  // namespace

TEST_CASE("every fuzz seed and regression input is read or refused with ouro::error", "[fuzz]") {
    int replayed = 0;
    for (const char* kind : {"corpus", "regressions"}) {
        const fs::path base = fuzz_dir / kind;
        if (!fs::is_directory(base)) continue;
        for (const auto& folder : fs::directory_iterator(base)) {
            if (!folder.is_directory()) continue;
            const std::string name = folder.path().filename().string();
            const auto* target = target_named(name);
#if !defined(OURO_FUZZ_HAS_CLI11)
            if (!target && name == "cli_validators") continue;  // built without CLI11 (no examples)
#endif
            INFO(folder.path().string());
            REQUIRE(target != nullptr);  // a folder without a target would never be replayed
            for (const fs::path& file : files_in(folder.path())) {
                INFO(file.string());
                CHECK(replay(*target, file) == "");
                ++replayed;
            }
        }
    }
    CHECK(replayed >= static_cast<int>(std::size(ouro::fuzzing::all_targets)));
}

TEST_CASE("every fuzz target has seeds", "[fuzz]") {
    for (const auto& t : ouro::fuzzing::all_targets) {
        INFO(std::string(t.name));
        CHECK(!files_in(fuzz_dir / "corpus" / std::string(t.name)).empty());
    }
}

TEST_CASE("JSON nested 200,000 levels deep is refused before anything recurses on it", "[fuzz]") {
    // Copying, comparing, flattening and dumping a parsed value recurse: at this depth they would
    // overflow the stack. Generated here, as a file of this size is not worth keeping.
    constexpr std::size_t depth = 200'000;
    const std::string nested = std::string(depth, '[') + std::string(depth, ']');
    auto bytes_of = [](const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); };

    std::string header = R"({"w":{"dtype":"F32","shape":[)" + nested + R"(],"data_offsets":[0,0]}})";
    header.append((8 - header.size() % 8) % 8, ' ');
    std::string safetensors(8, '\0');
    for (std::size_t i = 0, n = header.size(); i < 8; ++i, n >>= 8) safetensors[i] = static_cast<char>(n & 0xff);
    safetensors += header;
    const std::vector<std::uint8_t> inputs[] = {
        bytes_of(safetensors),
        bytes_of(R"({"checksum":"00000000","g0_evaluated":true,"g0_crc32":"","metrics":[],"diagnostics":[],"x":)" +
                 nested + "}"),
        bytes_of(R"({"latents":{"timestep":)" + nested + "}}"),
    };
    const char* targets[] = {"safetensors", "loop_state", "loop_config"};
    for (std::size_t i = 0; i < std::size(targets); ++i) {
        INFO(targets[i]);
        const auto* target = target_named(targets[i]);
        REQUIRE(target != nullptr);
        CHECK_THROWS_AS(target->body(inputs[i].data(), inputs[i].size()), ouro::error);
    }
}
