// metrics::lenet_feature_extractor and the feature_extractor concept, on small synthetic data sets
// (grey 28×28: bright top half vs bright bottom half; colour 32×32: reddish vs bluish): training to
// full accuracy, the safetensors cache (reload bit for bit, retraining when the metadata, the image
// geometry included, does not match or the file is broken), features per image independent of the
// batch and the thread count; and metrics::train_classifier itself.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/metrics/classifier_training.hpp"
#include "ouro/metrics/feature_extractor.hpp"
#include "support/common.hpp"

using namespace ouro;
using Catch::Contains;
using ouro::testing::thread_guard;

namespace {

// n images of 28×28 in [-1, 1]: class 0 has a bright top half, class 1 a bright bottom half, both
// with Philox noise of standard deviation 0.3; labels alternate.
data::image_dataset halves(std::int64_t n, std::uint64_t seed, std::string name = "halves") {
    data::image_dataset set;
    set.name = std::move(name);
    set.images = tensor<float>(shape{n, 1, 28, 28});
    set.labels = tensor<std::int64_t>(shape{n});
    set.num_classes = 2;
    philox_stream rng(seed, rng_purpose::user, 0);
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t y = i % 2;
        set.labels[i] = y;
        for (std::int64_t r = 0; r < 28; ++r)
            for (std::int64_t c = 0; c < 28; ++c) {
                const bool bright = (r < 14) == (y == 0);
                set.images[i * 784 + r * 28 + c] = (bright ? 0.8f : -0.8f) + 0.3f * rng.normal();
            }
    }
    return set;
}

// n colour images (N, 3, 32, 32) in [-1, 1]: each a random flat colour with Philox pixel noise of
// standard deviation 0.3. Class 0 is reddish (red in [0.2, 1], blue in [-1, -0.2]), class 1 bluish
// (the two swapped); green is anything in [-1, 1] for both. Labels alternate.
data::image_dataset colours(std::int64_t n, std::uint64_t seed, std::string name = "colours") {
    data::image_dataset set;
    set.name = std::move(name);
    set.images = tensor<float>(shape{n, 3, 32, 32});
    set.labels = tensor<std::int64_t>(shape{n});
    set.num_classes = 2;
    philox_stream rng(seed, rng_purpose::user, 0);
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t y = i % 2;
        set.labels[i] = y;
        const float strong = 0.2f + 0.8f * rng.uniform(), weak = -0.2f - 0.8f * rng.uniform();
        const float colour[3] = {y == 0 ? strong : weak, 2.0f * rng.uniform() - 1.0f, y == 0 ? weak : strong};
        for (std::int64_t c = 0; c < 3; ++c)
            for (std::int64_t p = 0; p < 32 * 32; ++p)
                set.images[(i * 3 + c) * 1024 + p] = colour[c] + 0.3f * rng.normal();
    }
    return set;
}

struct temp_dir {
    std::filesystem::path path = std::filesystem::temp_directory_path() / "ouro_test_feature_extractor";
    temp_dir() {
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
};

// A quick recipe for 200 images: 10 steps per epoch.
constexpr metrics::classifier_training_options quick{.epochs = 3, .batch_size = 20, .lr = 2e-3, .seed = 3};

struct no_feature_dim {
    tensor<float> features(tensor_view<const float>);
};
struct wrong_features {
    std::int64_t feature_dim() const;
    tensor<double> features(tensor_view<const float>);
};
static_assert(metrics::feature_extractor<metrics::lenet_feature_extractor>);
static_assert(!metrics::feature_extractor<no_feature_dim>);
static_assert(!metrics::feature_extractor<wrong_features>);
static_assert(metrics::classifier_network<nn::lenet<cpu>>);
static_assert(!metrics::classifier_network<no_feature_dim>);

std::vector<float> weights_of(metrics::lenet_feature_extractor& e) {
    const auto& store = e.net().store();
    return {store.values(), store.values() + store.size()};
}

}  // namespace

TEST_CASE("lenet features: trains to full accuracy, caches, reloads bit for bit, retrains on other metadata",
          "[feature_extractor]") {
    thread_guard guard;
    temp_dir dir;
    const auto cache = dir.path / "lenet.safetensors";
    const data::image_dataset train = halves(200, 1);
    const data::image_dataset test = halves(60, 2, "halves-test");

    metrics::lenet_feature_extractor first;
    CHECK_THROWS_WITH(first.features(test.images), Contains("train_or_load"));
    std::ostringstream log;
    const auto trained = first.train_or_load(train, cache, quick, log);
    CHECK(trained.trained);
    CHECK_THAT(log.str(), Contains("no cache"));
    CHECK(std::filesystem::exists(cache));
    CHECK(first.accuracy(train) == 1.0);
    CHECK(first.accuracy(test) == 1.0);
    CHECK(first.feature_dim() == 84);
    const tensor<float> f = first.features(test.images);
    CHECK(f.dims() == shape{60, 84});
    const tensor<std::int64_t> classes = first.classify(test.images);
    CHECK(std::equal(classes.begin(), classes.end(), test.labels.begin()));

    // The cache records what the weights were trained on.
    const io::safetensors_metadata meta = io::read_safetensors_metadata(cache);
    CHECK(meta.at("dataset") == "halves");
    CHECK(meta.at("dataset_size") == "200");
    CHECK(meta.at("dataset_fingerprint") == metrics::dataset_fingerprint(train));
    CHECK(meta.at("epochs") == "3");
    CHECK(meta.at("seed") == "3");
    CHECK(meta.at("num_classes") == "2");

    // Same data, same recipe: loaded as it is, bit for bit, without training (and without a word).
    metrics::lenet_feature_extractor second;
    std::ostringstream quiet;
    const auto loaded = second.train_or_load(train, cache, quick, quiet);
    CHECK_FALSE(loaded.trained);
    CHECK(quiet.str().empty());
    CHECK(weights_of(second) == weights_of(first));
    const tensor<float> f2 = second.features(test.images);
    CHECK(std::equal(f.begin(), f.end(), f2.begin()));
    metrics::lenet_feature_extractor plain;
    plain.load(cache);
    CHECK(weights_of(plain) == weights_of(first));
    CHECK(plain.num_classes() == 2);

    // Training is reproducible: the same recipe from scratch gives the same weights.
    const auto other_cache = dir.path / "again.safetensors";
    metrics::lenet_feature_extractor again;
    std::ostringstream again_log;
    again.train_or_load(train, other_cache, quick, again_log);
    CHECK(weights_of(again) == weights_of(first));

    // Another recipe: retrained, and the log names what differed.
    metrics::classifier_training_options other = quick;
    other.epochs = 2;
    std::ostringstream retrain_log;
    metrics::lenet_feature_extractor third;
    const auto retrained = third.train_or_load(train, cache, other, retrain_log);
    CHECK(retrained.trained);
    CHECK_THAT(retrained.reason, Contains("epochs: cache has '3', expected '2'"));
    CHECK_THAT(retrain_log.str(), Contains("retraining") && Contains("epochs"));
    CHECK(io::read_safetensors_metadata(cache).at("epochs") == "2");  // the cache now holds the new weights

    // Other data of the same name and size (one pixel changed): the fingerprint tells them apart.
    data::image_dataset changed = halves(200, 1);
    changed.images[150 * 784 + 400] += 0.5f;
    std::ostringstream changed_log;
    metrics::lenet_feature_extractor fourth;
    const auto refit = fourth.train_or_load(changed, cache, other, changed_log);
    CHECK(refit.trained);
    CHECK_THAT(refit.reason, Contains("dataset_fingerprint"));

    // A broken cache file is retrained, not trusted.
    {
        std::ofstream junk(cache, std::ios::binary | std::ios::trunc);
        junk << "garbage";
    }
    std::ostringstream broken_log;
    metrics::lenet_feature_extractor fifth;
    CHECK(fifth.train_or_load(train, cache, quick, broken_log).trained);
    CHECK_THAT(broken_log.str(), Contains("cannot be used"));
    CHECK(weights_of(fifth) == weights_of(first));
}

TEST_CASE("lenet features of an image do not depend on the batch or the thread count", "[feature_extractor][threads]") {
    thread_guard guard;
    temp_dir dir;
    metrics::lenet_feature_extractor e;
    std::ostringstream log;
    e.train_or_load(halves(200, 1), dir.path / "lenet.safetensors", quick, log);
    const data::image_dataset test = halves(9, 5);

    set_threads(2);
    const tensor<float> all = e.features(test.images);
    set_threads(1);
    const tensor<float> serial = e.features(test.images);
    CHECK(std::equal(all.begin(), all.end(), serial.begin()));
    set_threads(2);
    for (std::int64_t i = 0; i < 9; i += 4) {
        const tensor<float> one =
            e.features(tensor_view<const float>(test.images.data() + i * 784, shape{1, 1, 28, 28}));
        INFO("image " << i);
        CHECK(std::equal(one.begin(), one.end(), all.data() + i * 84));
    }
    // The features are the network's own penultimate layer.
    const tensor<float> direct =
        to_tensor(e.net().features(tensor_view<const float>(test.images.data(), shape{1, 1, 28, 28})));
    CHECK(std::equal(direct.begin(), direct.end(), all.data()));
}

TEST_CASE("lenet feature extractor refuses bad input with clear errors", "[feature_extractor][errors]") {
    temp_dir dir;
    metrics::lenet_feature_extractor e;
    std::ostringstream log;
    CHECK_THROWS_WITH(e.train_or_load(halves(10, 1), dir.path / "a.safetensors", quick, log),
                      Contains("10 images") && Contains("batch of 20"));
    data::image_dataset bad_labels = halves(40, 1);
    bad_labels.labels[3] = 2;
    CHECK_THROWS_WITH(e.train_or_load(bad_labels, dir.path / "a.safetensors", quick, log),
                      Contains("label 2 at index 3"));
    // Images the LeNet cannot take: not square, or a size whose poolings do not divide evenly.
    data::image_dataset odd;
    odd.name = "odd";
    odd.images = tensor<float>(shape{40, 1, 30, 30});
    odd.labels = tensor<std::int64_t>(shape{40}, 0);
    odd.num_classes = 2;
    CHECK_THROWS_WITH(e.train_or_load(odd, dir.path / "a.safetensors", quick, log),
                      Contains("(40, 1, 30, 30)") && Contains("multiple of 4"));
    odd.images = tensor<float>(shape{40, 3, 28, 32});
    CHECK_THROWS_WITH(e.train_or_load(odd, dir.path / "a.safetensors", quick, log),
                      Contains("square") && Contains("(40, 3, 28, 32)"));
    CHECK_FALSE(std::filesystem::exists(dir.path / "a.safetensors"));

    e.train_or_load(halves(40, 1), dir.path / "b.safetensors", {.epochs = 1, .batch_size = 20}, log);
    CHECK_THROWS_WITH(e.features(tensor<float>(shape{3, 1, 32, 32})),
                      Contains("(3, 1, 28, 28)") && Contains("(3, 1, 32, 32)"));
    CHECK_THROWS_WITH(e.classify(tensor<float>(shape{3, 3, 28, 28})), Contains("(3, 3, 28, 28)"));
    CHECK_THROWS_WITH(e.features(tensor<float>(shape{0, 1, 28, 28})), Contains("N >= 1"));
    CHECK_THROWS_WITH(metrics::lenet_feature_extractor().load(dir.path / "missing.safetensors"),
                      Contains("no such file"));
}

TEST_CASE("train_classifier follows its recipe: steps, callbacks, early stop, reproducibility",
          "[classifier_training]") {
    const data::image_dataset train = halves(50, 4);  // 2 steps per epoch of 20; 10 images dropped
    struct recorder {
        std::vector<std::int64_t> steps, batches;
        std::vector<int> epochs_ended;
        std::vector<double> lrs;
        void on_step(const metrics::classifier_step& s) {
            steps.push_back(s.step);
            batches.push_back(s.batch);
            lrs.push_back(s.lr);
            CHECK(s.steps_per_epoch == 2);
            CHECK(s.total_steps == 6);
        }
        void on_epoch_end(const metrics::classifier_epoch& e) { epochs_ended.push_back(e.epoch); }
    } rec;
    nn::lenet<cpu> a(2), b(2);
    a.reset_parameters(1);
    b.reset_parameters(1);
    const metrics::classifier_training_options o{
        .epochs = 3, .batch_size = 20, .lr = 1e-3, .warmup_steps = 100, .seed = 7};
    const auto report = metrics::train_classifier(a, train, o, rec);
    CHECK(report.steps == 6);
    CHECK(report.epochs == 3);
    CHECK_FALSE(report.stopped_early);
    CHECK(rec.steps == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
    CHECK(rec.batches == std::vector<std::int64_t>{1, 2, 1, 2, 1, 2});
    CHECK(rec.epochs_ended == std::vector<int>{0, 1, 2});
    // Warm-up capped at half the run (3 of 6 steps), then cosine decay from lr towards 0.
    REQUIRE(rec.lrs.size() == 6);
    CHECK(rec.lrs[0] == Approx(1e-3 / 3));
    CHECK(rec.lrs[2] == Approx(1e-3));
    CHECK(rec.lrs[3] == Approx(1e-3));
    CHECK(rec.lrs[4] < 1e-3);
    CHECK(rec.lrs[5] < rec.lrs[4]);

    metrics::train_classifier(b, train, o);
    CHECK(std::equal(a.store().values(), a.store().values() + a.store().size(), b.store().values()));

    struct stop_at_3 {
        bool on_step(const metrics::classifier_step& s) { return s.step == 3; }
    } stop;
    nn::lenet<cpu> c(2);
    c.reset_parameters(1);
    const auto stopped = metrics::train_classifier(c, train, o, stop);
    CHECK(stopped.stopped_early);
    CHECK(stopped.steps == 3);
    CHECK(stopped.epochs == 1);

    // Accuracy is the share of predicted classes that match, whatever the evaluation batch.
    const tensor<std::int64_t> predicted = metrics::predict_classes(a, train.images, 7);
    std::int64_t correct = 0;
    for (std::int64_t i = 0; i < 50; ++i) correct += predicted[i] == train.labels[i];
    CHECK(metrics::classifier_accuracy(a, train) == static_cast<double>(correct) / 50.0);
    CHECK_THROWS_WITH(metrics::train_classifier(c, train, {.epochs = 0}), Contains("epochs >= 1"));
    CHECK_THROWS_WITH(metrics::predict_classes(c, tensor<float>(shape{2, 1, 20, 20})), Contains("(2, 1, 20, 20)"));
}

TEST_CASE("lenet features for colour 32x32 images: trains, caches with its geometry, refuses grey input",
          "[feature_extractor][colour]") {
    thread_guard guard;
    temp_dir dir;
    const auto cache = dir.path / "colour.safetensors";
    const data::image_dataset train = colours(300, 1);
    const data::image_dataset test = colours(100, 2, "colours-test");

    metrics::lenet_feature_extractor e;
    std::ostringstream log;
    const metrics::classifier_training_options one_epoch{.epochs = 1, .batch_size = 20, .lr = 2e-3, .seed = 3};
    CHECK(e.train_or_load(train, cache, one_epoch, log).trained);
    CHECK(e.in_channels() == 3);
    CHECK(e.image_size() == 32);
    CHECK(e.net().in_channels() == 3);
    CHECK(e.accuracy(test) >= 0.9);  // chance is 0.5
    const tensor<float> f = e.features(test.images);
    CHECK(f.dims() == shape{100, 84});

    const io::safetensors_metadata meta = io::read_safetensors_metadata(cache);
    CHECK(meta.at("in_channels") == "3");
    CHECK(meta.at("image_size") == "32");
    CHECK_THAT(meta.at("architecture"), Contains("(3, 32, 32)"));

    // The cache round-trips: through train_or_load without training, and through load().
    metrics::lenet_feature_extractor again;
    std::ostringstream quiet;
    CHECK_FALSE(again.train_or_load(train, cache, one_epoch, quiet).trained);
    CHECK(quiet.str().empty());
    CHECK(weights_of(again) == weights_of(e));
    metrics::lenet_feature_extractor plain;
    plain.load(cache);
    CHECK(plain.in_channels() == 3);
    CHECK(plain.image_size() == 32);
    CHECK(weights_of(plain) == weights_of(e));
    const tensor<float> f2 = plain.features(test.images);
    CHECK(std::equal(f.begin(), f.end(), f2.begin()));

    // Features of one image do not depend on the thread count or the other images.
    set_threads(1);
    const tensor<float> serial = e.features(test.images);
    CHECK(std::equal(f.begin(), f.end(), serial.begin()));
    const tensor<float> one = e.features(tensor_view<const float>(test.images.data() + 7 * 3072, shape{1, 3, 32, 32}));
    CHECK(std::equal(one.begin(), one.end(), f.data() + 7 * 84));

    // Images of another geometry are refused, naming the trained one.
    CHECK_THROWS_WITH(e.features(tensor<float>(shape{4, 1, 28, 28})),
                      Contains("expected (4, 3, 32, 32)") && Contains("found (4, 1, 28, 28)"));
    CHECK_THROWS_WITH(e.classify(tensor<float>(shape{2, 3, 28, 28})),
                      Contains("(2, 3, 32, 32)") && Contains("(2, 3, 28, 28)"));
    CHECK_THROWS_WITH(e.features(tensor<float>(shape{0, 3, 32, 32})), Contains("N >= 1"));
}

TEST_CASE("lenet feature extractor never uses a grey cache for colour data, nor a colour cache for grey",
          "[feature_extractor][colour]") {
    temp_dir dir;
    const auto cache = dir.path / "shared.safetensors";
    const metrics::classifier_training_options o{.epochs = 1, .batch_size = 20, .seed = 3};
    // Both data sets have the same name and size, so only the geometry (and the fingerprint) tells them apart.
    const data::image_dataset grey = halves(40, 1, "same");
    const data::image_dataset colour = colours(40, 1, "same");

    metrics::lenet_feature_extractor g;
    std::ostringstream log;
    CHECK(g.train_or_load(grey, cache, o, log).trained);
    CHECK(g.in_channels() == 1);
    CHECK(g.image_size() == 28);

    metrics::lenet_feature_extractor c;
    std::ostringstream colour_log;
    const auto colour_result = c.train_or_load(colour, cache, o, colour_log);
    CHECK(colour_result.trained);
    CHECK_THAT(colour_result.reason, Contains("in_channels: cache has '1', expected '3'") &&
                                         Contains("image_size: cache has '28', expected '32'"));
    CHECK_THAT(colour_log.str(), Contains("retraining"));
    CHECK(c.in_channels() == 3);
    CHECK(io::read_safetensors_metadata(cache).at("in_channels") == "3");

    metrics::lenet_feature_extractor back;
    std::ostringstream back_log;
    const auto back_result = back.train_or_load(grey, cache, o, back_log);
    CHECK(back_result.trained);
    CHECK_THAT(back_result.reason, Contains("in_channels: cache has '3', expected '1'"));
    CHECK(weights_of(back) == weights_of(g));  // the same recipe on the same data, from scratch
}

TEST_CASE("lenet feature extractor reads grey caches written before the geometry was recorded", "[feature_extractor]") {
    temp_dir dir;
    const auto cache = dir.path / "old.safetensors";
    const metrics::classifier_training_options o{.epochs = 1, .batch_size = 20, .seed = 3};
    const data::image_dataset grey = halves(40, 1);
    metrics::lenet_feature_extractor g;
    std::ostringstream log;
    g.train_or_load(grey, cache, o, log);
    io::safetensors_metadata old = g.metadata();
    REQUIRE(old.at("architecture") == "lenet5 relu maxpool (1, 28, 28) -> 84 -> classes");
    old.erase("in_channels");
    old.erase("image_size");
    io::save_parameters(cache, g.net().store(), old);

    metrics::lenet_feature_extractor reused;
    std::ostringstream quiet;
    CHECK_FALSE(reused.train_or_load(grey, cache, o, quiet).trained);
    CHECK(weights_of(reused) == weights_of(g));
    metrics::lenet_feature_extractor plain;
    plain.load(cache);
    CHECK(plain.in_channels() == 1);
    CHECK(plain.image_size() == 28);

    // Without the geometry and without the old architecture entry, load() refuses rather than guesses.
    old.erase("architecture");
    io::save_parameters(cache, g.net().store(), old);
    CHECK_THROWS_WITH(metrics::lenet_feature_extractor().load(cache), Contains("'in_channels'"));
}
