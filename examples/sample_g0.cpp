// Teaches: what each sampler setting does to one trained G0. Loads a model file of the quick/smoke
// profile's U-Net (lsf_experiment's g0/model.safetensors, or train_g0's; with --unconditional, an
// unlabelled run's), draws N class-balanced samples (label i mod 10; unconditional: no labels) with
// the sampler the flags name, from the noise of (--seed, sample index),
// and writes them as .npy for other tools, with a PNG grid. Settings that share --seed share x_T, so
// their samples can be compared image by image. Prints how clean the backgrounds are: the share of
// speckled samples (at least 3 isolated specks of ink) and of hazy ones (at least 5 faint grey pixels
// away from the strokes), which real MNIST digits almost never are (see background_of).
//
//   sample_g0 MODEL --out samples.npy [--sampler ddim|ddpm] [--steps 20] [--eta 1] [--x0 clip|none|dynamic]
//             [--guidance 1] [--spacing leading|trailing|linspace] [--samples 2000] [--seed 1] [--grid FILE]
//             [--noise-out FILE] [--raw] [--unconditional]
//
// The defaults are the loop's sampler (presets::lsf_experiment::make_sampler): DDIM, 20 leading steps,
// η = 1, x_0 clipped, no guidance. (Until 2026-12-07 the default was η = 0, which the loop left on
// 2026-12-04 for its speckles: pass --eta 0 for that sampler.) Samples are written as the loop keeps
// them, rounded to 8-bit levels, unless --raw.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/io/npy.hpp"
#include "ouro/io/png.hpp"
#include "ouro/presets/experiments.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

// The quick/smoke profile's U-Net, class-conditional (lsf_experiment's default) or not (--unlabelled).
template <bool Conditional>
using model_of = nn::unet<cpu, presets::lsf_unet_spec</*Colour=*/false, Conditional, /*Paper=*/false>()>;
constexpr std::int64_t classes = 10;
constexpr std::int64_t sample_chunk = 250;  // memory only: a sample depends on (seed, index)

struct options {
    fs::path model, out, grid, noise_out;
    std::string sampler = "ddim", x0 = "clip", spacing = "leading";
    std::int64_t steps = 20, samples = 2000;
    double eta = 1.0, guidance = 1.0;  // the loop's DDIM η (presets::lsf_experiment::make_sampler)
    std::uint64_t seed = 1;
    bool raw = false, unconditional = false;
};

std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "Samples a trained G0 (the quick/smoke profile's U-Net) with the sampler the flags name; writes the "
        "samples as .npy and a PNG grid, and prints the shares of speckled and hazy samples.",
        "sample_g0"};
    examples::setup(app);
    app.add_option("MODEL", o.model, "Model file (lsf_experiment's g0/model.safetensors, train_g0's)")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("--out", o.out, "Samples (N, 1, 28, 28) float32 in [-1, 1] (.npy)")->required();
    app.add_option("--sampler", o.sampler, "ddim, or ddpm (ancestral, fixed-small variance, strided)")
        ->check(CLI::IsMember({"ddim", "ddpm"}));
    app.add_option("--steps", o.steps, "Sampler steps (DDIM: 10, 20, 50, 100, 250 or 1000; DDPM: 1 to 1000)")
        ->check(examples::whole_in(1, 1000));
    app.add_option("--eta", o.eta, "DDIM's η (0: deterministic; 1: fresh noise at every step, as the loop samples)")
        ->check(examples::finite_at_least(0));
    app.add_option("--x0", o.x0, "x_0 at every step: clip to [-1, 1], none, or dynamic thresholding (p 0.995)")
        ->check(CLI::IsMember({"clip", "none", "dynamic"}));
    app.add_option("--guidance", o.guidance, "Classifier-free guidance scale (1: none, 0: unconditional)")
        ->check(examples::finite_at_least(0));
    app.add_option("--spacing", o.spacing,
                   "Timesteps visited: leading (950 ... 0 for 20 steps), trailing (999 ... 49) "
                   "or linspace (999 ... 0)")
        ->check(CLI::IsMember({"leading", "trailing", "linspace"}));
    app.add_option("--samples", o.samples, "Samples, label i mod 10 (unconditional: none)")
        ->check(examples::whole_in(10, 1'000'000));
    app.add_option("--seed", o.seed, "Seed of the sampler noise")->check(examples::unsigned_integer);
    app.add_option("--grid", o.grid,
                   "PNG grid of the first 100 samples (10 per row; conditional: one digit per column)");
    app.add_option("--noise-out", o.noise_out, "Also write x_T, the starting noise (N, 1, 28, 28), as .npy");
    app.add_flag("--raw", o.raw, "Write the samples unrounded (default: 8-bit levels, as the loop keeps them)");
    app.add_flag("--unconditional", o.unconditional,
                 "MODEL is an unconditional U-Net (lsf_experiment --unlabelled): samples carry no label");
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    if (o.sampler == "ddim" && o.steps != 10 && o.steps != 20 && o.steps != 50 && o.steps != 100 && o.steps != 250 &&
        o.steps != 1000) {
        std::fprintf(stderr,
                     "sample_g0: error: --steps %lld: DDIM is compiled for 10, 20, 50, 100, 250 and 1000 steps "
                     "(run with --help for the flags)\n",
                     static_cast<long long>(o.steps));
        exit_code = 2;
        return std::nullopt;
    }
    if (o.unconditional && o.guidance != 1.0) {
        std::fprintf(stderr,
                     "sample_g0: error: --guidance %g: an unconditional model has no guidance (1 only) "
                     "(run with --help for the flags)\n",
                     o.guidance);
        exit_code = 2;
        return std::nullopt;
    }
    return o;
}

// How clean a sample's background is, by two counts that are 0 for all but 0.03% (specks) and
// 0.01% (haze) of the 10,000 MNIST test digits:
//   specks: 8-connected groups of at most 4 pixels brighter than -0.5 (ink), away from the strokes;
//   haze:   pixels brighter than -0.9 (5% grey) at Chebyshev distance >= 3 from every ink pixel.
struct background {
    int specks = 0, haze = 0;
};
background background_of(const float* image) {
    constexpr int side = 28;
    background b;
    std::array<int, side * side> group{};  // 0: not ink or not yet visited
    std::vector<int> stack;
    int groups = 0;
    for (int start = 0; start < side * side; ++start) {
        if (image[start] <= -0.5f || group[static_cast<std::size_t>(start)] != 0) continue;
        int size = 0;
        group[static_cast<std::size_t>(start)] = ++groups;
        stack.assign(1, start);
        while (!stack.empty()) {
            const int p = stack.back();
            stack.pop_back();
            ++size;
            for (int dr = -1; dr <= 1; ++dr)
                for (int dc = -1; dc <= 1; ++dc) {
                    const int r = p / side + dr, c = p % side + dc;
                    if (r < 0 || r >= side || c < 0 || c >= side) continue;
                    const int q = r * side + c;
                    if (image[q] > -0.5f && group[static_cast<std::size_t>(q)] == 0) {
                        group[static_cast<std::size_t>(q)] = groups;
                        stack.push_back(q);
                    }
                }
        }
        if (size <= 4) ++b.specks;
    }
    for (int p = 0; p < side * side; ++p) {
        if (image[p] <= -0.9f) continue;
        bool near_ink = false;
        for (int dr = -2; dr <= 2 && !near_ink; ++dr)
            for (int dc = -2; dc <= 2 && !near_ink; ++dc) {
                const int r = p / side + dr, c = p % side + dc;
                near_ink = r >= 0 && r < side && c >= 0 && c < side && image[r * side + c] > -0.5f;
            }
        b.haze += !near_ink;
    }
    return b;
}

// n samples; labels (n), or none for an unconditional model.
template <class Sampler, class Model>
tensor<float> draw(const Sampler& sampler, Model& g0, std::int64_t n, const tensor<std::int64_t>& labels,
                   std::uint64_t seed) {
    tensor<float> out(shape{n, 1, 28, 28});
    for (std::int64_t begin = 0; begin < n; begin += sample_chunk) {
        const std::int64_t m = std::min(sample_chunk, n - begin);
        const tensor_view<const std::int64_t> y(labels.data() + (labels.numel() ? begin : 0),
                                                shape{labels.numel() ? m : 0});
        const tensor<float> s = sampler.sample(g0, shape{1, 28, 28}, m, y, seed, static_cast<std::uint64_t>(begin));
        std::copy(s.begin(), s.end(), out.data() + begin * 784);
    }
    return out;
}

template <bool Conditional>
int run(const options& o) {
    model_of<Conditional> g0;
    try {
        diffusion::load_model(o.model, g0);
    } catch (const error& e) {  // most likely the other kind of model: say which flag loads it
        throw error(std::string(e.what()) + (Conditional ? " (an unconditional model? pass --unconditional)"
                                                         : " (a class-conditional model? drop --unconditional)"));
    }
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    diffusion::sampler_options so;
    so.guidance_scale = o.guidance;
    so.null_class = Conditional ? classes : 0;
    so.x0.mode = o.x0 == "clip"      ? diffusion::x0_mode::clip
                 : o.x0 == "dynamic" ? diffusion::x0_mode::dynamic_threshold
                                     : diffusion::x0_mode::none;
    so.spacing = o.spacing == "trailing"   ? diffusion::timestep_spacing::trailing
                 : o.spacing == "linspace" ? diffusion::timestep_spacing::linspace
                                           : diffusion::timestep_spacing::leading;
    tensor<std::int64_t> labels(shape{Conditional ? o.samples : 0});
    for (std::int64_t i = 0; i < labels.numel(); ++i) labels[i] = i % classes;

    const auto start = std::chrono::steady_clock::now();
    tensor<float> x;
    if (o.sampler == "ddpm") {
        x = draw(diffusion::ddpm_ancestral<>(table, o.steps, so), g0, o.samples, labels, o.seed);
    } else {
        switch (o.steps) {
            case 10: x = draw(diffusion::ddim<10>(table, o.eta, so), g0, o.samples, labels, o.seed); break;
            case 20: x = draw(diffusion::ddim<20>(table, o.eta, so), g0, o.samples, labels, o.seed); break;
            case 50: x = draw(diffusion::ddim<50>(table, o.eta, so), g0, o.samples, labels, o.seed); break;
            case 100: x = draw(diffusion::ddim<100>(table, o.eta, so), g0, o.samples, labels, o.seed); break;
            case 250: x = draw(diffusion::ddim<250>(table, o.eta, so), g0, o.samples, labels, o.seed); break;
            default: x = draw(diffusion::ddim<1000>(table, o.eta, so), g0, o.samples, labels, o.seed); break;
        }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::int64_t speckled = 0, hazy = 0, specks = 0;
    for (std::int64_t i = 0; i < o.samples; ++i) {
        float* image = x.data() + i * 784;
        for (std::int64_t j = 0; j < 784; ++j) {
            require(std::isfinite(image[j]), "sample ", i, " is not finite");
            if (!o.raw) image[j] = std::round((std::clamp(image[j], -1.0f, 1.0f) + 1.0f) * 127.5f) / 127.5f - 1.0f;
        }
        const background b = background_of(image);
        specks += b.specks;
        speckled += b.specks >= 3;
        hazy += b.haze >= 5;
    }
    io::write_npy(o.out, x.view());
    if (!o.grid.empty()) {
        const std::int64_t n = std::min<std::int64_t>(100, o.samples);
        io::write_png_grid(o.grid, tensor_view<const float>(x.data(), shape{n, 1, 28, 28}), {.cols = 10});
    }
    if (!o.noise_out.empty()) {
        tensor<float> noise(shape{o.samples, 1, 28, 28});
        diffusion::draw_sampler_noise(noise.view(), o.seed, 0, 0);
        io::write_npy(o.noise_out, noise.view());
    }
    const auto share = [&](std::int64_t k) { return static_cast<double>(k) / static_cast<double>(o.samples); };
    std::printf(
        "%s %lld steps (eta %g, x0 %s, guidance %g, %s): %lld samples in %.1f s; speckled %.4f, hazy %.4f, "
        "specks per sample %.3f\n",
        o.sampler.c_str(), static_cast<long long>(o.steps), o.eta, o.x0.c_str(), o.guidance, o.spacing.c_str(),
        static_cast<long long>(o.samples), seconds, share(speckled), share(hazy), share(specks));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("sample_g0",
                                          [&] { return o->unconditional ? run<false>(*o) : run<true>(*o); });
}
