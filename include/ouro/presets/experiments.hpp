// The self-consuming experiments of Cai et al. (AAAI-26, §5) as types, and their profiles (sizes).
// A profile says how big a run is; the experiment type says what runs: the U-Net spec (grey 28×28
// or colour 32×32, class-conditional or not, small or the preset size), the sampler, the latent
// pooling and the seven methods with the REAL control arm. examples/lsf_experiment picks one of each from its command
// line.
//
// The paper states K = 5 generations, N = 1,000 training items per generation, 3 fine-tuning epochs
// and 10,000 evaluation samples; every other size below is ours (marked), chosen for 2 CPU cores.
//
// Budgets: every profile draws |S_k| = N samples a generation, so SYN trains on N synthetic items
// and SYN-ADD on N items, 30% of them real. SYN-ADD's real share is drawn each generation from the
// fixed real set D_r (the data G0 was trained on), not from fresh real data: the paper does not say,
// and D_r is the only real data every other method sees too.
#pragma once

#include <cstdint>
#include <string_view>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/loop/self_consuming.hpp"
#include "ouro/nn/unet.hpp"
#include "ouro/presets/unet.hpp"

namespace ouro::presets {

struct lsf_profile {
    const char* name = "quick";
    std::int64_t real_per_class = 100;  // |D_r| / classes (ours)
    std::int64_t reference_per_class =
        200;  // real test images the metrics compare with, per class (ours; as many as eval_samples)
    std::int64_t generations = 5;                 // K (paper)
    std::int64_t budget = 1000;                   // N (paper)
    std::int64_t samples_per_generation = 1000;   // |S_k| = N (the paper's S_k and T_k are both N)
    std::int64_t finetune_epochs = 3;             // E (paper)
    std::int64_t eval_samples = 2000;             // (paper: 10,000; FID's bias at each count: examples/fid_vs_count)
    std::int64_t g0_steps = 2500, g0_batch = 32;  // G0's training (ours)
    double g0_lr = 1e-3;
    std::int64_t finetune_batch = 32;
    double finetune_lr = 2e-4;
    double guidance = 1.0;              // classifier-free guidance scale (ours; 1: none, half the sampling cost)
    std::int64_t latent_timestep = 50;  // t of h_t (ours; the paper leaves it open)
};

// smoke: every stage once, in minutes, on any data set; for checking a set-up, not for reading.
inline constexpr lsf_profile smoke_profile{.name = "smoke",
                                           .real_per_class = 30,
                                           .reference_per_class = 30,
                                           .generations = 2,
                                           .budget = 300,
                                           .samples_per_generation = 300,
                                           .finetune_epochs = 1,
                                           .eval_samples = 300,
                                           .g0_steps = 300,
                                           .g0_batch = 32,
                                           .g0_lr = 1e-3,
                                           .finetune_batch = 32,
                                           .finetune_lr = 2e-4};
// quick: the paper's K, N, |S_k| and E with a small U-Net and 2,000 evaluation samples against
// 2,000 real test images.
inline constexpr lsf_profile quick_profile{.name = "quick"};
// paper: the paper's sizes (10,000 evaluation samples) with the preset U-Nets: hours to days on a CPU.
inline constexpr lsf_profile paper_profile{.name = "paper",
                                           .real_per_class = 100,
                                           .reference_per_class = 1000,
                                           .samples_per_generation = 1000,
                                           .eval_samples = 10000,
                                           .g0_steps = 20000,
                                           .g0_batch = 64,
                                           .g0_lr = 2e-4,
                                           .finetune_batch = 64,
                                           .finetune_lr = 1e-4};

inline lsf_profile lsf_profile_named(std::string_view name) {
    if (name == "smoke") return smoke_profile;
    if (name == "quick") return quick_profile;
    if (name == "paper") return paper_profile;
    fail("lsf_profile_named: expected smoke, quick or paper, found '", name, "'");
}

// The loop's options for a profile (the run directory and seed are the caller's).
inline loop::loop_options loop_options_for(const lsf_profile& p) {
    loop::loop_options o;
    o.generations = p.generations;
    o.budget = p.budget;
    o.samples_per_generation = p.samples_per_generation;
    o.finetune_epochs = p.finetune_epochs;
    o.eval_samples = p.eval_samples;
    o.g0.batch_size = p.g0_batch;
    o.g0.steps = p.g0_steps;
    o.g0.lr = p.g0_lr;
    o.g0.warmup_steps = std::min<std::int64_t>(200, p.g0_steps / 10);
    o.g0.log_every = 100;
    o.finetune.batch_size = p.finetune_batch;
    o.finetune.lr = p.finetune_lr;
    o.finetune.log_every = 100;
    o.latents.timestep = p.latent_timestep;
    o.kid_subset_size = 1000;
    return o;
}

constexpr nn::unet_spec with_classes(nn::unet_spec s, int classes) {
    s.classes = classes;
    return s;
}

template <bool Colour, bool Conditional, bool Paper>
constexpr nn::unet_spec lsf_unet_spec() {
    constexpr int classes = Conditional ? 10 : 0;
    if constexpr (Paper) return with_classes(Colour ? cifar10_unet : mnist_unet, classes);
    else
        return small_unet(Colour ? 3 : 1, Colour ? 32 : 28, classes);
}

// One experiment type: lsf_experiment<colour?, class-conditional?, paper-sized?, pooling>. DDIM (η = 1)
// with 20 steps for the small models, 50 (as examples/train_mnist) for the preset ones. Pooling:
// the spatial mean by default (D = C, a 32-d latent for the small U-Nets); latent::flatten keeps
// the whole bottleneck (D = C·h·w, 1,568 for the small MNIST U-Net), closer to the paper's ~65 K
// parameter probe (docs/LATENTS.md measures both on held-out digits). B: the backend the U-Nets
// run on (cpu; ouro::cuda in a translation unit nvcc compiles, as examples/lsf_experiment_cuda.cu).
template <bool Colour, bool Conditional, bool Paper, class Pooling = latent::spatial_mean, backend B = cpu>
struct lsf_experiment
    : loop::self_consuming<nn::unet<B, lsf_unet_spec<Colour, Conditional, Paper>()>, diffusion::ddim<Paper ? 50 : 20>,
                           Pooling, loop::paper_methods_and_controls> {
    using sampler_type = diffusion::ddim<Paper ? 50 : 20>;
    using loop::self_consuming<nn::unet<B, lsf_unet_spec<Colour, Conditional, Paper>()>, sampler_type, Pooling,
                               loop::paper_methods_and_controls>::self_consuming;
    static constexpr nn::unet_spec model_spec() { return lsf_unet_spec<Colour, Conditional, Paper>(); }

    static sampler_type make_sampler(const diffusion::schedule_table& table, const lsf_profile& p) {
        // x_0 clipped to [-1, 1] at every step, as DDPM's sampler (Ho et al. 2020, clip_denoised).
        // η = 1 (fresh noise at every step, as DDPM's ancestral sampler): deterministic DDIM (η = 0)
        // carries the small G0's errors at high noise into the image as speckles (one sample in four
        // of the quick profile's G0; FID 43.9 against 12.6 at η = 1 with the same 20 model calls;
        // benchmarks/RESULTS.md, "G0 end to end").
        const diffusion::x0_options clip{.mode = diffusion::x0_mode::clip};
        constexpr double eta = 1.0;
        if constexpr (Conditional)
            return sampler_type(table, eta,
                                {.guidance_scale = p.guidance, .null_class = model_spec().classes, .x0 = clip});
        else
            return sampler_type(table, eta, {.x0 = clip});
    }
};

}  // namespace ouro::presets
