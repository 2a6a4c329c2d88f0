// Teaches: the self-consuming loop's G0 on its own. Trains the quick (or smoke) profile's G0 exactly
// as lsf_experiment does (the same D_r, spec, recipe and seeds: `--seed s` gives the G0 of
// `lsf_experiment --profile quick --seed s`), saves its EMA weights, and optionally keeps snapshots
// along the way (EMA and raw weights) and the batch plan, so another framework can train on the
// same batches, and another program can sample the same models.
//
//   train_g0 [--data data/mnist] [--out runs/g0] [--profile quick] [--seed 1] [--steps N]
//            [--snapshot-at 1250,2500] [--plan]
//
// Writes <out>/model.safetensors (the EMA weights, what the loop calls G0), <out>/raw.safetensors
// (the last iterate), <out>/snapshots/step-<n>-{ema,raw}.safetensors, and with --plan
// <out>/plan.npy: (steps, batch, 3) float64 of (item of D_r, label after label dropping where 10 is
// the null class, timestep) for every training item. D_r is the first real_per_class images of
// each class of the MNIST training split, in file order.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/data/subset.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/diffusion/training_progress.hpp"
#include "ouro/io/npy.hpp"
#include "ouro/presets/experiments.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

// The quick/smoke profiles' class-conditional grey U-Net (presets/experiments.hpp).
constexpr nn::unet_spec spec = presets::lsf_unet_spec</*Colour=*/false, /*Conditional=*/true, /*Paper=*/false>();
using model_type = nn::unet<cpu, spec>;

struct options {
    fs::path data = "data/mnist", out = "runs/g0";
    std::string profile = "quick";
    std::uint64_t seed = 1;
    std::int64_t steps = 0;  // 0: the profile's
    std::vector<std::int64_t> snapshot_at;
    bool plan = false;
};

std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "Trains the self-consuming loop's G0 (the smoke or quick profile's, on MNIST) alone, exactly as "
        "lsf_experiment does, and saves its weights.",
        "train_g0"};
    examples::setup(app);
    app.add_option("--data", o.data, "Directory of the MNIST IDX files (scripts/fetch-data mnist)")
        ->check(CLI::ExistingDirectory);
    app.add_option("--out", o.out, "Directory for model.safetensors, raw.safetensors, snapshots/ and plan.npy");
    app.add_option("--profile", o.profile, "lsf_experiment's profile whose G0 to train")
        ->check(CLI::IsMember({"smoke", "quick"}));
    app.add_option("--seed", o.seed, "The run seed, as lsf_experiment --seed (G0's seeds derive from it)")
        ->check(examples::unsigned_integer);
    app.add_option("--steps", o.steps, "Training steps (0: the profile's). The warm-up stays the profile's")
        ->check(examples::whole_in(0, 10'000'000));
    app.add_option("--snapshot-at", o.snapshot_at, "Steps after which to save the EMA and raw weights too")
        ->delimiter(',')
        ->check(examples::whole_in(1, 10'000'000));
    app.add_flag("--plan", o.plan, "Write plan.npy: every batch's items, labels and timesteps");
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return o;
}

int run(const options& o) {
    const presets::lsf_profile profile = presets::lsf_profile_named(o.profile);
    const data::image_dataset train = data::load_mnist(o.data, data::split::train);
    const data::image_dataset real = data::first_per_class(train, profile.real_per_class, train.name + "-real");

    // As the loop's prepare_g0_: weights and trainer seeded from the run seed, the profile's recipe.
    model_type g0;
    g0.reset_parameters(loop::detail::derive_seed(o.seed, loop::detail::g0_init, -1, 0));
    diffusion::trainer_options t = presets::loop_options_for(profile).g0;
    if (o.steps > 0) t.steps = o.steps;
    t.seed = loop::detail::derive_seed(o.seed, loop::detail::g0_init, -1, 1);
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    diffusion::trainer<model_type> trainer(g0, real, table, t);
    std::printf(
        "G0 of profile %s, seed %llu: %s, D_r %lld images, %lld steps of batch %lld, lr %g (warm-up %lld), "
        "%d threads\n",
        profile.name, static_cast<unsigned long long>(o.seed), spec.str().c_str(), static_cast<long long>(real.size()),
        static_cast<long long>(trainer.total_steps()), static_cast<long long>(t.batch_size), t.lr,
        static_cast<long long>(t.warmup_steps), max_threads());

    fs::create_directories(o.out);
    if (o.plan) {
        const std::int64_t steps = trainer.total_steps(), batch = t.batch_size;
        tensor<double> plan(shape{steps, batch, 3});  // (steps, B, item / label / t)
        diffusion::batch_plan p;
        for (std::int64_t s = 0; s < steps; ++s) {
            trainer.plan_batch(s, p);
            for (std::int64_t b = 0; b < batch; ++b) {
                double* row = plan.data() + (s * batch + b) * 3;
                row[0] = static_cast<double>(p.items[static_cast<std::size_t>(b)]);
                row[1] = static_cast<double>(p.labels[b]);
                row[2] = static_cast<double>(p.timesteps[b]);
            }
        }
        io::write_npy(o.out / "plan.npy", plan.view());
    }

    // Snapshots: the EMA is swapped into the model and back, an exact exchange.
    const std::set<std::int64_t> snapshot_at(o.snapshot_at.begin(), o.snapshot_at.end());
    struct snapshots {
        const std::set<std::int64_t>& at;
        diffusion::trainer<model_type>& trainer;
        model_type& model;
        fs::path dir;
        void on_step(const diffusion::step_event& e) {
            if (!at.contains(e.step)) return;
            char name[48];
            std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(e.step));
            diffusion::save_model(dir / (std::string(name) + "-raw.safetensors"), model, e.step);
            trainer.ema()->swap(model.store());
            diffusion::save_model(dir / (std::string(name) + "-ema.safetensors"), model, e.step);
            trainer.ema()->swap(model.store());
        }
    } snap{snapshot_at, trainer, g0, o.out / "snapshots"};
    if (!snapshot_at.empty()) fs::create_directories(snap.dir);

    const auto start = std::chrono::steady_clock::now();
    const diffusion::train_result r =
        trainer.train(diffusion::training_progress({.label = "G0", .log_every = t.log_every}), snap);
    std::printf("trained %lld steps in %.1f s, last loss %.4f, mean loss %.4f\n", static_cast<long long>(r.steps_run),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), r.last_loss,
                r.mean_loss);
    diffusion::save_model(o.out / "raw.safetensors", g0, trainer.step_count());
    trainer.ema()->copy_to(g0.store());
    diffusion::save_model(o.out / "model.safetensors", g0, trainer.step_count());
    std::printf("written: %s\n", (o.out / "model.safetensors").string().c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("train_g0", [&] { return run(*o); });
}
