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
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "device.hpp"
#include "lsf_experiment_run.hpp"
#include "ouro/data/cifar10.hpp"
#include "ouro/data/image_folder.hpp"
#include "ouro/data/mnist.hpp"

using namespace ouro;
using lsf_experiment::datasets;
using lsf_experiment::options;
namespace fs = std::filesystem;

namespace {

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
                   "Run these methods, comma-separated (default: the paper's seven; the control arms REAL, REAL-EMA, "
                   "ACU-EMA, ACU-LSF-CB and ACU-LSF-TS only when named)")
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
    examples::add_device_option(app, o.device);
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    if (exit_code = examples::check_device_built(app, o.device); exit_code >= 0) return std::nullopt;
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
    if (o.device == "cuda") {
        // No usable GPU: one line, before the data is read.
        std::printf("device: %s\n", examples::cuda_device_name().c_str());
        return lsf_experiment::run_on_cuda(o, load(o));
    }
    std::printf("device: cpu\n");
    return lsf_experiment::run_on<cpu>(o, load(o));
}

}  // namespace

#ifndef OURO_EXAMPLES_ON_CUDA
// Never reached: parse() refuses --device cuda in a build without CUDA (examples/device.hpp).
int lsf_experiment::run_on_cuda(const options&, const datasets&) { return 2; }
#endif

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("lsf_experiment", [&] { return run(*o); });
}
