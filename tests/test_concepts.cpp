// The smallest type that satisfies each concept a user implements, as the reference pages in
// docs/reference/ show them (they include the code between the //! [name] markers with Doxygen's
// \snippet, so a page cannot drift from what compiles here): each type is checked against its
// concept, a type missing a member is refused, and each one is run through the library.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/backend.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/diffusion/parameterization.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/filter/filter.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/loop/modes.hpp"
#include "ouro/loop/pool.hpp"
#include "ouro/loop/self_consuming.hpp"
#include "ouro/loop/toy.hpp"
#include "ouro/metrics/classifier_training.hpp"
#include "ouro/metrics/feature_extractor.hpp"
#include "ouro/optim/lr_schedule.hpp"
#include "ouro/optim/optimizer.hpp"
#include "ouro/probe/centroid_probe.hpp"
#include "ouro/probe/probe.hpp"
#include "support/files.hpp"

using namespace ouro;
using ouro::testing::fresh_dir;
namespace fs = std::filesystem;

namespace {

// ---- backend (core/backend.hpp) ----

//! [backend]
// A tag type: a name and where its memory lives. The ops it runs are a specialisation of
// ops<B> (backend/ops.hpp), which the concept does not check.
struct my_backend {
    static constexpr const char* name = "my_backend";
    static constexpr bool host_memory = true;
};
static_assert(backend<my_backend>);
//! [backend]

struct backend_without_memory_kind {
    static constexpr const char* name = "no_host_memory";
};
static_assert(!backend<backend_without_memory_kind>);

// ---- noise_schedule (diffusion/schedule.hpp) ----

//! [noise_schedule]
// The same beta at every timestep.
struct constant_beta {
    static constexpr const char* name = "constant_beta";
    double beta = 0.02;

    std::vector<double> betas(std::int64_t timesteps) const {
        return std::vector<double>(static_cast<std::size_t>(timesteps), beta);
    }
};
static_assert(diffusion::check_noise_schedule<constant_beta>());
//! [noise_schedule]

struct betas_in_float {
    static constexpr const char* name = "betas_in_float";
    std::vector<float> betas(std::int64_t timesteps) const { return std::vector<float>(timesteps, 0.02f); }
};
static_assert(!diffusion::noise_schedule<betas_in_float>);

// ---- parameterization (diffusion/parameterization.hpp) ----

//! [parameterization]
// The model predicts the clean image x_0 (as diffusion::x0_prediction). With x_t = a x_0 + s eps:
struct clean_image {
    static constexpr const char* name = "clean_image";
    static double target(double x0, double /*eps*/, double /*a*/, double /*s*/) { return x0; }
    static double to_x0(double out, double /*x_t*/, double /*a*/, double /*s*/) { return out; }
    static double to_eps(double out, double x_t, double a, double s) { return (x_t - a * out) / s; }
};
static_assert(diffusion::check_parameterization<clean_image>());
//! [parameterization]

struct target_not_static {
    static constexpr const char* name = "target_not_static";
    double target(double x0, double, double, double) const { return x0; }
    static double to_x0(double out, double, double, double) { return out; }
    static double to_eps(double out, double, double, double) { return out; }
};
static_assert(!diffusion::parameterization<target_not_static>);

// ---- lr_schedule (optim/lr_schedule.hpp) ----

//! [lr_schedule]
// lr halves every `every` steps.
struct step_decay {
    double lr = 0.1;
    std::int64_t every = 100;

    double operator()(std::int64_t step) const { return lr * std::pow(0.5, static_cast<double>(step / every)); }
};
static_assert(optim::lr_schedule<step_decay>);
//! [lr_schedule]

struct lr_of_a_mutable_schedule {
    double operator()(std::int64_t) { return 0.1; }  // not const
};
static_assert(!optim::lr_schedule<lr_of_a_mutable_schedule>);

// ---- trainable_model (diffusion/trainer.hpp) ----

//! [trainable_model]
// out = w · x_t with one weight w (1 at first), for (2, 1, 1) images (the 2-D points of
// loop/toy.hpp) of 4 classes; it ignores t and the labels.
struct scaled_input_spec {
    std::int64_t in_channels = 2, image_size = 1, classes = 4;
    std::string str() const { return "scaled_input"; }
    std::uint64_t hash() const { return 1; }
};

struct scaled_input {
    static constexpr scaled_input_spec spec{};

    parameter_store<float> params;
    parameter w = params.add("w", shape{1});
    tensor<float> x, out, dx;  // forward keeps its input for backward

    scaled_input() { params.value(w)[0] = 1.0f; }
    parameter_store<float>& store() { return params; }

    tensor_view<const float> forward(tensor_view<const float> x_t, tensor_view<const std::int64_t> /*t*/,
                                     tensor_view<const std::int64_t> /*y*/, const nn::forward_context& /*ctx*/) {
        x.resize(x_t.dims());  // (B, C, H, W)
        out.resize(x_t.dims());
        for (std::int64_t i = 0; i < x_t.numel(); ++i) {
            x[i] = x_t[i];
            out[i] = params.value(w)[0] * x_t[i];
        }
        return out.view();
    }

    // Accumulates dL/dw = Σ dout · x into the store; returns dL/dx_t.
    tensor_view<const float> backward(tensor_view<const float> dout) {
        dx.resize(dout.dims());
        double grad = 0;
        for (std::int64_t i = 0; i < dout.numel(); ++i) {
            grad += static_cast<double>(dout[i]) * x[i];
            dx[i] = params.value(w)[0] * dout[i];
        }
        params.grad(w)[0] += static_cast<float>(grad);
        return dx.view();
    }
};
static_assert(diffusion::check_trainable_model<scaled_input>());
//! [trainable_model]

struct model_without_spec {
    parameter_store<float> params;
    parameter_store<float>& store() { return params; }
    tensor_view<const float> forward(tensor_view<const float> x, tensor_view<const std::int64_t>,
                                     tensor_view<const std::int64_t>, const nn::forward_context&) {
        return x;
    }
    tensor_view<const float> backward(tensor_view<const float> d) { return d; }
};
static_assert(!diffusion::trainable_model<model_without_spec>);

// ---- callbacks (core/progress.hpp, diffusion/trainer.hpp, loop/self_consuming.hpp) ----

//! [trainer_callback]
// Asks the trainer to stop once `last` steps are done, and records the learning rate of each step.
struct stop_after {
    std::int64_t last;
    std::vector<double> lrs{};

    bool on_step(const diffusion::step_event& e) {
        lrs.push_back(e.lr);
        return e.step >= last;  // true: stop after this step
    }
};
static_assert(diffusion::trainer_callback<stop_after>);
//! [trainer_callback]

struct misspelt_hook {
    void on_steps(const diffusion::step_event&) {}
};
static_assert(!diffusion::trainer_callback<misspelt_hook>);

//! [loop_callback]
// Counts the finished (method, generation) steps of a self-consuming run, G0 included.
struct count_generations {
    int seen = 0;
    void on_generation(const loop::generation_event&) { ++seen; }
};
//! [loop_callback]

// ---- denoiser (diffusion/sampler.hpp) ----

//! [denoiser]
// Predicts eps = 0 everywhere.
struct zero_denoiser {
    tensor<float> out;

    tensor_view<const float> predict(tensor_view<const float> x_t, tensor_view<const std::int64_t> /*t*/,
                                     tensor_view<const std::int64_t> /*y*/) {
        out.resize(x_t.dims());  // (B, C, H, W)
        out.zero();
        return out.view();
    }
};
static_assert(diffusion::check_denoiser<zero_denoiser>());
//! [denoiser]

struct predict_without_labels {
    tensor<float> out;
    tensor_view<const float> predict(tensor_view<const float> x_t, tensor_view<const std::int64_t>) { return x_t; }
};
static_assert(!diffusion::denoiser<predict_without_labels>);

// ---- sampler (diffusion/sampler.hpp) ----

//! [sampler]
// One model call at the last timestep, read as an x_0 prediction: x_T ~ N(0, I), x_0 = model(x_T).
struct one_step_sampler {
    static constexpr const char* name = "one_step";
    using parameterization_type = diffusion::x0_prediction;  // what the loop trains each generation for
    std::vector<std::int64_t> steps{99};                     // the last timestep of a T = 100 schedule

    const std::vector<std::int64_t>& timesteps() const { return steps; }

    template <diffusion::denoiser M>
    tensor<float> sample(M& model, const shape& item_shape, std::int64_t count, tensor_view<const std::int64_t> labels,
                         std::uint64_t seed, std::uint64_t first_index) const {
        tensor<float> x(shape{count, item_shape[0], item_shape[1], item_shape[2]});  // (B, C, H, W)
        // Sample b's noise depends on (seed, first_index + b) only, as every sampler's must.
        diffusion::draw_sampler_noise(x.view(), seed, first_index, 0);
        const tensor<std::int64_t> t(shape{count}, steps[0]);
        const tensor_view<const float> x0 = model.predict(x.view(), t.view(), labels);
        tensor<float> out(x0.dims());
        std::copy(x0.begin(), x0.end(), out.begin());
        return out;
    }
};
static_assert(diffusion::check_sampler<one_step_sampler>());
//! [sampler]

struct sampler_without_timesteps {
    static constexpr const char* name = "no_timesteps";
    template <diffusion::denoiser M>
    tensor<float> sample(M&, const shape&, std::int64_t, tensor_view<const std::int64_t>, std::uint64_t,
                         std::uint64_t) const {
        return {};
    }
};
static_assert(!diffusion::sampler<sampler_without_timesteps>);

// ---- encoder (latent/latents.hpp) ----

//! [encoder]
// An item's bottleneck is its label, (B, 1): latents that ignore the image and the noise.
struct label_encoder {
    tensor<float> h;

    tensor_view<const float> encode(tensor_view<const float> x_t, tensor_view<const std::int64_t> /*t*/,
                                    tensor_view<const std::int64_t> y) {
        const std::int64_t batch = x_t.dim(0);
        h.resize(shape{batch, 1});  // (B, 1)
        for (std::int64_t b = 0; b < batch; ++b) h[b] = y.numel() > 0 ? static_cast<float>(y[b]) : 0.0f;
        return h.view();
    }
};
static_assert(latent::check_encoder<label_encoder>());
//! [encoder]

static_assert(!latent::encoder<zero_denoiser>);  // predict is not encode

// ---- pooling (latent/latents.hpp) ----

//! [pooling]
// One feature per item: the sum of its bottleneck's elements, whatever its shape.
struct total {
    static constexpr const char* name = "total";

    std::int64_t dim(const shape& /*item*/) const { return 1; }

    void pool(tensor_view<const float> h, tensor_view<float> out) const {
        double sum = 0;
        for (const float v : h) sum += v;
        out[0] = static_cast<float>(sum);
    }
};
static_assert(latent::check_pooling<total>());
//! [pooling]

struct pooling_without_name {
    std::int64_t dim(const shape&) const { return 1; }
    void pool(tensor_view<const float>, tensor_view<float>) const {}
};
static_assert(!latent::pooling<pooling_without_name>);

// ---- loop_model (loop/self_consuming.hpp) ----

//! [loop_model]
// scaled_input (the trainable model above), which can also sample (predict), give latents (encode:
// the noisy input itself) and initialise itself.
struct scaled_loop_model : scaled_input {
    tensor<float> h;

    using scaled_input::store;  // and, since the loop reads G0's weights through a const model:
    const parameter_store<float>& store() const { return params; }

    tensor_view<const float> predict(tensor_view<const float> x_t, tensor_view<const std::int64_t> t,
                                     tensor_view<const std::int64_t> y) {
        return forward(x_t, t, y, nn::forward_context{});
    }

    tensor_view<const float> encode(tensor_view<const float> x_t, tensor_view<const std::int64_t> /*t*/,
                                    tensor_view<const std::int64_t> /*y*/) {
        h.resize(x_t.dims());  // (B, C, H, W)
        std::copy(x_t.begin(), x_t.end(), h.begin());
        return h.view();
    }

    void reset_parameters(std::uint64_t /*seed*/) { params.value(w)[0] = 1.0f; }
};
static_assert(loop::check_loop_model<scaled_loop_model>());
//! [loop_model]

static_assert(!loop::loop_model<scaled_input>);  // no predict, no encode

// ---- filter_policy (filter/filter.hpp) ----

//! [filter_policy]
// The first min(N, pool size) items, in pool order.
struct first_n {
    static constexpr const char* name = "first_n";

    std::vector<std::int64_t> select(const filter::pool_view& pool, std::int64_t budget, std::uint64_t /*seed*/) const {
        filter::check_budget(budget, name);
        std::vector<std::int64_t> kept;
        for (std::int64_t i = 0; i < std::min(budget, pool.size()); ++i) kept.push_back(i);
        return kept;
    }
};
static_assert(filter::check_filter_policy<first_n>());
//! [filter_policy]

struct select_not_const_policy {
    static constexpr const char* name = "select_not_const";
    std::vector<std::int64_t> select(const filter::pool_view&, std::int64_t, std::uint64_t) { return {}; }
};
static_assert(!filter::filter_policy<select_not_const_policy>);

// ---- loop_mode (loop/modes.hpp) ----

//! [loop_mode]
// Every real item (generation 0) and nothing else, whatever the budget: a loop that never
// retrains on its own samples.
struct real_only {
    static constexpr const char* name = "REAL";

    std::vector<std::int64_t> select(const loop::pool& p, std::span<const double> /*scores*/, std::int64_t /*budget*/,
                                     std::uint64_t /*seed*/) const {
        std::vector<std::int64_t> kept;
        for (std::int64_t i = 0; i < p.size(); ++i)
            if (p.generation(i) == 0) kept.push_back(i);
        return kept;
    }
};
static_assert(loop::loop_mode<real_only>);
//! [loop_mode]

static_assert(!loop::loop_mode<first_n>);  // a filter policy sees a pool_view; loop::filtered<first_n> is a mode
static_assert(loop::loop_mode<loop::filtered<first_n>>);

// Not a probe: no fit.
struct not_a_probe {
    tensor<double> confidence(tensor_view<const float>, const std::vector<std::int64_t>&) const { return {}; }
};

// ---- latent_probe (probe/probe.hpp) ----

//! [latent_probe]
// A probe that delegates to the library's centroid_probe and counts what the loop asks of it.
struct counting_probe {
    probe::centroid_probe inner;
    static inline int fits = 0, confidences = 0;
    static inline double reported_holdout = NAN;

    probe::fit_report fit(tensor_view<const float> h, const std::vector<std::int64_t>& labels, std::int64_t classes,
                          const probe::fit_options& options) {
        ++fits;
        probe::fit_report report = inner.fit(h, labels, classes, options);
        reported_holdout = report.holdout_accuracy;
        return report;
    }
    tensor<double> confidence(tensor_view<const float> h, const std::vector<std::int64_t>& labels) const {
        ++confidences;
        return inner.confidence(h, labels);
    }
    probe::prediction predict(tensor_view<const float> h) const { return inner.predict(h); }
};
static_assert(probe::latent_probe<counting_probe>);
//! [latent_probe]

static_assert(probe::latent_probe<probe::centroid_probe>);

//! [pool_score]
// Ranks the pool by the probe's confidence squared, and counts the loop's calls.
struct squared_confidence {
    static inline int fits = 0, scores = 0;
    void fit(tensor_view<const float>, const std::vector<std::int64_t>&, std::int64_t) { ++fits; }
    template <class Probe>
    tensor<double> score(const Probe& p, tensor_view<const float> h, const std::vector<std::int64_t>& labels) const {
        ++scores;
        tensor<double> xi = p.confidence(h, labels);
        for (double& v : xi) v *= v;
        return xi;
    }
};
static_assert(loop::pool_score<squared_confidence, counting_probe>);
//! [pool_score]
static_assert(loop::pool_score<loop::class_subspace_fit, probe::softmax_probe>);

// ---- metric_set (loop/metric_sets.hpp) ----

//! [metric_set]
// FID alone (the library's fid_only), counting the loop's calls.
struct counting_fid {
    loop::fid_only inner;
    static inline int references = 0, evaluations = 0;
    void fit_reference(tensor_view<const float> reference) {
        ++references;
        inner.fit_reference(reference);
    }
    loop::metric_row evaluate(tensor_view<const float> features, const loop::metric_settings& settings) const {
        ++evaluations;
        return inner.evaluate(features, settings);
    }
};
static_assert(loop::metric_set<counting_fid>);
//! [metric_set]

// ---- optimizer (optim/optimizer.hpp) ----

//! [optimizer]
// Gradient descent without state (p -= lr g), counting its steps: no buffers to checkpoint.
struct plain_descent {
    static constexpr std::string_view name = "plain_descent";
    static constexpr std::array<std::string_view, 0> state_names{};
    static inline std::int64_t steps_taken = 0;
    std::int64_t size_ = 0, steps_ = 0;
    double lr_ = 0;

    static plain_descent from_settings(const parameter_store<float>& store, const optim::optimizer_settings& s) {
        return {store.size(), 0, s.lr};
    }
    void step(parameter_store<float>& store) {
        for (std::int64_t i = 0; i < store.size(); ++i) store.values()[i] -= static_cast<float>(lr_) * store.grads()[i];
        ++steps_;
        ++steps_taken;
    }
    void set_lr(double lr) { lr_ = lr; }
    std::int64_t step_count() const { return steps_; }
    void set_step_count(std::int64_t n) { steps_ = n; }
    std::int64_t size() const { return size_; }
    float* state(std::size_t) { return nullptr; }
    const float* state(std::size_t) const { return nullptr; }
    std::string trajectory() const { return "none"; }
};
static_assert(optim::optimizer<plain_descent>);
//! [optimizer]
static_assert(!optim::optimizer<counting_fid>);
static_assert(!probe::latent_probe<not_a_probe>);

// ---- feature_extractor (metrics/feature_extractor.hpp) ----

//! [feature_extractor]
// One feature per image: its mean pixel.
struct mean_pixel {
    std::int64_t feature_dim() const { return 1; }

    tensor<float> features(tensor_view<const float> images) {
        const std::int64_t n = images.dim(0), per_image = n > 0 ? images.numel() / n : 0;
        tensor<float> f(shape{n, 1});  // (N, D)
        for (std::int64_t b = 0; b < n; ++b) {
            double sum = 0;
            for (std::int64_t i = b * per_image; i < (b + 1) * per_image; ++i) sum += images[i];
            f[b] = static_cast<float>(sum / static_cast<double>(per_image));
        }
        return f;
    }
};
static_assert(metrics::check_feature_extractor<mean_pixel>());
//! [feature_extractor]

struct features_as_vector {
    std::int64_t feature_dim() const { return 1; }
    std::vector<float> features(tensor_view<const float>) { return {}; }
};
static_assert(!metrics::feature_extractor<features_as_vector>);

// ---- classifier_network (metrics/classifier_training.hpp) ----

//! [classifier_network]
// Logits (B, K) = b for every image: K = 3 biases, which learn how often each class occurs.
struct bias_classifier {
    static constexpr std::int64_t classes = 3;
    parameter_store<float> params;
    parameter b = params.add("b", shape{classes});
    tensor<float> logits, dx;

    parameter_store<float>& store() { return params; }

    tensor_view<const float> forward(tensor_view<const float> x, const nn::forward_context& /*ctx*/) {
        logits.resize(shape{x.dim(0), classes});  // (B, K)
        for (std::int64_t i = 0; i < logits.numel(); ++i) logits[i] = params.value(b)[i % classes];
        dx.resize(x.dims());  // stays zero: the logits do not depend on x
        return logits.view();
    }

    tensor_view<const float> backward(tensor_view<const float> dlogits) {
        for (std::int64_t i = 0; i < dlogits.numel(); ++i) params.grad(b)[i % classes] += dlogits[i];
        return dx.view();
    }
};
static_assert(metrics::check_classifier_network<bias_classifier>());
//! [classifier_network]

static_assert(!metrics::classifier_network<zero_denoiser>);

// ---- Helpers of the runtime checks ----

// n zero images (n, 2, 1, 1) of class `label` (of 4).
data::image_dataset zero_points(std::int64_t n, std::int64_t label) {
    data::image_dataset d;
    d.name = "zeros";
    d.images = tensor<float>(shape{n, 2, 1, 1});
    d.labels = tensor<std::int64_t>(shape{n}, label);
    d.num_classes = 4;
    return d;
}

}  // namespace

TEST_CASE("a user's noise schedule gives the schedule table its betas imply", "[concepts]") {
    const diffusion::schedule_table table(constant_beta{}, 10);
    REQUIRE(table.timesteps() == 10);
    for (std::int64_t t = 0; t < 10; ++t) {
        CHECK(table.betas()[static_cast<std::size_t>(t)] == 0.02);
        CHECK(table.alphas_cumprod()[static_cast<std::size_t>(t)] ==
              Approx(std::pow(0.98, static_cast<double>(t + 1))));
    }
}

TEST_CASE("a user's parameterization round-trips x_0 and eps through x_t", "[concepts]") {
    const double a = 0.8, s = 0.6, x0 = 0.25, eps = -1.5, x_t = a * x0 + s * eps;
    const double out = clean_image::target(x0, eps, a, s);
    CHECK(clean_image::to_x0(out, x_t, a, s) == Approx(x0));
    CHECK(clean_image::to_eps(out, x_t, a, s) == Approx(eps));
}

TEST_CASE("a user's lr schedule halves as written and composes with linear_warmup", "[concepts]") {
    const step_decay decay;
    CHECK(decay(0) == 0.1);
    CHECK(decay(99) == 0.1);
    CHECK(decay(100) == 0.05);
    CHECK(decay(250) == 0.025);
    const optim::linear_warmup<step_decay> warm{.steps = 10, .base = {}};
    CHECK(warm(0) == Approx(0.01));
    CHECK(warm(9) == Approx(0.1));
}

TEST_CASE("the trainer fits a user's model with the user's schedule, parameterization, lr and callback", "[concepts]") {
    // x_0 = 0 for every image, so the best clean-image prediction w · x_t is w = 0.
    const data::image_dataset zeros = zero_points(8, 1);
    //! [train_user_types]
    scaled_input model;
    diffusion::trainer<scaled_input, clean_image, step_decay> run(
        model, zeros, diffusion::schedule_table(constant_beta{}, 10), {.batch_size = 4, .steps = 300, .use_ema = false},
        step_decay{.lr = 0.05, .every = 100});

    stop_after first_five{5};
    const auto stopped = run.train(first_five);
    //! [train_user_types]
    CHECK(stopped.stopped_early);
    CHECK(stopped.step == 5);
    CHECK(first_five.lrs == std::vector<double>(5, 0.05));

    stop_after never{1'000'000};
    const auto done = run.train(never);
    CHECK_FALSE(done.stopped_early);
    CHECK(done.step == 300);
    CHECK(never.lrs.at(100 - 5) == 0.025);  // step 100 (0-based), the first halving
    CHECK(std::abs(model.params.value(model.w)[0]) < 0.1f);
}

TEST_CASE("DDIM with a user's zero-eps denoiser returns the starting noise over sqrt(alpha_bar)", "[concepts]") {
    const diffusion::schedule_table table(constant_beta{}, 10);
    const diffusion::ddim<5> sampler(table);
    zero_denoiser model;
    const tensor<float> x = sampler.sample(model, shape{1, 2, 2}, 3, tensor_view<const std::int64_t>{}, 11, 0);
    REQUIRE(x.dims() == shape{3, 1, 2, 2});
    // eps = 0 makes every DDIM step (eta = 0) x <- x · sqrt(alpha_bar_prev / alpha_bar_t), down to alpha_bar = 1.
    tensor<float> noise(shape{3, 1, 2, 2});
    diffusion::draw_sampler_noise(noise.view(), 11, 0, 0);
    const double a_first = table.sqrt_alphas_cumprod()[static_cast<std::size_t>(sampler.timesteps().front())];
    for (std::int64_t i = 0; i < x.numel(); ++i) CHECK(x[i] == Approx(noise[i] / a_first).epsilon(1e-5));
}

TEST_CASE("a user's sampler gives each sample from (seed, its index) alone", "[concepts]") {
    scaled_loop_model model;  // w = 1: predicts its input, so the samples are the starting noise
    const one_step_sampler sampler;
    const tensor<float> all = sampler.sample(model, shape{2, 1, 1}, 6, tensor_view<const std::int64_t>{}, 3, 0);
    const tensor<float> tail = sampler.sample(model, shape{2, 1, 1}, 2, tensor_view<const std::int64_t>{}, 3, 4);
    REQUIRE(all.dims() == shape{6, 2, 1, 1});
    for (std::int64_t i = 0; i < tail.numel(); ++i) CHECK(tail[i] == all[4 * 2 + i]);
    CHECK(all[0] != all[2]);
}

TEST_CASE("latents of a user's encoder and pooling are what they compute, noise or not", "[concepts]") {
    const total sum;
    CHECK(sum.dim(shape{3, 2, 2}) == 1);
    const tensor<float> h(shape{2, 2}, 1.5f);
    tensor<float> out(shape{1});
    sum.pool(h.view(), out.view());
    CHECK(out[0] == 6.0f);

    label_encoder enc;
    latent::latent_extractor<label_encoder, total> ex(enc, diffusion::schedule_table(constant_beta{}, 10),
                                                      {.timestep = 5, .draws = 2}, total{});
    tensor<float> images(shape{4, 1, 3, 3}, 0.5f);
    tensor<std::int64_t> labels(shape{4});
    for (std::int64_t i = 0; i < 4; ++i) labels[i] = 3 - i;
    const tensor<float> z = ex.extract(images.view(), labels.view(), latent::sequential_ids(4).view());
    REQUIRE(z.dims() == shape{4, 1});
    for (std::int64_t i = 0; i < 4; ++i) CHECK(z[i] == static_cast<float>(3 - i));
}

TEST_CASE("a user's filter policy keeps its items, alone and as a loop mode", "[concepts]") {
    const std::vector<std::int64_t> ids{7, 3, 9, 1, 4};
    const filter::pool_view view{{}, {}, {}, ids};
    CHECK(first_n{}.select(view, 3, 0) == std::vector<std::int64_t>{0, 1, 2});
    CHECK(first_n{}.select(view, 10, 0) == std::vector<std::int64_t>{0, 1, 2, 3, 4});
    CHECK_THROWS_AS(first_n{}.select(view, -1, 0), ouro::error);

    loop::pool p(1);
    const std::vector<float> data{0.f, 1.f, 2.f, 3.f};
    const std::vector<std::int64_t> labels{0, 1, 0, 1};
    p.add(std::span(data).first(2), std::span(labels).first(2), 0);
    p.add(std::span(data).last(2), std::span(labels).last(2), 1);
    CHECK(loop::filtered<first_n>{}.select(p, {}, 3, 0) == std::vector<std::int64_t>{0, 1, 2});
    CHECK(real_only{}.select(p, {}, 3, 0) == std::vector<std::int64_t>{0, 1});
}

TEST_CASE("a user's feature extractor feeds the metrics", "[concepts]") {
    mean_pixel fx;
    tensor<float> images(shape{2, 1, 2, 2});
    for (std::int64_t i = 0; i < 8; ++i) images[i] = static_cast<float>(i);
    const tensor<float> f = fx.features(images.view());
    REQUIRE(f.dims() == shape{2, 1});
    CHECK(f[0] == 1.5f);
    CHECK(f[1] == 5.5f);
}

TEST_CASE("train_classifier fits a user's classifier network", "[concepts]") {
    data::image_dataset set;
    set.name = "all-ones";
    set.images = tensor<float>(shape{16, 1, 2, 2}, 0.5f);
    set.labels = tensor<std::int64_t>(shape{16}, 1);
    set.num_classes = 3;
    bias_classifier net;
    const auto report =
        metrics::train_classifier(net, set, {.epochs = 2, .batch_size = 4, .lr = 0.1, .warmup_steps = 0});
    CHECK(report.steps == 8);
    const tensor<std::int64_t> predicted = metrics::predict_classes(net, set.images.view());
    for (std::int64_t i = 0; i < 16; ++i) CHECK(predicted[i] == 1);
}

TEST_CASE("the self-consuming loop runs with a user's model, sampler, pooling, modes, features and callback",
          "[concepts]") {
    const loop::toy::mixture world{.modes = 4, .radius = 2.0, .sigma = 0.15};
    const data::image_dataset real = loop::toy::make_dataset(world, 24, 1, "toy-real");      // 96 points
    const data::image_dataset reference = loop::toy::make_dataset(world, 24, 2, "toy-ref");  // 96 points
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 100);

    loop::loop_options o;
    o.generations = 2;
    o.budget = 50;
    o.samples_per_generation = 32;
    o.finetune_epochs = 1;
    o.eval_samples = 64;
    o.sample_chunk = 64;
    o.g0 = {.batch_size = 32, .steps = 20, .lr = 1e-2};
    o.finetune = {.batch_size = 32, .lr = 1e-2};
    o.kid_subsets = 4;
    o.kid_subset_size = 16;
    o.out = fresh_dir("concepts_loop");
    o.write_grids = false;
    o.samples_as_images = false;
    o.show_progress = false;
    std::ostringstream log;
    o.log = &log;

    //! [run_user_loop]
    using experiment = loop::self_consuming<scaled_loop_model, one_step_sampler, total,
                                            loop::methods<real_only, loop::filtered<first_n>>, counting_probe,
                                            squared_confidence, counting_fid, plain_descent>;
    experiment ex(one_step_sampler{}, table, o);
    mean_pixel features;
    count_generations counter;
    const loop::run_summary summary = ex.run(real, reference, features, counter);
    //! [run_user_loop]

    CHECK(counter.seen == 1 + 2 * 2);  // G0, then 2 methods x 2 generations
    // The loop fitted the user's probe once and ranked with it: G0's diagnostics, then every
    // generation of both methods.
    CHECK(counting_probe::fits == 1);
    CHECK(squared_confidence::fits == 1);
    CHECK(squared_confidence::scores >= 1 + 2 * 2);
    CHECK(counting_probe::confidences == squared_confidence::scores);  // every score asked the probe
    CHECK(summary.probe_holdout_accuracy == counting_probe::reported_holdout);
    REQUIRE(summary.diagnostics.size() == 2 * 3);
    for (const loop::diagnostic_row& d : summary.diagnostics) {
        if (d.generation == 0) continue;
        CHECK(d.pool_size == 96 + 32 * d.generation);
        CHECK(d.train_size == (d.method == "REAL" ? 96 : 50));
        CHECK(d.real_share == 1.0);  // the first 50 items of the pool are real
    }
    // The user's metric set: FID only, so the other columns are not measured.
    CHECK(counting_fid::references == 1);
    CHECK(counting_fid::evaluations == 1 + 2 * 2);
    for (const loop::metric_row& m : summary.metrics) {
        CHECK(std::isfinite(m.fid));
        CHECK(std::isnan(m.precision));
        CHECK(std::isnan(m.kid));
    }
    // The user's optimiser trained G0 (20 steps) and every fine-tuning: REAL on 96 items (3 batches
    // of 32) and the filtered mode on its budget of 50 (2 batches), for 2 generations each.
    CHECK(plain_descent::steps_taken == 20 + 2 * (3 + 2));
    CHECK(io::read_text_file(o.out / "config.json").find("\"optimizer\": \"plain_descent\"") != std::string::npos);
    fs::remove_all(o.out);
}
