// loop::toy::mlp_denoiser: the architecture against a plain-loop reference, finite differences
// (conditional and unconditional), bad input, batch, thread and replica invariance, and a short
// training on the toy mixture whose DDIM samples must land on the modes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/loop/toy.hpp"
#include "ouro/loop/toy_model.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
namespace toy = ouro::loop::toy;

namespace {

constexpr toy::mlp_spec small_conditional{.hidden = 6, .depth = 2, .time_dim = 8, .classes = 3};
constexpr toy::mlp_spec small_unconditional{.hidden = 5, .depth = 1, .time_dim = 6, .classes = 0};

using conditional_model = toy::mlp_denoiser<cpu, small_conditional>;
using unconditional_model = toy::mlp_denoiser<cpu, small_unconditional>;

static_assert(diffusion::check_trainable_model<conditional_model>());
static_assert(diffusion::check_denoiser<conditional_model>());
static_assert(latent::check_encoder<conditional_model>());
static_assert(latent::replicable_encoder<conditional_model>);
static_assert(diffusion::check_trainable_model<unconditional_model>());
static_assert(diffusion::check_denoiser<unconditional_model>());
static_assert(latent::check_encoder<unconditional_model>());
static_assert(latent::replicable_encoder<unconditional_model>);

// reset_parameters, then a perturbation of every value: the zero output layer would otherwise
// hide every gradient behind it.
template <class Net>
void randomise(Net& net, std::uint64_t seed, double scale) {
    net.reset_parameters(seed);
    philox_stream rng(seed + 100, rng_purpose::user);
    for (std::int64_t i = 0; i < net.store().size(); ++i)
        net.store().values()[i] += static_cast<typename Net::value_type>(scale * rng.normal());
}

double silu(double v) { return v / (1.0 + std::exp(-v)); }

// y = W·x + b for the linear layer `name` of the store, in double.
std::vector<double> linear_ref(const parameter_store<double>& s, const std::string& name,
                               const std::vector<double>& x) {
    const auto w = s.value(s.find(name + ".weight")), b = s.value(s.find(name + ".bias"));
    const std::int64_t out = w.dim(0), in = w.dim(1);
    REQUIRE(static_cast<std::int64_t>(x.size()) == in);
    std::vector<double> y(static_cast<std::size_t>(out));
    for (std::int64_t o = 0; o < out; ++o) {
        double acc = b[o];
        for (std::int64_t i = 0; i < in; ++i) acc += w[o * in + i] * x[static_cast<std::size_t>(i)];
        y[static_cast<std::size_t>(o)] = acc;
    }
    return y;
}

}  // namespace

TEST_CASE("mlp_denoiser registers PyTorch-style names and the expected parameter count", "[toy_model]") {
    conditional_model net;
    std::set<std::string> names;
    for (const auto& e : net.store().entries()) names.insert(e.name);
    const std::set<std::string> expected{"input.weight",  "input.bias",      "time.0.weight",    "time.0.bias",
                                         "time.2.weight", "time.2.bias",     "label_emb.weight", "blocks.0.weight",
                                         "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",    "output.weight",
                                         "output.bias"};
    CHECK(names == expected);
    const std::int64_t c = 2, h = 6, td = 8, k = 3, depth = 2;
    CHECK(net.store().parameter_count() ==
          (c * h + h) + (td * h + h) + (h * h + h) + (k + 1) * h + depth * (h * h + h) + (h * c + c));
    CHECK(net.store().at(net.store().find("label_emb.weight")).dims == shape{4, 6});

    unconditional_model u;
    CHECK(!u.store().find("label_emb.weight").valid());

    CHECK(small_conditional.str() == "toy_mlp(in=2, hidden=6, depth=2, time=8, classes=3)");
    CHECK(toy::mlp_spec{}.str() == "toy_mlp(in=2, hidden=128, depth=3, time=32, classes=8)");
    CHECK(small_conditional.hash() != small_unconditional.hash());
    CHECK(small_conditional.hash() == toy::mlp_spec{.hidden = 6, .depth = 2, .time_dim = 8, .classes = 3}.hash());
}

TEST_CASE("mlp_denoiser starts from a zero output and predicts 0", "[toy_model]") {
    conditional_model net;
    net.reset_parameters(4);
    const tensor<float> x = testing::random_tensor<float>(shape{3, 2, 1, 1}, 1);
    const tensor<std::int64_t> t(shape{3}, 500), y(shape{3}, 1);
    const auto out = net.predict(x, t, y);
    CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 0.0f; }));
    // ...while the layers before it are initialised.
    const auto h = net.encode(x, t, y);
    CHECK(std::any_of(h.begin(), h.end(), [](float v) { return v != 0.0f; }));
}

TEST_CASE("mlp_denoiser forward and encode match a plain-loop reference of the architecture", "[toy_model]") {
    toy::mlp_denoiser<cpu, small_conditional, double> net;
    randomise(net, 3, 0.3);
    const parameter_store<double>& s = net.store();
    const tensor<double> x = testing::random_tensor<double>(shape{3, 2, 1, 1}, 5);
    tensor<std::int64_t> t(shape{3}), y(shape{3});
    t[0] = 0, t[1] = 17, t[2] = 999;
    y[0] = 2, y[1] = 0, y[2] = 3;  // 3: the null class

    const tensor<double> h0 = to_tensor(net.encode(x, t, y));
    const tensor<double> out = to_tensor(net.forward(x, t, y));
    REQUIRE(h0.dims() == shape{3, 6, 1, 1});
    REQUIRE(out.dims() == shape{3, 2, 1, 1});

    const auto table = s.value(s.find("label_emb.weight"));
    for (std::int64_t b = 0; b < 3; ++b) {
        // guided-diffusion's timestep_embedding: [cos(t·f_i), sin(t·f_i)], f_i = 10000^(−i/half).
        std::vector<double> temb(8);
        for (int i = 0; i < 4; ++i) {
            const double f = std::exp(-std::log(10000.0) * i / 4.0);
            temb[static_cast<std::size_t>(i)] = std::cos(static_cast<double>(t[b]) * f);
            temb[static_cast<std::size_t>(4 + i)] = std::sin(static_cast<double>(t[b]) * f);
        }
        std::vector<double> e = linear_ref(s, "time.0", temb);
        for (double& v : e) v = silu(v);
        e = linear_ref(s, "time.2", e);
        std::vector<double> h = linear_ref(s, "input", {x[2 * b], x[2 * b + 1]});
        for (std::int64_t j = 0; j < 6; ++j) {
            const auto js = static_cast<std::size_t>(j);
            h[js] = silu(h[js] + e[js] + table[y[b] * 6 + j]);
            INFO("item " << b << ", h0 unit " << j);
            CHECK(h0[b * 6 + j] == Approx(h[js]).epsilon(1e-12).margin(1e-14));
        }
        for (const char* block : {"blocks.0", "blocks.1"}) {
            h = linear_ref(s, block, h);
            for (double& v : h) v = silu(v);
        }
        const std::vector<double> o = linear_ref(s, "output", h);
        INFO("item " << b);
        CHECK(out[2 * b] == Approx(o[0]).epsilon(1e-12).margin(1e-14));
        CHECK(out[2 * b + 1] == Approx(o[1]).epsilon(1e-12).margin(1e-14));
    }
}

namespace {

// Central differences of <forward(x, t, y), dout> against backward: dx and every parameter.
template <toy::mlp_spec Spec>
void check_gradients(const tensor<std::int64_t>& y) {
    toy::mlp_denoiser<cpu, Spec, double> net;
    randomise(net, 11, 0.2);
    tensor<double> x = testing::random_tensor<double>(shape{3, Spec.in_channels, 1, 1}, 1);
    tensor<std::int64_t> t(shape{3});
    t[0] = 3, t[1] = 250, t[2] = 911;
    const tensor<double> dout = testing::random_tensor<double>(shape{3, Spec.in_channels, 1, 1}, 2);
    auto loss = [&] { return testing::dot(net.forward(x, t, y), dout); };

    net.forward(x, t, y, nn::forward_context{.training = true});
    net.store().zero_grad();
    const tensor<double> dx = to_tensor(net.backward(dout));
    REQUIRE(dx.dims() == x.dims());
    testing::check_gradient("dx", x.view(), dx.view(), loss, 1e-6, 1e-7);
    for (const auto& e : net.store().entries()) {
        const parameter p = net.store().find(e.name);
        const tensor<double> analytic = to_tensor(net.store().grad(p));
        testing::check_gradient(e.name, net.store().value(p), analytic.view(), loss, 1e-6, 1e-7, 80);
    }
}

}  // namespace

TEST_CASE("mlp_denoiser backward agrees with finite differences", "[toy_model][gradcheck]") {
    SECTION("class-conditional, with the null class") {
        tensor<std::int64_t> y(shape{3});
        y[0] = 1, y[1] = 3, y[2] = 1;  // a repeated label: its embedding row gets two items' gradients
        check_gradients<small_conditional>(y);
    }
    SECTION("unconditional") { check_gradients<small_unconditional>(tensor<std::int64_t>(shape{0})); }
    SECTION("depth 0, three-dimensional points") {
        check_gradients<toy::mlp_spec{.in_channels = 3, .hidden = 4, .depth = 0, .time_dim = 4, .classes = 2}>(
            tensor<std::int64_t>(shape{3}, 2));
    }
}

TEST_CASE("mlp_denoiser backward accumulates into the store's gradients", "[toy_model][gradcheck]") {
    conditional_model net;
    randomise(net, 2, 0.1);
    const tensor<float> x = testing::random_tensor<float>(shape{2, 2, 1, 1}, 3);
    const tensor<std::int64_t> t(shape{2}, 40), y(shape{2}, 0);
    const tensor<float> dout = testing::random_tensor<float>(shape{2, 2, 1, 1}, 4);
    net.store().zero_grad();
    net.forward(x, t, y);
    net.backward(dout);
    const std::vector<float> once(net.store().grads(), net.store().grads() + net.store().size());
    net.forward(x, t, y);
    net.backward(dout);
    for (std::int64_t i = 0; i < net.store().size(); ++i) {
        INFO("gradient element " << i);
        REQUIRE(net.store().grads()[i] == Approx(2 * once[static_cast<std::size_t>(i)]).margin(1e-6));
    }
}

TEST_CASE("mlp_denoiser refuses bad shapes, labels and specs with clear errors", "[toy_model][errors]") {
    conditional_model net;
    net.reset_parameters(1);
    const tensor<float> x(shape{2, 2, 1, 1});
    const tensor<std::int64_t> t(shape{2}, 1), y(shape{2}, 0), none(shape{0});

    CHECK_THROWS_WITH(net.forward(tensor<float>(shape{2, 3, 1, 1}), t, y),
                      Catch::Contains("(2, 2, 1, 1)") && Catch::Contains("(2, 3, 1, 1)"));
    CHECK_THROWS_WITH(net.predict(tensor<float>(shape{2, 2, 2, 2}), t, y), Catch::Contains("(2, 2, 2, 2)"));
    CHECK_THROWS_WITH(net.encode(tensor<float>(shape{2, 2}), t, y), Catch::Contains("(B, 2, 1, 1)"));
    CHECK_THROWS_WITH(net.forward(tensor<float>(shape{0, 2, 1, 1}), none, none), Catch::Contains("B >= 1"));
    CHECK_THROWS_WITH(net.forward(x, tensor<std::int64_t>(shape{3}, 1), y), Catch::Contains("timesteps"));
    CHECK_THROWS_WITH(net.forward(x, t, none), Catch::Contains("class-conditional"));
    CHECK_THROWS_WITH(net.forward(x, t, tensor<std::int64_t>(shape{2}, 4)),
                      Catch::Contains("label 4") && Catch::Contains("0..2"));
    CHECK_THROWS_WITH(net.forward(x, t, tensor<std::int64_t>(shape{2}, -1)), Catch::Contains("label -1"));
    CHECK_NOTHROW(net.forward(x, t, tensor<std::int64_t>(shape{2}, 3)));  // the null class

    unconditional_model u;
    CHECK_THROWS_WITH(u.forward(x, t, y), Catch::Contains("unconditional"));
    CHECK_NOTHROW(u.forward(x, t, none));

    conditional_model fresh;
    CHECK_THROWS_WITH(fresh.backward(tensor<float>(shape{2, 2, 1, 1})), Catch::Contains("forward has not run"));
    fresh.encode(x, t, y);
    CHECK_THROWS_WITH(fresh.backward(tensor<float>(shape{2, 2, 1, 1})), Catch::Contains("forward has not run"));
    fresh.forward(x, t, y);
    CHECK_THROWS_WITH(fresh.backward(tensor<float>(shape{3, 2, 1, 1})), Catch::Contains("dout"));

    CHECK_THROWS_WITH(toy::validate(toy::mlp_spec{.image_size = 2}), Catch::Contains("image_size = 1"));
    CHECK_THROWS_WITH(toy::validate(toy::mlp_spec{.hidden = 0}), Catch::Contains("hidden >= 1"));
    CHECK_THROWS_WITH(toy::validate(toy::mlp_spec{.depth = -1}), Catch::Contains("depth >= 0"));
    CHECK_THROWS_WITH(toy::validate(toy::mlp_spec{.time_dim = 1}), Catch::Contains("time_dim >= 2"));
    CHECK_THROWS_WITH(toy::validate(toy::mlp_spec{.classes = -2}), Catch::Contains("classes >= 0"));
    CHECK_THROWS_WITH(toy::validate(toy::mlp_spec{.in_channels = 0}), Catch::Contains("in_channels >= 1"));
    CHECK_NOTHROW(toy::validate(toy::mlp_spec{}));
}

TEST_CASE("mlp_denoiser output of an item does not depend on the batch it is in", "[toy_model][batch]") {
    toy::mlp_denoiser<cpu, toy::mlp_spec{}> net;  // the example's size: wide enough for vectorised kernels
    randomise(net, 8, 0.05);
    constexpr std::int64_t n = 7;
    const tensor<float> x = testing::random_tensor<float>(shape{n, 2, 1, 1}, 9);
    tensor<std::int64_t> t(shape{n}), y(shape{n});
    for (std::int64_t i = 0; i < n; ++i) {
        t[i] = 130 * i + 7;
        y[i] = i % 9;  // 8: the null class
    }
    const tensor<float> batched = to_tensor(net.predict(x, t, y));
    const tensor<float> encoded = to_tensor(net.encode(x, t, y));
    REQUIRE(encoded.dims() == shape{n, 128, 1, 1});
    for (std::int64_t i = 0; i < n; ++i) {
        const tensor_view<const float> xi(x.data() + 2 * i, shape{1, 2, 1, 1});
        const tensor_view<const std::int64_t> ti(t.data() + i, shape{1}), yi(y.data() + i, shape{1});
        INFO("item " << i);
        const auto alone = net.predict(xi, ti, yi);
        CHECK(std::equal(alone.begin(), alone.end(), batched.data() + 2 * i));
        const auto h = net.encode(xi, ti, yi);
        CHECK(std::equal(h.begin(), h.end(), encoded.data() + 128 * i));
    }
}

TEST_CASE("mlp_denoiser gives bitwise identical results at 1 and 2 threads", "[toy_model][threads]") {
    toy::mlp_denoiser<cpu, toy::mlp_spec{.hidden = 64, .depth = 2}> net;
    randomise(net, 2, 0.05);
    const tensor<float> x = testing::random_tensor<float>(shape{64, 2, 1, 1}, 3);
    tensor<std::int64_t> t(shape{64}), y(shape{64});
    for (std::int64_t i = 0; i < 64; ++i) t[i] = 15 * i, y[i] = i % 9;
    const tensor<float> dout = testing::random_tensor<float>(shape{64, 2, 1, 1}, 4);
    auto run = [&](int threads) {
        set_threads(threads);
        net.store().zero_grad();
        const auto out = net.forward(x, t, y);
        std::vector<float> all(out.begin(), out.end());
        const auto dx = net.backward(dout);
        all.insert(all.end(), dx.begin(), dx.end());
        all.insert(all.end(), net.store().grads(), net.store().grads() + net.store().size());
        return all;
    };
    const int saved = max_threads();
    const auto one = run(1), two = run(2);
    set_threads(saved);
    CHECK(one == two);
}

TEST_CASE("a default-constructed replica given the store's values encodes the same bits", "[toy_model][latent]") {
    conditional_model net;
    randomise(net, 6, 0.1);
    conditional_model replica;
    REQUIRE(replica.store().size() == net.store().size());
    std::copy(net.store().values(), net.store().values() + net.store().size(), replica.store().values());
    const tensor<float> x = testing::random_tensor<float>(shape{4, 2, 1, 1}, 7);
    const tensor<std::int64_t> t(shape{4}, 50), y(shape{4}, 2);
    const tensor<float> a = to_tensor(net.encode(x, t, y)), b = to_tensor(replica.encode(x, t, y));
    CHECK(testing::bitwise_equal(a, b));

    // The latent extractor does exactly this per thread: replicated or not, the same latents.
    const data::image_dataset points = toy::make_dataset(toy::mixture{.modes = 3}, 5, 1);
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 100);
    auto extract = [&](bool replicate) {
        latent::latent_extractor<conditional_model, latent::spatial_mean> ex(
            net, table, {.timestep = 10, .draws = 2, .seed = 3, .batch_size = 4, .replicate = replicate});
        return ex.extract(points);
    };
    const int saved = max_threads();
    set_threads(2);
    const tensor<float> replicated = extract(true), serial = extract(false);
    set_threads(saved);
    CHECK(replicated.dims() == shape{15, 6});
    CHECK(testing::bitwise_equal(replicated, serial));
}

TEST_CASE("mlp_denoiser trained on the toy mixture samples points on its modes", "[toy_model][train]") {
    const toy::mixture world{};  // 8 modes on a circle of radius 2, σ = 0.1
    const data::image_dataset real = toy::make_dataset(world, 64, 1, "toy-real");  // (512, 2, 1, 1)
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);

    toy::mlp_denoiser<cpu, toy::mlp_spec{}> model;
    model.reset_parameters(7);
    diffusion::trainer<decltype(model)> run(
        model, real, table,
        {.batch_size = 128, .steps = 600, .lr = 3e-3, .warmup_steps = 20, .use_ema = false, .seed = 3});
    const diffusion::train_result r = run.train();
    CHECK(r.steps_run == 600);
    INFO("last loss " << r.last_loss << ", mean loss " << r.mean_loss);
    CHECK(r.last_loss < 0.3);  // ε-prediction MSE; a model that predicts 0 has loss ≈ 1

    constexpr std::int64_t count = 256;
    tensor<std::int64_t> labels(shape{count});
    for (std::int64_t i = 0; i < count; ++i) labels[i] = i % world.modes;
    const diffusion::ddim<50> sampler(table);
    const tensor<float> samples = sampler.sample(model, shape{2, 1, 1}, count, labels.view(), 11);
    REQUIRE(samples.dims() == shape{count, 2, 1, 1});

    const auto stats =
        toy::statistics(world, std::span<const float>(samples.data(), static_cast<std::size_t>(count * 2)));
    std::int64_t on_label = 0;
    for (std::int64_t i = 0; i < count; ++i)
        on_label += world.nearest_mode(samples[2 * i], samples[2 * i + 1]) == labels[i];
    INFO("covered " << stats.covered_modes << " of 8 modes, mean distance to a centre " << stats.spread
                    << ", samples nearest their label's mode " << on_label << " of " << count);
    CHECK(stats.covered_modes == 8);
    CHECK(stats.spread < 0.3);  // the radius is 2, neighbouring centres 1.53 apart
    CHECK(on_label >= count * 9 / 10);
}

namespace {

// An unconditional model of the default size, trained for `steps` on the mixture, and its DDIM samples.
tensor<float> train_unconditional_and_sample(const toy::mixture& world, std::int64_t steps, double lr,
                                             std::int64_t count) {
    const data::image_dataset real = toy::make_dataset(world, 64, 2, "toy-real");  // (512, 2, 1, 1)
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    toy::mlp_denoiser<cpu, toy::mlp_spec{.classes = 0}> model;
    model.reset_parameters(5);
    diffusion::trainer<decltype(model)> run(
        model, real, table,
        {.batch_size = 128, .steps = steps, .lr = lr, .warmup_steps = 20, .use_ema = false, .seed = 4});
    const diffusion::train_result r = run.train();
    INFO("last loss " << r.last_loss);
    CHECK(r.last_loss < 0.45);
    const diffusion::ddim<50> sampler(table);
    return sampler.sample(model, shape{2, 1, 1}, count, tensor<std::int64_t>(shape{0}).view(), 12);
}

}  // namespace

// Without labels the modes take a few thousand steps to separate (the slow test below); a few
// hundred already put the samples on the ring, all the way round.
TEST_CASE("unconditional mlp_denoiser trained briefly on the toy mixture samples its ring", "[toy_model][train]") {
    const toy::mixture world{};
    constexpr std::int64_t count = 256;
    const tensor<float> samples = train_unconditional_and_sample(world, 600, 3e-3, count);
    double radial = 0;
    std::vector<std::int64_t> per_mode(8, 0);
    for (std::int64_t i = 0; i < count; ++i) {
        radial += std::abs(std::hypot(samples[2 * i], samples[2 * i + 1]) - world.radius);
        ++per_mode[static_cast<std::size_t>(world.nearest_mode(samples[2 * i], samples[2 * i + 1]))];
    }
    radial /= count;
    INFO("mean |radius - 2| " << radial << ", fewest samples nearest one mode "
                              << *std::min_element(per_mode.begin(), per_mode.end()));
    CHECK(radial < 0.3);
    CHECK(*std::min_element(per_mode.begin(), per_mode.end()) >= count / 8 / 4);  // a quarter of the fair share
}

TEST_CASE("unconditional mlp_denoiser trained longer on the toy mixture samples its modes",
          "[toy_model][train][.slow]") {
    const toy::mixture world{};
    constexpr std::int64_t count = 256;
    const tensor<float> samples = train_unconditional_and_sample(world, 4000, 1e-3, count);
    const auto stats =
        toy::statistics(world, std::span<const float>(samples.data(), static_cast<std::size_t>(count * 2)));
    INFO("covered " << stats.covered_modes << " of 8 modes, mean distance to a centre " << stats.spread);
    CHECK(stats.covered_modes == 8);
    CHECK(stats.spread < 0.35);  // samples spread evenly along the ring would give about 0.4
}
