// lsf_experiment's run, as a template over the backend its U-Nets train and sample on:
// lsf_experiment.cpp instantiates it on the CPU, lsf_experiment_cuda.cu (nvcc; CMake option
// OURO_EXAMPLES_ON_CUDA) on ouro::cuda. The data, the LeNet features, the probe, OLE and the metrics
// stay on the host. What it does: examples/lsf_experiment.cpp's header.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/data/subset.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/loop/seeds.hpp"
#include "ouro/loop/self_consuming.hpp"
#include "ouro/metrics/feature_extractor.hpp"
#include "ouro/presets/experiments.hpp"

namespace lsf_experiment {

using namespace ouro;
namespace fs = std::filesystem;

struct options {
    std::string dataset = "mnist", profile = "quick";
    fs::path data_dir, out;
    std::uint64_t seed = 1;
    std::string seeds;            // "1-5" or "1,3,7": one run per seed, then the summary over them
    bool summarise_only = false;  // with --seeds: only the summary, from the seeds' metrics.csv
    bool unlabelled = false;
    std::int64_t t = -1, draws = -1, generations = -1;
    double probe_l2 = -1;
    std::vector<std::string> methods;  // empty: all
    std::string latent_label = "null";
    std::string finetune_recipe = "plain";
    std::string pooling = "mean";
    std::string clustering = "knn-spectral";
    std::string device = "cpu";
};

struct datasets {
    data::image_dataset train, test;
};

// The run on ouro::cuda: defined in lsf_experiment_cuda.cu, in builds with OURO_EXAMPLES_ON_CUDA.
int run_on_cuda(const options& o, const datasets& d);

template <class Experiment>
int run_experiment(const options& o, const presets::lsf_profile& profile, const datasets& d) {
    const std::int64_t per_class = profile.real_per_class, ref_per_class = profile.reference_per_class;
    const auto real = data::first_per_class(d.train, per_class, d.train.name + "-real");
    const auto reference = data::first_per_class(d.test, ref_per_class, d.test.name + "-reference");
    std::printf("dataset %s: D_r = %lld training images (%lld per class), reference = %lld test images; %d threads\n",
                o.dataset.c_str(), static_cast<long long>(real.size()), static_cast<long long>(per_class),
                static_cast<long long>(reference.size()), max_threads());
    std::printf("model: %s\n", std::string(Experiment::model_spec().str()).c_str());

    // The metrics' features: a LeNet-style classifier trained on the whole real training split.
    metrics::lenet_feature_extractor classifier;
    classifier.train_or_load(d.train, fs::path("runs") / "cache" / ("lenet_" + o.dataset + ".safetensors"));

    loop::loop_options lo = presets::loop_options_for(profile);
    if (o.t >= 0) lo.latents.timestep = o.t;
    if (o.draws >= 1) lo.latents.draws = o.draws;
    if (o.probe_l2 >= 0) lo.probe.l2 = o.probe_l2;
    if (o.generations >= 1) lo.generations = o.generations;
    lo.latent_label =
        o.latent_label == "own" ? loop::latent_conditioning::own_label : loop::latent_conditioning::null_class;
    lo.clustering.method =
        o.clustering == "ssc-omp" ? loop::label_clustering::ssc_omp : loop::label_clustering::knn_spectral;
    lo.finetune_ema =
        o.finetune_recipe == "ema-warmup";  // warm-up and EMA as loop_options::ema_recipe_warmup_steps says
    lo.extra_config = {{"dataset", o.dataset},
                       {"data_dir", o.data_dir.string()},
                       {"profile", o.profile},
                       {"unlabelled", o.unlabelled},
                       {"real_per_class", per_class},
                       {"reference_per_class", ref_per_class},
                       {"finetune_recipe", o.finetune_recipe}};
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    // By default the paper's seven methods; the control arms (REAL, REAL-EMA, ACU-EMA, ACU-LSF-CB, ACU-LSF-TS) when
    // named.
    constexpr auto paper = loop::method_names_of(loop::paper_methods{});
    const std::vector<std::string> names =
        o.methods.empty() ? std::vector<std::string>(paper.begin(), paper.end()) : o.methods;
    lo.only_methods = names;

    if (!o.seeds.empty()) {
        const std::vector<std::uint64_t> seeds = loop::parse_seed_list(o.seeds);
        for (std::size_t i = 0; i < seeds.size(); ++i) {
            std::printf("\n==== seed %llu (%zu of %zu) ====\n", static_cast<unsigned long long>(seeds[i]), i + 1,
                        seeds.size());
            lo.seed = seeds[i];
            lo.out = o.out / ("seed_" + std::to_string(seeds[i]));
            Experiment ex(Experiment::make_sampler(table, profile), table, lo);
            const auto start = std::chrono::steady_clock::now();
            const auto summary = ex.run(real, reference, classifier);
            std::printf("seed %llu: %.1f s (%lld steps run)\n", static_cast<unsigned long long>(seeds[i]),
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                        static_cast<long long>(summary.steps_run));
        }
        const auto summary = loop::write_seed_summary(o.out, seeds, names);
        std::printf("\n%s, profile %s%s, generation %lld, %zu seeds (mean ± 95%% interval half-width):\n%s",
                    o.dataset.c_str(), o.profile.c_str(), o.unlabelled ? " (unlabelled)" : "",
                    static_cast<long long>(lo.generations), seeds.size(),
                    loop::summary_table(summary, lo.generations).c_str());
        std::printf("summary: %s\n", (o.out / "summary.md").string().c_str());
        return 0;
    }

    lo.seed = o.seed;
    lo.out = o.out;
    Experiment ex(Experiment::make_sampler(table, profile), table, lo);
    const auto start = std::chrono::steady_clock::now();
    const auto summary = ex.run(real, reference, classifier);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::printf("\n%s, profile %s%s, generation %lld:\n%s", o.dataset.c_str(), o.profile.c_str(),
                o.unlabelled ? " (unlabelled)" : "", static_cast<long long>(lo.generations),
                loop::metrics_table(summary.metrics, names, lo.generations).c_str());
    if (o.unlabelled)
        std::printf("%s clustering accuracy of D_r: %.4f\n", o.clustering.c_str(), summary.clustering_accuracy);
    std::printf("wall time of this call: %.1f s (%lld steps run)\n", wall, static_cast<long long>(summary.steps_run));
    const loop::phase_seconds& t = summary.phases;
    std::printf(
        "  of which: G0 training %.1f s, fine-tuning %.1f s, sampling %.1f s, latents %.1f s, metrics %.1f s, "
        "other %.1f s (the loop's own count; the rest was loading data and the feature extractor)\n",
        t.g0_training, t.finetuning, t.sampling, t.latents, t.metrics, t.other);
    std::printf("report: %s\n", (o.out / "report.md").string().c_str());
    return 0;
}

template <backend B, bool Colour, class Pooling>
int dispatch(const options& o, const datasets& d) {
    const presets::lsf_profile profile = presets::lsf_profile_named(o.profile);
    const bool paper = o.profile == "paper";
    if (o.unlabelled) {
        if (paper) return run_experiment<presets::lsf_experiment<Colour, false, true, Pooling, B>>(o, profile, d);
        return run_experiment<presets::lsf_experiment<Colour, false, false, Pooling, B>>(o, profile, d);
    }
    if (paper) return run_experiment<presets::lsf_experiment<Colour, true, true, Pooling, B>>(o, profile, d);
    return run_experiment<presets::lsf_experiment<Colour, true, false, Pooling, B>>(o, profile, d);
}

template <backend B, bool Colour>
int dispatch(const options& o, const datasets& d) {
    if (o.pooling == "flatten") return dispatch<B, Colour, latent::flatten>(o, d);
    return dispatch<B, Colour, latent::spatial_mean>(o, d);
}

// The experiment for the data's image size, its U-Nets on backend B.
template <backend B>
int run_on(const options& o, const datasets& d) {
    if (d.train.channels() == 1) {
        require(d.train.height() == 28 && d.train.width() == 28, "lsf_experiment: grey images must be 28×28, found ",
                d.train.height(), "×", d.train.width());
        return dispatch<B, false>(o, d);
    }
    require(d.train.channels() == 3 && d.train.height() == 32 && d.train.width() == 32,
            "lsf_experiment: colour images must be 3×32×32, found ", d.train.images.dims());
    return dispatch<B, true>(o, d);
}

}  // namespace lsf_experiment
