// Test helpers for files: scratch folders, small text files, and how many temporaries
// io::write_file_atomically left under a folder.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <catch2/catch.hpp>

#include "ouro/io/atomic_file.hpp"

namespace ouro::testing {

// A fresh, empty folder ouro_test_<name>_<pid> under the system's temporary folder, removed with
// everything in it when the object goes. The process id keeps two test programs that run at once
// (ctest -j) apart; `name` should start with the test file's own name for the same reason.
struct scratch_dir {
    std::filesystem::path path;

    explicit scratch_dir(const std::string& name)
        : path(std::filesystem::temp_directory_path() / ("ouro_test_" + name + "_" + std::to_string(::getpid()))) {
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;

    std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

// The path ouro_test_<name> under the temporary folder, with nothing there: for a run directory
// the code under test must create itself (and may keep, to be resumed, until the next call).
inline std::filesystem::path fresh_dir(const std::string& name) {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("ouro_test_" + name);
    std::filesystem::remove_all(dir);
    return dir;
}

// Writes `text` to `file` (its folder created first), replacing what was there.
inline void write_text(const std::filesystem::path& file, const std::string& text) {
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
}

inline int count_temporaries(const std::filesystem::path& folder) {
    int n = 0;
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().find(ouro::io::detail::temporary_marker) != std::string::npos) ++n;
    return n;
}

}  // namespace ouro::testing
