// CIFAR-10 from its binary batches (Krizhevsky, "Learning Multiple Layers of Features from Tiny
// Images", 2009; https://www.cs.toronto.edu/~kriz/cifar.html): data_batch_1..5.bin and
// test_batch.bin become float images (N, 3, 32, 32) and int64 labels, on the pixel scale asked for.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/mnist.hpp"

namespace ouro::data {

// The binary version's layout: each record is 1 label byte, then 3072 pixel bytes, the R plane,
// then G, then B, each 32 x 32 row-major; so the pixel bytes of a record are already (3, 32, 32).
inline constexpr std::int64_t cifar10_num_classes = 10;
inline constexpr std::int64_t cifar10_side = 32;
inline constexpr std::int64_t cifar10_image_bytes = 3 * cifar10_side * cifar10_side;  // 3072
inline constexpr std::int64_t cifar10_record_bytes = 1 + cifar10_image_bytes;         // 3073
inline constexpr std::int64_t cifar10_records_per_batch = 10000;                      // in the published files

// The class names in label order, as batches.meta.txt of the binary version lists them.
inline constexpr std::array<std::string_view, 10> cifar10_default_class_names = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

// Where the binary version comes from; the error messages of this header repeat it.
inline constexpr std::string_view cifar10_binary_url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

// One binary batch file: the raw pixel bytes and the labels.
struct cifar10_batch {
    tensor<std::uint8_t> pixels;  // (N, 3, 32, 32)
    tensor<std::int64_t> labels;  // (N), each in [0, 10)
};

namespace detail {

inline std::string cifar10_fetch_hint() {
    return "; download CIFAR-10's binary version (\"suitable for C programs\") from " +
           std::string(cifar10_binary_url) + " and extract it (it unpacks to cifar-10-batches-bin/)";
}

// The batch files of a split, in the order their records are concatenated.
inline std::vector<std::string> cifar10_batch_names(split which) {
    if (which == split::test) return {"test_batch.bin"};
    return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
}

// `dir` itself, or `dir/cifar-10-batches-bin` when `dir` is the folder the archive was extracted in.
inline std::filesystem::path cifar10_batches_dir(const std::filesystem::path& dir) {
    std::error_code ec;
    const std::filesystem::path nested = dir / "cifar-10-batches-bin";
    if (!std::filesystem::exists(dir / "batches.meta.txt", ec) &&
        !std::filesystem::exists(dir / "test_batch.bin", ec) &&
        !std::filesystem::exists(dir / "data_batch_1.bin", ec) && std::filesystem::is_directory(nested, ec))
        return nested;
    return dir;
}

inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& file, std::uintmax_t size) {
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(file.string(), ": cannot open for reading");
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
    if (static_cast<std::uintmax_t>(in.gcount()) != size)
        fail(file.string(), ": read ", in.gcount(), " of its ", size, " bytes");
    return bytes;
}

}  // namespace detail

// Reads one CIFAR-10 binary batch file (any number of records; the published ones hold 10,000).
// Requires: the file exists, holds at least one record, its size is a multiple of 3073 bytes, and
// every label byte is in [0, 10).
// Ensures: pixels (N, 3, 32, 32) exactly as stored (R, G, B planes), labels (N).
inline cifar10_batch read_cifar10_batch(const std::filesystem::path& file) {
    namespace fs = std::filesystem;
    const std::string path = file.string();
    std::error_code ec;
    if (!fs::exists(file, ec)) fail(path, ": no such file", detail::cifar10_fetch_hint());
    if (fs::is_directory(file, ec)) fail(path, ": is a directory, expected a CIFAR-10 binary batch file");
    const std::uintmax_t size = fs::file_size(file, ec);
    if (ec) fail(path, ": cannot read its size: ", ec.message());
    const auto record = static_cast<std::uintmax_t>(cifar10_record_bytes);
    if (size == 0) fail(path, ": empty file, expected records of ", record, " bytes (1 label byte + 3072 pixel bytes)");
    if (size % record != 0)
        fail(path, ": not a CIFAR-10 binary batch: expected a size that is a multiple of ", record,
             " bytes (1 label byte + 3072 pixel bytes per record), found ", size, " bytes (", size / record,
             " records and ", size % record, " bytes left over)",
             size % 3074 == 0 ? "; 3074-byte records are CIFAR-100's (coarse + fine label), not CIFAR-10's" : "");

    const std::vector<std::uint8_t> bytes = detail::read_file_bytes(file, size);
    const auto n = static_cast<std::int64_t>(size / record);
    cifar10_batch out{tensor<std::uint8_t>(shape{n, 3, cifar10_side, cifar10_side}), tensor<std::int64_t>(shape{n})};
    for (std::int64_t i = 0; i < n; ++i) {
        const std::uint8_t* rec = bytes.data() + i * cifar10_record_bytes;
        if (rec[0] >= cifar10_num_classes)
            fail(path, ": record ", i, " (byte offset ", i * cifar10_record_bytes, ") has label ", int{rec[0]},
                 ", expected 0 to ", cifar10_num_classes - 1, "; is this a CIFAR-10 binary batch?");
        out.labels[i] = rec[0];
        std::memcpy(out.pixels.data() + i * cifar10_image_bytes, rec + 1,
                    static_cast<std::size_t>(cifar10_image_bytes));
    }
    return out;
}

// The class names of the CIFAR-10 binary version in `dir` (or `dir/cifar-10-batches-bin`), in label
// order: from batches.meta.txt when present (one name a line, blank lines ignored), else the
// standard ten names.
// Requires: a present batches.meta.txt names exactly 10 classes.
inline std::vector<std::string> read_cifar10_class_names(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    const fs::path meta = detail::cifar10_batches_dir(dir) / "batches.meta.txt";
    std::error_code ec;
    std::vector<std::string> names;
    if (!fs::is_regular_file(meta, ec)) {
        names.assign(cifar10_default_class_names.begin(), cifar10_default_class_names.end());
        return names;
    }
    std::ifstream in(meta);
    if (!in) fail(meta.string(), ": cannot open for reading");
    for (std::string line; std::getline(in, line);) {
        const auto first = line.find_first_not_of(" \t\r");
        if (first == std::string::npos) continue;
        const auto last = line.find_last_not_of(" \t\r");
        names.push_back(line.substr(first, last - first + 1));
    }
    if (static_cast<std::int64_t>(names.size()) != cifar10_num_classes)
        fail(meta.string(), ": expected ", cifar10_num_classes, " class names (one a line), found ", names.size());
    return names;
}

// Loads one split of CIFAR-10's binary version from `dir`, the folder holding data_batch_1.bin ..
// data_batch_5.bin and test_batch.bin (cifar-10-batches-bin/), or the folder it was extracted in.
// Requires: every batch file of the split exists and is well formed (see read_cifar10_batch).
// Ensures: images (N, 3, 32, 32) on `scale` (train: the five batches in order, N = 50,000 for the
// published files; test: N = 10,000), labels (N), num_classes = 10, name = "cifar10-<train|test>".
// The class names are read_cifar10_class_names(dir).
inline image_dataset load_cifar10(const std::filesystem::path& dir, split which,
                                  pixel_scale scale = pixel_scale::minus_one_to_one) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        fail("load_cifar10: data directory ", dir.string(), " does not exist", detail::cifar10_fetch_hint());
    const fs::path batches = detail::cifar10_batches_dir(dir);
    const std::vector<std::string> names = detail::cifar10_batch_names(which);

    std::vector<std::string> missing;
    for (const std::string& name : names)
        if (!fs::is_regular_file(batches / name, ec)) missing.push_back(name);
    if (!missing.empty()) {
        std::string list;
        for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
        // The Python version names its pickled batches without ".bin".
        const bool python_version = fs::exists(batches / "data_batch_1", ec) ||
                                    fs::exists(batches / "test_batch", ec) ||
                                    fs::is_directory(dir / "cifar-10-batches-py", ec);
        fail("load_cifar10: ", batches.string(), " has no ", list, " (the ", split_name(which), " split needs ",
             names.size(), names.size() == 1 ? " file" : " files", ")",
             python_version ? "; this looks like CIFAR-10's Python version (pickled batches), which ouro does not read"
                            : "",
             detail::cifar10_fetch_hint());
    }

    std::vector<cifar10_batch> parts;
    std::int64_t n = 0;
    for (const std::string& name : names) {
        parts.push_back(read_cifar10_batch(batches / name));
        n += parts.back().labels.dim(0);
    }

    image_dataset out;
    out.name = std::string("cifar10-") + split_name(which);
    out.num_classes = cifar10_num_classes;
    out.images = tensor<float>(shape{n, 3, cifar10_side, cifar10_side});  // (N, 3, 32, 32)
    out.labels = tensor<std::int64_t>(shape{n});                          // (N)
    // A table of the 256 values, each computed once in double, as bytes_to_images does: the same
    // byte gives the same float in every loader.
    float table[256];
    for (int v = 0; v < 256; ++v)
        table[v] = static_cast<float>(scale == pixel_scale::minus_one_to_one ? v / 127.5 - 1.0 : v / 255.0);
    std::int64_t offset = 0;
    for (const cifar10_batch& part : parts) {
        const std::int64_t m = part.labels.dim(0);
        std::copy(part.labels.begin(), part.labels.end(), out.labels.data() + offset);
        const std::uint8_t* src = part.pixels.data();
        float* dst = out.images.data() + offset * cifar10_image_bytes;
        parallel_for(
            m,
            [&](std::int64_t i) {
                for (std::int64_t k = i * cifar10_image_bytes; k < (i + 1) * cifar10_image_bytes; ++k)
                    dst[k] = table[src[k]];
            },
            cifar10_image_bytes);
        offset += m;
    }
    return out;
}

}  // namespace ouro::data
