// In-memory image data sets, and the MNIST / Fashion-MNIST loader: the four standard IDX files of a
// directory (as scripts/fetch-data lays them out) become float images (N, 1, 28, 28) and int64 labels.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/idx.hpp"

namespace ouro::data {

// A labelled image set held in memory.
struct image_dataset {
    std::string name;             // e.g. "mnist-train"
    tensor<float> images;         // (N, C, H, W)
    tensor<std::int64_t> labels;  // (N), each in [0, num_classes)
    std::int64_t num_classes = 0;

    std::int64_t size() const { return images.rank() == 4 ? images.dim(0) : 0; }
    std::int64_t channels() const { return images.dim(1); }
    std::int64_t height() const { return images.dim(2); }
    std::int64_t width() const { return images.dim(3); }
};

enum class split { train, test };

// How pixel bytes 0..255 map to floats. DDPM (Ho et al. 2020, sec. 3.3) scales images to [-1, 1];
// classifiers and feature extractors often want [0, 1].
enum class pixel_scale {
    minus_one_to_one,  // v / 127.5 - 1: 0 -> -1, 255 -> 1 exactly
    zero_to_one,       // v / 255:       0 -> 0,  255 -> 1 exactly
};

inline const char* split_name(split s) { return s == split::train ? "train" : "test"; }

// Converts pixel bytes (N, H, W) to one-channel float images (N, 1, H, W) on the given scale.
inline tensor<float> bytes_to_images(tensor_view<const std::uint8_t> bytes, pixel_scale scale) {
    require_rank(bytes.dims(), 3, "bytes_to_images", "(N, H, W)");
    // A table of the 256 values, each computed once in double: the same float for the same byte.
    float table[256];
    for (int v = 0; v < 256; ++v)
        table[v] = static_cast<float>(scale == pixel_scale::minus_one_to_one ? v / 127.5 - 1.0 : v / 255.0);
    const std::int64_t n = bytes.dim(0), hw = bytes.dim(1) * bytes.dim(2);
    tensor<float> images(shape{n, 1, bytes.dim(1), bytes.dim(2)});  // (N, 1, H, W)
    const std::uint8_t* src = bytes.data();
    float* dst = images.data();
    parallel_for(
        n,
        [&](std::int64_t i) {
            for (std::int64_t k = i * hw; k < (i + 1) * hw; ++k) dst[k] = table[src[k]];
        },
        hw);
    return images;
}

namespace detail {

// `dir/base`, else `dir/base.gz`, else an empty path.
inline std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& base) {
    std::error_code ec;
    for (const auto& candidate : {dir / base, dir / (base + ".gz")})
        if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
    return {};
}

// The last non-empty component of `dir` ("data/mnist/" -> "mnist").
inline std::string directory_name(const std::filesystem::path& dir) {
    std::filesystem::path p = dir.lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    std::string name = p.filename().string();
    return name.empty() || name == "." ? std::string("mnist") : name;
}

}  // namespace detail

// Loads one split of MNIST, or of any data set with MNIST's layout (Fashion-MNIST, KMNIST), from
// `dir`, which holds {train,t10k}-{images-idx3,labels-idx1}-ubyte, each plain or with ".gz".
// Requires: the two files of the split exist, agree on the number of items, hold at least one item,
// and every label is in [0, 10).
// Ensures: images (N, 1, rows, cols) on `scale`, labels (N), num_classes = 10, and
// name = "<directory name>-<train|test>", e.g. "fashion-mnist-train".
inline image_dataset load_mnist(const std::filesystem::path& dir, split which,
                                pixel_scale scale = pixel_scale::minus_one_to_one) {
    namespace fs = std::filesystem;
    const std::string set = detail::directory_name(dir);
    const std::string fetch_hint = std::string("; run scripts/fetch-data ") +
                                   (set == "fashion-mnist" ? "fashion-mnist" : "mnist") +
                                   " to download it (it fills <repo>/data/mnist and <repo>/data/fashion-mnist)";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) fail("load_mnist: data directory ", dir.string(), " does not exist", fetch_hint);

    const std::string prefix = which == split::train ? "train" : "t10k";
    const std::string images_base = prefix + "-images-idx3-ubyte", labels_base = prefix + "-labels-idx1-ubyte";
    const fs::path images_file = detail::find_idx_file(dir, images_base);
    const fs::path labels_file = detail::find_idx_file(dir, labels_base);
    if (images_file.empty())
        fail("load_mnist: ", dir.string(), " has no ", images_base, " (or ", images_base, ".gz)", fetch_hint);
    if (labels_file.empty())
        fail("load_mnist: ", dir.string(), " has no ", labels_base, " (or ", labels_base, ".gz)", fetch_hint);

    const tensor<std::uint8_t> bytes = read_idx_images(images_file);  // (N, rows, cols)
    tensor<std::int64_t> labels = read_idx_labels(labels_file);       // (N)
    if (bytes.dim(0) != labels.dim(0))
        fail("load_mnist: image and label counts differ: ", images_file.string(), " has ", bytes.dim(0), " images, ",
             labels_file.string(), " has ", labels.dim(0), " labels");
    if (bytes.dim(0) == 0) fail("load_mnist: ", images_file.string(), " holds no images");

    constexpr std::int64_t num_classes = 10;
    for (std::int64_t i = 0; i < labels.numel(); ++i)
        if (labels[i] >= num_classes)
            fail("load_mnist: ", labels_file.string(), ": label ", i, " is ", labels[i], ", expected 0 to ",
                 num_classes - 1);

    image_dataset out;
    out.name = set + "-" + split_name(which);
    out.images = bytes_to_images(bytes.view(), scale);
    out.labels = std::move(labels);
    out.num_classes = num_classes;
    return out;
}

}  // namespace ouro::data
