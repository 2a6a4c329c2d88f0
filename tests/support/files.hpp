// Test helpers for files: how many temporaries io::write_file_atomically left under a folder.
#pragma once

#include <filesystem>
#include <string>

#include "ouro/io/atomic_file.hpp"

namespace ouro::testing {

inline int count_temporaries(const std::filesystem::path& folder) {
    int n = 0;
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().find(ouro::io::detail::temporary_marker) != std::string::npos) ++n;
    return n;
}

}  // namespace ouro::testing
