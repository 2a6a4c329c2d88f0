// latent::latent_extractor, the pooling policies and the standardizer: latents keyed by item id
// (the same alone, in any batch, at any thread count), the documented noise, R-draw averaging,
// pooling values, standardisation statistics and their file, and bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/nn/unet.hpp"
#include "support/common.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using Catch::Contains;
using ouro::testing::bitwise_equal;
using ouro::testing::thread_guard;

namespace {

constexpr nn::unet_spec latent_spec{.in_channels = 1,
                                  .image_size = 8,
                                  .base = 8,
                                  .mult = {1, 2},
                                  .res_blocks = 1,
                                  .attention = {false, true},
                                  .heads = 1,
                                  .groups = 4,
                                  .classes = 3};
constexpr nn::unet_spec latent_unconditional{.in_channels = 1,
                                           .image_size = 8,
                                           .base = 8,
                                           .mult = {1, 2},
                                           .res_blocks = 1,
                                           .attention = {false, false},
                                           .heads = 1,
                                           .groups = 4,
                                           .classes = 0};
using latent_unet = nn::unet<cpu, latent_spec>;

// PyTorch's init plus noise on every parameter: reset_parameters zeroes each res block's second
// conv (guided-diffusion's zero_module), which would leave the embeddings without any effect.
template <class Net>
void randomize(Net& net, std::uint64_t seed) {
    net.reset_parameters(seed);
    philox_stream rng(seed, rng_purpose::user, 1);
    for (std::int64_t i = 0; i < net.store().size(); ++i) net.store().values()[i] += 0.1f * rng.normal();
}

diffusion::schedule_table table_1000() { return diffusion::schedule_table(diffusion::linear_ho2020{}, 1000); }

// Returns its input as the bottleneck: the latent is then the noisy image itself, which the test
// can compute from the documented noise. Counts the images of every call.
struct identity_encoder {
    tensor<float> out;
    std::vector<std::int64_t> batch_sizes;
    tensor_view<const float> encode(tensor_view<const float> x, tensor_view<const std::int64_t>,
                                    tensor_view<const std::int64_t>) {
        batch_sizes.push_back(x.dim(0));
        out.resize(x.dims());
        std::copy(x.begin(), x.end(), out.begin());
        return out.view();
    }
};

// A replicable encoder (so it runs on every thread) that refuses label 2, to check that a failure
// inside the parallel region reaches the caller.
struct picky_encoder {
    parameter_store<float> params;
    tensor<float> out;
    picky_encoder() { params.add("w", shape{3}); }
    parameter_store<float>& store() { return params; }
    tensor_view<const float> encode(tensor_view<const float> x, tensor_view<const std::int64_t>,
                                    tensor_view<const std::int64_t> y) {
        if (y.numel() > 0 && y[0] == 2) fail("picky_encoder: label 2 is not welcome");
        out.resize(shape{x.dim(0), 2});
        out.fill(1.0f);
        return out.view();
    }
};

struct not_an_encoder {
    tensor_view<const float> forward(tensor_view<const float> x) { return x; }
};

static_assert(latent::encoder<latent_unet>);
static_assert(latent::replicable_encoder<latent_unet>);
static_assert(latent::specified_encoder<latent_unet>);
static_assert(latent::encoder<identity_encoder> && !latent::replicable_encoder<identity_encoder>);
static_assert(latent::replicable_encoder<picky_encoder> && !latent::specified_encoder<picky_encoder>);
static_assert(!latent::encoder<not_an_encoder> && !latent::encoder<int>);
static_assert(latent::pooling<latent::flatten> && latent::pooling<latent::spatial_mean> &&
              latent::pooling<latent::spatial_max>);
static_assert(!latent::pooling<int>);

tensor<float> row_of(const tensor<float>& m, std::int64_t i) {
    const std::int64_t d = m.dim(1);
    tensor<float> r(shape{d});
    std::copy(m.data() + i * d, m.data() + (i + 1) * d, r.data());
    return r;
}

// Row i of m as a batch of one, (1, D).
tensor<float> row_as_batch(const tensor<float>& m, std::int64_t i) {
    tensor<float> r = row_of(m, i);
    r.resize(shape{1, m.dim(1)});
    return r;
}

}  // namespace

TEST_CASE("an item's latent is the same alone, in any batch and at 1 or 2 threads", "[latent][threads]") {
    thread_guard guard;
    latent_unet net;
    randomize(net, 4);
    const std::int64_t n = 7;
    const tensor<float> images = testing::random_tensor<float>(shape{n, 1, 8, 8}, 1);
    const tensor<std::int64_t> labels = [] {
        tensor<std::int64_t> y(shape{7});
        const std::int64_t v[] = {0, 1, 2, 3, 1, 0, 2};  // 3 is the null class
        std::copy(std::begin(v), std::end(v), y.begin());
        return y;
    }();
    const tensor<std::int64_t> ids = [] {
        tensor<std::int64_t> t(shape{7});
        const std::int64_t v[] = {10, 3, 99, 4, 5, 1'000'000'000'000, 7};
        std::copy(std::begin(v), std::end(v), t.begin());
        return t;
    }();

    auto extract_all = [&](int threads, std::int64_t batch, bool replicate) {
        set_threads(threads);
        latent::latent_extractor ex(net, table_1000(),
                                    {.timestep = 120, .seed = 5, .batch_size = batch, .replicate = replicate});
        return ex.extract(images, labels, ids);
    };
    const tensor<float> all = extract_all(2, 3, true);
    CHECK(all.dims() == shape{n, 16 * 4 * 4});
    CHECK(bitwise_equal(all, extract_all(1, 256, true)));
    CHECK(bitwise_equal(all, extract_all(2, 1, false)));
    CHECK(bitwise_equal(all, extract_all(1, 2, false)));

    set_threads(1);
    latent::latent_extractor alone(net, table_1000(), {.timestep = 120, .seed = 5});
    for (std::int64_t i = 0; i < n; ++i) {
        const tensor_view<const float> x(images.data() + i * 64, shape{1, 1, 8, 8});
        const tensor_view<const std::int64_t> y(labels.data() + i, shape{1}), id(ids.data() + i, shape{1});
        INFO("item " << i);
        CHECK(bitwise_equal(alone.extract(x, y, id), row_as_batch(all, i)));
    }

    // The noise is keyed by id and seed: another id or seed gives another latent of the same image.
    const tensor_view<const float> x0(images.data(), shape{1, 1, 8, 8});
    const tensor_view<const std::int64_t> y0(labels.data(), shape{1});
    const tensor<float> a = alone.extract(x0, y0, latent::sequential_ids(1, 10));
    const tensor<float> b = alone.extract(x0, y0, latent::sequential_ids(1, 11));
    latent::latent_extractor reseeded(net, table_1000(), {.timestep = 120, .seed = 6});
    const tensor<float> c = reseeded.extract(x0, y0, latent::sequential_ids(1, 10));
    CHECK(bitwise_equal(a, row_as_batch(all, 0)));  // ids[0] is 10
    CHECK_FALSE(bitwise_equal(a, b));
    CHECK_FALSE(bitwise_equal(a, c));
}

TEST_CASE("latents are the pooled noisy images of the documented Philox noise", "[latent]") {
    identity_encoder model;
    const auto table = table_1000();
    const std::int64_t t = 300;
    const std::uint64_t seed = 42;
    const tensor<float> images = testing::random_tensor<float>(shape{3, 2, 3, 4}, 2);
    const tensor<std::int64_t> ids = latent::sequential_ids(3, 17);
    const tensor<std::int64_t> no_labels(shape{0});

    // x_t = sqrt(ᾱ_t) x + sqrt(1 − ᾱ_t) ε, ε from philox_stream(seed, latent_noise_purpose, (r << 40) | id).
    auto noisy = [&](std::int64_t item, std::int64_t draw) {
        tensor<float> x(shape{24});
        philox_stream rng(seed, latent::latent_noise_purpose,
                          (static_cast<std::uint64_t>(draw) << 40) | static_cast<std::uint64_t>(ids[item]));
        const double a = table.sqrt_alphas_cumprod()[t], s = table.sqrt_one_minus_alphas_cumprod()[t];
        for (std::int64_t i = 0; i < 24; ++i) {
            const double e = rng.normal();
            x[i] = static_cast<float>(a * images[item * 24 + i] + s * e);
        }
        return x;
    };

    latent::latent_extractor flat(model, table, {.timestep = t, .seed = seed, .batch_size = 2});
    const tensor<float> h = flat.extract(images, no_labels, ids);
    REQUIRE(h.dims() == shape{3, 24});
    for (std::int64_t i = 0; i < 3; ++i) CHECK(bitwise_equal(row_of(h, i), noisy(i, 0)));
    // One image per encode call (plus the first item once more, to learn the bottleneck's shape).
    CHECK(model.batch_sizes == std::vector<std::int64_t>(4, 1));

    // Two draws, channel means: the mean over draws of the per-draw channel means.
    latent::latent_extractor pooled(model, table, {.timestep = t, .draws = 2, .first_draw = 5, .seed = seed},
                                    latent::spatial_mean{});
    const tensor<float> m = pooled.extract(images, no_labels, ids);
    REQUIRE(m.dims() == shape{3, 2});
    for (std::int64_t i = 0; i < 3; ++i) {
        const tensor<float> d5 = noisy(i, 5), d6 = noisy(i, 6);
        for (std::int64_t c = 0; c < 2; ++c) {
            double s5 = 0, s6 = 0;
            for (std::int64_t k = c * 12; k < (c + 1) * 12; ++k) s5 += d5[k], s6 += d6[k];
            const float p5 = static_cast<float>(s5 / 12), p6 = static_cast<float>(s6 / 12);
            CHECK(m[i * 2 + c] == static_cast<float>((static_cast<double>(p5) + static_cast<double>(p6)) / 2));
        }
    }
}

TEST_CASE("the mean of R draws equals the mean of the R single-draw latents", "[latent]") {
    thread_guard guard;
    set_threads(2);
    latent_unet net;
    randomize(net, 8);
    const tensor<float> images = testing::random_tensor<float>(shape{5, 1, 8, 8}, 3);
    const tensor<std::int64_t> labels(shape{5}, 1);
    const tensor<std::int64_t> ids = latent::sequential_ids(5, 100);
    const std::int64_t r_count = 3;
    latent::latent_extractor averaged(net, table_1000(), {.timestep = 40, .draws = r_count, .seed = 9},
                                      latent::spatial_mean{});
    const tensor<float> mean = averaged.extract(images, labels, ids);
    REQUIRE(mean.dims() == shape{5, 16});

    std::vector<tensor<float>> singles;
    for (std::int64_t r = 0; r < r_count; ++r) {
        latent::latent_extractor one(net, table_1000(), {.timestep = 40, .draws = 1, .first_draw = r, .seed = 9},
                                     latent::spatial_mean{});
        singles.push_back(one.extract(images, labels, ids));
    }
    CHECK_FALSE(bitwise_equal(singles[0], singles[1]));  // the draws differ
    tensor<float> expected(mean.dims());
    for (std::int64_t i = 0; i < expected.numel(); ++i) {
        double s = 0;
        for (const auto& single : singles) s += static_cast<double>(single[i]);
        expected[i] = static_cast<float>(s / static_cast<double>(r_count));
    }
    CHECK(bitwise_equal(mean, expected));
}

TEST_CASE("pooling policies: shapes and values on a hand-made bottleneck", "[latent][pooling]") {
    // (C, h, w) = (2, 2, 3): channel 0 is 1 … 6, channel 1 is −1, 4, −2, 8, 0.5, −7.
    tensor<float> h(shape{2, 2, 3});
    const float v[] = {1, 2, 3, 4, 5, 6, -1, 4, -2, 8, 0.5f, -7};
    std::copy(std::begin(v), std::end(v), h.begin());

    const latent::flatten flat;
    REQUIRE(flat.dim(h.dims()) == 12);
    tensor<float> f(shape{12});
    flat.pool(h.view(), f.view());
    CHECK(std::equal(f.begin(), f.end(), std::begin(v)));

    const latent::spatial_mean mean;
    REQUIRE(mean.dim(h.dims()) == 2);
    tensor<float> m(shape{2});
    mean.pool(h.view(), m.view());
    CHECK(m[0] == 3.5f);
    CHECK(m[1] == static_cast<float>(2.5 / 6.0));

    const latent::spatial_max most;
    REQUIRE(most.dim(h.dims()) == 2);
    tensor<float> x(shape{2});
    most.pool(h.view(), x.view());
    CHECK(x[0] == 6.0f);
    CHECK(x[1] == 8.0f);

    CHECK_THROWS_WITH(mean.dim(shape{12}), Contains("spatial_mean") && Contains("(12)"));
    CHECK_THROWS_WITH(most.dim(shape{0, 4, 4}), Contains("(0, 4, 4)"));

    // Through the extractor: the unet's bottleneck (16, 4, 4) gives 256 or 16 features.
    latent_unet net;
    randomize(net, 1);
    const tensor<float> images = testing::random_tensor<float>(shape{2, 1, 8, 8}, 5);
    const tensor<std::int64_t> labels(shape{2}, 0);
    const tensor<std::int64_t> ids = latent::sequential_ids(2);
    const tensor<float> flat_h = latent::latent_extractor(net, table_1000(), {}).extract(images, labels, ids);
    const tensor<float> max_h =
        latent::latent_extractor(net, table_1000(), {}, latent::spatial_max{}).extract(images, labels, ids);
    REQUIRE(flat_h.dims() == shape{2, 256});
    REQUIRE(max_h.dims() == shape{2, 16});
    for (std::int64_t i = 0; i < 2; ++i)
        for (std::int64_t c = 0; c < 16; ++c) {
            const float* channel = flat_h.data() + i * 256 + c * 16;
            CHECK(max_h[i * 16 + c] == *std::max_element(channel, channel + 16));
        }
}

TEST_CASE("extraction reports progress per round and stops when a callback asks", "[latent]") {
    identity_encoder model;
    const tensor<float> images = testing::random_tensor<float>(shape{7, 1, 2, 2}, 4);
    const tensor<std::int64_t> none(shape{0});
    struct recorder {
        std::vector<std::int64_t> done;
        void on_step(const latent::extraction_step& s) {
            done.push_back(s.done);
            CHECK(s.total == 7);
        }
    } rec;
    struct stopper {
        bool on_step(const latent::extraction_step& s) { return s.done >= 3; }
    } stop;
    latent::latent_extractor ex(model, table_1000(), {.batch_size = 3});
    ex.extract(images, none, latent::sequential_ids(7), rec);
    CHECK(rec.done == std::vector<std::int64_t>{3, 6, 7});
    rec.done.clear();
    CHECK_THROWS_WITH(ex.extract(images, none, latent::sequential_ids(7), rec, stop),
                      Contains("stopped by a callback after 3 of 7"));
    CHECK(rec.done == std::vector<std::int64_t>{3});  // every callback still saw the round

    // The progress reporter: log lines (not a terminal), here one per round and the last one.
    std::ostringstream out;
    {
        latent::extraction_progress bar(
            7, {.label = "latents", .log_every = 3, .unit = "img", .style = progress_style::log, .out = &out});
        ex.extract(images, none, latent::sequential_ids(7), bar);
        bar.finish();
    }
    CHECK_THAT(out.str(),
               Contains("latents 3/7 (42%)") && Contains("latents 6/7 (85%)") && Contains("latents 7/7 (100%)"));
}

TEST_CASE("standardizer: zero mean and unit std on the reference set, applied to others, saved and loaded",
          "[latent][standardize]") {
    thread_guard guard;
    const std::int64_t n = 50, d = 37;
    tensor<float> ref = testing::random_tensor<float>(shape{n, d}, 7);
    for (std::int64_t r = 0; r < n; ++r)
        for (std::int64_t j = 0; j < d; ++j)
            ref[r * d + j] = ref[r * d + j] * static_cast<float>(j + 1) + static_cast<float>(10 * j);
    for (std::int64_t r = 0; r < n; ++r) ref[r * d + 5] = 2.5f;  // a constant dimension

    set_threads(2);
    const auto stdz = latent::standardizer::fit(ref);
    set_threads(1);
    const auto stdz1 = latent::standardizer::fit(ref);
    CHECK(std::equal(stdz.mean().begin(), stdz.mean().end(), stdz1.mean().begin()));
    CHECK(std::equal(stdz.stddev().begin(), stdz.stddev().end(), stdz1.stddev().begin()));
    REQUIRE(stdz.dim() == d);
    CHECK(stdz.reference_rows() == n);
    CHECK(stdz.stddev()[5] == latent::standardizer::default_min_std);
    CHECK(stdz.mean()[5] == 2.5);

    const tensor<float> z = stdz.apply(ref);
    for (std::int64_t j = 0; j < d; ++j) {
        double s = 0, s2 = 0;
        for (std::int64_t r = 0; r < n; ++r) s += z[r * d + j];
        const double mean = s / n;
        for (std::int64_t r = 0; r < n; ++r) s2 += (z[r * d + j] - mean) * (z[r * d + j] - mean);
        INFO("dimension " << j);
        CHECK(std::abs(mean) < 1e-6);
        CHECK(std::sqrt(s2 / n) == Approx(j == 5 ? 0.0 : 1.0).margin(1e-5));
    }

    // Another set is standardised with the reference's statistics, not its own.
    const tensor<float> other = testing::random_tensor<float>(shape{4, d}, 8);
    const tensor<float> zo = stdz.apply(other);
    for (std::int64_t i = 0; i < other.numel(); ++i) {
        const std::int64_t j = i % d;
        CHECK(zo[i] == static_cast<float>((static_cast<double>(other[i]) - stdz.mean()[j]) / stdz.stddev()[j]));
    }
    tensor<double> other_d(other.dims());
    std::copy(other.begin(), other.end(), other_d.begin());
    stdz.apply_in_place(other_d.view());
    CHECK(other_d[3] == (static_cast<double>(other[3]) - stdz.mean()[3]) / stdz.stddev()[3]);

    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "ouro_test_latent";
    std::filesystem::create_directories(dir);
    stdz.save(dir / "stdz.safetensors");
    const auto back = latent::standardizer::load(dir / "stdz.safetensors");
    CHECK(std::equal(back.mean().begin(), back.mean().end(), stdz.mean().begin()));
    CHECK(std::equal(back.stddev().begin(), back.stddev().end(), stdz.stddev().begin()));
    CHECK(back.min_std() == stdz.min_std());
    CHECK(back.reference_rows() == n);

    {
        io::safetensors_writer w;
        const tensor<double> m(shape{3}, 0.0);
        w.add("mean", m);
        w.add("std", m);
        w.set_metadata(
            {{"format", "ouro.standardizer"}, {"version", "1"}, {"min_std", "1e-6"}, {"reference_rows", "3"}});
        w.write(dir / "zero_std.safetensors");
    }
    CHECK_THROWS_WITH(latent::standardizer::load(dir / "zero_std.safetensors"), Contains("std > 0"));
    {
        std::ofstream junk(dir / "junk.safetensors", std::ios::binary);
        junk << "not a safetensors file";
    }
    CHECK_THROWS_AS(latent::standardizer::load(dir / "junk.safetensors"), error);
    std::filesystem::remove_all(dir);

    CHECK_THROWS_WITH(stdz.apply(tensor<float>(shape{4, d + 1})), Contains("(4, 37)") && Contains("(4, 38)"));
    CHECK_THROWS_WITH(latent::standardizer::fit(tensor<float>(shape{0, 3})), Contains("(0, 3)"));
    CHECK_THROWS_WITH(latent::standardizer().apply(other), Contains("not fitted"));
    tensor<float> bad = ref;
    bad[7] = NAN;
    CHECK_THROWS_WITH(latent::standardizer::fit(bad), Contains("finite"));
}

TEST_CASE("latent_extractor refuses bad input with clear errors", "[latent][errors]") {
    latent_unet net;
    randomize(net, 2);
    const tensor<std::int64_t> labels(shape{2}, 1), ids = latent::sequential_ids(2);
    const tensor<std::int64_t> none(shape{0});
    latent::latent_extractor ex(net, table_1000(), {});

    CHECK_THROWS_WITH(ex.extract(tensor<float>(shape{2, 1, 9, 9}), labels, ids),
                      Contains("(2, 1, 8, 8)") && Contains("(2, 1, 9, 9)"));
    CHECK_THROWS_WITH(ex.extract(tensor<float>(shape{2, 3, 8, 8}), labels, ids), Contains("(2, 3, 8, 8)"));
    CHECK_THROWS_WITH(ex.extract(tensor<float>(shape{0, 1, 8, 8}), none, latent::sequential_ids(0)),
                      Contains("N >= 1") && Contains("(0, 1, 8, 8)"));
    const tensor<float> images(shape{2, 1, 8, 8});
    CHECK_THROWS_WITH(ex.extract(images, none, ids), Contains("class-conditional") && Contains("(0)"));
    CHECK_THROWS_WITH(ex.extract(images, tensor<std::int64_t>(shape{3}, 0), ids), Contains("(2)") && Contains("(3)"));
    CHECK_THROWS_WITH(ex.extract(images, tensor<std::int64_t>(shape{2}, 4), ids), Contains("label 4"));
    CHECK_THROWS_WITH(ex.extract(images, labels, latent::sequential_ids(3)), Contains("ids") && Contains("(3)"));
    CHECK_THROWS_WITH(ex.extract(images, labels, latent::sequential_ids(2, -1)), Contains("item id -1"));

    nn::unet<cpu, latent_unconditional> uncond;
    latent::latent_extractor ux(uncond, table_1000(), {});
    CHECK_THROWS_WITH(ux.extract(images, labels, ids), Contains("unconditional"));

    CHECK_THROWS_WITH(latent::latent_extractor(net, table_1000(), {.timestep = 1000}),
                      Contains("t < T = 1000") && Contains("t = 1000"));
    CHECK_THROWS_WITH(latent::latent_extractor(net, table_1000(), {.timestep = -1}), Contains("t = -1"));
    CHECK_THROWS_WITH(latent::latent_extractor(net, table_1000(), {.draws = 0}), Contains("draws >= 1"));
    CHECK_THROWS_WITH(latent::latent_extractor(net, table_1000(), {.batch_size = 0}), Contains("batch_size >= 1"));

    // A model without a spec: its own errors reach the caller, from any thread, the lowest item first.
    thread_guard guard;
    set_threads(2);
    picky_encoder picky;
    latent::latent_extractor px(picky, table_1000(), {.batch_size = 8});
    tensor<std::int64_t> picky_labels(shape{6}, 0);
    picky_labels[4] = 2;
    CHECK_THROWS_WITH(px.extract(tensor<float>(shape{6, 1, 2, 2}), picky_labels, latent::sequential_ids(6)),
                      Contains("label 2 is not welcome"));
    picky_labels[4] = 0;
    CHECK(px.extract(tensor<float>(shape{6, 1, 2, 2}), picky_labels, latent::sequential_ids(6)).dims() == shape{6, 2});
    CHECK_THROWS_WITH(latent::latent_extractor(picky, table_1000(), {}, latent::spatial_mean{})
                          .extract(tensor<float>(shape{6, 1, 2, 2}), picky_labels, latent::sequential_ids(6)),
                      Contains("spatial_mean") && Contains("(2)"));
}

TEST_CASE("extracting a data set uses positions as ids and labels only for a conditional model", "[latent]") {
    data::image_dataset set;
    set.name = "toy";
    set.images = testing::random_tensor<float>(shape{3, 1, 8, 8}, 9);
    set.labels = tensor<std::int64_t>(shape{3}, 2);
    set.num_classes = 3;

    latent_unet net;
    randomize(net, 3);
    latent::latent_extractor ex(net, table_1000(), {.timestep = 10}, latent::spatial_mean{});
    CHECK(bitwise_equal(ex.extract(set), ex.extract(set.images, set.labels, latent::sequential_ids(3))));

    nn::unet<cpu, latent_unconditional> uncond;
    randomize(uncond, 3);
    latent::latent_extractor ux(uncond, table_1000(), {.timestep = 10}, latent::spatial_mean{});
    const tensor<std::int64_t> none(shape{0});
    CHECK(bitwise_equal(ux.extract(set), ux.extract(set.images, none, latent::sequential_ids(3))));
}
