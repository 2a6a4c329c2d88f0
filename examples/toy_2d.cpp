// Teaches: model collapse and Latent Space Filtering in a world small enough to watch. The real data
// is a ring of 8 Gaussian modes in the plane; the model a small MLP denoiser; the loop, the probe and
// the five methods (SYN, SYN-ADD, ACU, ACUR, ACU-LSF) are exactly the types the MNIST experiment uses.
// Each generation prints how many modes each method's samples still cover, how far they stray from
// the mode centres, and their recall and coverage (the share of the real distribution they still
// reach), and writes a scatter plot of the samples (one SVG per method and generation). SYN, which
// retrains on a few dozen of its own samples a generation, loses recall; the methods that keep real
// data in the pool do not.
//
//   toy_2d [--out runs/toy_2d] [--generations 8] [--samples 64] [--epochs 80] [--seed 1]
// Interrupt it at any time: the same command resumes after the last finished step.
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/io/svg.hpp"
#include "ouro/loop/self_consuming.hpp"
#include "ouro/loop/toy.hpp"
#include "ouro/loop/toy_model.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

// The denoiser: 2-D points as (2, 1, 1) "images", 8 classes (the modes) plus the null class.
inline constexpr loop::toy::mlp_spec toy_spec{.hidden = 128, .depth = 3, .time_dim = 32, .classes = 8};
using experiment =
    loop::self_consuming<loop::toy::mlp_denoiser<cpu, toy_spec>, diffusion::ddim<25>, latent::spatial_mean>;

struct options {
    fs::path out = "runs/toy_2d";
    std::int64_t generations = 8;
    std::int64_t samples = 64;  // |S_k|: few samples a generation is what makes SYN collapse fast
    std::int64_t epochs = 80;   // E: G_k fits its few samples closely
    std::uint64_t seed = 1;
};

// The command line, every value checked before any work starts (and so before the run directory
// is written).
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "Model collapse and Latent Space Filtering on a ring of 8 Gaussian modes in the plane: the "
        "self-consuming loop for SYN, SYN-ADD, ACU, ACUR and ACU-LSF, written to a resumable run directory.",
        "toy_2d"};
    examples::setup(app);
    app.add_option("--out", o.out, "Run directory (the same command resumes it)");
    app.add_option("--generations", o.generations, "Generations K of the loop")->check(examples::whole_in(1, 1000));
    app.add_option("--samples", o.samples, "Points sampled per generation, |S_k|")
        ->check(examples::whole_in(1, 100'000));
    app.add_option("--epochs", o.epochs, "Fine-tuning epochs E: passes of G_k over its training set T_k")
        ->check(examples::whole_in(1, 100'000));
    app.add_option("--seed", o.seed, "Seed of every random choice")->check(examples::unsigned_integer);
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return o;
}

// After every generation: the collapse statistics and a scatter plot of the evaluation samples.
struct watcher {
    loop::toy::mixture world;
    std::map<std::string, std::map<std::int64_t, loop::toy::collapse_stats>> stats;
    std::map<std::string, std::map<std::int64_t, double>> recall;
    void on_generation(const loop::generation_event& e) {
        const std::span<const float> points(e.samples.data(), static_cast<std::size_t>(e.samples.numel()));
        const auto s = loop::toy::statistics(world, points);
        stats[e.method][e.generation] = s;
        std::vector<std::int64_t> classes(e.labels.begin(), e.labels.end());
        const std::string stem = (e.method == "G0" ? std::string("g0") : loop::detail::dir_name(e.method)) + "_gen" +
                                 std::to_string(e.generation);
        io::write_scatter(*e.run_dir / "scatter" / (stem + ".svg"), points, classes,
                          {.title = e.method + ", generation " + std::to_string(e.generation) + ": " +
                                    std::to_string(s.covered_modes) + " of 8 modes covered",
                           .x_min = -3,
                           .x_max = 3,
                           .y_min = -3,
                           .y_max = 3});
        recall[e.method][e.generation] = e.metrics->recall;
        std::printf(
            "%-8s generation %lld: %lld of %lld modes covered, mean distance to a centre %.3f, recall %.3f, "
            "coverage %.3f\n",
            e.method.c_str(), static_cast<long long>(e.generation), static_cast<long long>(s.covered_modes),
            static_cast<long long>(world.modes), s.spread, e.metrics->recall, e.metrics->coverage);
    }
};

int run(const options& o) {
    const loop::toy::mixture world{};  // 8 modes of σ = 0.1 on a circle of radius 2
    const data::image_dataset real = loop::toy::make_dataset(world, 64, o.seed, "toy-real");           // 512 points
    const data::image_dataset reference = loop::toy::make_dataset(world, 128, o.seed + 1, "toy-ref");  // 1024 points

    // DDPM's schedule over T = 1000, sampled with 25 DDIM steps.
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    loop::loop_options lo;
    lo.generations = o.generations;
    lo.budget = 512;  // N: the size of the real set, as the paper's N = |D_r| budget
    lo.samples_per_generation = o.samples;
    lo.finetune_epochs = o.epochs;  // small data: many more passes than the paper's 3, so G_k fits T_k
    lo.eval_samples = 1024;
    lo.sample_chunk = 1024;
    lo.g0 = {.batch_size = 128, .steps = 3000, .lr = 2e-3, .warmup_steps = 100, .label_drop = 0.1};
    lo.finetune = {.batch_size = 64, .lr = 1e-3, .label_drop = 0.1};
    lo.latents = {.timestep = 50};
    lo.kid_subset_size = 500;
    lo.seed = o.seed;
    lo.out = o.out;
    lo.write_grids = false;  // points, not images: the watcher draws scatter plots instead
    lo.samples_as_images = false;
    lo.show_progress = false;
    lo.extra_config = {{"example", "toy_2d"},
                       {"mixture", {{"modes", world.modes}, {"radius", world.radius}, {"sigma", world.sigma}}}};

    experiment ex(diffusion::ddim<25>(table), table, lo);
    watcher w{world, {}};
    loop::toy::point_features features;
    const auto summary = ex.run(real, reference, features, w);

    std::printf("\nrecall by generation (this call's steps only; every row is in metrics.csv):\n");
    for (const auto& [method, by_gen] : w.recall) {
        std::printf("%-8s", method.c_str());
        for (const auto& [g, r] : by_gen) std::printf("  g%lld %.3f", static_cast<long long>(g), r);
        std::printf("\n");
    }
    const std::vector<std::string> names(experiment::method_names.begin(), experiment::method_names.end());
    std::printf("\nmetrics at generation %lld (features: the points themselves):\n%s",
                static_cast<long long>(o.generations),
                loop::metrics_table(summary.metrics, names, o.generations).c_str());
    std::printf("report: %s\n", (o.out / "report.md").string().c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("toy_2d", [&] { return run(*o); });
}
