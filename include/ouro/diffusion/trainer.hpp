// The DDPM trainer (Ho et al. 2020, Algorithm 1): for a model, a parameterization and a learning-rate
// schedule, each step takes a batch in the seeded epoch order, draws t ~ U{0..T−1} and ε ~ N(0, I),
// noises x_0 to x_t, regresses the model output on the parameterization's target (MSE), and takes
// a clipped AdamW step followed by an EMA update. Every random choice of step s is a pure function
// of (seed, s), so a run resumed from a checkpoint continues bitwise as if never interrupted.
//
//   diffusion::trainer<nn::unet<cpu, spec>> run(model, data, schedule_table(linear_ho2020{}, 1000),
//                                             {.batch_size = 128, .steps = 50'000, .lr = 2e-4,
//                                              .checkpoint_dir = "runs/g0/checkpoints"});
//   run.resume();                        // continues from the checkpoint if there is one
//   run.train(diffusion::training_progress({.label = "G0"}));  // a progress bar; checkpoints, sample grids
//
// Its options are in trainer_options.hpp, the events its callbacks receive in training_events.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/batches.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/diffusion/forward_process.hpp"
#include "ouro/diffusion/parameterization.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/diffusion/trainer_options.hpp"
#include "ouro/diffusion/training_events.hpp"
#include "ouro/io/png.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/nn/module.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/clip.hpp"
#include "ouro/optim/ema.hpp"
#include "ouro/optim/lr_schedule.hpp"
#include "ouro/optim/optimizer.hpp"

namespace ouro::diffusion {

// ---- The model concept ------------------------------------------------------------------------

// A model the trainer can fit: forward in training mode and backward (accumulating parameter
// gradients in its float parameter store), and a static spec that gives the images it takes
// (in_channels, image_size), its classes (0: unconditional) and its name for checkpoints
// (str(), hash()). nn::unet is one. Images, outputs and the store are in the memory of the model's
// backend B (backend_of_t<M>: ouro::cpu unless it declares another); timesteps and labels come
// from the host, where the trainer draws them.
template <class M>
concept trainable_model = specified_model<M> &&
    requires(M& m, tensor_view<const float, backend_of_t<M>> x, tensor_view<const std::int64_t> t,
             tensor_view<const std::int64_t> y, const nn::forward_context& ctx) {
    { m.forward(x, t, y, ctx) } -> std::convertible_to<tensor_view<const float, backend_of_t<M>>>;
    { m.backward(x) } -> std::convertible_to<tensor_view<const float, backend_of_t<M>>>;
    { m.store() } -> std::same_as<parameter_store<float, backend_of_t<M>>&>;
    { M::spec.in_channels } -> std::convertible_to<std::int64_t>;
    { M::spec.image_size } -> std::convertible_to<std::int64_t>;
    { M::spec.classes } -> std::convertible_to<std::int64_t>;
};

// static_assert(check_trainable_model<M>()) explains in words what M lacks.
template <class M>
constexpr bool check_trainable_model() {
    using B = backend_of_t<M>;
    static_assert(
        requires(M & m, tensor_view<const float, B> x, tensor_view<const std::int64_t> t,
                 tensor_view<const std::int64_t> y, const nn::forward_context& ctx) {
            { m.forward(x, t, y, ctx) } -> std::convertible_to<tensor_view<const float, B>>;
        },
        "a trainable model needs `tensor_view<const float> forward(tensor_view<const float> x_t /*(B, C, H, W)*/, "
        "tensor_view<const std::int64_t> t /*(B)*/, tensor_view<const std::int64_t> y /*(B) or (0)*/, "
        "const nn::forward_context& ctx)` returning an output of x_t's shape");
    static_assert(
        requires(M & m, tensor_view<const float, B> dout) {
            { m.backward(dout) } -> std::convertible_to<tensor_view<const float, B>>;
        },
        "a trainable model needs `tensor_view<const float> backward(tensor_view<const float> dout)` that "
        "accumulates the parameter gradients of its store");
    static_assert(
        requires(M & m) {
            { m.store() } -> std::same_as<parameter_store<float, B>&>;
        },
        "a trainable model needs `parameter_store<float, B>& store()`, the flat buffer of its weights "
        "(B: its backend_type, ouro::cpu when it declares none)");
    static_assert(
        requires {
            { M::spec.in_channels } -> std::convertible_to<std::int64_t>;
            { M::spec.image_size } -> std::convertible_to<std::int64_t>;
            { M::spec.classes } -> std::convertible_to<std::int64_t>;
        },
        "a trainable model needs a static `spec` with in_channels, image_size and classes (as nn::unet's "
        "unet_spec), so the trainer can check the data against it");
    static_assert(specified_model<M>,
                  "a trainable model's static `spec` needs `std::string str() const` and `std::uint64_t hash() const`, "
                  "which name it in checkpoints");
    return trainable_model<M>;
}

// Which items, labels and timesteps step `step` (0-based) trains on.
struct batch_plan {
    std::int64_t step = 0;
    std::vector<std::int64_t> items;  // (B) indices into the data set
    tensor<std::int64_t> labels;      // (B) after label dropping, or (0) for an unconditional model
    tensor<std::int64_t> timesteps;   // (B)
};

// ---- The trainer ------------------------------------------------------------------------------

template <class Model, parameterization P = epsilon_prediction,
          optim::lr_schedule LR = optim::linear_warmup<optim::constant_lr>,
          class Opt = optim::adamw<float, backend_of_t<Model>>>
class trainer {
    static_assert(check_trainable_model<Model>());
    static_assert(check_parameterization<P>());
    static_assert(optim::optimizer<Opt, float, backend_of_t<Model>>,
                  "trainer: Opt must be an optim::optimizer over the model's parameter_store<float, B>");

public:
    using model_type = Model;
    using backend_type = backend_of_t<Model>;
    using parameterization_type = P;
    using lr_schedule_type = LR;
    using optimizer_type = Opt;

    static constexpr std::int64_t in_channels = Model::spec.in_channels;
    static constexpr std::int64_t image_size = Model::spec.image_size;
    static constexpr std::int64_t classes = Model::spec.classes;

    // Trains `model` (whose weights it starts from: initialise or load them first) on `data` with the
    // schedule of `table`. The lr schedule is built from the options: for linear_warmup<constant_lr>
    // a warm-up over warmup_steps into lr, for linear_warmup<cosine_decay> warmup_cosine(lr,
    // warmup_steps, total steps); other schedule types are passed to the constructor below.
    // Requires the data to fit the model (images (N, C, S, S) of its spec, labels in [0, classes)
    // for a class-conditional model, finite pixels), checked here, before any training.
    // `model` and `data` must outlive the trainer, and the data stay unchanged.
    trainer(Model& model, const data::image_dataset& data, schedule_table table, trainer_options options = {})
        : trainer(model, data, std::move(table), options, default_schedule(options, data)) {}

    trainer(Model& model, const data::image_dataset& data, schedule_table table, trainer_options options, LR schedule)
        : model_(model),
          data_(data),
          table_(std::move(table)),
          options_(std::move(options)),
          schedule_(std::move(schedule)),
          optimizer_(Opt::from_settings(std::as_const(model.store()), optimizer_settings_of(options_))) {
        validate(options_);
        check_data(data_);
        total_steps_ = total_steps_of(options_, data_.size());
        if (options_.use_ema) ema_.emplace(model_.store(), options_.ema);
        if (options_.sample_every > 0) {
            require(denoiser<Model>, "trainer: sample_every = ", options_.sample_every,
                    " needs a model with predict(x_t, t, y) for sampling");
            require(!options_.sample_dir.empty() || !options_.checkpoint_dir.empty(),
                    "trainer: sample_every = ", options_.sample_every,
                    " needs sample_dir (or checkpoint_dir) to write the grids to");
            require(options_.sample_steps <= table_.timesteps(), "trainer: sample_steps = ", options_.sample_steps,
                    " is above the schedule's T = ", table_.timesteps());
            require(options_.guidance_scale == 1.0 || classes > 0,
                    "trainer: guidance_scale = ", options_.guidance_scale,
                    " needs a class-conditional model; this one is unconditional (spec '", Model::spec.str(), "')");
        }
        x0_.resize(image_batch_shape());
        eps_.resize(image_batch_shape());
        x_t_.resize(image_batch_shape());
        target_.resize(image_batch_shape());
    }

    // The trainer keeps a reference to the data: a temporary data set would be gone after this line.
    trainer(Model&, data::image_dataset&&, schedule_table, trainer_options = {}) = delete;
    trainer(Model&, data::image_dataset&&, schedule_table, trainer_options, LR) = delete;
    trainer(const trainer&) = delete;
    trainer& operator=(const trainer&) = delete;

    // ---- Steps ----

    // Steps completed so far (the index of the next step); set by load_checkpoint.
    std::int64_t step_count() const { return step_; }
    std::int64_t total_steps() const { return total_steps_; }

    // The batch of step `step` (0-based): item positions p = step·B + b of the endless sequence of
    // epoch orders, epoch p / N at place p mod N of data::epoch_order(N, seed, epoch); each label
    // dropped to the null class when philox(seed, label_drop, p) < label_drop; t_b from
    // draw_timesteps(seed, first index step·B). A pure function of (seed, step).
    void plan_batch(std::int64_t step, batch_plan& plan) const {
        require(step >= 0, "trainer: step must be >= 0, found ", step);
        const std::int64_t batch = options_.batch_size, n = data_.size();
        plan.step = step;
        plan.items.resize(static_cast<std::size_t>(batch));
        plan.labels.resize(shape{classes > 0 ? batch : 0});
        plan.timesteps.resize(shape{batch});
        const std::uint64_t first = first_position(step);
        for (std::int64_t b = 0; b < batch; ++b) {
            const std::uint64_t p = first + static_cast<std::uint64_t>(b);
            const auto epoch = static_cast<std::int64_t>(p / static_cast<std::uint64_t>(n));
            const std::int64_t item = order_of(epoch)[static_cast<std::size_t>(p % static_cast<std::uint64_t>(n))];
            plan.items[static_cast<std::size_t>(b)] = item;
            if constexpr (classes > 0) {
                philox_stream rng(options_.seed, rng_purpose::label_drop, p);
                const bool drop = rng.uniform() < options_.label_drop;
                plan.labels[b] = drop ? classes : data_.labels[item];
            }
        }
        draw_timesteps(plan.timesteps.view(), table_.timesteps(), options_.seed, first);
    }
    batch_plan plan_batch(std::int64_t step) const {
        batch_plan plan;
        plan_batch(step, plan);
        return plan;
    }

    // One training step (Ho et al. 2020, Algorithm 1) on the batch of step_count():
    //   x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε, ε from Philox (seed, diffusion_noise, p)   DDPM eq. (4)
    //   L = mean (model(x_t, t, y) − P::target(x_0, ε, t))²                             DDPM eq. (14)
    //   clip the gradients' global norm, AdamW at lr = schedule(step), EMA update.
    // A loss or gradient norm that is not finite throws ouro::error naming the step before any
    // update, so the weights, moments and EMA stay those of the last good step. An update that
    // makes the weights non-finite (a huge learning rate) throws too, naming the step; the weights
    // in memory are then lost, the checkpoints on disk untouched.
    step_result step() {
        require(step_ < std::numeric_limits<std::int64_t>::max() / options_.batch_size, "trainer: step count overflow");
        const std::int64_t s = step_;
        plan_batch(s, plan_);
        data::gather(data_.images.view(), plan_.items.data(), options_.batch_size, x0_);
        q_sample<float>(table_, x0_.view(), plan_.timesteps.view(), options_.seed, first_position(s), eps_.view(),
                        x_t_.view());
        const tensor<float>* target = &eps_;
        if constexpr (!std::same_as<P, epsilon_prediction>) {
            training_target<P, float>(table_, x0_.view(), eps_.view(), plan_.timesteps.view(), target_.view());
            target = &target_;
        }
        // The batch is prepared on the host (gather, Philox noise and timesteps, q_sample in double),
        // so a seed gives the same batch on every backend; a backend without host memory gets a copy.
        const tensor_view<const float, backend_type> x_t = on_backend_(x_t_, x_t_b_);
        const tensor_view<const float, backend_type> target_b = on_backend_(*target, target_b_);

        auto& store = model_.store();
        store.zero_grad();
        const nn::forward_context ctx{.training = true, .seed = options_.seed, .step = static_cast<std::uint64_t>(s)};
        const tensor_view<const float, backend_type> pred =
            model_.forward(x_t, plan_.timesteps.view(), plan_.labels.view(), ctx);
        dpred_.resize(pred.dims());
        const double loss = ops<backend_type>::template mse_loss<float>(pred, target_b, dpred_.view());
        if (!std::isfinite(loss)) fail_not_finite("loss", loss, s);
        model_.backward(dpred_.view());

        const double norm =
            options_.grad_clip > 0 ? optim::clip_grad_norm(store, options_.grad_clip) : optim::grad_norm(store);
        if (!std::isfinite(norm)) fail_not_finite("gradient norm", norm, s);
        const double lr = schedule_(s);
        optimizer_.set_lr(lr);
        optimizer_.step(store);
        // Finite gradients can still give non-finite weights: a learning rate so large that
        // lr / (1 - beta1^t) overflows float makes the update ±Inf. Caught here, naming the step,
        // before the EMA, a checkpoint or the next step take them in (else the next loss is NaN and
        // its message would call these weights good). One pass over the weights: small beside
        // forward and backward.
        if (const std::int64_t bad = ops<backend_type>::template first_non_finite<float>(weights_()); bad >= 0)
            fail_weights_not_finite(bad, lr, s);
        if (ema_) ema_->update(store);
        step_ = s + 1;
        return {step_, loss, norm, lr};
    }

    // Runs steps until total_steps() (from step_count(), so after resume() it continues), reporting
    // progress and calling each callback's hooks; writes checkpoints every checkpoint_every steps
    // and at the end (when checkpoint_dir is set), and sample grids every sample_every steps.
    // A hook returning true stops the run after its step (a checkpoint is still written).
    template <class... Callbacks>
    train_result train(Callbacks&&... callbacks) {
        static_assert((trainer_callback<std::remove_cvref_t<Callbacks>> && ...),
                      "a trainer callback needs at least one of: on_step(const step_event&) or on_step(std::int64_t "
                      "step, double loss), on_log(const log_event&), on_epoch_end(const epoch_event&), "
                      "on_checkpoint(const checkpoint_event&), on_sample(const sample_event&); a type with none is "
                      "most likely a misspelt hook");
        using clock = std::chrono::steady_clock;
        const auto start = clock::now();
        const auto seconds_since = [](clock::time_point t0) {
            return std::chrono::duration<double>(clock::now() - t0).count();
        };
        const std::int64_t first = step_, batch = options_.batch_size, n = data_.size();
        train_result result;
        double window_sum = 0, epoch_sum = 0, total_sum = 0;
        std::int64_t window_steps = 0, epoch_steps = 0;
        bool stop = false;
        while (step_ < total_steps_ && !stop) {
            const step_result r = step();
            const std::int64_t s = r.step;
            window_sum += r.loss;
            ++window_steps;
            epoch_sum += r.loss;
            ++epoch_steps;
            total_sum += r.loss;
            result.last_loss = r.loss;
            const std::int64_t epoch = static_cast<std::int64_t>(first_position(s - 1) / static_cast<std::uint64_t>(n));
            const step_event se{s, total_steps_, epoch, r.loss, r.grad_norm, r.lr, batch};
            std::apply([&](auto&... cb) { ((stop = trainer_detail::call_on_step(cb, se) || stop), ...); },
                       std::forward_as_tuple(callbacks...));

            if (s % options_.log_every == 0 || s == total_steps_ || stop) {
                const double elapsed = seconds_since(start);
                const double rate = elapsed > 0 ? static_cast<double>(s - first) / elapsed : NAN;
                const log_event le{s,
                                   total_steps_,
                                   window_sum / static_cast<double>(window_steps),
                                   r.lr,
                                   rate * static_cast<double>(batch),
                                   elapsed,
                                   static_cast<double>(total_steps_ - s) / rate};
                stop = invoke_each(on_log, std::forward_as_tuple(callbacks...), le) || stop;
                window_sum = 0;
                window_steps = 0;
            }
            // Item positions [0, s·B) are done: epochs completed = s·B / N.
            const auto done_before = first_position(s - 1) / static_cast<std::uint64_t>(n);
            const auto done_now = first_position(s) / static_cast<std::uint64_t>(n);
            if (done_now > done_before) {
                const epoch_event ee{static_cast<std::int64_t>(done_now) - 1, s,
                                     epoch_sum / static_cast<double>(epoch_steps)};
                stop = invoke_each(ouro::on_epoch_end, std::forward_as_tuple(callbacks...), ee) || stop;
                epoch_sum = 0;
                epoch_steps = 0;
            }
            const bool last = s == total_steps_ || stop;
            if (!options_.checkpoint_dir.empty() &&
                ((options_.checkpoint_every > 0 && s % options_.checkpoint_every == 0) || last)) {
                const checkpoint_entry e = save_checkpoint();
                stop = invoke_each(on_checkpoint, std::forward_as_tuple(callbacks...),
                                   checkpoint_event{s, options_.checkpoint_dir, e}) ||
                       stop;
            }
            if (options_.sample_every > 0 && s % options_.sample_every == 0) {
                if constexpr (denoiser<Model>) {
                    const tensor<float> images = sample_images();
                    const std::filesystem::path file = write_sample_grid(images);
                    stop = invoke_each(on_sample, std::forward_as_tuple(callbacks...),
                                       sample_event{s, file, images.view()}) ||
                           stop;
                }
            }
            ++result.steps_run;
        }
        result.step = step_;
        result.stopped_early = stop && step_ < total_steps_;
        result.mean_loss = result.steps_run > 0 ? total_sum / static_cast<double>(result.steps_run) : NAN;
        result.seconds = seconds_since(start);
        return result;
    }

    // ---- Checkpoints ----

    // Writes a checkpoint of the current state into `dir` (default: options().checkpoint_dir) and
    // makes it the current one there; see checkpoint.hpp. Refuses non-finite state.
    checkpoint_entry save_checkpoint() { return save_checkpoint(options_.checkpoint_dir); }
    checkpoint_entry save_checkpoint(const std::filesystem::path& dir) {
        require(!dir.empty(), "trainer: no checkpoint directory (options.checkpoint_dir is empty)");
        trainer_state_ref<float, Opt, backend_type> state{
            .step = step_, .optimizer = &optimizer_, .ema = ema_ ? &*ema_ : nullptr, .metadata = state_metadata()};
        const checkpoint_entry e =
            write_checkpoint(dir, model_.store(), identity_of<Model>(), state, options_.keep_checkpoints);
        last_checkpoint_ = {dir, e.step};
        return e;
    }

    // Restores the model's weights and the trainer's state from the checkpoint in `dir` (the
    // current one, or that of `step`): afterwards step() continues exactly where that run was.
    // With strict_resume, a checkpoint of other trajectory settings (seed, batch size, data,
    // schedule, optimizer, EMA, label drop, the lr at this step) is refused, naming each difference.
    // Nothing changes unless the checkpoint fits.
    checkpoint_entry load_checkpoint(const std::filesystem::path& dir, std::int64_t step = -1) {
        const model_identity id = identity_of<Model>();
        const checkpoint_contents c = inspect_checkpoint(dir, id, step);
        require_optimizer<Opt>(c);  // before the settings: another optimiser's differ anyway
        if (options_.strict_resume) require_same_trajectory(c);
        restore_checkpoint(c, model_.store(), id,
                           trainer_state_target<float, Opt, backend_type>{&optimizer_, ema_ ? &*ema_ : nullptr});
        step_ = c.entry.step;
        last_checkpoint_ = {dir, c.entry.step};
        return c.entry;
    }

    // Loads the current checkpoint of options().checkpoint_dir if there is one; returns whether it did.
    bool resume() {
        require(!options_.checkpoint_dir.empty(), "trainer: resume() needs options.checkpoint_dir");
        if (!has_checkpoint(options_.checkpoint_dir)) return false;
        load_checkpoint(options_.checkpoint_dir);
        return true;
    }

    // ---- Samples ----

    // options().sample_count samples of the current model (EMA weights when kept) from the fixed
    // noise of sample_seed, labels 0, 1, ... cycling over the classes. (count, C, S, S).
    tensor<float> sample_images() {
        static_assert(denoiser<Model>, "sampling needs a model with predict(x_t, t, y) (see diffusion::denoiser)");
        sampler_options so;
        so.guidance_scale = options_.guidance_scale;
        so.null_class = classes > 0 ? classes : -1;
        const ddpm_ancestral<variance::fixed_small, P> sampler(table_, options_.sample_steps, so);
        tensor<std::int64_t> labels(shape{classes > 0 ? options_.sample_count : 0});
        for (std::int64_t i = 0; i < labels.numel(); ++i) labels[i] = i % std::max<std::int64_t>(classes, 1);
        const shape item{in_channels, image_size, image_size};
        if (!ema_) return sampler.sample(model_, item, options_.sample_count, labels.view(), options_.sample_seed);
        ema_->swap(model_.store());  // exact exchange: training resumes bitwise unchanged
        try {
            tensor<float> x = sampler.sample(model_, item, options_.sample_count, labels.view(), options_.sample_seed);
            ema_->swap(model_.store());
            return x;
        } catch (...) {
            ema_->swap(model_.store());
            throw;
        }
    }

    // Writes `images` as <sample_dir>/step-<step>.png; returns the path.
    std::filesystem::path write_sample_grid(const tensor<float>& images) const {
        std::filesystem::path dir =
            options_.sample_dir.empty() ? options_.checkpoint_dir / "samples" : options_.sample_dir;
        char name[40];
        std::snprintf(name, sizeof name, "step-%08lld.png", static_cast<long long>(step_));
        io::write_png_grid(dir / name, images.view());
        return dir / name;
    }

    // ---- Access ----

    Model& model() { return model_; }
    const data::image_dataset& data() const { return data_; }
    const schedule_table& table() const { return table_; }
    const trainer_options& options() const { return options_; }
    const LR& lr_schedule() const { return schedule_; }
    Opt& optimizer() { return optimizer_; }
    const Opt& optimizer() const { return optimizer_; }
    // The EMA of the weights; nullptr when options().use_ema is false.
    optim::ema<float, backend_type>* ema() { return ema_ ? &*ema_ : nullptr; }
    const optim::ema<float, backend_type>* ema() const { return ema_ ? &*ema_ : nullptr; }

private:
    static optim::optimizer_settings optimizer_settings_of(const trainer_options& o) {
        // The gradient norm is checked before every step (a finite norm means every gradient is
        // finite), so the optimiser's own scan of the gradients would be a second read of the same buffer.
        return {.lr = o.lr,
                .beta1 = o.beta1,
                .beta2 = o.beta2,
                .eps = o.adam_eps,
                .weight_decay = o.weight_decay,
                .check_finite = false};
    }

    static std::int64_t total_steps_of(const trainer_options& o, std::int64_t n) {
        if (o.steps > 0 || o.batch_size < 1) return o.steps;  // (validate() refuses batch_size < 1)
        return (o.epochs * n + o.batch_size - 1) / o.batch_size;
    }

    static LR default_schedule(const trainer_options& o, const data::image_dataset& data) {
        if constexpr (std::same_as<LR, optim::linear_warmup<optim::constant_lr>>) {
            return {o.warmup_steps, optim::constant_lr{o.lr}};
        } else if constexpr (std::same_as<LR, optim::linear_warmup<optim::cosine_decay>>) {
            return optim::warmup_cosine(o.lr, o.warmup_steps,
                                        std::max(total_steps_of(o, data.size()), o.warmup_steps + 1));
        } else {
            static_assert(std::same_as<LR, optim::linear_warmup<optim::constant_lr>>,
                          "the trainer builds only linear_warmup<constant_lr> and linear_warmup<cosine_decay> from "
                          "its options; pass a schedule of another type to the constructor");
            return LR{};
        }
    }

    shape image_batch_shape() const { return shape{options_.batch_size, in_channels, image_size, image_size}; }

    // Position of the first item of step s in the endless sequence of epoch orders.
    std::uint64_t first_position(std::int64_t s) const {
        return static_cast<std::uint64_t>(s) * static_cast<std::uint64_t>(options_.batch_size);
    }

    // The order of `epoch`; the two most recent orders are kept (a batch spans at most two epochs
    // unless it is larger than the data set).
    const std::vector<std::int64_t>& order_of(std::int64_t epoch) const {
        for (auto& [e, order] : orders_)
            if (e == epoch) return order;
        auto& slot = orders_[next_order_slot_];
        next_order_slot_ ^= 1;
        slot = {epoch, data::epoch_order(data_.size(), options_.seed, static_cast<std::uint64_t>(epoch))};
        return slot.second;
    }

    void check_data(const data::image_dataset& d) const {
        const std::string spec = Model::spec.str();
        require(d.images.rank() == 4 && d.size() >= 1, "trainer: the data set '", d.name,
                "' must hold images (N, C, H, W) with N >= 1, found shape ", d.images.dims());
        const std::int64_t n = d.size();
        const shape expected{n, in_channels, image_size, image_size};
        if (!(d.images.dims() == expected))
            fail("trainer: the data set '", d.name, "' has images of shape ", d.images.dims(),
                 ", but the model expects ", expected, " (spec '", spec, "'); refused before training");
        if constexpr (classes > 0) {
            if (!(d.labels.dims() == shape{n}))
                fail("trainer: the model is class-conditional (", classes, " classes), so the data set '", d.name,
                     "' needs labels of shape ", shape{n}, ", found ", d.labels.dims());
            for (std::int64_t i = 0; i < n; ++i)
                if (d.labels[i] < 0 || d.labels[i] >= classes)
                    fail("trainer: the data set '", d.name, "' has label ", d.labels[i], " at item ", i,
                         ", expected 0..", classes - 1, " (the model's classes)");
        }
        const std::int64_t bad = optim::first_non_finite(d.images.data(), d.images.numel());
        if (bad >= 0) {
            const std::int64_t per_item = d.images.numel() / n;
            fail("trainer: the data set '", d.name, "' has a non-finite pixel (", d.images[bad], ") in item ",
                 bad / per_item, " at element ", bad % per_item, "; refused before training");
        }
    }

    [[noreturn]] void fail_not_finite(const char* what, double value, std::int64_t s) const {
        std::string kept = "no checkpoint has been written by this trainer";
        if (last_checkpoint_)
            kept = ouro::detail::concat("the last good checkpoint (step ", last_checkpoint_->second, " in ",
                                        last_checkpoint_->first.string(), ") is kept");
        fail("trainer: the ", what, " of step ", s + 1, " of ", total_steps_, " is not finite (", value,
             "); training stopped before that step's update, so the model keeps the weights after step ", s, "; ", kept,
             ". Check the data and the learning rate (", schedule_(s), ")");
    }

    // All weights, flat, in the model's memory.
    tensor_view<const float, backend_type> weights_() const {
        const auto& store = model_.store();
        return {store.values(), shape{store.size()}};
    }

    // `host` as the model's backend sees it: the same memory on ouro::cpu, else a copy in `copy_to`.
    static tensor_view<const float, backend_type> on_backend_(const tensor<float>& host,
                                                              tensor<float, backend_type>& copy_to) {
        if constexpr (std::same_as<backend_type, cpu>) {
            return host.view();
        } else {
            copy_to.resize(host.dims());
            copy_from_host(host.view(), copy_to.view());
            return copy_to.view();
        }
    }

    [[noreturn]] void fail_weights_not_finite(std::int64_t bad, double lr, std::int64_t s) const {
        const auto& store = model_.store();
        std::string where = ouro::detail::concat("element ", bad);
        for (const auto& e : store.entries())
            if (bad >= e.offset && bad < e.offset + e.dims.numel())
                where = ouro::detail::concat("'", e.name, "' element ", bad - e.offset);
        std::string kept = "no checkpoint has been written by this trainer";
        if (last_checkpoint_)
            kept = ouro::detail::concat("the last good checkpoint (step ", last_checkpoint_->second, " in ",
                                        last_checkpoint_->first.string(), ") is kept; resume from it");
        fail("trainer: the update of step ", s + 1, " of ", total_steps_, " at lr ", lr,
             " made the weights non-finite (", to_host(weights_())[bad], " in ", where,
             "), so this trainer's weights are lost; ", kept, ". Lower the learning rate");
    }

    // ---- What checkpoints record about the run, and what a strict resume compares ----

    std::uint32_t data_crc32() const {
        if (!data_crc_) {
            std::uint32_t crc = checkpoint_detail::crc32_bytes(
                data_.images.data(), static_cast<std::size_t>(data_.images.numel()) * sizeof(float));
            crc = checkpoint_detail::crc32_bytes(
                data_.labels.data(), static_cast<std::size_t>(data_.labels.numel()) * sizeof(std::int64_t), crc);
            data_crc_ = crc;
        }
        return *data_crc_;
    }

    static std::string hexfloat(double v) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%a", v);
        return buf;
    }

    // Settings that change the trajectory: a run resumed with other values would not continue the
    // saved one. Doubles as hex floats, so equal means bitwise equal.
    nlohmann::ordered_json trajectory() const {
        const auto& o = options_;
        std::vector<double> betas = table_.betas();
        return {
            {"seed", o.seed},
            {"batch_size", o.batch_size},
            {"label_drop", hexfloat(o.label_drop)},
            {"grad_clip", hexfloat(o.grad_clip)},
            {std::string(Opt::name), optimizer_.trajectory()},
            {"ema", o.use_ema ? hexfloat(o.ema.max_decay) + " " + hexfloat(o.ema.min_decay) + " " +
                                    std::to_string(o.ema.update_after_step) + (o.ema.warmup ? " warmup" : " no-warmup")
                              : std::string("off")},
            {"parameterization", P::name},
            {"schedule", std::to_string(table_.timesteps()) + " betas, CRC-32 " +
                             checkpoint_detail::hex(
                                 checkpoint_detail::crc32_bytes(betas.data(), betas.size() * sizeof(double)), 8)},
            {"data", std::to_string(data_.size()) + " items, CRC-32 " + checkpoint_detail::hex(data_crc32(), 8)},
            {"lr_at_step", hexfloat(schedule_(step_))}};
    }

    io::safetensors_metadata state_metadata() const {
        const auto& o = options_;
        const nlohmann::ordered_json opts = {{"batch_size", o.batch_size},
                                             {"steps", o.steps},
                                             {"epochs", o.epochs},
                                             {"total_steps", total_steps_},
                                             {"lr", o.lr},
                                             {"warmup_steps", o.warmup_steps},
                                             {"beta1", o.beta1},
                                             {"beta2", o.beta2},
                                             {"adam_eps", o.adam_eps},
                                             {"weight_decay", o.weight_decay},
                                             {"grad_clip", o.grad_clip},
                                             {"use_ema", o.use_ema},
                                             {"ema_max_decay", o.ema.max_decay},
                                             {"ema_min_decay", o.ema.min_decay},
                                             {"ema_update_after_step", o.ema.update_after_step},
                                             {"ema_warmup", o.ema.warmup},
                                             {"label_drop", o.label_drop},
                                             {"seed", o.seed},
                                             {"data_name", data_.name},
                                             {"parameterization", P::name}};
        return {
            {"seed", std::to_string(o.seed)}, {"trainer_options", opts.dump()}, {"trajectory", trajectory().dump()}};
    }

    void require_same_trajectory(const checkpoint_contents& c) const {
        using json = nlohmann::json;
        const std::string tp = c.trainer_path.string();
        const std::string& recorded = checkpoint_detail::get(c.trainer_metadata, "trajectory", tp);
        if (const std::size_t depth = io::detail::json_nesting_depth(recorded); depth > io::json_max_depth)
            fail(tp, ": the metadata 'trajectory' nests arrays and objects ", depth, " levels deep, more than ",
                 io::json_max_depth);
        json saved;
        try {
            saved = json::parse(recorded);
        } catch (const json::exception& e) {
            fail(tp, ": the metadata 'trajectory' is not valid JSON (", e.what(), ")");
        }
        // The lr this trainer would use at the checkpoint's step, not at its own current step.
        nlohmann::ordered_json mine = trajectory();
        mine["lr_at_step"] = hexfloat(schedule_(c.entry.step));
        const auto text = [](const auto& v) -> std::string {
            return v.is_string() ? v.template get<std::string>() : v.dump();
        };
        std::string diffs;
        for (auto it = mine.begin(); it != mine.end(); ++it) {
            const std::string here = text(it.value());
            const std::string there =
                saved.is_object() && saved.contains(it.key()) ? text(saved[it.key()]) : "(absent)";
            if (here != there)
                diffs += ouro::detail::concat("\n  ", it.key(), ": checkpoint ", there, ", this trainer ", here);
        }
        if (!diffs.empty())
            fail(tp,
                 ": the checkpoint was trained with other settings, so resuming would not continue its run "
                 "(set strict_resume = false to load it anyway):",
                 diffs);
    }

    Model& model_;
    const data::image_dataset& data_;
    schedule_table table_;
    trainer_options options_;
    LR schedule_;
    Opt optimizer_;
    std::optional<optim::ema<float, backend_type>> ema_;
    std::int64_t total_steps_ = 0;
    std::int64_t step_ = 0;
    std::optional<std::pair<std::filesystem::path, std::int64_t>> last_checkpoint_;

    batch_plan plan_;
    tensor<float> x0_, eps_, x_t_, target_;                 // (B, C, S, S), on the host
    tensor<float, backend_type> x_t_b_, target_b_, dpred_;  // (B, C, S, S), in the model's memory (x_t_b_ and
                                                            // target_b_ only for a backend other than cpu)
    mutable std::array<std::pair<std::int64_t, std::vector<std::int64_t>>, 2> orders_{{{-1, {}}, {-1, {}}}};
    mutable int next_order_slot_ = 0;
    mutable std::optional<std::uint32_t> data_crc_;
};

}  // namespace ouro::diffusion
