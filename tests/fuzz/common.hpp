// What every fuzz target shares: a scratch folder for the readers that take paths, and the one
// exception a target may let out. Each target is a function of the input bytes, so that
// tests/test_fuzz_replay.cpp runs the corpora without a fuzzing engine.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "ouro/core/error.hpp"

namespace ouro::fuzzing {

// A body reads `size` bytes at `data` as its reader's input; ouro::error is how it refuses them.
using target_body = void (*)(const std::uint8_t* data, std::size_t size);

namespace detail {
// A fresh folder under the temporary directory, removed when the process exits normally.
class scratch_folder {
public:
    scratch_folder() {
        std::string name = (std::filesystem::temp_directory_path() / "ouro-fuzz-XXXXXX").string();
        if (::mkdtemp(name.data()) == nullptr) throw std::runtime_error("fuzz harness: cannot create " + name);
        path_ = name;
    }
    scratch_folder(const scratch_folder&) = delete;
    scratch_folder& operator=(const scratch_folder&) = delete;
    ~scratch_folder() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};
}  // namespace detail

// This process's scratch folder.
inline const std::filesystem::path& scratch() {
    static const detail::scratch_folder folder;
    return folder.path();
}

// Replaces `file` with the `size` bytes at `data`. A failure here is the harness's, not the
// reader's, so it is not an ouro::error.
inline void write_bytes(const std::filesystem::path& file, const void* data, std::size_t size) {
    std::FILE* f = std::fopen(file.c_str(), "wb");
    if (f == nullptr) throw std::runtime_error("fuzz harness: cannot write " + file.string());
    const bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
    if (std::fclose(f) != 0 || !ok) throw std::runtime_error("fuzz harness: cannot write " + file.string());
}

// Runs `body` on the input as LLVMFuzzerTestOneInput does: a refusal (ouro::error) is the
// expected way out; anything else escapes, and the fuzzer reports it.
inline int run_target(target_body body, const std::uint8_t* data, std::size_t size) {
    try {
        body(data, size);
    } catch (const ouro::error&) {
    }
    return 0;
}

}  // namespace ouro::fuzzing
