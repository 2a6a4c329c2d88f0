// The self-consuming loop of Cai, Wang, Liu & Zhang, "Stabilizing Self-Consuming Diffusion Models
// with Latent Space Filtering" (AAAI-26, §3 and the experiments of §5), with its baselines, as one
// type per experiment:
//
//   using experiment = loop::self_consuming<nn::unet<cpu, presets::mnist_unet>,   // the model
//                                           diffusion::ddim<50>,                   // how G_k samples
//                                           latent::spatial_mean,                  // latent pooling
//                                           loop::paper_methods,                   // SYN … ACU-LSF
//                                           probe::softmax_probe,                  // the probe (optional)
//                                           loop::probe_confidence,                // ξ (optional)
//                                           loop::paper_metrics,                   // metrics (optional)
//                                           optim::adamw<float>>;                  // optimiser (optional)
//   experiment run(sampler, table, options);
//   run.run(real_train, real_reference, lenet_features);
//
// Generation 0 is shared by every method: one G0 trained on the real set D_r, its frozen encoder,
// and one probe fitted on the real latents (on cluster labels when the model is unconditional:
// loop_options::clustering): the paper's softmax probe by default, any probe::latent_probe in its place. Then, per generation k =
// 1 … K and per method, independently of the others:
//
//   S_k   = samples of G_{k-1}^method (labels balanced when class-conditional)
//   pool  = pool ∪ S_k                       (items remember their source generation)
//   ξ     = probe confidence of each pool item's G0 latent (in its label; max probability if unlabelled)
//   T_k   = method.select(pool, ξ, N)        (SYN, SYN-ADD, ACU, ACUR, ACU-LSF, or any loop_mode)
//   G_k   = G_{k-1} fine-tuned on T_k for E epochs (or retrained from scratch)
//   eval  : FID, precision, recall, density, coverage, KID of G_k's samples; diagnostics of T_k
//
// Every random choice is a pure function of (seed, what, method, generation), and each finished
// step is committed to the run directory (weights and pool of the chain, then the rows), so a run
// killed at any moment resumes at the last finished step and writes the same metrics.
//
// This file holds the orchestration; beside it: loop_model.hpp (what the model and the sampler
// must provide), methods.hpp (method lists), options.hpp (loop_options), events.hpp (the
// on_generation event, run_summary) and run_files.hpp (pools, config.json / state.json, models).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ouro/cluster/accuracy.hpp"
#include "ouro/cluster/knn_graph.hpp"
#include "ouro/cluster/ssc_omp.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/memory_usage.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/progress.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/core/version.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/diffusion/negative_guidance.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/diffusion/training_progress.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/io/png.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/latent/pca.hpp"
#include "ouro/loop/events.hpp"
#include "ouro/loop/loop_model.hpp"
#include "ouro/loop/methods.hpp"
#include "ouro/loop/metric_sets.hpp"
#include "ouro/loop/modes.hpp"
#include "ouro/loop/options.hpp"
#include "ouro/loop/pool.hpp"
#include "ouro/loop/pool_files.hpp"
#include "ouro/loop/report.hpp"
#include "ouro/loop/run_files.hpp"
#include "ouro/loop/scores.hpp"
#include "ouro/loop/selection_diagnostics.hpp"
#include "ouro/metrics/feature_extractor.hpp"
#include "ouro/metrics/fid.hpp"
#include "ouro/metrics/kid.hpp"
#include "ouro/metrics/precision_recall.hpp"
#include "ouro/ole/ole.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/optimizer.hpp"
#include "ouro/probe/probe.hpp"
#include "ouro/probe/softmax_probe.hpp"

namespace ouro::loop {

namespace detail {

template <std::size_t N>
std::string join_names(const std::array<const char*, N>& names) {
    std::string out;
    for (const char* n : names) out += (out.empty() ? "" : ", ") + std::string(n);
    return out;
}

// A seed for (what, method, generation) drawn from the run's seed.
inline std::uint64_t derive_seed(std::uint64_t seed, std::uint32_t what, std::int64_t method, std::int64_t generation) {
    const std::uint64_t index = (static_cast<std::uint64_t>(what) << 48) ^
                                (static_cast<std::uint64_t>(method + 1) << 24) ^ static_cast<std::uint64_t>(generation);
    philox_stream rng(seed, rng_purpose::loop_seeds, index);
    const std::uint64_t hi = rng.next_u32();
    return (hi << 32) | rng.next_u32();
}
enum seed_use : std::uint32_t {
    g0_init = 1,
    sampling = 2,
    selection = 3,
    finetuning = 4,
    evaluation = 5,
    scratch_init = 6,
    aux_sampling = 7,
    aux_finetuning = 8,
    correction = 9,
    bootstrap = 10
};

inline std::string dir_name(std::string_view method) {
    std::string s(method);
    for (char& c : s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    return s;
}

// Adds the seconds of its own lifetime to a phase's counter.
class phase_timer {
public:
    explicit phase_timer(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
    phase_timer(const phase_timer&) = delete;
    phase_timer& operator=(const phase_timer&) = delete;
    ~phase_timer() { total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

private:
    double& total_;
    std::chrono::steady_clock::time_point start_;
};

inline double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace detail

// ---- The experiment ---------------------------------------------------------------------------

// Probe: the classifier of G0's latents (probe::latent_probe); Score: what ranks the pool, the
// probe's confidence by default (loop::pool_score, loop/scores.hpp); Metrics: what is measured on
// each generation's samples (loop::metric_set, loop/metric_sets.hpp); Optimizer: what trains G0
// and every fine-tuning (optim::optimizer, optim/optimizer.hpp; AdamW as the paper's DDPM).
template <class Model, class Sampler, class Pooling = latent::spatial_mean, class Methods = paper_methods,
          class Probe = probe::softmax_probe, class Score = probe_confidence, class Metrics = paper_metrics,
          class Optimizer = optim::adamw<float, backend_of_t<Model>>>
class self_consuming;

template <class Model, class Sampler, class Pooling, loop_mode... Modes, class Probe, class Score, class Metrics,
          class Optimizer>
class self_consuming<Model, Sampler, Pooling, methods<Modes...>, Probe, Score, Metrics, Optimizer> {
    static_assert(check_loop_model<Model>());
    static_assert(check_loop_sampler<Sampler>());
    static_assert(latent::check_pooling<Pooling>());
    static_assert(probe::latent_probe<Probe>,
                  "a loop probe needs fit(h, labels, classes, probe::fit_options) -> probe::fit_report, "
                  "confidence(h, labels) -> tensor<double> and predict(h) -> probe::prediction (see probe/probe.hpp)");
    static_assert(pool_score<Score, Probe>,
                  "a loop score needs fit(h, labels, classes) and score(probe, h, labels) -> tensor<double> "
                  "(see loop/scores.hpp)");
    static_assert(metric_set<Metrics>,
                  "a loop metric set needs fit_reference(features) and evaluate(features, loop::metric_settings) -> "
                  "loop::metric_row (see loop/metric_sets.hpp)");
    static_assert(
        optim::optimizer<Optimizer, float, backend_of_t<Model>>,
        "a loop optimizer (over the model's parameter_store<float, B>) needs from_settings(store, "
        "optim::optimizer_settings), step(store), set_lr, "
        "step_count / set_step_count, size, its name and state buffers and trajectory() (see optim/optimizer.hpp)");
    static_assert(sizeof...(Modes) >= 1, "an experiment compares at least one method");

    // How G0 and every G_k are trained: the sampler's parameterisation, warm-up into a constant lr,
    // the Optimizer policy.
    using trainer_type = diffusion::trainer<Model, typename Sampler::parameterization_type,
                                            optim::linear_warmup<optim::constant_lr>, Optimizer>;

public:
    static constexpr bool conditional = Model::spec.classes > 0;
    static constexpr std::size_t method_count = sizeof...(Modes);
    static constexpr std::array<const char*, sizeof...(Modes)> method_names{Modes::name...};

    // `modes` holds the methods' settings (e.g. SYN-ADD's real share); default-constructed otherwise.
    self_consuming(Sampler sampler, diffusion::schedule_table table, loop_options options,
                   std::tuple<Modes...> modes = {})
        : sampler_(std::move(sampler)),
          table_(std::move(table)),
          options_(std::move(options)),
          modes_(std::move(modes)) {
        validate(options_);
        // What later steps would refuse only after G0 has trained, refused before anything runs.
        require(options_.latents.timestep >= 0 && options_.latents.timestep < table_.timesteps(),
                "self_consuming: latents.timestep t must be in [0, ", table_.timesteps() - 1,
                "] (the schedule's steps), found ", options_.latents.timestep);
        require(options_.latents.draws >= 1, "self_consuming: latents.draws must be >= 1, found ",
                options_.latents.draws);
        require(std::isfinite(options_.probe.l2) && options_.probe.l2 >= 0,
                "self_consuming: probe.l2 must be a finite number >= 0, found ", options_.probe.l2);
        if constexpr (conditional)
            require(options_.latent_label == latent_conditioning::own_label || options_.g0.label_drop > 0,
                    "self_consuming: latents read with the null class need a G0 trained with label dropout "
                    "(g0.label_drop > 0), found label_drop ",
                    options_.g0.label_drop);
        for (std::size_t i = 0; i < method_count; ++i)
            for (std::size_t j = 0; j < i; ++j)
                require(std::string_view(method_names[i]) != method_names[j], "self_consuming: two methods are named '",
                        method_names[i], "'; method names must differ");
        for (const std::string& wanted : options_.only_methods) {
            const bool known =
                std::any_of(method_names.begin(), method_names.end(), [&](const char* n) { return wanted == n; });
            require(known, "self_consuming: only_methods names '", wanted,
                    "', which is not one of this experiment's methods (", detail::join_names(method_names), ")");
        }
    }

    const loop_options& options() const { return options_; }

    // The whole experiment, or what is left of it. `real` is D_r (labels required even for an
    // unconditional model: the clustering accuracy is measured against them), `reference` the real
    // images the metrics compare against, `features` the metrics' feature extractor. Callbacks
    // see on_generation(const generation_event&).
    template <class Features, class... Callbacks>
    run_summary run(const data::image_dataset& real, const data::image_dataset& reference, Features& features,
                    Callbacks&... callbacks) {
        static_assert(metrics::check_feature_extractor<Features>());
        const auto start = std::chrono::steady_clock::now();
        check_data_(real, "the real set D_r");
        check_data_(reference, "the reference set");
        num_classes_ = real.num_classes;
        // One run per directory at a time; then temporaries of a run that died mid-write can go.
        const io::run_directory_lock lock(options_.out);
        io::remove_stale_temporaries(options_.out);
        write_or_check_config_(real, reference);
        load_state_();

        run_summary summary;
        phases_ = {};
        log_() << "run directory: " << options_.out.string() << "\n";

        // Reference features and their Gaussian, once.
        {
            const detail::phase_timer timer(phases_.metrics);
            metrics_.fit_reference(features.features(reference.images.view()).view());  // (M, D)
        }

        // ---- Generation 0: G0, its encoder, the probe.
        Model g0;
        prepare_g0_(g0, real);
        {
            const auto file = options_.out / "g0" / "model.safetensors";
            const auto meta = io::read_safetensors_metadata(file);
            const std::string crc =
                meta.contains(io::safetensors_checksum_key) ? meta.at(io::safetensors_checksum_key) : "";
            if (state_.g0_evaluated && state_.g0_crc32 != crc)
                fail(file.string(), ": G0's weights (CRC-32 ", crc,
                     ") are not those the finished rows in state.json were "
                     "computed with (CRC-32 ",
                     state_.g0_crc32, "); restore that G0, or start over in another --out");
            state_.g0_crc32 = crc;
        }
        latent::latent_extractor<Model, Pooling> extractor(g0, table_, options_.latents, Pooling{});
        const tensor<std::int64_t> real_ids = latent::sequential_ids(real.size());
        const tensor<float> real_latents = extract_(extractor, real.images.view(), real.labels.view(), real_ids.view());
        std::vector<std::int64_t> probe_labels(real.labels.begin(), real.labels.end());
        if constexpr (!conditional) {
            probe_labels = cluster_real_(real_latents.view(), real.num_classes);
            state_.clustering_accuracy = cluster::clustering_accuracy(probe_labels, real.labels);
            log_() << to_string(options_.clustering.method) << " labels of D_r: clustering accuracy "
                   << state_.clustering_accuracy << " against the true labels\n";
        }
        const auto report = probe_.fit(real_latents.view(), probe_labels, real.num_classes, options_.probe);
        state_.probe_holdout_accuracy = report.holdout_accuracy;
        score_.fit(real_latents.view(), probe_labels, real.num_classes);
        log_() << "probe: ";
        if (report.optimization.iterations > 0) log_() << report.optimization.iterations << " L-BFGS iterations, ";
        log_() << "train accuracy " << report.train_accuracy << ", held-out accuracy " << report.holdout_accuracy
               << "\n";

        if (!state_.g0_evaluated) {
            const auto t0 = std::chrono::steady_clock::now();
            const tensor<std::int64_t> labels = balanced_labels_(options_.eval_samples);
            const tensor<float> samples =
                sample_(g0, labels.view(), options_.eval_samples,
                        detail::derive_seed(options_.seed, detail::evaluation, -1, 0), "G0 eval");
            metric_row m =
                evaluate_(features, samples.view(), detail::derive_seed(options_.seed, detail::bootstrap, -1, 0));
            diagnostic_row d;
            d.generation = 0;
            d.pool_size = d.train_size = real.size();
            const tensor<double> conf = confidence_(real_latents.view(), probe_labels);
            d.pool_confidence = d.train_confidence = quartiles_of({conf.begin(), conf.end()});
            d.ole = latent_ole(real_latents.view(), probe_labels);
            d.real_share = 1.0;
            d.mean_source_generation = 0.0;
            describe_label_balance(probe_labels, probe_labels, d);
            d.sample_ole = sample_ole_(extractor, samples.view(), labels.view());
            d.sources = {{0, real.size(), real.size(), d.pool_confidence.mean}};
            m.generation = 0;
            m.seconds = detail::seconds_since(t0);
            write_grid_(options_.out / "grids" / "G0_gen0.png", samples.view());
            record_memory_(d);
            for (std::size_t i = 0; i < method_count; ++i) {
                if (!selected_(i)) continue;
                const char* name = method_names[i];
                m.method = name;
                d.method = name;
                state_.metrics.push_back(m);
                state_.diagnostics.push_back(d);
            }
            state_.g0_evaluated = true;
            commit_state_();
            ++summary.steps_run;
            m.method = "G0";
            d.method = "G0";
            invoke_each(on_generation, std::tie(callbacks...),
                        generation_event{"G0", 0, samples.view(), labels.view(), &m, &d, &options_.out});
            log_() << "G0: FID " << m.fid << ", precision " << m.precision << ", recall " << m.recall << "\n";
        }

        // ---- Generations 1 … K, every method on its own chain. One chain is in memory at a time:
        // restored from its files (model, auxiliary model and the pool's index) for its step and
        // released after it, so that memory does not grow with the number of methods and
        // generations (#13); reading those files costs milliseconds beside the step's minutes.
        real_crc32_ = detail::floats_crc32({real.images.data(), static_cast<std::size_t>(real.images.numel())});
        detail::save_or_check_real_file(options_.out / "real.safetensors", real.images.view(), real_crc32_);
        std::array<std::int64_t, sizeof...(Modes)> stepped{};  // the generation this call last stepped each method to
        std::optional<tensor<float>> first_samples;            // S_1, the same for every method (all sample G0)
        for (std::int64_t k = 1; k <= options_.generations; ++k) {
            std::size_t mi = 0;
            auto one = [&](auto& mode) {
                const std::size_t index = mi++;
                if (!selected_(index) || state_.done(method_names[index], k)) return;
                const auto t0 = std::chrono::steady_clock::now();
                release_free_memory();  // what the steps before freed is not this step's memory
                start_rss_mib_ = current_memory_usage().resident_mib;
                reset_peak_memory();  // the row's peak_rss_mib: the peak of this step alone
                carried_heap_mib_ = current_memory_usage().heap_in_use_mib -
                                    static_cast<double>(buffer_cache::instance().cached_bytes()) / (1024.0 * 1024.0);
                const bool resumed = stepped[index] != k - 1;  // its chain was written by an earlier run
                const std::unique_ptr<chain> ch =
                    restore_chain_(index, k - 1, g0, real, probe_labels, real_latents, resumed, extractor);
                step_(mode, index, k, *ch, g0, real, real_latents.view(), extractor, features, first_samples, t0,
                      summary, callbacks...);
                stepped[index] = k;
            };
            std::apply([&](auto&... mode) { (one(mode), ...); }, modes_);
        }

        summary.metrics = state_.metrics;
        summary.diagnostics = state_.diagnostics;
        summary.clustering_accuracy = state_.clustering_accuracy;
        summary.probe_holdout_accuracy = state_.probe_holdout_accuracy;
        write_outputs_();
        summary.seconds = detail::seconds_since(start);
        summary.phases = phases_;
        summary.phases.other = summary.seconds - phases_.g0_training - phases_.finetuning - phases_.sampling -
                               phases_.latents - phases_.metrics;
        return summary;
    }

private:
    // One method's chain: its current model G_k, its pool, and the G0 latents of the pool's items (the
    // pool and latents until its step has written them: see step_).
    struct chain {
        Model model;
        pool items;                    // the pool's provenance; only the items added this step are resident
        std::vector<float> latents;    // (size − resident_begin, D): the G0 latents of the resident items
        detail::pool_sources sources;  // where the other items' floats and latents are (pool_files.hpp)
        std::int64_t generation = 0;
        std::unique_ptr<Model> aux;  // negatively guided modes (SIMS): G_k fine-tuned on its own samples
        explicit chain(std::int64_t item_size) : items(item_size) {}
    };

    static constexpr std::int64_t item_size_ =
        static_cast<std::int64_t>(Model::spec.in_channels) * Model::spec.image_size * Model::spec.image_size;

    std::ostream& log_() const { return options_.log ? *options_.log : std::cerr; }

    // A trainer's progress bar (or log lines), or silence when the loop's show_progress is off.
    diffusion::training_progress training_progress_(std::string label, const diffusion::trainer_options& o) const {
        return diffusion::training_progress(
            {.label = std::move(label),
             .log_every = o.log_every,
             .style = options_.show_progress ? progress_style::automatic : progress_style::none});
    }

    static void check_data_(const data::image_dataset& set, const char* what) {
        require(set.size() >= 1, "self_consuming: ", what, " '", set.name, "' holds no images");
        const std::string images_what = std::string("self_consuming: ") + what +
                                        " images (N, C, H, W) for the model spec " + std::string(Model::spec.str());
        require_shape(set.images.dims(),
                      shape{set.size(), Model::spec.in_channels, Model::spec.image_size, Model::spec.image_size},
                      images_what.c_str());
        require(set.labels.numel() == set.size(), "self_consuming: ", what, " needs one label per image, found ",
                set.labels.numel(), " labels for ", set.size(), " images");
        if constexpr (conditional)
            require(set.num_classes <= Model::spec.classes, "self_consuming: the model has ", Model::spec.classes,
                    " classes, ", what, " '", set.name, "' has ", set.num_classes,
                    " (use a spec with as many classes, or an unconditional model)");
        require(set.num_classes >= 2, "self_consuming: ", what, " needs at least 2 classes (the probe's), found ",
                set.num_classes);
        for (float v : set.images) require(std::isfinite(v), "self_consuming: ", what, " holds a non-finite pixel");
    }

    bool selected_(std::size_t index) const {
        const auto& only = options_.only_methods;
        return only.empty() || std::find(only.begin(), only.end(), method_names[index]) != only.end();
    }

    // The process's memory now, into the row about to be committed (issue: a long run's resident
    // set must not grow from one generation to the next; diagnostics.csv shows it).
    void record_memory_(diagnostic_row& d) const {
        const memory_usage u = current_memory_usage();
        d.rss_mib = u.resident_mib;
        d.peak_rss_mib = u.peak_resident_mib;
        d.carried_heap_mib = carried_heap_mib_;
        d.start_rss_mib = start_rss_mib_;
    }

    // ---- config.json and state.json

    // config.json: what loop_options decide (run_files.hpp), and what the template arguments do.
    nlohmann::json config_(const data::image_dataset& real, const data::image_dataset& reference) const {
        nlohmann::json c = detail::options_config(options_, conditional, real, reference);
        c["library"] = {{"name", "ouro"}, {"version", ouro::version}};
        c["model"] = {{"spec", std::string(Model::spec.str())}, {"conditional", conditional}};
        c["sampler"] = {{"name", Sampler::name}, {"steps", sampler_.timesteps().size()}};
        c["schedule"] = {{"timesteps", table_.timesteps()}};
        c["pooling"] = Pooling::name;
        // AdamW, the default, adds no key: run directories from before the optimiser was a policy resume.
        if constexpr (Optimizer::name != optim::adamw<float>::name) c["optimizer"] = std::string(Optimizer::name);
        std::vector<std::string> run_methods;  // the selection is part of the experiment: a resume must not change it
        for (std::size_t i = 0; i < method_count; ++i)
            if (selected_(i)) run_methods.push_back(method_names[i]);
        c["methods"] = run_methods;
        c["method_settings"] = method_settings_();
        return c;
    }

    // The settings of the selected methods that have any (SYN-ADD's real share, SIMS' ω, SC's γ).
    nlohmann::json method_settings_() const {
        nlohmann::json j = nlohmann::json::object();
        std::size_t i = 0;
        auto one = [&](const auto& mode) {
            const std::size_t index = i++;
            if (!selected_(index)) return;
            using M = std::decay_t<decltype(mode)>;
            nlohmann::json s = nlohmann::json::object();
            if constexpr (requires { mode.real_share; }) s["real_share"] = mode.real_share;
            if constexpr (negatively_guided<M>) s["omega"] = mode.omega;
            if constexpr (requires { mode.strength; }) s["strength"] = mode.strength;
            if constexpr (requires { mode.centres_per_class; }) s["centres_per_class"] = mode.centres_per_class;
            if (!s.empty()) j[method_names[index]] = s;
        };
        std::apply([&](const auto&... mode) { (one(mode), ...); }, modes_);
        return j;
    }

    void write_or_check_config_(const data::image_dataset& real, const data::image_dataset& reference) const {
        detail::write_or_check_config(options_.out / "config.json", config_(real, reference));
    }

    void load_state_() {
        const auto file = options_.out / "state.json";
        state_ = {};
        if (!std::filesystem::exists(file)) return;
        state_ = read_run_state(file);
        log_() << "resuming: " << state_.metrics.size() << " (method, generation) rows already finished\n";
    }

    void commit_state_() const {
        write_run_state(options_.out / "state.json", state_);
        write_outputs_();
    }

    void write_outputs_() const {
        report_info info;
        info.title = "Self-consuming loop: " + std::string(Model::spec.str());
        for (std::size_t i = 0; i < method_count; ++i)
            if (selected_(i)) info.methods.push_back(method_names[i]);
        info.generations = options_.generations;
        info.clustering_accuracy = state_.clustering_accuracy;
        info.clustering = to_string(options_.clustering.method);
        info.probe_holdout_accuracy = state_.probe_holdout_accuracy;
        info.grids = options_.write_grids && Model::spec.image_size >= 8;
        write_run_outputs(options_.out, state_.metrics, state_.diagnostics, info);
    }

    // ---- G0

    void prepare_g0_(Model& g0, const data::image_dataset& real) {
        const auto file = options_.out / "g0" / "model.safetensors";
        if (std::filesystem::exists(file)) {
            detail::load_run_model(file, g0);
            log_() << "G0: loaded " << file.string() << "\n";
            return;
        }
        g0.reset_parameters(detail::derive_seed(options_.seed, detail::g0_init, -1, 0));
        diffusion::trainer_options o = options_.g0;
        o.seed = detail::derive_seed(options_.seed, detail::g0_init, -1, 1);
        o.checkpoint_dir = options_.out / "g0" / "checkpoints";
        if (o.checkpoint_every == 0) o.checkpoint_every = 200;
        if (!conditional) o.label_drop = 0.0;
        trainer_type trainer(g0, real, table_, o);
        if (trainer.resume()) log_() << "G0: resumed training at step " << trainer.step_count() << "\n";
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = [&] {
            const detail::phase_timer timer(phases_.g0_training);
            return trainer.train(training_progress_("G0", o));
        }();
        if (trainer.ema()) trainer.ema()->copy_to(g0.store());
        log_() << "G0: trained " << r.steps_run << " steps in " << detail::seconds_since(t0) << " s, last loss "
               << r.last_loss << "\n";
        diffusion::save_model(file, g0, trainer.step_count());
        std::error_code ec;
        std::filesystem::remove_all(options_.out / "g0" / "checkpoints",
                                    ec);  // G0 is final; its trainer state is not needed
    }

    // ---- Chains

    std::filesystem::path chain_dir_(std::size_t method, std::int64_t generation) const {
        return options_.out / "chains" / detail::dir_name(method_names[method]) / ("gen" + std::to_string(generation));
    }

    // The chain's S_1, S_2, …, one file each, as they entered its pool (kept while the pool holds them).
    std::filesystem::path samples_dir_(std::size_t method) const {
        return options_.out / "chains" / detail::dir_name(method_names[method]) / "samples";
    }

    // The chain of `method` as it stood after `generation` (0: G0 and D_r, whose latents
    // real_latents (N, D) already holds: the same images, labels and ids 0 … N − 1 as the pool's).
    // No item's floats are read: they stay in the real set and the chain's sample files.
    template <class Extractor>
    std::unique_ptr<chain> restore_chain_(std::size_t method, std::int64_t generation, const Model& g0,
                                          const data::image_dataset& real,
                                          const std::vector<std::int64_t>& probe_labels,
                                          const tensor<float>& real_latents, bool announce, Extractor& extractor) {
        const std::int64_t latent_dim = real_latents.dim(1);
        auto ch = std::make_unique<chain>(item_size_);
        ch->generation = generation;
        if (generation == 0) {
            copy_weights_(g0, ch->model);
            ch->items =
                pool::without_floats(item_size_, probe_labels, std::vector<std::int64_t>(probe_labels.size(), 0));
            ch->items.reserve(real.size() + options_.samples_per_generation);
            ch->sources.real_crc32 = real_crc32_;
        } else {
            const auto dir = chain_dir_(method, generation);
            detail::load_run_model(dir / "model.safetensors", ch->model);
            // Room for this step's S_k: the resident items are not copied again when S_k comes (#13).
            ch->items = detail::load_pool(dir / "pool.safetensors", item_size_, &ch->latents,
                                          options_.samples_per_generation, &ch->sources);
            const std::int64_t resident = ch->items.size() - ch->items.resident_begin();  // a pool saved whole
            if (!ch->latents.empty())
                require(static_cast<std::int64_t>(ch->latents.size()) == resident * latent_dim,
                        (dir / "pool.safetensors").string(), ": expected latents of ", latent_dim,
                        " values per item (this run's pooling), found ",
                        ch->latents.size() / static_cast<std::size_t>(resident));
            if (announce)
                log_() << method_names[method] << ": resumed after generation " << generation << " (pool of "
                       << ch->items.size() << ")\n";
        }
        ch->latents.reserve(ch->latents.size() +
                            static_cast<std::size_t>(options_.samples_per_generation * latent_dim));
        if (ch->latents.empty() && ch->items.resident_begin() < ch->items.size())  // a whole pool saved without them
            append_latents_(*ch, ch->items.resident_begin(), extractor);
        return ch;
    }

    // Latents of the resident pool items first … end.
    template <class Extractor>
    void append_latents_(chain& ch, std::int64_t first, Extractor& extractor) {
        const std::int64_t n = ch.items.size() - first;
        if (n <= 0) return;
        require(first >= ch.items.resident_begin(), "self_consuming: internal: latents of item ", first,
                ", which is not resident");
        tensor<float> images(shape{n, Model::spec.in_channels, Model::spec.image_size, Model::spec.image_size});
        tensor<std::int64_t> labels(shape{n}), ids(shape{n});
        for (std::int64_t i = 0; i < n; ++i) {
            const auto x = ch.items.item(first + i);
            std::copy(x.begin(), x.end(), images.data() + i * item_size_);
            labels[i] = ch.items.label(first + i);
            ids[i] = ch.items.id(first + i);
        }
        const tensor<float> h = extract_(extractor, images.view(), labels.view(), ids.view());
        ch.latents.resize(static_cast<std::size_t>((first - ch.items.resident_begin()) * h.dim(1)));
        ch.latents.insert(ch.latents.end(), h.begin(), h.end());
    }

    template <class Extractor>
    tensor<float> extract_(Extractor& extractor, tensor_view<const float> images,
                           tensor_view<const std::int64_t> labels, tensor_view<const std::int64_t> ids) {
        const detail::phase_timer timer(phases_.latents);
        if constexpr (conditional) {
            if (options_.latent_label == latent_conditioning::own_label) return extractor.extract(images, labels, ids);
            tensor<std::int64_t> null(shape{images.dim(0)});
            std::fill(null.begin(), null.end(), std::int64_t{Model::spec.classes});
            return extractor.extract(images, null.view(), ids);
        } else
            return extractor.extract(images, tensor_view<const std::int64_t>(labels.data(), shape{0}), ids);
    }

    // The Score policy's score of every row; by default ξ, its probability in its own label (the
    // paper's ξ(x, y)). An unconditional model's items have no label of their own: every item, real
    // or synthetic, is scored in the class the probe predicts for it (by default its maximum
    // probability), so that a real item whose cluster label the probe does not reproduce is not
    // scored lower than a synthetic one would be (docs/LATENTS.md, recommendation (b)).
    tensor<double> confidence_(tensor_view<const float> latents, const std::vector<std::int64_t>& labels) const {
        if constexpr (conditional) return score_.score(probe_, latents, labels);
        else {
            const auto predicted = probe_.predict(latents);
            return score_.score(probe_, latents, {predicted.label.begin(), predicted.label.end()});
        }
    }

    // Labels for the real latents h (N, D) of an unconditional run, in [0, classes): the clusters
    // options_.clustering says (the true labels are used only to report the clustering's accuracy).
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    std::vector<std::int64_t> cluster_real_(tensor_view<const float> h, std::int64_t classes) {
        const clustering_options& o = options_.clustering;
        if (o.method == label_clustering::ssc_omp) {
            const tensor<float> z = latent::standardizer::fit(h).apply(h);
            const auto c = cluster::ssc_omp_clustering(z.view(), classes, o.ssc_omp);
            return {c.labels.begin(), c.labels.end()};
        }
        const std::int64_t dims = std::min({o.pca_dims, h.dim(1), h.dim(0) - 1});
        const tensor<float> reduced = latent::pca::fit(h, dims, o.whiten).apply(h);  // (N, dims)
        const tensor<float> unit = latent::centred_unit_rows::fit(reduced.view()).apply(reduced.view());
        const auto c = cluster::knn_spectral_clustering(unit.view(), classes, o.knn);
        log_() << "k-NN graph of D_r (PCA " << dims << ", " << o.knn.graph.neighbours << " neighbours): "
               << cluster::near_unit_eigenvalues(c.eigenvalues) << " eigenvalues within 1e-8 of 1, "
               << c.isolated << " isolated points\n";
        return {c.labels.begin(), c.labels.end()};
    }

    // OLE of the G0 latents of the first sample_ole_count evaluation samples, with their conditioning
    // labels (unconditional models: the probe's classes). Their ids start at 2^39 (ids end at 2^40), apart from the
    // pool's, so the latent noise draws of samples and pool items never coincide.
    template <class Extractor>
    double sample_ole_(Extractor& extractor, tensor_view<const float> samples, tensor_view<const std::int64_t> labels) {
        const std::int64_t n = std::min(options_.sample_ole_count, samples.dim(0));
        if (n < 2) return NAN;
        const tensor_view<const float> first(samples.data(), shape{n, samples.dim(1), samples.dim(2), samples.dim(3)});
        const tensor<std::int64_t> ids = latent::sequential_ids(n, std::int64_t{1} << 39);
        const tensor_view<const std::int64_t> y(labels.data(), shape{conditional ? n : 0});
        const tensor<float> h = extract_(extractor, first, y, ids.view());
        std::vector<std::int64_t> classes;
        if constexpr (conditional) classes.assign(labels.data(), labels.data() + n);
        else {
            const auto pred = probe_.predict(h.view());
            classes.assign(pred.label.begin(), pred.label.end());
        }
        return latent_ole(h.view(), classes);
    }

    tensor<std::int64_t> balanced_labels_(std::int64_t count) const {
        if constexpr (conditional) {
            tensor<std::int64_t> y(shape{count});
            for (std::int64_t i = 0; i < count; ++i) y[i] = i % num_classes_;  // every prefix balanced
            return y;
        } else {
            return tensor<std::int64_t>(shape{0});
        }
    }

    template <class Denoiser>
    tensor<float> sample_(Denoiser& model, tensor_view<const std::int64_t> labels, std::int64_t count,
                          std::uint64_t seed, const std::string& what) {
        const detail::phase_timer timer(phases_.sampling);
        const shape item{Model::spec.in_channels, Model::spec.image_size, Model::spec.image_size};
        tensor<float> out(shape{count, item[0], item[1], item[2]});
        std::optional<progress> bar;
        if (options_.show_progress)
            bar.emplace(count, progress_options{.label = what,
                                                .log_every = std::max<std::int64_t>(1, count / 4),
                                                .unit = "sample",
                                                .out = options_.log});
        for (std::int64_t begin = 0; begin < count; begin += options_.sample_chunk) {
            const std::int64_t n = std::min(options_.sample_chunk, count - begin);
            const tensor_view<const std::int64_t> y =
                conditional ? tensor_view<const std::int64_t>(labels.data() + begin, shape{n})
                            : tensor_view<const std::int64_t>(labels.data(), shape{0});
            const tensor<float> s = sampler_.sample(model, item, n, y, seed, static_cast<std::uint64_t>(begin));
            std::copy(s.begin(), s.end(), out.data() + begin * item_size_);
            if (bar) bar->update(begin + n);
        }
        if (bar) bar->finish();
        for (float v : out)
            if (!std::isfinite(v)) fail("self_consuming: ", what, " produced a non-finite sample (the model diverged)");
        if (options_.samples_as_images) quantize_images_(out);
        return out;
    }

    // Clamped to [-1, 1] and rounded to the 256 levels of an 8-bit image.
    static void quantize_images_(tensor<float>& x) {
        for (float& v : x) v = std::round((std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f) / 127.5f - 1.0f;
    }

    // FID (with its bootstrap interval over the samples), precision / recall at prdc.k and at k = 5,
    // density, coverage and KID of one evaluation set.
    template <class Features>
    metric_row evaluate_(Features& features, tensor_view<const float> samples, std::uint64_t bootstrap_seed) {
        const detail::phase_timer timer(phases_.metrics);
        const tensor<float> f = features.features(samples);  // (n, D)
        return metrics_.evaluate(f.view(), {.prdc = options_.prdc,
                                            .kid_subsets = options_.kid_subsets,
                                            .kid_subset_size = options_.kid_subset_size,
                                            .fid_bootstrap_replicates = options_.fid_bootstrap_replicates,
                                            .kid_seed = options_.seed,
                                            .bootstrap_seed = bootstrap_seed});
    }

    void write_grid_(const std::filesystem::path& file, tensor_view<const float> samples) const {
        if (!options_.write_grids || Model::spec.image_size < 8) return;
        const std::int64_t cols = conditional ? num_classes_ : 10;
        const std::int64_t n = std::min<std::int64_t>(samples.dim(0), cols * 10);
        const shape s{n, samples.dim(1), samples.dim(2), samples.dim(3)};
        std::filesystem::create_directories(file.parent_path());
        io::write_png_grid(file, tensor_view<const float>(samples.data(), s), {.cols = cols});
    }

    // G_k's weights := G's (same type, same spec).
    static void copy_weights_(const Model& from, Model& to) {
        using B = backend_of_t<Model>;
        copy(tensor_view<const float, B>(from.store().values(), shape{from.store().size()}),
             tensor_view<float, B>(to.store().values(), shape{to.store().size()}));
    }

    // A training set of images (n, C, H, W) and their labels (n; unconditional models: zeros).
    data::image_dataset training_set_(std::string name, tensor_view<const float> images,
                                      std::span<const std::int64_t> labels) const {
        data::image_dataset set = empty_training_set_(std::move(name), images.dim(0));
        std::copy(images.begin(), images.end(), set.images.begin());
        if (labels.empty()) std::fill(set.labels.begin(), set.labels.end(), std::int64_t{0});
        else
            std::copy(labels.begin(), labels.end(), set.labels.begin());
        return set;
    }

    // T_k: the chosen pool items, read straight into the training set from wherever their floats
    // are (the step's one copy of them, #13), with their pool labels; their latents into `latents`
    // (|T_k|, D).
    data::image_dataset training_set_(std::string name, detail::pool_reader& reader, const pool& items,
                                      std::span<const std::int64_t> chosen, tensor<float>& latents) const {
        data::image_dataset set = empty_training_set_(std::move(name), static_cast<std::int64_t>(chosen.size()));
        latents = tensor<float>(shape{set.size(), reader.latent_dim()});
        reader.gather(chosen, {set.images.data(), static_cast<std::size_t>(set.images.numel())}, latents.view());
        for (std::size_t k = 0; k < chosen.size(); ++k)
            set.labels[static_cast<std::int64_t>(k)] = items.label(chosen[k]);
        return set;
    }

    // The reader of the chain's pool as it stands (its resident items and latents included).
    detail::pool_reader pool_reader_(std::size_t index, const chain& ch, const data::image_dataset& real,
                                     tensor_view<const float> real_latents) const {
        return detail::pool_reader(ch.items, ch.sources, samples_dir_(index),
                                   {real.images.view(), real_latents, real_crc32_}, ch.latents);
    }

    // Writes the chain's pool after step k: a sample file for each generation among its resident
    // items (S_k; every generation for a pool restored whole from before sample files), then its
    // index, which records each sample file's checksum.
    void save_pool_(std::size_t index, std::int64_t k, chain& ch) {
        const pool& p = ch.items;
        const std::int64_t rb = p.resident_begin(), resident = p.size() - rb;
        const std::int64_t d = resident > 0 ? static_cast<std::int64_t>(ch.latents.size()) / resident : 0;
        std::filesystem::create_directories(samples_dir_(index));
        for (const auto& [g, run] : detail::generation_runs(p, rb, p.size())) {
            const auto [first, count] = run;
            if (g == 0) {  // a whole pool's real items: they must be this run's real set
                const std::string crc = detail::floats_crc32(p.resident_data().subspan(
                    static_cast<std::size_t>((first - rb) * item_size_), static_cast<std::size_t>(count * item_size_)));
                require(first == 0 && crc == real_crc32_, (chain_dir_(index, k - 1) / "pool.safetensors").string(),
                        ": its real items (CRC-32 ", crc, ") are not this run's real set (CRC-32 ", real_crc32_, ")");
                continue;
            }
            const tensor_view<const float> latents(ch.latents.data() + (first - rb) * d, shape{count, d});
            ch.sources.sample_crc32[g] =
                detail::save_sample_file(detail::sample_file(samples_dir_(index), g), p, first, count, latents, g);
        }
        ch.sources.real_crc32 = real_crc32_;
        detail::save_pool_index(chain_dir_(index, k) / "pool.safetensors", p, ch.sources);
    }

    data::image_dataset empty_training_set_(std::string name, std::int64_t n) const {
        data::image_dataset set;
        set.name = std::move(name);
        set.num_classes = num_classes_;
        set.images = tensor<float>(shape{n, Model::spec.in_channels, Model::spec.image_size, Model::spec.image_size});
        set.labels = tensor<std::int64_t>(shape{n});
        return set;
    }

    // The fine-tuning recipe: E epochs of a fresh AdamW at options.finetune's batch and lr (with its
    // warm-up); with the EMA recipe (finetune_ema, or `ema` for a control arm) a warm-up of
    // ema_recipe_warmup_steps and G_k the EMA of the weights. No checkpoints, no sample grids.
    diffusion::train_result finetune_(Model& model, const data::image_dataset& set, std::uint64_t seed,
                                      std::string label, bool ema = false) {
        diffusion::trainer_options o = options_.finetune;
        o.steps = 0;
        o.epochs = options_.finetune_epochs;
        o.use_ema = ema || options_.finetune_ema;
        if (o.use_ema) o.warmup_steps = options_.ema_recipe_warmup_steps;
        o.checkpoint_dir.clear();
        o.sample_every = 0;
        o.seed = seed;
        if (!conditional) o.label_drop = 0.0;
        trainer_type trainer(model, set, table_, o);
        const detail::phase_timer timer(phases_.finetuning);
        const auto r = trainer.train(training_progress_(std::move(label), o));
        if (trainer.ema()) trainer.ema()->copy_to(model.store());
        return r;
    }

    // SIMS' auxiliary model for the chain's G_g: G_g fine-tuned on `count` unguided samples of G_g
    // (for g = 0, S_1, the unguided samples of G0 every other method draws too).
    std::unique_ptr<Model> train_aux_(std::size_t index, std::int64_t g, Model& model,
                                      std::optional<tensor<float>>& first_samples) {
        const std::string name = method_names[index];
        const auto mi = static_cast<std::int64_t>(index);
        const tensor<std::int64_t> labels = balanced_labels_(options_.samples_per_generation);
        tensor<float> plain;
        if (g == 0) {
            if (!first_samples)
                first_samples = sample_(model, labels.view(), options_.samples_per_generation,
                                        detail::derive_seed(options_.seed, detail::sampling, -1, 1), name + " S_1");
            plain = *first_samples;
        } else {
            plain = sample_(model, labels.view(), options_.samples_per_generation,
                            detail::derive_seed(options_.seed, detail::aux_sampling, mi, g),
                            name + " unguided samples of G_" + std::to_string(g));
        }
        auto aux = std::make_unique<Model>();
        copy_weights_(model, *aux);
        const auto set = training_set_(name + "-aux" + std::to_string(g), plain.view(), {labels.begin(), labels.end()});
        const auto r = finetune_(*aux, set, detail::derive_seed(options_.seed, detail::aux_finetuning, mi, g),
                                 name + " aux of G_" + std::to_string(g));
        log_() << "  auxiliary model of G_" << g << ": fine-tuned " << r.steps_run << " steps on " << set.size()
               << " of its own samples, last loss " << r.last_loss << "\n";
        return aux;
    }

    struct selection_ {
        std::vector<double> scores;        // ξ of every pool item
        std::vector<std::int64_t> chosen;  // T_k, indices into the pool
    };

    // Pool items scored at a time: whole 256-row blocks of the probe, so that no score depends on
    // the chunking (the scores are those of the whole pool at once), and the pool's latents are
    // never all in memory.
    static constexpr std::int64_t score_chunk_ = 64 * 256;

    // ξ over the chain's pool, then the mode's T_k from it. Deterministic in the pool, the probe and
    // the seed, so the same pool gives the same T_k again (sample_labels_ relies on it).
    template <class Mode>
    selection_ select_(const Mode& mode, std::size_t index, std::int64_t k, const chain& ch,
                       detail::pool_reader& reader) {
        const std::int64_t n = ch.items.size();
        selection_ sel;
        sel.scores.reserve(static_cast<std::size_t>(n));
        for (std::int64_t first = 0; first < n; first += score_chunk_) {
            const std::int64_t count = std::min(score_chunk_, n - first);
            const tensor<float> h = reader.latents(first, count);  // (count, D)
            const auto labels =
                ch.items.labels().subspan(static_cast<std::size_t>(first), static_cast<std::size_t>(count));
            const tensor<double> xi = confidence_(h.view(), {labels.begin(), labels.end()});
            sel.scores.insert(sel.scores.end(), xi.begin(), xi.end());
        }
        sel.chosen =
            mode.select(ch.items, sel.scores, options_.budget,
                        detail::derive_seed(options_.seed, detail::selection, static_cast<std::int64_t>(index), k));
        require(!sel.chosen.empty(), "self_consuming: method ", method_names[index],
                " selected no items at generation ", k);
        return sel;
    }

    // How many of `chosen` carry each label 0 … classes − 1 (the pool's labels: conditioning labels,
    // or the probe's classes when unlabelled).
    std::vector<std::int64_t> label_counts_(const pool& items, std::span<const std::int64_t> chosen) const {
        std::vector<std::int64_t> counts(static_cast<std::size_t>(num_classes_), 0);
        for (const std::int64_t i : chosen) {
            const std::int64_t label = items.labels()[static_cast<std::size_t>(i)];
            require(label >= 0 && label < num_classes_, "self_consuming: internal: pool label ", label, " outside [0, ",
                    num_classes_, ")");
            ++counts[static_cast<std::size_t>(label)];
        }
        return counts;
    }

    // One log line "  <what>: n_0 n_1 …" (tests/test_self_consuming.cpp reads these lines).
    void log_label_counts_(const std::string& what, std::span<const std::int64_t> counts) const {
        log_() << "  " << what << ":";
        for (const std::int64_t n : counts) log_() << " " << n;
        log_() << "\n";
    }

    // The labels S_k is drawn with: every class an equal share, or, for a mode that samples in its
    // selection's shares (samples_follow_selection, conditional, k >= 2), T_{k-1}'s label shares.
    // T_{k-1} is not stored: the chain restored for step k holds the pool T_{k-1} was chosen from,
    // so select_ chooses the same set again.
    template <class Mode>
    tensor<std::int64_t> sample_labels_(const Mode& mode, std::size_t index, std::int64_t k, const chain& ch,
                                        const data::image_dataset& real, tensor_view<const float> real_latents) {
        if constexpr (conditional && samples_follow_selection<Mode>) {
            if (k >= 2) {
                detail::pool_reader reader = pool_reader_(index, ch, real, real_latents);
                const selection_ previous = select_(mode, index, k - 1, ch, reader);
                const std::vector<std::int64_t> counts = label_counts_(ch.items, previous.chosen);
                tensor<std::int64_t> y = labels_in_shares(counts, options_.samples_per_generation);
                std::vector<std::int64_t> drawn(static_cast<std::size_t>(num_classes_), 0);
                for (const std::int64_t c : y) ++drawn[static_cast<std::size_t>(c)];
                log_label_counts_("S_" + std::to_string(k) + " drawn in T_" + std::to_string(k - 1) + "'s label shares",
                                  drawn);
                return y;
            }
        }
        (void)mode, (void)index, (void)k, (void)ch, (void)real, (void)real_latents;
        return balanced_labels_(options_.samples_per_generation);
    }

    // Samples of the chain's current model: negatively guided by its auxiliary model for SIMS.
    template <class Mode>
    tensor<float> chain_samples_(const Mode& mode, chain& ch, tensor_view<const std::int64_t> labels,
                                 std::int64_t count, std::uint64_t seed, const std::string& what) {
        if constexpr (negatively_guided<Mode>) {
            require(ch.aux != nullptr, "self_consuming: internal: ", what, " needs the auxiliary model");
            diffusion::negative_guidance<Model> guided(ch.model, *ch.aux, mode.omega);
            return sample_(guided, labels, count, seed, what);
        } else {
            return sample_(ch.model, labels, count, seed, what);
        }
    }

    template <class Mode, class Extractor, class Features, class... Callbacks>
    void step_(const Mode& mode, std::size_t index, std::int64_t k, chain& ch, Model& g0,
               const data::image_dataset& real, tensor_view<const float> real_latents, Extractor& extractor,
               Features& features, std::optional<tensor<float>>& first_samples,
               std::chrono::steady_clock::time_point t0, run_summary& summary, Callbacks&... callbacks) {
        const std::string name = method_names[index];
        const auto mi = static_cast<std::int64_t>(index);
        require(ch.generation == k - 1, "self_consuming: internal: chain of ", name, " at generation ", ch.generation,
                ", expected ", k - 1);
        log_() << "[" << name << " generation " << k << "/" << options_.generations << "]\n";

        if constexpr (negatively_guided<Mode>) {
            if (!ch.aux) {  // A_{k-1}: trained now for G0, else saved with the chain's generation k - 1
                if (k == 1) ch.aux = train_aux_(index, 0, ch.model, first_samples);
                else {
                    ch.aux = std::make_unique<Model>();
                    detail::load_run_model(chain_dir_(index, k - 1) / "aux.safetensors", *ch.aux);
                }
            }
        }

        // S_k from G_{k-1}. Every method that samples G0 unguided draws the same S_1: draw it once.
        if constexpr (!real_data_only<Mode>) {
            const tensor<std::int64_t> labels = sample_labels_(mode, index, k, ch, real, real_latents);
            const std::uint64_t sample_seed = detail::derive_seed(options_.seed, detail::sampling, -1, k);
            const std::string what = name + " S_" + std::to_string(k);
            tensor<float> s_k;
            if (negatively_guided<Mode>) {
                s_k = chain_samples_(mode, ch, labels.view(), options_.samples_per_generation, sample_seed, what);
            } else if (k == 1 && first_samples) {
                s_k = *first_samples;
            } else {
                s_k = sample_(ch.model, labels.view(), options_.samples_per_generation, sample_seed, what);
                if (k == 1) first_samples = s_k;
            }
            if constexpr (corrects_samples<Mode>) {
                const correction_context context{real.images.view(),
                                                 {real.labels.begin(), real.labels.end()},
                                                 real.num_classes,
                                                 detail::derive_seed(options_.seed, detail::correction, mi, k)};
                mode.correct(s_k.view(), {labels.begin(), labels.end()}, context);
                if (options_.samples_as_images) quantize_images_(s_k);
            }

            // The pool grows by S_k, labelled by their conditioning label (or the probe's class).
            std::vector<std::int64_t> s_labels(labels.begin(), labels.end());
            const std::int64_t first = ch.items.size();
            if constexpr (!conditional) {
                const tensor<std::int64_t> ids = latent::sequential_ids(s_k.dim(0), first);
                const tensor<float> h = extract_(extractor, s_k.view(), labels.view(), ids.view());
                const auto pred = probe_.predict(h.view());
                s_labels.assign(pred.label.begin(), pred.label.end());
            }
            ch.items.add(std::span<const float>(s_k.data(), static_cast<std::size_t>(s_k.numel())), s_labels, k);
            append_latents_(ch, first, extractor);
        }

        // ξ over the pool, then T_k, read from the real set, the sample files and S_k.
        detail::pool_reader reader = pool_reader_(index, ch, real, real_latents);
        const selection_ sel = select_(mode, index, k, ch, reader);
        const std::vector<double>& scores = sel.scores;
        const std::vector<std::int64_t>& chosen = sel.chosen;
        log_label_counts_("T_" + std::to_string(k) + " per label", label_counts_(ch.items, chosen));
        tensor<float> chosen_latents;  // (|T_k|, D)
        const data::image_dataset train_set =
            training_set_(name + "-T" + std::to_string(k), reader, ch.items, chosen, chosen_latents);

        // Diagnostics of T_k.
        diagnostic_row diag = describe_selection(ch.items, scores, chosen, chosen_latents.view(), k);
        diag.method = name;

        // S_k's file and the pool's index are written to the chain's new directory, and the pool let
        // go: nothing after this point reads it, so fine-tuning and evaluation hold T_k and nothing of
        // the pool but its provenance and scores (#13). (A kill before the step's rows are committed
        // leaves files that the next run simply rewrites, as for the files written below.)
        std::filesystem::create_directories(chain_dir_(index, k));
        save_pool_(index, k, ch);
        ch.items = pool(item_size_);
        std::vector<float>().swap(ch.latents);
        const auto dir = chain_dir_(index, k);

        // G_k: fine-tune G_{k-1} (or fresh weights) on T_k for E epochs.
        if (options_.retrain_from_scratch) {
            ch.model.reset_parameters(detail::derive_seed(options_.seed, detail::scratch_init, mi, k));
            diffusion::trainer_options o = options_.g0;
            o.checkpoint_dir.clear();
            o.sample_every = 0;
            o.seed = detail::derive_seed(options_.seed, detail::finetuning, mi, k);
            if (!conditional) o.label_drop = 0.0;
            trainer_type trainer(ch.model, train_set, table_, o);
            const detail::phase_timer timer(phases_.finetuning);
            const auto r = trainer.train(training_progress_(name + " G_" + std::to_string(k), o));
            if (trainer.ema()) trainer.ema()->copy_to(ch.model.store());
            log_() << "  retrained " << r.steps_run << " steps on " << diag.train_size << " items (real "
                   << 100.0 * diag.real_share << "%), last loss " << r.last_loss << "\n";
        } else {
            const auto r = finetune_(ch.model, train_set, detail::derive_seed(options_.seed, detail::finetuning, mi, k),
                                     name + " G_" + std::to_string(k), ema_recipe_arm<Mode>);
            log_() << "  fine-tuned " << r.steps_run << " steps on " << diag.train_size << " items (real "
                   << 100.0 * diag.real_share << "%), last loss " << r.last_loss << "\n";
        }
        if constexpr (negatively_guided<Mode>) ch.aux = train_aux_(index, k, ch.model, first_samples);

        // Evaluate G_k: the same noise for every (method, generation).
        const tensor<std::int64_t> eval_labels = balanced_labels_(options_.eval_samples);
        const tensor<float> samples = chain_samples_(mode, ch, eval_labels.view(), options_.eval_samples,
                                                     detail::derive_seed(options_.seed, detail::evaluation, -1, 0),
                                                     name + " G_" + std::to_string(k) + " eval");
        metric_row m =
            evaluate_(features, samples.view(), detail::derive_seed(options_.seed, detail::bootstrap, mi, k));
        diag.sample_ole = sample_ole_(extractor, samples.view(), eval_labels.view());
        m.method = name;
        m.generation = k;
        write_grid_(options_.out / "grids" / (detail::dir_name(name) + "_gen" + std::to_string(k) + ".png"),
                    samples.view());

        // Commit: the chain's files first (in a fresh directory; the pool is there already), then
        // the rows. A kill between the two leaves files that the next run simply rewrites.
        diffusion::save_model(dir / "model.safetensors", ch.model, k);
        if (ch.aux) diffusion::save_model(dir / "aux.safetensors", *ch.aux, k);
        ch.generation = k;
        m.seconds = detail::seconds_since(t0);
        record_memory_(diag);
        state_.metrics.push_back(m);
        state_.diagnostics.push_back(diag);
        commit_state_();
        if (k >= 2) {
            std::error_code ec;
            std::filesystem::remove_all(chain_dir_(index, k - 1), ec);  // only the newest state is needed to resume
        }
        ++summary.steps_run;
        log_() << "  " << name << " G_" << k << ": FID " << m.fid << " [" << m.fid_ci_low << ", " << m.fid_ci_high
               << "], precision " << m.precision << ", recall " << m.recall << ", density " << m.density
               << ", coverage " << m.coverage << ", KID " << m.kid << " (" << m.seconds << " s)\n";
        invoke_each(on_generation, std::tie(callbacks...),
                    generation_event{name, k, samples.view(), eval_labels.view(), &m, &diag, &options_.out});
        (void)g0;
    }

    Sampler sampler_;
    diffusion::schedule_table table_;
    loop_options options_;
    std::tuple<Modes...> modes_;
    Probe probe_;
    Score score_;
    Metrics metrics_;  // fitted on the reference features
    run_state state_;
    double start_rss_mib_ = NAN;     // the resident set as the current step began (diagnostic_row::start_rss_mib)
    double carried_heap_mib_ = NAN;  // the live heap as the current step began (diagnostic_row::carried_heap_mib; G0: NaN)
    std::string real_crc32_;         // of the real set's images: the pool index's record of generation 0
    std::int64_t num_classes_ = 0;
    phase_seconds phases_;  // of the current run() call
};

}  // namespace ouro::loop
