// The paper's experiment (Cai et al., AAAI-26, §5) end to end: train G0 on real images, then run the
// self-consuming loop for SYN, SYN-ADD, ACU, ACUR, ACUR-SIMS, ACUR-SC and ACU-LSF (and the REAL
// control arm) side by side, and write the run directory (config.json, metrics.csv,
// diagnostics.csv, grids/, plots/, report.md). Ends with the last generation's table and the path
// of report.md.
//
//   lsf_experiment [--dataset mnist|fashion-mnist|cifar10|image-folder] [--data-dir DIR]
//                  [--profile smoke|quick|paper] [--out DIR] [--seed S | --seeds 1-5 [--summarise-only]]
//                  [--unlabelled [--clustering knn-spectral|ssc-omp]]
//                  [--t T] [--draws R] [--probe-l2 L] [--generations K] [--methods M1,M2,...]
//                  [--latent-label null|own] [--finetune-recipe plain|ema-warmup] [--pooling mean|flatten]
//
// --seeds: one run per seed in <out>/seed_<s>/ (each resumable on its own), then <out>/summary.csv
// (mean, std, 95% interval over the seeds per method, generation and metric), paired_differences.csv
// (every pair of methods, seed by seed: they share G0, S_1 and the evaluation noise), band plots
// and summary.md. --seeds 1-5 --summarise-only: no runs, only that summary, from the
// seed_<s>/metrics.csv files already in --out (docs/results/ keeps the finished seeds that way).
//
// --data-dir: MNIST-style IDX files (default data/mnist, data/fashion-mnist), CIFAR-10's binary
// batches (cifar10), or a folder with one subfolder of images per class (image-folder; a train/ and
// test/ split is used when present, otherwise the images are split 90/10), read at 32×32.
// --unlabelled: an unconditional DDPM; the probe learns cluster labels of the real latents (--clustering:
// a k-NN graph's spectral clusters by default, or the paper's SSC-OMP).
// --t, --draws, --probe-l2: the latent extraction timestep, its noise draws and the probe's L2
// weight (ablations of what the paper leaves open). --latent-label own: read a class-conditional
// G0's latents with each item's own label instead of the null class. --methods ACU-LSF: run only
// the named methods. --pooling flatten: the probe reads the whole bottleneck, not its spatial mean
// (a run directory records its pooling; resuming with the other is refused).
// Interrupt it at any time: the same command resumes after the last finished step.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/data/cifar10.hpp"
#include "ouro/data/image_folder.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/data/subset.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/loop/seeds.hpp"
#include "ouro/loop/self_consuming.hpp"
#include "ouro/metrics/feature_extractor.hpp"
#include "ouro/presets/experiments.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

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
};

// The command line, every value checked before any work starts (and so before the run directory
// is written): an unknown flag, a malformed number or one out of range ends here in one line.
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "The paper's experiment (Cai et al., AAAI-26): G0 on real images, then K generations of the "
        "self-consuming loop for each method, written to a resumable run directory.",
        "lsf_experiment"};
    examples::setup(app);
    app.add_option("--dataset", o.dataset, "Data set")
        ->check(CLI::IsMember({"mnist", "fashion-mnist", "cifar10", "image-folder"}));
    app.add_option("--data-dir", o.data_dir,
                   "IDX files (default data/mnist, data/fashion-mnist), CIFAR-10 binary batches, or an image folder "
                   "(one subfolder per class; train/ and test/ when present, else split 90/10), read at 32x32");
    app.add_option("--profile", o.profile, "Sizes and lengths (see README)")
        ->check(CLI::IsMember({"smoke", "quick", "paper"}));
    app.add_option("--out", o.out, "Run directory (default runs/lsf_<dataset>_<profile>)");
    auto* seed = app.add_option("--seed", o.seed, "Seed of every random choice")->check(examples::unsigned_integer);
    app.add_option("--seeds", o.seeds,
                   "Run once per seed (a range 1-5 or a list 1,3,7) into <out>/seed_<s>/, then summarise: "
                   "summary.csv, paired_differences.csv, plots/summary_*.svg, summary.md")
        ->excludes(seed)
        ->check(CLI::Validator(
            [](std::string& text) -> std::string {
                try {
                    (void)loop::parse_seed_list(text);
                } catch (const ouro::error& e) {
                    return e.what();
                }
                return {};
            },
            "LIST"));
    app.add_flag("--summarise-only", o.summarise_only,
                 "With --seeds: run nothing, only write the summary from <out>/seed_<s>/metrics.csv (seeds run on "
                 "other machines or kept without their models, e.g. docs/results/)")
        ->needs(app.get_option("--seeds"));
    app.add_flag("--unlabelled", o.unlabelled, "Unconditional DDPM; the probe learns cluster labels of D_r's latents");
    app.add_option("--t", o.t, "Latent extraction timestep, of T = 1000 (default: the profile's)")
        ->check(examples::whole_in(0, 999))
        ->default_str("");
    app.add_option("--draws", o.draws, "Noise draws averaged per latent (default: the profile's)")
        ->check(examples::whole_in(1, 1000))
        ->default_str("");
    app.add_option("--probe-l2", o.probe_l2, "The probe's L2 weight lambda (default: the profile's)")
        ->check(examples::finite_at_least(0))
        ->default_str("");
    app.add_option("--generations", o.generations, "Generations K (default: the profile's)")
        ->check(examples::whole_in(1, 1000))
        ->default_str("");
    const auto& names = presets::lsf_experiment<false, true, false>::method_names;
    app.add_option("--methods", o.methods,
                   "Run these methods, comma-separated (default: the paper's seven; the control arms REAL, REAL-EMA "
                   "and ACU-EMA only when named)")
        ->delimiter(',')
        ->check(CLI::IsMember(std::vector<std::string>(names.begin(), names.end())))
        ->default_str("");
    app.add_option("--latent-label", o.latent_label, "Label a conditional G0 reads latents with")
        ->check(CLI::IsMember({"null", "own"}));
    app.add_option("--finetune-recipe", o.finetune_recipe,
                   "How each G_k is fine-tuned: plain (fresh AdamW, no warm-up, last iterate) or ema-warmup "
                   "(20 warm-up steps, G_k the EMA of the weights), for every method (the REAL-EMA and ACU-EMA "
                   "control arms use ema-warmup always)")
        ->check(CLI::IsMember({"plain", "ema-warmup"}));
    app.add_option("--pooling", o.pooling,
                   "How a bottleneck becomes the probe's latent: mean (one value per channel, 32-d for the small "
                   "U-Nets) or flatten (every element, C·h·w: 1,568-d for the small MNIST U-Net)")
        ->check(CLI::IsMember({"mean", "flatten"}));
    app.add_option("--clustering", o.clustering,
                   "With --unlabelled, how D_r's latents are labelled for the probe: knn-spectral (whitened PCA-20, "
                   "unit rows, 10-NN graph, spectral clustering; 0.66 accuracy on held-out MNIST digits) or ssc-omp "
                   "(the paper's; 0.15 there)")
        ->check(CLI::IsMember({"knn-spectral", "ssc-omp"}));
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    if (o.data_dir.empty()) {
        if (o.dataset == "mnist") o.data_dir = "data/mnist";
        else if (o.dataset == "fashion-mnist")
            o.data_dir = "data/fashion-mnist";
        else {
            std::fprintf(stderr,
                         "lsf_experiment: error: --dataset %s needs --data-dir DIR (run with --help for the flags)\n",
                         o.dataset.c_str());
            exit_code = 2;
            return std::nullopt;
        }
    }
    if (o.out.empty())
        o.out = fs::path("runs") / ("lsf_" + o.dataset + "_" + o.profile + (o.unlabelled ? "_unlabelled" : ""));
    return o;
}

struct datasets {
    data::image_dataset train, test;
};

datasets load(const options& o) {
    if (o.dataset == "mnist" || o.dataset == "fashion-mnist")
        return {data::load_mnist(o.data_dir, data::split::train), data::load_mnist(o.data_dir, data::split::test)};
    if (o.dataset == "cifar10")
        return {data::load_cifar10(o.data_dir, data::split::train), data::load_cifar10(o.data_dir, data::split::test)};
    // An image folder at 32×32: train/ and test/ when both exist, else one folder split 90/10 per class.
    // The two splits must hold the same classes, or the test-set reference comes from other ones.
    if (fs::is_directory(o.data_dir / "train") && fs::is_directory(o.data_dir / "test")) {
        data::image_folder_splits s = data::load_image_folder_splits(o.data_dir, 32);
        return {std::move(s.train), std::move(s.test)};
    }
    const auto all = data::load_image_folder(o.data_dir, 32);
    std::vector<std::int64_t> count(static_cast<std::size_t>(all.num_classes), 0), seen(count);
    for (std::int64_t i = 0; i < all.size(); ++i) ++count[static_cast<std::size_t>(all.labels[i])];
    std::vector<std::int64_t> train_idx, test_idx;
    for (std::int64_t i = 0; i < all.size(); ++i) {
        const auto c = static_cast<std::size_t>(all.labels[i]);
        (seen[c]++ < count[c] * 9 / 10 ? train_idx : test_idx).push_back(i);
    }
    return {data::subset(all, train_idx, all.name + "-train"), data::subset(all, test_idx, all.name + "-test")};
}

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
    // By default the paper's seven methods; the control arms (REAL, REAL-EMA, ACU-EMA) when named.
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

template <bool Colour, class Pooling>
int dispatch(const options& o, const datasets& d) {
    const presets::lsf_profile profile = presets::lsf_profile_named(o.profile);
    const bool paper = o.profile == "paper";
    if (o.unlabelled) {
        if (paper) return run_experiment<presets::lsf_experiment<Colour, false, true, Pooling>>(o, profile, d);
        return run_experiment<presets::lsf_experiment<Colour, false, false, Pooling>>(o, profile, d);
    }
    if (paper) return run_experiment<presets::lsf_experiment<Colour, true, true, Pooling>>(o, profile, d);
    return run_experiment<presets::lsf_experiment<Colour, true, false, Pooling>>(o, profile, d);
}

template <bool Colour>
int dispatch(const options& o, const datasets& d) {
    if (o.pooling == "flatten") return dispatch<Colour, latent::flatten>(o, d);
    return dispatch<Colour, latent::spatial_mean>(o, d);
}

// The summary over seeds whose runs are already in <out>: no data, no models, only each seed's
// metrics.csv. A seed's run directory holds hundreds of MB of models and pools; its metrics.csv is
// what a summary needs, so seeds can be kept (docs/results/) or run apart and summarised together.
int summarise_only(const options& o) {
    const std::vector<std::uint64_t> seeds = loop::parse_seed_list(o.seeds);
    constexpr auto paper = loop::method_names_of(loop::paper_methods{});
    const std::vector<std::string> names =
        o.methods.empty() ? std::vector<std::string>(paper.begin(), paper.end()) : o.methods;
    const auto summary = loop::write_seed_summary(o.out, seeds, names);
    const std::int64_t generation = o.generations >= 1 ? o.generations : summary.last_generation();
    std::printf("%zu seeds from %s (mean ± 95%% interval half-width), generation %lld:\n%s", seeds.size(),
                o.out.string().c_str(), static_cast<long long>(generation),
                loop::summary_table(summary, generation).c_str());
    std::printf("summary: %s\n", (o.out / "summary.md").string().c_str());
    return 0;
}

int run(const options& o) {
    if (o.summarise_only) return summarise_only(o);
    const datasets d = load(o);
    if (d.train.channels() == 1) {
        require(d.train.height() == 28 && d.train.width() == 28, "lsf_experiment: grey images must be 28×28, found ",
                d.train.height(), "×", d.train.width());
        return dispatch<false>(o, d);
    }
    require(d.train.channels() == 3 && d.train.height() == 32 && d.train.width() == 32,
            "lsf_experiment: colour images must be 3×32×32, found ", d.train.images.dims());
    return dispatch<true>(o, d);
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("lsf_experiment", [&] { return run(*o); });
}
