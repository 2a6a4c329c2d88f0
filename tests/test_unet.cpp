// nn::unet: the whole network against a PyTorch U-Net of the same spec and weights (forward,
// encoder, backward with every parameter gradient), finite differences, threads, and bad input.
#include <catch2/catch.hpp>

#include <set>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/nn/unet.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using ouro::testing::load_golden;
using ouro::testing::require_close;

namespace {

// The spec of tests/golden/gen_unet.py.
constexpr nn::unet_spec golden_spec{.in_channels = 2,
                                    .image_size = 6,
                                    .base = 8,
                                    .mult = {1, 2},
                                    .res_blocks = 1,
                                    .attention = {false, true},
                                    .heads = 2,
                                    .groups = 4,
                                    .classes = 3};

template <class Net>
void load_golden_parameters(Net& net) {
    for (const auto& e : net.store().entries()) {
        const auto value = load_golden<typename Net::value_type>("unet/" + e.name + ".npy");
        require_shape(value.dims(), e.dims, e.name.c_str());
        std::copy(value.begin(), value.end(), net.store().value(net.store().find(e.name)).begin());
    }
}

}  // namespace

TEST_CASE("unet registers PyTorch-style names, one per golden parameter", "[unet]") {
    nn::unet<cpu, golden_spec, double> net;
    std::set<std::string> names;
    for (const auto& e : net.store().entries()) names.insert(e.name);
    CHECK(names.count("time_embed.0.weight") == 1);
    CHECK(names.count("label_emb.weight") == 1);
    CHECK(names.count("down.0.downsample.conv.weight") == 1);
    CHECK(names.count("down.1.attn.0.qkv.weight") == 1);
    CHECK(names.count("up.1.res.1.skip.weight") == 1);
    CHECK(names.count("up.1.upsample.conv.bias") == 1);
    CHECK(names.count("out.conv.weight") == 1);
    for (const auto& n : names) {
        INFO(n);
        CHECK(std::filesystem::exists(testing::golden_path("unet/" + n + ".npy")));
    }
}

TEST_CASE("unet matches PyTorch: encoder, forward, dx and every parameter gradient", "[unet][golden]") {
    nn::unet<cpu, golden_spec, double> net;
    load_golden_parameters(net);
    const tensor<double> x = load_golden("unet/x.npy");
    const tensor<std::int64_t> t = io::read_npy<std::int64_t>(testing::golden_path("unet/t.npy"));
    const tensor<std::int64_t> y = io::read_npy<std::int64_t>(testing::golden_path("unet/y.npy"));

    const tensor<double> bottleneck = to_tensor(net.encode(x, t, y));
    CHECK(bottleneck.dims() == shape{3, 16, 3, 3});
    require_close("bottleneck", bottleneck, load_golden("unet/bottleneck.npy"), 1e-9, 1e-11);
    const auto out = net.forward(x, t, y);
    require_close("out", out, load_golden("unet/out.npy"), 1e-9, 1e-11);

    net.store().zero_grad();
    const auto dx = net.backward(load_golden("unet/dout.npy"));
    require_close("dx", dx, load_golden("unet/dx.npy"), 1e-9, 1e-11);
    for (const auto& e : net.store().entries())
        require_close("grad " + e.name, net.store().grad(net.store().find(e.name)),
                      load_golden("unet/grad/" + e.name + ".npy"), 2e-6, 1e-7);  // stored as float32
}

TEST_CASE("unet backward agrees with finite differences", "[unet][gradcheck]") {
    constexpr nn::unet_spec spec{.in_channels = 1,
                                 .image_size = 6,
                                 .base = 4,
                                 .mult = {1, 2},
                                 .res_blocks = 1,
                                 .attention = {true, false},
                                 .heads = 1,
                                 .groups = 2,
                                 .classes = 0};
    nn::unet<cpu, spec, double> net;
    net.reset_parameters(21);
    // Zero-initialised layers would hide the gradients behind them: give every parameter a value.
    philox_stream rng(5, rng_purpose::user);
    for (std::int64_t i = 0; i < net.store().size(); ++i) net.store().values()[i] += 0.1 * rng.normal();
    tensor<double> x = testing::random_tensor<double>(shape{2, 1, 6, 6}, 1);
    const tensor<std::int64_t> t(shape{2}, 37);
    const tensor<std::int64_t> no_labels(shape{0});
    const tensor<double> dout = testing::random_tensor<double>(shape{2, 1, 6, 6}, 2);
    auto loss = [&] { return testing::dot(net.forward(x, t, no_labels), dout); };

    net.forward(x, t, no_labels);
    net.store().zero_grad();
    const tensor<double> dx = to_tensor(net.backward(dout));
    testing::check_gradient("dx", x.view(), dx.view(), loss, 1e-6, 1e-6);
    for (const char* name : {"time_embed.0.weight", "input.conv.weight", "down.0.attn.0.qkv.weight",
                             "mid.res1.emb_proj.bias", "up.1.res.0.skip.weight", "out.norm.weight"}) {
        const parameter p = net.store().find(name);
        REQUIRE(p.valid());
        const tensor<double> analytic = to_tensor(net.store().grad(p));
        testing::check_gradient(name, net.store().value(p), analytic.view(), loss, 1e-6, 1e-6, 60);
    }
}

TEST_CASE("unet gives bitwise identical results at 1 and 2 threads", "[unet][threads]") {
    nn::unet<cpu, golden_spec, float> net;
    net.reset_parameters(2);
    const tensor<float> x = testing::random_tensor<float>(shape{4, 2, 6, 6}, 3);
    const tensor<std::int64_t> t(shape{4}, 500);
    const tensor<std::int64_t> y(shape{4}, 1);
    const tensor<float> dout = testing::random_tensor<float>(shape{4, 2, 6, 6}, 4);
    auto run = [&](int threads) {
        set_threads(threads);
        net.store().zero_grad();
        std::vector<float> out(net.forward(x, t, y).begin(), net.forward(x, t, y).end());
        const auto dx = net.backward(dout);
        out.insert(out.end(), dx.begin(), dx.end());
        out.insert(out.end(), net.store().grads(), net.store().grads() + net.store().size());
        return out;
    };
    const int saved = max_threads();
    const auto one = run(1), two = run(2);
    set_threads(saved);
    CHECK(one == two);
}

TEST_CASE("unet refuses wrong image sizes, missing labels and bad specs with clear errors", "[unet][errors]") {
    nn::unet<cpu, golden_spec, float> net;
    const tensor<std::int64_t> t(shape{2}, 1), y(shape{2}, 0), none(shape{0});
    CHECK_THROWS_WITH(net.forward(tensor<float>(shape{2, 2, 8, 8}), t, y),
                      Catch::Contains("(2, 2, 6, 6)") && Catch::Contains("(2, 2, 8, 8)"));
    CHECK_THROWS_WITH(net.forward(tensor<float>(shape{2, 2, 6, 6}), t, none), Catch::Contains("class-conditional"));
    CHECK_THROWS_WITH(net.forward(tensor<float>(shape{2, 2, 6, 6}), t, tensor<std::int64_t>(shape{2}, 4)),
                      Catch::Contains("label 4"));
    CHECK_THROWS_WITH(nn::validate(nn::unet_spec{.base = 12, .groups = 32}), Catch::Contains("groups = 32"));
    CHECK_THROWS_WITH(nn::validate(nn::unet_spec{.image_size = 30, .base = 32, .mult = {1, 2, 2}}),
                      Catch::Contains("image_size 30"));
}

TEST_CASE("unet output of an item does not depend on the batch it is in", "[unet][batch]") {
    nn::unet<cpu, golden_spec, float> net;
    net.reset_parameters(8);
    // Fresh zero-initialised layers would cut the embedding path: give every parameter a value.
    philox_stream rng(3, rng_purpose::user);
    for (std::int64_t i = 0; i < net.store().size(); ++i) net.store().values()[i] += 0.05f * rng.normal();
    const tensor<float> x = testing::random_tensor<float>(shape{5, 2, 6, 6}, 9);
    tensor<std::int64_t> t(shape{5}), y(shape{5});
    for (std::int64_t i = 0; i < 5; ++i) {
        t[i] = 100 * i + 7;
        y[i] = i % 4;
    }
    const tensor<float> batched = to_tensor(net.predict(x, t, y));
    const std::int64_t item = 2 * 6 * 6;
    for (std::int64_t i = 0; i < 5; ++i) {
        const tensor_view<const float> xi(x.data() + i * item, shape{1, 2, 6, 6});
        const tensor_view<const std::int64_t> ti(t.data() + i, shape{1}), yi(y.data() + i, shape{1});
        const auto alone = net.predict(xi, ti, yi);
        INFO("item " << i);
        CHECK(std::equal(alone.begin(), alone.end(), batched.data() + i * item));
    }
}

namespace {
// Inputs of a 1-channel 16x16 U-Net: x (B, 1, 16, 16), timesteps t_i = step·i + 3, labels i mod 4.
struct inputs_16 {
    tensor<float> x;
    tensor<std::int64_t> t, y;
};

// Initialises `net` (seed 4) and moves every weight off its init (so zero-initialised output
// convs and biases matter too), then draws the inputs.
template <class Net>
inputs_16 perturb_and_draw_inputs(Net& net, std::int64_t batch, std::int64_t step) {
    net.reset_parameters(4);
    philox_stream rng(6, rng_purpose::user);
    for (std::int64_t i = 0; i < net.store().size(); ++i) net.store().values()[i] += 0.05f * rng.normal();
    inputs_16 in{testing::random_tensor<float>(shape{batch, 1, 16, 16}, 7), tensor<std::int64_t>(shape{batch}),
                 tensor<std::int64_t>(shape{batch})};
    for (std::int64_t i = 0; i < batch; ++i) {
        in.t[i] = step * i + 3;
        in.y[i] = i % 4;
    }
    return in;
}
}  // namespace

TEST_CASE("unet inference forward frees its intermediates and gives the same output bit for bit", "[unet][inference]") {
    constexpr nn::unet_spec spec{.in_channels = 1,
                                 .image_size = 16,
                                 .base = 16,
                                 .mult = {1, 2, 2},
                                 .res_blocks = 2,
                                 .attention = {false, true, true},
                                 .heads = 2,
                                 .groups = 4,
                                 .classes = 3};
    constexpr std::int64_t batch = 32;  // (32, 16, 16, 16) floats = 512 KiB: blocks the cache counts
    nn::unet<cpu, spec, float> net;
    const inputs_16 in = perturb_and_draw_inputs(net, batch, 30);
    const tensor<float>& x = in.x;
    const tensor<std::int64_t>&t = in.t, &y = in.y;
    auto& cache = buffer_cache::instance();
    cache.clear();
    const std::size_t live_before = cache.live_bytes();
    cache.reset_peak();
    const tensor<float> kept = to_tensor(net.forward(x, t, y));  // every layer keeps its output
    const std::size_t plain_peak = cache.peak_live_bytes() - live_before;
    net.release();
    CHECK(cache.live_bytes() == live_before);  // release gave back everything the pass held

    cache.reset_peak();
    const tensor<float> inferred = to_tensor(net.predict(x, t, y));
    const std::size_t inference_peak = cache.peak_live_bytes() - live_before;
    const std::size_t inference_held = cache.live_bytes() - live_before;
    INFO("plain forward peak " << plain_peak << " B, inference peak " << inference_peak << " B, held after "
                               << inference_held << " B");
    CHECK(std::equal(kept.begin(), kept.end(), inferred.begin()));
    CHECK(inference_peak * 3 < plain_peak);  // the skips and a few live tensors, not every layer's output
    CHECK(inference_held * 10 < plain_peak);

    // A second pass takes its blocks from the cache: nothing new comes from the system.
    const std::size_t cached = cache.cached_bytes();
    const tensor<float> again = to_tensor(net.predict(x, t, y));
    CHECK(cache.cached_bytes() == cached);
    CHECK(std::equal(kept.begin(), kept.end(), again.begin()));

    CHECK_THROWS_WITH(net.backward(kept), Catch::Contains("forward_context::inference"));
    net.forward(x, t, y);  // a plain forward makes backward possible again
    CHECK_NOTHROW(net.backward(kept));
}

TEST_CASE("unet predict with bf16 products stays near the fp32 prediction, deterministically", "[unet][bf16]") {
    constexpr nn::unet_spec spec{.in_channels = 1,
                                 .image_size = 16,
                                 .base = 16,
                                 .mult = {1, 2, 2},
                                 .res_blocks = 1,
                                 .attention = {false, true, true},
                                 .heads = 2,
                                 .groups = 4,
                                 .classes = 3};
    nn::unet<cpu, spec, float> net;
    const inputs_16 in = perturb_and_draw_inputs(net, 6, 150);
    const tensor<float>& x = in.x;
    const tensor<std::int64_t>&t = in.t, &y = in.y;
    CHECK(net.predict_precision() == matmul_precision::fp32);
    const tensor<float> fp32 = to_tensor(net.predict(x, t, y));
    net.set_predict_precision(matmul_precision::bf16);
    const tensor<float> bf16 = to_tensor(net.predict(x, t, y));
    const tensor<float> again = to_tensor(net.predict(x, t, y));
    CHECK(std::equal(bf16.begin(), bf16.end(), again.begin()));

    float largest = 0, difference = 0;
    for (std::int64_t i = 0; i < fp32.numel(); ++i) {
        largest = std::max(largest, std::fabs(fp32[i]));
        difference = std::max(difference, std::fabs(bf16[i] - fp32[i]));
    }
    INFO("largest |fp32| " << largest << ", largest |bf16 - fp32| " << difference);
    CHECK(largest > 0.1f);
    CHECK(difference > 0);                // the products did run in bf16
    CHECK(difference < 0.02f * largest);  // ~2^-9 per operand, through every layer

    // Training is untouched: a training forward ignores the predict precision.
    const tensor<float> trained = to_tensor(net.forward(x, t, y));
    CHECK(std::equal(trained.begin(), trained.end(), fp32.begin()));
}
