// Colour data through the diffusion stack: the U-Net takes 3-channel 32×32 (CIFAR-10) and 64×64
// (CelebA) inputs, and the trainer runs a few steps on each shape from images read by the
// image-folder reader, with finite losses and changing weights.
#include <catch2/catch.hpp>

#include <filesystem>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/data/image_folder.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/io/png.hpp"
#include "ouro/nn/unet.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

// Writes `per_class` random-colour PNGs of size×size into root/<class>/ for two classes.
void write_folder(const fs::path& root, std::int64_t size, std::int64_t per_class) {
    for (int c = 0; c < 2; ++c)
        for (std::int64_t i = 0; i < per_class; ++i) {
            tensor<float> img(shape{3, size, size});
            philox_stream rng(11, rng_purpose::user, static_cast<std::uint64_t>(c * 100 + i));
            for (float& v : img) v = (c == 0 ? 0.5f : -0.5f) + 0.3f * rng.normal();
            io::write_png(root / (c == 0 ? "cats" : "dogs") / (std::to_string(i) + ".png"), img.view());
        }
}

template <nn::unet_spec Spec>
void train_a_few_steps(const data::image_dataset& set) {
    nn::unet<cpu, Spec> model;
    model.reset_parameters(3);
    const std::vector<float> before(model.store().values(), model.store().values() + model.store().size());
    diffusion::trainer_options o;
    o.batch_size = 2;
    o.steps = 3;
    o.lr = 1e-3;
    diffusion::trainer trainer(model, set, diffusion::schedule_table(diffusion::linear_ho2020{}, 100), o);
    const auto result = trainer.train();
    CHECK(result.steps_run == 3);
    CHECK(std::isfinite(result.last_loss));
    CHECK(result.last_loss > 0);
    const std::vector<float> after(model.store().values(), model.store().values() + model.store().size());
    CHECK(before != after);
}

}  // namespace

TEST_CASE("the trainer runs on 3-channel 32x32 images from an image folder", "[colour][trainer]") {
    const fs::path root = fs::temp_directory_path() / "ouro_test_colour32";
    fs::remove_all(root);
    write_folder(root, 40, 3);  // read back centre-cropped and resized to 32×32
    const auto set = data::load_image_folder(root, 32, {.log = nullptr});
    REQUIRE(set.images.dims() == shape{6, 3, 32, 32});
    constexpr nn::unet_spec spec{.in_channels = 3,
                                 .image_size = 32,
                                 .base = 8,
                                 .mult = {1, 2, 2},
                                 .res_blocks = 1,
                                 .attention = {false, true, false},
                                 .groups = 4,
                                 .classes = 2};
    train_a_few_steps<spec>(set);
    fs::remove_all(root);
}

TEST_CASE("the trainer runs on 3-channel 64x64 images, unconditionally", "[colour][trainer]") {
    const fs::path root = fs::temp_directory_path() / "ouro_test_colour64";
    fs::remove_all(root);
    write_folder(root, 64, 2);
    const auto set = data::load_image_folder(root, 64, {.log = nullptr});
    REQUIRE(set.images.dims() == shape{4, 3, 64, 64});
    constexpr nn::unet_spec spec{.in_channels = 3,
                                 .image_size = 64,
                                 .base = 8,
                                 .mult = {1, 2, 2, 2},
                                 .res_blocks = 1,
                                 .attention = {false, false, true, false},
                                 .groups = 4,
                                 .classes = 0};
    train_a_few_steps<spec>(set);
    fs::remove_all(root);
}

TEST_CASE("images of the wrong size for the spec are refused before training", "[colour][trainer][errors]") {
    const fs::path root = fs::temp_directory_path() / "ouro_test_colour_wrong";
    fs::remove_all(root);
    write_folder(root, 32, 2);
    const auto set = data::load_image_folder(root, 32, {.log = nullptr});
    constexpr nn::unet_spec spec{
        .in_channels = 3, .image_size = 64, .base = 8, .mult = {1, 2}, .groups = 4, .classes = 2};
    nn::unet<cpu, spec> model;
    diffusion::trainer_options o;
    o.batch_size = 2;
    o.steps = 1;
    CHECK_THROWS_WITH((diffusion::trainer(model, set, diffusion::schedule_table(diffusion::linear_ho2020{}, 100), o)),
                      Catch::Contains("32") && Catch::Contains("64"));
    fs::remove_all(root);
}
