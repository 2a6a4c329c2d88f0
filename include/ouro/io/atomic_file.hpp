// Atomic file writes: write a temporary file beside the target, flush it, then rename over the
// target, so a reader (or an interrupted run) sees either the old file or the new one, never half.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "ouro/core/error.hpp"

namespace ouro::io {

inline void write_file_atomically(const std::filesystem::path& target, std::string_view bytes) {
    namespace fs = std::filesystem;
    if (target.has_parent_path()) fs::create_directories(target.parent_path());
    fs::path tmp = target;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) fail(target.string(), ": cannot open temporary file ", tmp.string(), " for writing");
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        out.flush();
        if (!out) fail(target.string(), ": writing ", bytes.size(), " bytes failed (disk full?)");
    }
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) fail(target.string(), ": cannot move the temporary file into place: ", ec.message());
}

// The whole of a (small) file as a string, or an ouro::error naming the file.
inline std::string read_text_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(file.string(), ": cannot open for reading");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) fail(file.string(), ": read error");
    return text;
}

}  // namespace ouro::io
