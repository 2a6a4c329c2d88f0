// Fuzz target image_folder: the bytes as the one image of a one-class image folder, loaded by
// load_image_folder (decode, centre crop, resize to 7 x 7: both resize paths) and read_image.
#pragma once

#include <cstdint>
#include <filesystem>

#include "fuzz/common.hpp"
#include "ouro/data/image_folder.hpp"

namespace ouro::fuzzing {

inline void fuzz_image_folder(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path root = scratch() / "images";
    std::filesystem::create_directories(root / "class_a");
    const std::filesystem::path file = root / "class_a" / "input.png";  // stb_image goes by content, not name
    write_bytes(file, data, size);
    ouro::data::image_folder_options options;
    options.threads = 1;
    options.log = nullptr;
    options.channels = 3;
    (void)ouro::data::load_image_folder(root, 7, options);
    options.channels = 1;
    options.filter = ouro::data::resize_filter::area;
    options.centre_crop = false;
    (void)ouro::data::load_image_folder(root, 7, options);
    (void)ouro::data::read_image(file, 1);
}

}  // namespace ouro::fuzzing
