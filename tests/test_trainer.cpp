// The DDPM trainer and its checkpoints: a run resumed from a checkpoint (in this process and in a
// fresh one) continues bitwise like an uninterrupted run; the loss falls on learnable data; a NaN
// or Inf in the data, the gradients or the update (a huge lr) stops training with an error naming
// the step, never writes a non-finite checkpoint and leaves the last good one intact; NaN weights in
// a file are refused on load; checkpoints of another spec, truncated, corrupt, foreign or
// mismatched files are refused clearly; label dropping happens at its rate; data that does not fit
// the model is refused before training.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/diffusion/training_progress.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/nn/unet.hpp"
#include "ouro/optim/sgd.hpp"
#include "support/cpu_strict.hpp"
#include "support/files.hpp"

using namespace ouro;
using ouro::testing::scratch_dir;
using ouro::testing::write_text;
namespace fs = std::filesystem;

namespace {

// The smallest U-Net that still has every part: two levels, class labels, dropout (keyed by step).
constexpr nn::unet_spec tiny_spec{
    .in_channels = 1, .image_size = 8, .base = 8, .mult = {1, 2}, .groups = 4, .dropout = 0.1, .classes = 3};
constexpr nn::unet_spec wider_spec{
    .in_channels = 1, .image_size = 8, .base = 16, .mult = {1, 2}, .groups = 4, .dropout = 0.1, .classes = 3};
template <backend B>
using tiny_unet_on = nn::unet<B, tiny_spec>;
using tiny_unet = tiny_unet_on<cpu>;
using wider_unet = nn::unet<cpu, wider_spec>;
using tiny_trainer = diffusion::trainer<tiny_unet>;

static_assert(diffusion::trainable_model<tiny_unet>);
static_assert(!diffusion::trainable_model<int>);
static_assert(!diffusion::trainable_model<optim::constant_lr>);

constexpr std::int64_t items = 12;

// Three classes of 8x8 patterns (horizontal stripes, vertical stripes, a checkerboard) in [-0.8, 0.8],
// with a little per-item noise: learnable, and every item different.
data::image_dataset tiny_data(std::int64_t n = items, std::int64_t channels = 1, std::int64_t size = 8) {
    data::image_dataset d;
    d.name = "tiny";
    d.num_classes = 3;
    d.images = tensor<float>(shape{n, channels, size, size});
    d.labels = tensor<std::int64_t>(shape{n});
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t c = i % 3;
        d.labels[i] = c;
        philox_stream rng(5, rng_purpose::user, static_cast<std::uint64_t>(i));
        for (std::int64_t k = 0; k < channels * size * size; ++k) {
            const std::int64_t y = (k / size) % size, x = k % size;
            const bool on = c == 0 ? y % 2 == 0 : c == 1 ? x % 2 == 0 : (x + y) % 2 == 0;
            d.images[i * channels * size * size + k] = (on ? 0.8f : -0.8f) + 0.05f * (rng.uniform() - 0.5f);
        }
    }
    return d;
}

diffusion::schedule_table tiny_table() { return {diffusion::linear_ho2020{}, 100}; }

diffusion::trainer_options tiny_options(std::int64_t steps) {
    return {.batch_size = 4,
            .steps = steps,
            .lr = 1e-3,
            .warmup_steps = 3,
            .weight_decay = 0.01,
            .grad_clip = 1.0,
            .use_ema = true,
            .ema = {.max_decay = 0.99},
            .label_drop = 0.2,
            .seed = 7};
}

template <backend B = cpu>
std::unique_ptr<tiny_unet_on<B>> fresh_model(std::uint64_t init_seed) {
    auto m = std::make_unique<tiny_unet_on<B>>();
    m->reset_parameters(init_seed);
    return m;
}

// Everything a resumed run must reproduce, bit for bit.
struct state_snapshot {
    std::int64_t step = 0, adam_steps = 0, ema_updates = 0;
    std::vector<float> weights, exp_avg, exp_avg_sq, ema;
    bool operator==(const state_snapshot&) const = default;
};

// The trainer's state on the host, whatever its model's backend (through to_host where the host may
// not read the backend's memory, as on cpu_strict).
template <class Trainer>
state_snapshot snapshot(Trainer& t) {
    const auto& store = t.model().store();
    using B = typename std::remove_cvref_t<decltype(store)>::backend_type;
    const auto n = store.size();
    const auto host = [n](const float* values) {
        const tensor<float> h = to_host(tensor_view<const float, B>(values, shape{static_cast<std::int64_t>(n)}));
        return std::vector<float>(h.begin(), h.end());
    };
    state_snapshot s;
    s.step = t.step_count();
    s.adam_steps = t.optimizer().step_count();
    s.weights = host(store.values());
    s.exp_avg = host(t.optimizer().exp_avg());
    s.exp_avg_sq = host(t.optimizer().exp_avg_sq());
    if (t.ema()) {
        s.ema_updates = t.ema()->update_count();
        s.ema = host(t.ema()->values());
    }
    return s;
}

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

constexpr std::int64_t resume_steps = 6;  // N: N steps, save, N more, against 2N uninterrupted
constexpr const char* child_dir_variable = "OURO_TEST_TRAINER_CHILD_DIR";

}  // namespace

// On cpu and on cpu_strict (a backend whose memory the host may not read: issue #14's seam).
TEMPLATE_TEST_CASE("a resumed run continues bitwise like an uninterrupted one: weights, moments, EMA, step",
                   "[trainer][resume]", cpu, cpu_strict) {
    using tiny_trainer = diffusion::trainer<tiny_unet_on<TestType>>;
    const auto fresh_model = [](std::uint64_t init_seed) { return ::fresh_model<TestType>(init_seed); };
    const data::image_dataset data = tiny_data();
    const std::int64_t n = resume_steps;
    scratch_dir dir(std::string("resume_") + TestType::name);

    // 2N steps without interruption, through train().
    auto model_c = fresh_model(1);
    tiny_trainer uninterrupted(*model_c, data, tiny_table(), tiny_options(2 * n));
    const state_snapshot initial = snapshot(uninterrupted);
    const diffusion::train_result r = uninterrupted.train();
    CHECK(r.step == 2 * n);
    CHECK(r.steps_run == 2 * n);
    const state_snapshot expected = snapshot(uninterrupted);
    CHECK(expected.weights != initial.weights);  // it trained
    CHECK(expected.adam_steps == 2 * n);
    CHECK(expected.ema_updates == 2 * n);

    // N steps, a checkpoint, N more in the same trainer: saving disturbs nothing.
    auto model_a = fresh_model(1);
    tiny_trainer first(*model_a, data, tiny_table(), tiny_options(2 * n));
    for (std::int64_t i = 0; i < n; ++i) first.step();
    const diffusion::checkpoint_entry saved = first.save_checkpoint(dir.path);
    CHECK(saved.step == n);
    const state_snapshot halfway = snapshot(first);
    for (std::int64_t i = 0; i < n; ++i) first.step();
    CHECK(snapshot(first) == expected);

    // A fresh model (initialised differently) and a fresh trainer loaded from the checkpoint.
    auto model_b = fresh_model(99);
    tiny_trainer resumed(*model_b, data, tiny_table(), tiny_options(2 * n));
    CHECK(snapshot(resumed).weights != halfway.weights);
    resumed.load_checkpoint(dir.path);
    CHECK(snapshot(resumed) == halfway);
    CHECK(resumed.step_count() == n);
    for (std::int64_t i = 0; i < n; ++i) resumed.step();
    const state_snapshot after = snapshot(resumed);
    CHECK(after.step == expected.step);
    CHECK(after.adam_steps == expected.adam_steps);
    CHECK(after.ema_updates == expected.ema_updates);
    CHECK(after.weights == expected.weights);
    CHECK(after.exp_avg == expected.exp_avg);
    CHECK(after.exp_avg_sq == expected.exp_avg_sq);
    CHECK(after.ema == expected.ema);
}

TEST_CASE("the optimiser is a policy: an SGD trainer trains, resumes bitwise, and refuses an AdamW checkpoint",
          "[trainer][resume][optim]") {
    using sgd_trainer = diffusion::trainer<tiny_unet, diffusion::epsilon_prediction,
                                           optim::linear_warmup<optim::constant_lr>, optim::sgd<float>>;
    static_assert(std::same_as<sgd_trainer::optimizer_type, optim::sgd<float>>);
    const data::image_dataset data = tiny_data();
    const std::int64_t n = resume_steps;
    diffusion::trainer_options o = tiny_options(2 * n);
    o.lr = 0.05;
    o.beta1 = 0.9;  // SGD's momentum
    scratch_dir dir("optimizer_policy");

    auto model_c = fresh_model(1);
    sgd_trainer uninterrupted(*model_c, data, tiny_table(), o);
    const std::vector<float> initial(model_c->store().values(), model_c->store().values() + model_c->store().size());
    uninterrupted.train();
    CHECK(uninterrupted.optimizer().step_count() == 2 * n);
    CHECK(uninterrupted.optimizer().options().momentum == 0.9);
    const auto& trained = model_c->store();
    const std::vector<float> expected(trained.values(), trained.values() + trained.size());
    CHECK(expected != initial);
    const std::vector<float> expected_buffer(uninterrupted.optimizer().state(0),
                                             uninterrupted.optimizer().state(0) + trained.size());

    auto model_a = fresh_model(1);
    sgd_trainer first(*model_a, data, tiny_table(), o);
    for (std::int64_t i = 0; i < n; ++i) first.step();
    first.save_checkpoint(dir.path);
    auto model_b = fresh_model(99);
    sgd_trainer resumed(*model_b, data, tiny_table(), o);
    resumed.load_checkpoint(dir.path);
    CHECK(resumed.optimizer().step_count() == n);
    for (std::int64_t i = 0; i < n; ++i) resumed.step();
    const auto& store = model_b->store();
    CHECK(std::vector<float>(store.values(), store.values() + store.size()) == expected);
    CHECK(std::vector<float>(resumed.optimizer().state(0), resumed.optimizer().state(0) + store.size()) ==
          expected_buffer);

    // The trainer file names its optimiser and holds its buffer under the optimiser's name.
    const diffusion::checkpoint_contents c =
        diffusion::inspect_checkpoint(dir.path, diffusion::identity_of<tiny_unet>());
    CHECK(c.trainer_metadata.at("optimizer") == "sgd");
    CHECK(c.trainer_metadata.at("sgd_step") == std::to_string(n));
    CHECK(io::safetensors_reader(c.trainer_path).contains("sgd.momentum_buffer." + store.entries().front().name));

    // An AdamW trainer (the default) refuses the SGD checkpoint, naming both, and keeps its state.
    auto model_d = fresh_model(3);
    tiny_trainer adam(*model_d, data, tiny_table(), tiny_options(2 * n));
    CHECK_THROWS_WITH(adam.load_checkpoint(dir.path),
                      Catch::Contains("saved by the optimizer 'sgd', this trainer uses 'adamw'"));
    CHECK(adam.step_count() == 0);
}

TEST_CASE("a run resumed in a fresh process continues bitwise like an uninterrupted one", "[trainer][resume]") {
    const data::image_dataset data = tiny_data();
    const std::int64_t n = resume_steps;
    scratch_dir dir("resume_process");

    auto model_c = fresh_model(1);
    tiny_trainer uninterrupted(*model_c, data, tiny_table(), tiny_options(2 * n));
    uninterrupted.train();
    const state_snapshot expected = snapshot(uninterrupted);

    // This process: N steps and a checkpoint through train() (a callback stops it at N).
    auto model_a = fresh_model(1);
    diffusion::trainer_options o = tiny_options(2 * n);
    o.checkpoint_dir = dir.path;
    tiny_trainer first(*model_a, data, tiny_table(), o);
    struct stop_at {
        std::int64_t at;
        bool on_step(std::int64_t step, double) { return step == at; }
    } stop{n};
    const diffusion::train_result r = first.train(stop);
    CHECK(r.stopped_early);
    CHECK(r.step == n);
    REQUIRE(diffusion::read_checkpoint_manifest(dir.path).current().step == n);

    // A fresh process (this test binary, running the hidden case below) resumes and finishes.
    const fs::path self = fs::read_symlink("/proc/self/exe");
    const fs::path log = dir.path / "child.log";
    ::setenv(child_dir_variable, dir.path.c_str(), 1);
    const std::string command = "'" + self.string() + "' '[trainer_child]' > '" + log.string() + "' 2>&1";
    const int status = std::system(command.c_str());
    ::unsetenv(child_dir_variable);
    INFO("child process output:\n" << read_text(log));
    REQUIRE(status == 0);
    REQUIRE(diffusion::read_checkpoint_manifest(dir.path).current().step == 2 * n);

    auto model_b = fresh_model(99);
    tiny_trainer loaded(*model_b, data, tiny_table(), tiny_options(2 * n));
    loaded.load_checkpoint(dir.path);
    CHECK(snapshot(loaded) == expected);
}

// Run by the test above in a child process; hidden from the default run.
TEST_CASE("child process of the fresh-process resume test", "[.][trainer_child]") {
    const char* dir = std::getenv(child_dir_variable);
    REQUIRE(dir != nullptr);  // only the test above starts this case, with the directory set
    const data::image_dataset data = tiny_data();
    auto model = fresh_model(12345);
    diffusion::trainer_options o = tiny_options(2 * resume_steps);
    o.checkpoint_dir = dir;
    tiny_trainer t(*model, data, tiny_table(), o);
    REQUIRE(t.resume());
    REQUIRE(t.step_count() == resume_steps);
    const diffusion::train_result r = t.train();
    CHECK(r.steps_run == resume_steps);
    CHECK(r.step == 2 * resume_steps);
}

TEST_CASE("training results are bitwise identical at 1 and 2 threads", "[trainer][threads]") {
    const data::image_dataset data = tiny_data();
    auto run = [&](int threads) {
        set_threads(threads);
        auto model = fresh_model(1);
        tiny_trainer t(*model, data, tiny_table(), tiny_options(4));
        t.train();
        return snapshot(t);
    };
    const int saved = max_threads();
    const state_snapshot one = run(1), two = run(2);
    set_threads(saved);
    CHECK(one == two);
}

TEST_CASE("the loss falls on a learnable data set, for epsilon and v prediction", "[trainer][learning]") {
    // One thread: this case checks learning, not parallelism (checked above), and its 200 small
    // steps would mostly measure OpenMP's spin-waiting on a machine busy with other work.
    const int saved_threads = max_threads();
    set_threads(1);
    struct restore_threads {
        int n;
        ~restore_threads() { set_threads(n); }
    } restore{saved_threads};
    const data::image_dataset data = tiny_data();
    diffusion::trainer_options o = tiny_options(100);
    o.batch_size = 8;
    o.lr = 3e-3;
    o.warmup_steps = 10;
    o.label_drop = 0.0;
    std::vector<double> losses;
    struct record {
        std::vector<double>* losses;
        void on_step(const diffusion::step_event& e) { losses->push_back(e.loss); }
    };
    auto mean = [&](std::size_t begin, std::size_t end) {
        double s = 0;
        for (std::size_t i = begin; i < end; ++i) s += losses[i];
        return s / static_cast<double>(end - begin);
    };

    SECTION("epsilon prediction, cosine schedule") {
        auto model = fresh_model(3);
        diffusion::trainer<tiny_unet, diffusion::epsilon_prediction, optim::linear_warmup<optim::cosine_decay>> t(
            *model, data, tiny_table(), o);
        CHECK(t.lr_schedule()(10) == Approx(3e-3));
        CHECK(t.lr_schedule()(99) < 1e-5);
        t.train(record{&losses});
        REQUIRE(losses.size() == 100);
        // A fresh model predicts 0 (zero output conv), so the first losses are E[eps^2] ~ 1.
        CHECK(mean(0, 10) == Approx(1.0).epsilon(0.25));
        INFO("first 10: " << mean(0, 10) << ", last 30: " << mean(70, 100));
        CHECK(mean(70, 100) < 0.5 * mean(0, 10));
    }
    SECTION("v prediction") {
        auto model = fresh_model(3);
        diffusion::trainer<tiny_unet, diffusion::v_prediction> t(*model, data, tiny_table(), o);
        t.train(record{&losses});
        INFO("first 10: " << mean(0, 10) << ", last 30: " << mean(70, 100));
        CHECK(mean(70, 100) < 0.5 * mean(0, 10));
    }
}

TEMPLATE_TEST_CASE("a NaN loss stops training with an error naming the step; the last good checkpoint still loads",
                   "[trainer][nan]", cpu, cpu_strict) {
    using tiny_trainer = diffusion::trainer<tiny_unet_on<TestType>>;
    const auto fresh_model = [](std::uint64_t init_seed) { return ::fresh_model<TestType>(init_seed); };
    data::image_dataset data = tiny_data();
    scratch_dir dir(std::string("nan_") + TestType::name);
    diffusion::trainer_options o = tiny_options(20);
    o.checkpoint_dir = dir.path;
    o.checkpoint_every = 5;
    auto model = fresh_model(1);
    tiny_trainer t(*model, data, tiny_table(), o);

    // After step 7 every pixel becomes NaN, so step 8's loss is NaN.
    struct poison {
        data::image_dataset* data;
        state_snapshot* at_checkpoint;
        tiny_trainer* trainer;
        void on_step(std::int64_t step, double) {
            if (step == 7) data->images.fill(std::nanf(""));
        }
        void on_checkpoint(const diffusion::checkpoint_event&) { *at_checkpoint = snapshot(*trainer); }
    };
    state_snapshot good;
    CHECK_THROWS_WITH(t.train(poison{&data, &good, &t}), Catch::Contains("loss of step 8 of 20 is not finite") &&
                                                             Catch::Contains("last good checkpoint (step 5"));
    CHECK(t.step_count() == 7);  // no update from the poisoned step
    CHECK(good.step == 5);
    CHECK(diffusion::read_checkpoint_manifest(dir.path).current().step == 5);

    // The poisoned data are refused by a new trainer before training, naming the item.
    auto other = fresh_model(1);
    CHECK_THROWS_WITH(tiny_trainer(*other, data, tiny_table(), o),
                      Catch::Contains("non-finite pixel") && Catch::Contains("item 0"));

    // The checkpoint of step 5 loads into a fresh trainer on the clean data.
    const data::image_dataset clean = tiny_data();
    auto model_b = fresh_model(42);
    tiny_trainer resumed(*model_b, clean, tiny_table(), o);
    REQUIRE(resumed.resume());
    CHECK(snapshot(resumed) == good);

    // A poisoned state is never written over a good checkpoint.
    const float nan = std::nanf("");  // written through the backend: the host may not touch its memory
    copy_from_host(tensor_view<const float>(&nan, shape{1}),
                   tensor_view<float, TestType>(model_b->store().values() + 3, shape{1}));
    CHECK_THROWS_WITH(resumed.save_checkpoint(), Catch::Contains("refusing to write") && Catch::Contains("not finite"));
    CHECK(diffusion::read_checkpoint_manifest(dir.path).current().step == 5);
    auto model_c = fresh_model(43);
    tiny_trainer again(*model_c, clean, tiny_table(), o);
    REQUIRE(again.resume());
    CHECK(snapshot(again) == good);
}

namespace {

// tiny_unet whose backward writes `value` into one gradient at backward call `at` (0-based): a
// NaN or Inf in the gradients with a finite loss, which only the gradient check can catch.
struct grad_poisoned_unet : tiny_unet {
    std::int64_t at = -1, calls = 0;
    float value = 0;
    tensor_view<const float> backward(tensor_view<const float> dout) {
        const tensor_view<const float> g = tiny_unet::backward(dout);
        if (calls++ == at) store().grads()[11] = value;
        return g;
    }
};
static_assert(diffusion::trainable_model<grad_poisoned_unet>);

// The checkpoint a run last wrote, byte for byte, as on_checkpoint saw it.
struct written_checkpoint {
    std::int64_t step = -1;
    std::string model_file, trainer_file;
    std::string manifest, model, trainer;
};

struct poison_watch {
    std::function<void(std::int64_t)> at_step;
    written_checkpoint* last;
    void on_step(std::int64_t step, double) {
        if (at_step) at_step(step);
    }
    void on_checkpoint(const diffusion::checkpoint_event& e) {
        last->step = e.step;
        last->model_file = e.entry.model_file;
        last->trainer_file = e.entry.trainer_file;
        last->manifest = read_text(e.dir / diffusion::manifest_file_name);
        last->model = read_text(e.dir / e.entry.model_file);
        last->trainer = read_text(e.dir / e.entry.trainer_file);
    }
};

// The message of the ouro::error that ends `t.train(callbacks...)`; fails the test when none does.
template <class Trainer, class... Callbacks>
std::string failure_of(Trainer& t, Callbacks&&... callbacks) {
    try {
        t.train(std::forward<Callbacks>(callbacks)...);
    } catch (const ouro::error& e) {
        return e.what();
    }
    FAIL("training ran to the end instead of stopping");
    return {};
}

// Every float of every safetensors file in `dir` (weights, moments, EMA) is finite.
void require_every_checkpoint_file_finite(const fs::path& dir) {
    int files = 0;
    for (const auto& f : fs::directory_iterator(dir)) {
        if (f.path().extension() != ".safetensors") continue;
        ++files;
        io::safetensors_reader r(f.path());
        for (const auto& e : r.entries()) {
            if (e.dtype != io::safetensors_dtype::f32) continue;
            const tensor<float> t = r.read<float>(e.name);
            const bool finite = std::all_of(t.begin(), t.end(), [](float v) { return std::isfinite(v); });
            INFO(f.path().string() << ": " << e.name);
            CHECK(finite);
        }
    }
    CHECK(files >= 2);  // at least the kept pair
}

// The run's last checkpoint is on disk as it was written, still current, and resumes a fresh
// trainer on clean data to its step.
void require_kept(const fs::path& dir, const written_checkpoint& last) {
    REQUIRE(last.step >= 1);
    CHECK(read_text(dir / diffusion::manifest_file_name) == last.manifest);
    CHECK(read_text(dir / last.model_file) == last.model);
    CHECK(read_text(dir / last.trainer_file) == last.trainer);
    require_every_checkpoint_file_finite(dir);
    const data::image_dataset clean = tiny_data();
    auto model = fresh_model(42);
    diffusion::trainer_options o = tiny_options(20);
    o.checkpoint_dir = dir;
    o.strict_resume = false;  // the huge-lr case resumed with another lr
    tiny_trainer t(*model, clean, tiny_table(), o);
    REQUIRE(t.resume());
    CHECK(t.step_count() == last.step);
}

}  // namespace

TEST_CASE(
    "poisoned training (Inf data, NaN or Inf gradients, a huge lr) stops naming the step and never writes a "
    "non-finite checkpoint",
    "[trainer][nan]") {
    data::image_dataset data = tiny_data();
    scratch_dir dir("poison");
    diffusion::trainer_options o = tiny_options(20);
    o.checkpoint_dir = dir.path;
    o.checkpoint_every = 2;
    o.keep_checkpoints = 3;
    auto model = std::make_unique<grad_poisoned_unet>();
    model->reset_parameters(1);
    written_checkpoint last;

    SECTION("an Inf batch") {
        diffusion::trainer<grad_poisoned_unet> t(*model, data, tiny_table(), o);
        const std::string message =
            failure_of(t, poison_watch{[&](std::int64_t s) {
                                           if (s == 7) data.images.fill(std::numeric_limits<float>::infinity());
                                       },
                                       &last});
        CHECK_THAT(message, Catch::Contains("loss of step 8 of 20 is not finite") &&
                                Catch::Contains("last good checkpoint (step 6"));
        CHECK(t.step_count() == 7);
        CHECK(last.step == 6);
        require_kept(dir.path, last);
    }
    SECTION("a NaN gradient") {
        model->at = 4;  // backward of step 5
        model->value = std::nanf("");
        diffusion::trainer<grad_poisoned_unet> t(*model, data, tiny_table(), o);
        CHECK_THAT(failure_of(t, poison_watch{{}, &last}),
                   Catch::Contains("gradient norm of step 5 of 20 is not finite") &&
                       Catch::Contains("last good checkpoint (step 4"));
        CHECK(t.step_count() == 4);
        require_kept(dir.path, last);
    }
    SECTION("an Inf gradient, without clipping") {
        model->at = 8;  // backward of step 9
        model->value = -std::numeric_limits<float>::infinity();
        o.grad_clip = 0;
        diffusion::trainer<grad_poisoned_unet> t(*model, data, tiny_table(), o);
        CHECK_THAT(failure_of(t, poison_watch{{}, &last}),
                   Catch::Contains("gradient norm of step 9 of 20 is not finite"));
        CHECK(t.step_count() == 8);
        CHECK(last.step == 8);
        require_kept(dir.path, last);
    }
    SECTION("a learning rate whose update overflows float") {
        // Six good steps, then the run resumed with lr 1e39 (above float's range: the update is ±Inf
        // while the loss and gradients are finite).
        {
            diffusion::trainer<grad_poisoned_unet> t(*model, data, tiny_table(), o);
            poison_watch watch{[&](std::int64_t) {}, &last};
            for (int i = 0; i < 6; ++i) t.step();
            watch.on_checkpoint({6, dir.path, t.save_checkpoint()});
        }
        diffusion::trainer_options huge = o;
        huge.lr = 1e39;
        huge.strict_resume = false;
        diffusion::trainer<grad_poisoned_unet> t(*model, data, tiny_table(), huge);
        REQUIRE(t.resume());
        CHECK_THAT(failure_of(t, poison_watch{{}, &last}), Catch::Contains("update of step 7 of 20") &&
                                                               Catch::Contains("made the weights non-finite") &&
                                                               Catch::Contains("last good checkpoint (step 6"));
        CHECK(last.step == 6);
        require_kept(dir.path, last);
    }
    SECTION("a learning rate so large that the next loss overflows") {
        o.lr = 1e30;
        o.warmup_steps = 0;
        o.checkpoint_every = 1;
        diffusion::trainer<grad_poisoned_unet> t(*model, data, tiny_table(), o);
        const std::string message = failure_of(t, poison_watch{{}, &last});
        INFO(message);
        // Whichever check fires first (the weights after an update, or a later loss or gradient
        // norm), it names the step that failed: the one after the last completed.
        CHECK_THAT(message, Catch::Contains("step " + std::to_string(t.step_count() + 1) + " of 20") &&
                                (Catch::Contains("not finite") || Catch::Contains("non-finite")));
        CHECK(fs::exists(dir.path / diffusion::manifest_file_name) == (last.step >= 1));
        if (last.step >= 1) require_kept(dir.path, last);
    }
    SECTION("an infinite learning rate is refused before training") {
        o.lr = std::numeric_limits<double>::infinity();
        CHECK_THROWS_WITH(diffusion::trainer<grad_poisoned_unet>(*model, data, tiny_table(), o),
                          Catch::Contains("lr must be finite"));
    }
}

namespace {

// Replaces the model file of the current checkpoint in `dir` by `model_bytes` and re-binds the pair
// (the trainer file's model_crc32, the manifest's sizes and CRCs), so that only the values can
// tell; with `poison_tensor` set, that tensor of the trainer file gets a NaN too.
void rebind_current_pair(const fs::path& dir, const std::string& model_bytes, const std::string& poison_tensor = {}) {
    using diffusion::checkpoint_detail::crc32_bytes;
    using diffusion::checkpoint_detail::hex;
    const fs::path manifest_path = dir / diffusion::manifest_file_name;
    nlohmann::json j = nlohmann::json::parse(read_text(manifest_path));
    auto& entry = j["checkpoints"][0];
    const fs::path model_path = dir / entry["model"].get<std::string>();
    const fs::path trainer_path = dir / entry["trainer"].get<std::string>();
    write_text(model_path, model_bytes);
    const std::string model_crc = hex(crc32_bytes(model_bytes.data(), model_bytes.size()), 8);

    std::vector<std::pair<std::string, tensor<float>>> tensors;
    io::safetensors_metadata metadata;
    {
        io::safetensors_reader r(trainer_path);
        metadata = r.metadata();
        for (const auto& e : r.entries()) tensors.emplace_back(e.name, r.read<float>(e.name));
    }
    io::safetensors_writer w;
    bool poisoned = poison_tensor.empty();
    for (auto& [name, t] : tensors) {
        if (name == poison_tensor) {
            t[t.numel() / 2] = std::nanf("");
            poisoned = true;
        }
        w.add(name, t);
    }
    REQUIRE(poisoned);
    metadata.erase(io::safetensors_checksum_key);
    metadata["model_crc32"] = model_crc;
    w.set_metadata(metadata);
    w.set_data_checksum();
    const std::string trainer_bytes = w.serialize();
    write_text(trainer_path, trainer_bytes);

    entry["model_bytes"] = model_bytes.size();
    entry["model_crc32"] = model_crc;
    entry["trainer_bytes"] = trainer_bytes.size();
    entry["trainer_crc32"] = hex(crc32_bytes(trainer_bytes.data(), trainer_bytes.size()), 8);
    write_text(manifest_path, j.dump(2));
}

}  // namespace

TEST_CASE("model files and checkpoints holding NaN weights are refused on load, naming the file, changing nothing",
          "[trainer][nan][checkpoint][errors]") {
    const data::image_dataset data = tiny_data();
    scratch_dir dir("nan_load");
    diffusion::trainer_options o = tiny_options(4);
    o.checkpoint_dir = dir.path;
    auto model = fresh_model(1);
    tiny_trainer t(*model, data, tiny_table(), o);
    t.step();
    const diffusion::checkpoint_entry e = t.save_checkpoint();
    const auto& store = model->store();
    const auto id = diffusion::identity_of<tiny_unet>();

    // ouro would not write these weights (save_model refuses them), so the file is made by hand:
    // a well-formed model file, with a valid checksum, of NaN in one weight.
    std::vector<float> weights(store.values(), store.values() + store.size());
    weights[static_cast<std::size_t>(store.size() / 2)] = std::nanf("");
    const std::string nan_bytes = diffusion::serialize_model_file(store, weights.data(), id, 1);

    auto other = fresh_model(2);
    tiny_trainer loader(*other, data, tiny_table(), o);
    const state_snapshot before = snapshot(loader);

    SECTION("a model file") {
        write_text(dir.path / "nan.safetensors", nan_bytes);
        CHECK_THROWS_WITH(diffusion::load_model(dir.path / "nan.safetensors", *other),
                          Catch::Contains((dir.path / "nan.safetensors").string()) &&
                              Catch::Contains("refusing to load non-finite weights"));
        CHECK(snapshot(loader) == before);
        // The same values, finite, load (the refusal is about the NaN, not the hand-made file).
        weights[static_cast<std::size_t>(store.size() / 2)] = 0.25f;
        write_text(dir.path / "fine.safetensors", diffusion::serialize_model_file(store, weights.data(), id, 1));
        CHECK_NOTHROW(diffusion::load_model(dir.path / "fine.safetensors", *other));
    }
    SECTION("the model file of a checkpoint pair") {
        rebind_current_pair(dir.path, nan_bytes);
        CHECK_THROWS_WITH(loader.resume(), Catch::Contains((dir.path / e.model_file).string()) &&
                                               Catch::Contains("refusing to load non-finite weights"));
        CHECK(snapshot(loader) == before);
        CHECK_THROWS_WITH(diffusion::load_checkpoint_weights(dir.path, *other, diffusion::checkpoint_weights::trained),
                          Catch::Contains("non-finite weights"));
        CHECK(snapshot(loader) == before);
    }
    SECTION("the EMA weights and moments of a trainer file") {
        const std::string name = store.entries().front().name;
        for (const std::string& prefix : {std::string("ema."), std::string("adamw.exp_avg_sq.")}) {
            rebind_current_pair(dir.path, read_text(dir.path / e.model_file), prefix + name);
            const std::string trainer_file =
                (dir.path /
                 nlohmann::json::parse(read_text(dir.path / diffusion::manifest_file_name))["checkpoints"][0]["trainer"]
                     .get<std::string>())
                    .string();
            CHECK_THROWS_WITH(loader.resume(),
                              Catch::Contains(trainer_file) && Catch::Contains("non-finite") && Catch::Contains(name));
            CHECK(snapshot(loader) == before);
            if (prefix == "ema.") {
                CHECK_THROWS_WITH(
                    diffusion::load_checkpoint_weights(dir.path, *other, diffusion::checkpoint_weights::ema),
                    Catch::Contains(trainer_file) && Catch::Contains("non-finite EMA weights"));
                CHECK(snapshot(loader) == before);
            }
            // Restore the good pair for the next round.
            t.save_checkpoint();
        }
    }
}

TEST_CASE("a checkpoint of another spec is refused with both spec strings", "[trainer][checkpoint][errors]") {
    const data::image_dataset data = tiny_data();
    scratch_dir dir("spec");
    auto model = fresh_model(1);
    tiny_trainer t(*model, data, tiny_table(), tiny_options(4));
    t.step();
    const diffusion::checkpoint_entry e = t.save_checkpoint(dir.path);

    wider_unet wider;
    wider.reset_parameters(1);
    diffusion::trainer<wider_unet> other(wider, data, tiny_table(), tiny_options(4));
    CHECK_THROWS_WITH(other.load_checkpoint(dir.path),
                      Catch::Contains(tiny_spec.str()) && Catch::Contains(wider_spec.str()));
    CHECK_THROWS_WITH(diffusion::load_model(dir.path / e.model_file, wider),
                      Catch::Contains(tiny_spec.str()) && Catch::Contains(wider_spec.str()));
    CHECK_THROWS_WITH(diffusion::load_checkpoint_weights(dir.path, wider),
                      Catch::Contains(tiny_spec.str()) && Catch::Contains(wider_spec.str()));

    // The model file alone says what it is.
    const io::safetensors_metadata m = io::read_safetensors_metadata(dir.path / e.model_file);
    CHECK(m.at("spec") == tiny_spec.str());
    CHECK(m.at("step") == "1");
    CHECK(m.at("ouro_version") == diffusion::library_version);
    CHECK(m.at("spec_hash").size() == 16);

    // And loads into a model of its own spec, trained or EMA weights.
    auto same = fresh_model(5);
    diffusion::load_model(dir.path / e.model_file, *same);
    CHECK(std::equal(same->store().values(), same->store().values() + same->store().size(), model->store().values()));
    CHECK(diffusion::load_checkpoint_weights(dir.path, *same, diffusion::checkpoint_weights::ema) == 1);
    CHECK(std::equal(same->store().values(), same->store().values() + same->store().size(), t.ema()->values()));
}

TEST_CASE("truncated, corrupt, foreign and mismatched checkpoint files are refused clearly",
          "[trainer][checkpoint][errors]") {
    const data::image_dataset data = tiny_data();
    scratch_dir dir("broken");
    diffusion::trainer_options o = tiny_options(10);
    o.checkpoint_dir = dir.path;
    o.checkpoint_every = 5;
    auto model = fresh_model(1);
    tiny_trainer t(*model, data, tiny_table(), o);
    t.train();
    const diffusion::checkpoint_manifest manifest = diffusion::read_checkpoint_manifest(dir.path);
    REQUIRE(manifest.checkpoints.size() == 2);  // keep_checkpoints = 2: steps 10 and 5
    CHECK(manifest.checkpoints[0].step == 10);
    CHECK(manifest.checkpoints[1].step == 5);
    const fs::path model_file = dir.path / manifest.current().model_file;
    const fs::path trainer_file = dir.path / manifest.current().trainer_file;
    const std::string model_bytes = read_text(model_file), trainer_bytes = read_text(trainer_file);
    const std::string manifest_text = read_text(dir.path / diffusion::manifest_file_name);

    auto fresh = fresh_model(2);
    tiny_trainer loader(*fresh, data, tiny_table(), o);
    const state_snapshot before = snapshot(loader);

    SECTION("truncated model file") {
        fs::resize_file(model_file, model_bytes.size() - 100);
        CHECK_THROWS_WITH(loader.load_checkpoint(dir.path),
                          Catch::Contains("truncated") && Catch::Contains(model_file.string()));
        // Alone, without the manifest, the safetensors reader says the same.
        CHECK_THROWS_WITH(diffusion::load_model(model_file, *fresh), Catch::Contains("truncated"));
        CHECK(snapshot(loader) == before);  // a refused load changes nothing
        // The older checkpoint, untouched, still loads by its step.
        CHECK(loader.load_checkpoint(dir.path, 5).step == 5);
    }
    SECTION("truncated trainer file") {
        fs::resize_file(trainer_file, 16);
        CHECK_THROWS_WITH(loader.load_checkpoint(dir.path), Catch::Contains("truncated"));
        CHECK(snapshot(loader) == before);
    }
    SECTION("a flipped byte") {
        std::string bad = model_bytes;
        bad[bad.size() - 7] ^= 0x10;
        write_text(model_file, bad);
        CHECK_THROWS_WITH(loader.load_checkpoint(dir.path), Catch::Contains("corrupt") && Catch::Contains("CRC-32"));
        CHECK(snapshot(loader) == before);
    }
    SECTION("a foreign file") {
        write_text(dir.path / "foreign.safetensors", "GIF89a, not a checkpoint at all, just some bytes");
        CHECK_THROWS_WITH(diffusion::load_model(dir.path / "foreign.safetensors", *fresh),
                          Catch::Contains("not a safetensors file"));
        // A valid safetensors file that ouro did not write as a model.
        io::save_parameters(dir.path / "plain.safetensors", fresh->store());
        CHECK_THROWS_WITH(diffusion::load_model(dir.path / "plain.safetensors", *fresh),
                          Catch::Contains("not an ouro model checkpoint") && Catch::Contains(tiny_spec.str()));
        write_text(dir.path / diffusion::manifest_file_name, "{\"not\": \"a manifest\"}");
        CHECK_THROWS_WITH(loader.load_checkpoint(dir.path), Catch::Contains("not a checkpoint manifest"));
        CHECK(snapshot(loader) == before);
    }
    SECTION("a mismatched pair") {
        // The manifest pairs the model of step 10 with the trainer state of step 5 (sizes and CRCs
        // fixed up, so only the binding of the two files tells).
        nlohmann::json j = nlohmann::json::parse(manifest_text);
        for (const char* key : {"trainer", "trainer_bytes", "trainer_crc32"})
            j["checkpoints"][0][key] = j["checkpoints"][1][key];
        write_text(dir.path / diffusion::manifest_file_name, j.dump());
        CHECK_THROWS_WITH(loader.load_checkpoint(dir.path), Catch::Contains("mismatched checkpoint pair"));
        CHECK(snapshot(loader) == before);
    }
    SECTION("a missing directory or step") {
        CHECK_THROWS_WITH(loader.load_checkpoint(dir.path / "nowhere"), Catch::Contains("no checkpoint"));
        CHECK_THROWS_WITH(loader.load_checkpoint(dir.path, 7),
                          Catch::Contains("no checkpoint of step 7") && Catch::Contains("steps 10, 5"));
        CHECK(snapshot(loader) == before);
        CHECK(loader.resume());  // the real directory still loads
        CHECK(loader.step_count() == 10);
    }
}

TEST_CASE("a strict resume refuses a checkpoint of other settings and names each difference",
          "[trainer][checkpoint][errors]") {
    const data::image_dataset data = tiny_data();
    scratch_dir dir("strict");
    auto model = fresh_model(1);
    tiny_trainer t(*model, data, tiny_table(), tiny_options(6));
    t.step();
    t.save_checkpoint(dir.path);

    diffusion::trainer_options o = tiny_options(6);
    o.seed = 8;
    o.batch_size = 6;
    auto other = fresh_model(1);
    tiny_trainer different(*other, data, tiny_table(), o);
    CHECK_THROWS_WITH(different.load_checkpoint(dir.path),
                      Catch::Contains("seed: checkpoint 7, this trainer 8") && Catch::Contains("batch_size"));
    const data::image_dataset more = tiny_data(15);
    tiny_trainer other_data(*other, more, tiny_table(), tiny_options(6));
    CHECK_THROWS_WITH(other_data.load_checkpoint(dir.path), Catch::Contains("data: checkpoint 12 items"));
    o.strict_resume = false;
    tiny_trainer lenient(*other, data, tiny_table(), o);
    CHECK(lenient.load_checkpoint(dir.path).step == 1);
}

TEST_CASE("labels are dropped to the null class at the given rate, the batch plan is a pure function of the step",
          "[trainer][batches]") {
    const data::image_dataset data = tiny_data();
    auto model = fresh_model(1);
    auto plan_with = [&](double p, std::int64_t batch) {
        diffusion::trainer_options o = tiny_options(10);
        o.label_drop = p;
        o.batch_size = batch;
        return std::make_unique<tiny_trainer>(*model, data, tiny_table(), o);
    };

    const double p = 0.25;
    const auto t = plan_with(p, 16);
    std::int64_t dropped = 0, total = 0;
    for (std::int64_t s = 0; s < 500; ++s) {
        const diffusion::batch_plan b = t->plan_batch(s);
        for (std::int64_t i = 0; i < 16; ++i) {
            const std::int64_t item = b.items[static_cast<std::size_t>(i)];
            if (b.labels[i] == tiny_spec.classes) ++dropped;
            else
                REQUIRE(b.labels[i] == data.labels[item]);
            REQUIRE(b.timesteps[i] >= 0);
            REQUIRE(b.timesteps[i] < 100);
            ++total;
        }
    }
    // Binomial(8000, 0.25): mean 2000, standard deviation 38.7; 4.5 sigma either side.
    CHECK(total == 8000);
    CHECK(std::abs(static_cast<double>(dropped) - p * total) < 175);
    CHECK(dropped > 0);

    for (double q : {0.0, 1.0}) {
        const auto u = plan_with(q, 8);
        std::int64_t nulls = 0;
        for (std::int64_t s = 0; s < 50; ++s) {
            const diffusion::batch_plan b = u->plan_batch(s);
            for (std::int64_t i = 0; i < 8; ++i) nulls += b.labels[i] == tiny_spec.classes;
        }
        CHECK(nulls == (q == 1.0 ? 400 : 0));
    }

    // Batch 5 over 12 items: every epoch (12 positions) holds each item once, batches straddle
    // epochs, and a plan does not depend on which plans were made before it.
    const auto v = plan_with(0.0, 5);
    std::vector<std::int64_t> positions;
    for (std::int64_t s = 0; s < 12; ++s)
        for (std::int64_t item : v->plan_batch(s).items) positions.push_back(item);
    for (std::size_t e = 0; e < 5; ++e) {
        std::vector<std::int64_t> epoch(positions.begin() + static_cast<std::ptrdiff_t>(e * 12),
                                        positions.begin() + static_cast<std::ptrdiff_t>(e * 12 + 12));
        std::sort(epoch.begin(), epoch.end());
        for (std::int64_t i = 0; i < items; ++i) CHECK(epoch[static_cast<std::size_t>(i)] == i);
    }
    const diffusion::batch_plan late = v->plan_batch(9);
    const auto w = plan_with(0.0, 5);
    const diffusion::batch_plan direct = w->plan_batch(9);
    CHECK(late.items == direct.items);
    CHECK(std::equal(late.timesteps.begin(), late.timesteps.end(), direct.timesteps.begin()));
    CHECK(late.items != v->plan_batch(8).items);
}

TEST_CASE("data that do not fit the model's spec are refused before training, naming both shapes",
          "[trainer][errors]") {
    auto model = fresh_model(1);
    const data::image_dataset big = tiny_data(4, 1, 16);
    CHECK_THROWS_WITH(tiny_trainer(*model, big, tiny_table(), tiny_options(4)),
                      Catch::Contains("(4, 1, 16, 16)") && Catch::Contains("(4, 1, 8, 8)") &&
                          Catch::Contains("refused before training"));
    const data::image_dataset rgb = tiny_data(4, 3, 8);
    CHECK_THROWS_WITH(tiny_trainer(*model, rgb, tiny_table(), tiny_options(4)),
                      Catch::Contains("(4, 3, 8, 8)") && Catch::Contains("(4, 1, 8, 8)"));
    data::image_dataset bad_label = tiny_data(4);
    bad_label.labels[2] = 3;
    CHECK_THROWS_WITH(tiny_trainer(*model, bad_label, tiny_table(), tiny_options(4)),
                      Catch::Contains("label 3 at item 2") && Catch::Contains("0..2"));
    data::image_dataset no_labels = tiny_data(4);
    no_labels.labels = tensor<std::int64_t>(shape{0});
    CHECK_THROWS_WITH(tiny_trainer(*model, no_labels, tiny_table(), tiny_options(4)),
                      Catch::Contains("class-conditional") && Catch::Contains("(4)"));
    const data::image_dataset fine = tiny_data(4);
    diffusion::trainer_options o = tiny_options(4);
    o.batch_size = 0;
    CHECK_THROWS_WITH(tiny_trainer(*model, fine, tiny_table(), o), Catch::Contains("batch_size must be >= 1"));
    o = tiny_options(0);
    CHECK_THROWS_WITH(tiny_trainer(*model, fine, tiny_table(), o), Catch::Contains("set steps or epochs"));
    o = tiny_options(4);
    o.sample_every = 2;
    CHECK_THROWS_WITH(tiny_trainer(*model, fine, tiny_table(), o), Catch::Contains("sample_dir"));
}

TEST_CASE("train reports progress and calls every hook; epochs set the length; a hook can stop the run",
          "[trainer][callbacks]") {
    const data::image_dataset data = tiny_data();
    scratch_dir dir("callbacks");
    std::ostringstream out;
    diffusion::trainer_options o = tiny_options(0);
    o.epochs = 2;  // 2 * 12 / 4 = 6 steps
    o.log_every = 2;
    o.checkpoint_dir = dir.path / "ckpt";
    o.checkpoint_every = 3;
    o.sample_every = 6;
    o.sample_count = 6;
    o.sample_steps = 4;
    auto model = fresh_model(1);
    tiny_trainer t(*model, data, tiny_table(), o);
    CHECK(t.total_steps() == 6);

    struct counter {
        std::vector<std::int64_t> steps, logs, epochs, checkpoints, samples;
        void on_step(const diffusion::step_event& e) { steps.push_back(e.step); }
        void on_log(const diffusion::log_event& e) {
            logs.push_back(e.step);
            CHECK(std::isfinite(e.loss));
            CHECK(e.images_per_second > 0);
        }
        void on_epoch_end(const diffusion::epoch_event& e) { epochs.push_back(e.epoch); }
        void on_checkpoint(const diffusion::checkpoint_event& e) { checkpoints.push_back(e.step); }
        void on_sample(const diffusion::sample_event& e) {
            samples.push_back(e.step);
            CHECK(e.images.dims() == shape{6, 1, 8, 8});
            CHECK(fs::exists(e.file));
        }
    } c;
    const diffusion::train_result r = t.train(
        c, diffusion::training_progress({.label = "train", .log_every = 2, .style = progress_style::log, .out = &out}));
    CHECK(r.step == 6);
    CHECK_FALSE(r.stopped_early);
    CHECK(c.steps == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
    CHECK(c.logs == std::vector<std::int64_t>{2, 4, 6});
    CHECK(c.epochs == std::vector<std::int64_t>{0, 1});
    CHECK(c.checkpoints == std::vector<std::int64_t>{3, 6});
    CHECK(c.samples == std::vector<std::int64_t>{6});
    const std::string grid = read_text(dir.path / "ckpt" / "samples" / "step-00000006.png");
    CHECK(grid.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));

    const std::string log = out.str();
    INFO(log);
    CHECK(log.find("train 2/6") != std::string::npos);
    CHECK(log.find("loss=") != std::string::npos);
    CHECK(log.find("img/s") != std::string::npos);
    CHECK(log.find("eta") != std::string::npos);

    // Sampling swaps the EMA weights in and out exactly: the run equals one without grids.
    auto plain_model = fresh_model(1);
    diffusion::trainer_options p = tiny_options(0);
    p.epochs = 2;
    tiny_trainer plain(*plain_model, data, tiny_table(), p);
    plain.train();
    CHECK(snapshot(plain) == snapshot(t));

    // Nothing left to do after the last step; a stop request ends a run early.
    CHECK(t.train().steps_run == 0);
    auto model_s = fresh_model(1);
    tiny_trainer stopping(*model_s, data, tiny_table(), tiny_options(10));
    struct stop_at_3 {
        bool on_step(const diffusion::step_event& e) { return e.step == 3; }
    };
    std::ostringstream stopped_log, quiet_log;
    const diffusion::train_result s = stopping.train(
        stop_at_3{}, diffusion::training_progress(
                         {.label = "stopped", .log_every = 100, .style = progress_style::log, .out = &stopped_log}));
    CHECK(s.stopped_early);
    CHECK(stopping.step_count() == 3);
    // The progress callback prints its last state when it goes, also for a run stopped early.
    INFO(stopped_log.str());
    CHECK(stopped_log.str().find("stopped 3/10") != std::string::npos);
    // progress_style::none: nothing at all, the run unchanged.
    stopping.train(stop_at_3{},
                   diffusion::training_progress(
                       {.label = "quiet", .log_every = 1, .style = progress_style::none, .out = &quiet_log}));
    CHECK(stopping.step_count() == 10);
    CHECK(quiet_log.str().empty());
}
