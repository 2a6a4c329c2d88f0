// The settings of a diffusion::trainer run (trainer.hpp) and their validation.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>

#include "ouro/core/error.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/ema.hpp"

namespace ouro::diffusion {

// ---- Options ----------------------------------------------------------------------------------

// Runtime settings of a training run. Defaults follow DDPM's CIFAR-10 setting where it has one
// (Ho et al. 2020, Appendix B and their code: lr 2e-4, grad clip 1, EMA 0.9999, no weight decay).
struct trainer_options {
    // Length: `steps` optimizer steps, or (steps = 0) `epochs` passes over the data, rounded up to
    // whole steps. The last batch of an epoch continues into the next epoch's order.
    std::int64_t batch_size = 128;
    std::int64_t steps = 0;
    std::int64_t epochs = 0;

    // AdamW (torch.optim.AdamW's defaults except the weight decay). The learning rate is the
    // schedule's: by default a linear warm-up over warmup_steps into a constant lr.
    double lr = 2e-4;
    std::int64_t warmup_steps = 0;
    double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8, weight_decay = 0.0;
    double grad_clip = 1.0;  // max global L2 norm of the gradients; 0: no clipping

    bool use_ema = true;
    optim::ema_options ema{.max_decay = 0.9999, .warmup = true};

    // Classifier-free guidance training (Ho & Salimans 2022, Algorithm 1): each label is replaced
    // by the null class (= spec.classes) with this probability. Class-conditional models only.
    double label_drop = 0.1;

    std::uint64_t seed = 0;

    // on_log events every log_every steps and at the last (a progress bar or log lines are a
    // callback: training_progress.hpp).
    std::int64_t log_every = 100;

    // Checkpoints (none when checkpoint_dir is empty): every checkpoint_every steps (0: only at the
    // end of train()), keeping the keep_checkpoints newest. strict_resume refuses a checkpoint whose
    // seed, batch size, data or other trajectory settings differ from this trainer's.
    std::filesystem::path checkpoint_dir{};
    std::int64_t checkpoint_every = 0;
    int keep_checkpoints = 2;
    bool strict_resume = true;

    // Sample grids every sample_every steps (0: none) into sample_dir (empty: checkpoint_dir /
    // "samples"): sample_count images by DDPM ancestral sampling over sample_steps strided steps,
    // with the EMA weights when kept, from fixed noise (sample_seed), labels 0, 1, ... cycling.
    std::int64_t sample_every = 0;
    std::int64_t sample_count = 16;
    std::int64_t sample_steps = 50;
    std::uint64_t sample_seed = 0;
    double guidance_scale = 1.0;
    std::filesystem::path sample_dir{};
};

// Throws ouro::error naming the first setting out of range.
inline void validate(const trainer_options& o) {
    require(o.batch_size >= 1, "trainer: batch_size must be >= 1, found ", o.batch_size);
    require(o.steps >= 0 && o.epochs >= 0, "trainer: steps and epochs must be >= 0, found steps ", o.steps, ", epochs ",
            o.epochs);
    require(o.steps > 0 || o.epochs > 0, "trainer: set steps or epochs (both are 0)");
    // An infinite lr passes `lr >= 0` but turns the first update into ±Inf or NaN weights.
    require(o.lr >= 0 && std::isfinite(o.lr), "trainer: lr must be finite and >= 0, found ", o.lr);
    require(o.warmup_steps >= 0, "trainer: warmup_steps must be >= 0, found ", o.warmup_steps);
    require(o.grad_clip >= 0, "trainer: grad_clip must be >= 0 (0: no clipping), found ", o.grad_clip);
    require(o.label_drop >= 0 && o.label_drop <= 1, "trainer: label_drop must be in [0, 1], found ", o.label_drop);
    require(o.log_every >= 1, "trainer: log_every must be >= 1, found ", o.log_every);
    require(o.checkpoint_every >= 0, "trainer: checkpoint_every must be >= 0, found ", o.checkpoint_every);
    require(o.keep_checkpoints >= 1, "trainer: keep_checkpoints must be >= 1, found ", o.keep_checkpoints);
    require(o.sample_every >= 0, "trainer: sample_every must be >= 0, found ", o.sample_every);
    require(o.sample_count >= 1, "trainer: sample_count must be >= 1, found ", o.sample_count);
    require(o.sample_steps >= 1, "trainer: sample_steps must be >= 1, found ", o.sample_steps);
    optim::validate(optim::adamw_options{
        .lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.adam_eps, .weight_decay = o.weight_decay});
    if (o.use_ema) optim::validate(o.ema);
}

}  // namespace ouro::diffusion
