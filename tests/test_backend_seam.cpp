// The backend seam (issue #14): the layers and networks instantiated over a backend whose memory
// the host may not touch. cpu_strict runs the CPU kernels behind host_memory = false, so this file
// compiling is the proof that initialisation, the U-Net's timestep and label handling and every
// copy go through the backend; running it checks they still compute what ouro::cpu computes,
// bit for bit (same kernels, same order). A GPU backend joins the same harness with a tolerance.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/nn/lenet.hpp"
#include "ouro/nn/unet.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/clip.hpp"
#include "ouro/optim/ema.hpp"
#include "ouro/optim/sgd.hpp"
#include "support/cpu_strict.hpp"
#include "support/files.hpp"

using namespace ouro;
using ouro::testing::on_backend;

namespace {

template <class V>
concept host_indexable = requires(V v) {
    v[0];
    v.begin();
};

// What one forward and backward of a network leaves, brought to the host.
struct pass_result {
    tensor<float> out, dx, params, grads;
};

tensor<float> host_normal(const shape& s, std::uint64_t salt) {
    tensor<float> t(s);
    philox_stream rng(7, rng_purpose::diffusion_noise, salt);
    for (float& v : t) v = static_cast<float>(rng.normal());
    return t;
}

// `out` was copied before the backward (which frees the forward's buffers).
template <backend B>
pass_result store_result(const parameter_store<float, B>& store, tensor<float> out, tensor_view<const float, B> dx) {
    const shape flat{store.size()};
    return {std::move(out), to_host(dx), to_host(tensor_view<const float, B>(store.values(), flat)),
            to_host(tensor_view<const float, B>(store.grads(), flat))};
}

constexpr nn::unet_spec seam_unet{.in_channels = 1,
                                  .image_size = 8,
                                  .base = 8,
                                  .mult = {1, 2},
                                  .attention = {false, true},
                                  .groups = 4,
                                  .dropout = 0.1,
                                  .classes = 3};

// A training forward (dropout on) and a backward of a small conditional U-Net with attention.
template <backend B>
pass_result unet_pass() {
    nn::unet<B, seam_unet> net;
    net.reset_parameters(11);
    const tensor<float, B> x = on_backend<B>(host_normal(shape{2, 1, 8, 8}, 1));
    const std::vector<std::int64_t> t{3, 700}, y{2, 3};  // on the host, as the samplers and trainer give them
    const tensor_view<const std::int64_t> tv(t.data(), shape{2}), yv(y.data(), shape{2});
    tensor<float> out =
        to_host(net.forward(x.view(), tv, yv, nn::forward_context{.training = true, .seed = 5, .step = 9}));
    const tensor<float, B> dout = on_backend<B>(host_normal(out.dims(), 2));
    const auto dx = net.backward(dout.view());
    return store_result<B>(net.store(), std::move(out), dx);
}

template <backend B>
pass_result lenet_pass() {
    nn::lenet<B> net(10, 1, 28);
    net.reset_parameters(3);
    const tensor<float, B> x = on_backend<B>(host_normal(shape{3, 1, 28, 28}, 3));
    tensor<float> out = to_host(net.forward(x.view()));
    const tensor<float, B> dout = on_backend<B>(host_normal(out.dims(), 4));
    const auto dx = net.backward(dout.view());
    return store_result<B>(net.store(), std::move(out), dx);
}

// Three training steps of LeNet: clipping, an optimiser step, an EMA update; then the EMA swapped
// in and out. Returns the weights (as params, and again as dx), the last gradients (clipped), and
// in `out` the average followed by the sum of the three norms.
template <backend B, template <class, class> class Optimizer>
pass_result optimiser_steps() {
    nn::lenet<B> net(10, 1, 28);
    net.reset_parameters(5);
    auto& store = net.store();
    auto opt = Optimizer<float, B>::from_settings(store, optim::optimizer_settings{.lr = 1e-2, .weight_decay = 0.1});
    optim::ema<float, B> average(store, {.max_decay = 0.9});
    double norms = 0;
    for (std::uint64_t step = 0; step < 3; ++step) {
        store.zero_grad();
        const tensor<float, B> x = on_backend<B>(host_normal(shape{2, 1, 28, 28}, 20 + step));
        const auto out = net.forward(x.view());
        const tensor<float, B> dout = on_backend<B>(host_normal(out.dims(), 30 + step));
        net.backward(dout.view());
        norms += optim::clip_grad_norm(store, 0.5);
        opt.step(store);
        average.update(store);
    }
    average.swap(store);
    const shape flat{store.size()};
    tensor<float> averaged = to_host(tensor_view<const float, B>(store.values(), flat));
    average.swap(store);
    pass_result r = store_result<B>(store, std::move(averaged), tensor_view<const float, B>(store.values(), flat));
    r.out.resize(shape{store.size() + 1});  // the averaged weights, then the sum of the norms
    r.out[store.size()] = static_cast<float>(norms);
    return r;
}

// Three-class 8x8 stripes and checkerboards: enough for a trainer to take steps on.
data::image_dataset stripes(std::int64_t n) {
    data::image_dataset d;
    d.name = "stripes";
    d.num_classes = 3;
    d.images = host_normal(shape{n, 1, 8, 8}, 40);
    d.labels = tensor<std::int64_t>(shape{n});
    for (std::int64_t i = 0; i < n; ++i) {
        d.labels[i] = i % 3;
        for (std::int64_t k = 0; k < 64; ++k) {
            const std::int64_t y = k / 8, x = k % 8, c = i % 3;
            const bool on = c == 0 ? y % 2 == 0 : c == 1 ? x % 2 == 0 : (x + y) % 2 == 0;
            d.images[i * 64 + k] = (on ? 0.8f : -0.8f) + 0.05f * d.images[i * 64 + k];
        }
    }
    return d;
}

template <backend B>
using seam_trainer = diffusion::trainer<nn::unet<B, seam_unet>, diffusion::v_prediction>;

diffusion::trainer_options seam_trainer_options(std::int64_t steps) {
    return {.batch_size = 4,
            .steps = steps,
            .lr = 1e-3,
            .warmup_steps = 2,
            .grad_clip = 0.5,
            .ema = {.max_decay = 0.9},
            .seed = 3};
}

// Four steps of diffusion::trainer (AdamW, clipping, EMA, label dropping, v-prediction's targets):
// the weights, the EMA's weights, and the losses and gradient norms in `out`.
template <backend B>
pass_result trainer_steps() {
    nn::unet<B, seam_unet> net;
    net.reset_parameters(21);
    const data::image_dataset data = stripes(12);
    seam_trainer<B> t(net, data, diffusion::schedule_table{diffusion::linear_ho2020{}, 100}, seam_trainer_options(4));
    tensor<float> history(shape{8});
    for (std::int64_t i = 0; i < 4; ++i) {
        const auto r = t.step();
        history[2 * i] = static_cast<float>(r.loss);
        history[2 * i + 1] = static_cast<float>(r.grad_norm);
    }
    const shape flat{net.store().size()};
    return {std::move(history), to_host(tensor_view<const float, B>(t.ema()->values(), flat)),
            to_host(tensor_view<const float, B>(net.store().values(), flat)),
            to_host(tensor_view<const float, B>(net.store().grads(), flat))};
}

// Samples of the seam U-Net with DDIM (η = 1, guided) and DPM-Solver++(2M): the sampler's
// state on the host, the model on B.
template <backend B>
pass_result sampler_run() {
    nn::unet<B, seam_unet> net;
    // Random weights everywhere (a fresh U-Net's output conv is zero, and its samples would not
    // depend on the rest of the network).
    const shape flat{net.store().size()};
    tensor<float> weights = host_normal(flat, 50);
    for (float& w : weights) w *= 0.05f;
    copy_from_host(weights.view(), tensor_view<float, B>(net.store().values(), flat));
    const diffusion::schedule_table table{diffusion::linear_ho2020{}, 100};
    const std::vector<std::int64_t> labels{0, 1, 2, 3};
    const tensor_view<const std::int64_t> y(labels.data(), shape{4});
    const diffusion::ddim<5> ddim(table, 1.0, {.guidance_scale = 2.0, .null_class = 3});
    const diffusion::dpm_solver_pp_2m<4> dpm(table);
    return {ddim.sample(net, shape{1, 8, 8}, y, 8), dpm.sample(net, shape{1, 8, 8}, y, 9), tensor<float>(shape{1}),
            tensor<float>(shape{1})};
}

// Latents of six images (two draws each, on two threads when there are two: replicas of the model
// on B), flattened and spatially averaged.
template <backend B>
pass_result latent_run() {
    nn::unet<B, seam_unet> net;
    net.reset_parameters(41);
    const data::image_dataset data = stripes(6);
    const diffusion::schedule_table table{diffusion::linear_ho2020{}, 100};
    latent::latent_extractor flat(net, table, {.timestep = 30, .draws = 2, .seed = 4, .batch_size = 3});
    latent::latent_extractor mean(net, table, {.timestep = 30, .seed = 4}, latent::spatial_mean{});
    const std::vector<std::int64_t> ids{0, 1, 2, 3, 4, 5};
    const tensor_view<const std::int64_t> idv(ids.data(), shape{6});
    return {flat.extract(data.images.view(), data.labels.view(), idv),
            mean.extract(data.images.view(), data.labels.view(), idv), tensor<float>(shape{1}),
            tensor<float>(shape{1})};
}

bool bitwise_equal(const tensor<float>& a, const tensor<float>& b) {
    return a.dims() == b.dims() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

void require_same(const pass_result& got, const pass_result& want) {
    REQUIRE(want.out.numel() > 0);
    CHECK(bitwise_equal(got.params, want.params));
    CHECK(bitwise_equal(got.out, want.out));
    CHECK(bitwise_equal(got.dx, want.dx));
    CHECK(bitwise_equal(got.grads, want.grads));
}

}  // namespace

TEST_CASE("tensor and parameter_store keep a non-host backend's memory, reachable only through copies") {
    static_assert(!host_indexable<tensor_view<float, cpu_strict>>, "no host element access on cpu_strict");
    static_assert(!host_indexable<tensor<float, cpu_strict>>);
    static_assert(host_indexable<tensor_view<float, cpu>> && host_indexable<tensor<float, cpu>>);

    tensor<float, cpu_strict> t(shape{2, 3}, 1.5f);
    const tensor<float> back = to_host(t.view());
    REQUIRE(back.dims() == (shape{2, 3}));
    for (float v : back) CHECK(v == 1.5f);

    const tensor<float> host = host_normal(shape{2, 3}, 9);
    copy_from_host(host.view(), t.view());
    tensor<float, cpu_strict> u(shape{2, 3});
    copy(tensor_view<const float, cpu_strict>(t.view()), u.view());
    CHECK(bitwise_equal(to_host(u.view()), host));
    u.zero();
    for (float v : to_host(u.view())) CHECK(v == 0.0f);
    CHECK_THROWS_WITH(copy_from_host(host.view(), tensor<float, cpu_strict>(shape{3, 2}).view()),
                      Catch::Contains("(2, 3)") && Catch::Contains("(3, 2)"));

    // Growing the store keeps what was registered before and zeroes what is new.
    parameter_store<float, cpu_strict> store;
    const parameter a = store.add("a", shape{3});
    const tensor<float> three = host_normal(shape{3}, 10);
    copy_from_host(three.view(), store.value(a));
    const parameter b = store.add("b", shape{100});
    CHECK(bitwise_equal(to_host(store.value(a)), three));
    for (float v : to_host(store.value(b))) CHECK(v == 0.0f);
    for (float v : to_host(store.grad(a))) CHECK(v == 0.0f);
}

TEMPLATE_TEST_CASE("the U-Net trains the same on any backend", "[seam]", cpu, cpu_strict) {
    require_same(unet_pass<TestType>(), unet_pass<cpu>());
}

TEMPLATE_TEST_CASE("LeNet runs the same on any backend", "[seam]", cpu, cpu_strict) {
    require_same(lenet_pass<TestType>(), lenet_pass<cpu>());
}

TEMPLATE_TEST_CASE("AdamW, SGD, EMA and clipping update the same on any backend", "[seam]", cpu, cpu_strict) {
    require_same(optimiser_steps<TestType, optim::adamw>(), optimiser_steps<cpu, optim::adamw>());
    require_same(optimiser_steps<TestType, optim::sgd>(), optimiser_steps<cpu, optim::sgd>());
}

TEST_CASE("a non-finite gradient is refused on a non-host backend, naming the parameter") {
    parameter_store<float, cpu_strict> store;
    store.add("w", shape{3});
    const parameter b = store.add("b", shape{2});
    const std::vector<float> bad{1.0f, std::numeric_limits<float>::quiet_NaN()};
    copy_from_host(tensor_view<const float>(bad.data(), shape{2}), store.grad(b));
    optim::adamw<float, cpu_strict> opt(store);
    CHECK_THROWS_WITH(opt.step(store),
                      Catch::Contains("'b'") && Catch::Contains("not finite") && Catch::Contains("element 1"));
    CHECK(std::isnan(optim::grad_norm(store)));
}

TEMPLATE_TEST_CASE("the diffusion trainer takes the same steps on any backend", "[seam]", cpu, cpu_strict) {
    static_assert(diffusion::trainable_model<nn::unet<TestType, seam_unet>>);
    const pass_result want = trainer_steps<cpu>();
    REQUIRE(want.out[0] > 0.0f);          // a loss
    REQUIRE(std::isfinite(want.out[7]));  // the last gradient norm
    require_same(trainer_steps<TestType>(), want);
}

TEMPLATE_TEST_CASE("the samplers draw the same images from a model on any backend", "[seam]", cpu, cpu_strict) {
    static_assert(diffusion::denoiser<nn::unet<TestType, seam_unet>>);
    require_same(sampler_run<TestType>(), sampler_run<cpu>());
}

TEMPLATE_TEST_CASE("latents are read the same from a model on any backend", "[seam]", cpu, cpu_strict) {
    static_assert(latent::replicable_encoder<nn::unet<TestType, seam_unet>>);
    require_same(latent_run<TestType>(), latent_run<cpu>());
}

TEST_CASE("checkpoints written from one backend resume bitwise on another") {
    const ouro::testing::scratch_dir dir("backend_seam_checkpoint");
    const data::image_dataset data = stripes(12);
    const diffusion::schedule_table table{diffusion::linear_ho2020{}, 100};

    // Two steps on cpu_strict, a checkpoint (weights, AdamW moments, EMA), then two more steps.
    nn::unet<cpu_strict, seam_unet> strict_net;
    strict_net.reset_parameters(21);
    seam_trainer<cpu_strict> strict(strict_net, data, table, seam_trainer_options(4));
    strict.step();
    strict.step();
    strict.save_checkpoint(dir.path / "run");
    diffusion::save_model(dir.path / "model.safetensors", strict_net, 2);
    strict.step();
    strict.step();

    // The same two later steps on cpu, from that checkpoint.
    nn::unet<cpu, seam_unet> net;
    net.reset_parameters(99);  // other weights: the checkpoint must replace them
    seam_trainer<cpu> resumed(net, data, table, seam_trainer_options(4));
    resumed.load_checkpoint(dir.path / "run");
    REQUIRE(resumed.step_count() == 2);
    resumed.step();
    resumed.step();

    const shape flat{net.store().size()};
    CHECK(bitwise_equal(to_host(tensor_view<const float, cpu_strict>(strict_net.store().values(), flat)),
                        to_tensor(tensor_view<const float>(net.store().values(), flat))));
    CHECK(bitwise_equal(to_host(tensor_view<const float, cpu_strict>(strict.ema()->values(), flat)),
                        to_tensor(tensor_view<const float>(resumed.ema()->values(), flat))));

    // A model file from cpu_strict loads into a cpu model and back into a cpu_strict one.
    nn::unet<cpu, seam_unet> loaded;
    diffusion::load_model(dir.path / "model.safetensors", loaded);
    nn::unet<cpu_strict, seam_unet> loaded_strict;
    diffusion::load_model(dir.path / "model.safetensors", loaded_strict);
    CHECK(bitwise_equal(to_host(tensor_view<const float, cpu_strict>(loaded_strict.store().values(), flat)),
                        to_tensor(tensor_view<const float>(loaded.store().values(), flat))));
    CHECK_FALSE(bitwise_equal(to_tensor(tensor_view<const float>(loaded.store().values(), flat)),
                              to_tensor(tensor_view<const float>(net.store().values(), flat))));
}
