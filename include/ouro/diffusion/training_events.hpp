// What a diffusion::trainer (trainer.hpp) tells its callbacks, and what train() returns. A callback
// is any object with at least one hook (on_step, on_log, on_epoch_end, on_checkpoint, on_sample);
// the trainer finds them at compile time, so there is nothing to inherit.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <utility>

#include "ouro/core/progress.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/diffusion/checkpoint.hpp"

namespace ouro::diffusion {

// ---- Events and callbacks ---------------------------------------------------------------------

// Steps are counted as progress counts them: `step` is the number of steps completed (1 after the
// first). A hook returns void, or bool where true asks the trainer to stop after this step.

struct step_event {  // on_step(const step_event&), or the short form on_step(std::int64_t step, double loss)
    std::int64_t step, total_steps, epoch;  // epoch: 0-based, of the step's first item
    double loss, grad_norm, lr;             // grad_norm before clipping
    std::int64_t batch_size = 0;            // items per step
};
struct log_event {  // on_log(const log_event&), every log_every steps and at the last
    std::int64_t step, total_steps;
    double loss;  // mean over the steps since the last log event
    double lr, images_per_second, elapsed_seconds, eta_seconds;
};
struct epoch_event {     // on_epoch_end(const epoch_event&), when a step completes an epoch
    std::int64_t epoch;  // 0-based index of the epoch completed
    std::int64_t step;
    double loss;  // mean over the steps of this train() call that ended in the epoch
};
struct checkpoint_event {  // on_checkpoint(const checkpoint_event&)
    std::int64_t step;
    std::filesystem::path dir;
    checkpoint_entry entry;
};
struct sample_event {  // on_sample(const sample_event&)
    std::int64_t step;
    std::filesystem::path file;
    tensor_view<const float> images;  // (count, C, H, W), valid during the call
};

// The trainer's own hooks, beside core/progress.hpp's on_step and on_epoch_end.
OURO_CALLBACK_HOOK(on_log);
OURO_CALLBACK_HOOK(on_checkpoint);
OURO_CALLBACK_HOOK(on_sample);

// A callback of the trainer: an object with at least one of the hooks above.
template <class C>
concept trainer_callback =
    has_hook<C, on_step_hook, const step_event&> || has_hook<C, on_step_hook, const std::int64_t&, const double&> ||
    has_hook<C, on_log_hook, const log_event&> || has_hook<C, on_epoch_end_hook, const epoch_event&> ||
    has_hook<C, on_checkpoint_hook, const checkpoint_event&> || has_hook<C, on_sample_hook, const sample_event&>;

namespace trainer_detail {
// on_step with the event, or with (step, loss).
template <class C>
bool call_on_step(C& c, const step_event& e) {
    if constexpr (has_hook<C, on_step_hook, const step_event&>) return invoke_if_present(on_step, c, e);
    else
        return invoke_if_present(on_step, c, e.step, e.loss);
}
}  // namespace trainer_detail

// ---- Results ----------------------------------------------------------------------------------

struct step_result {
    std::int64_t step;  // steps completed, this one included
    double loss, grad_norm, lr;
};

struct train_result {
    std::int64_t step = 0;       // steps completed in all
    std::int64_t steps_run = 0;  // by this call
    double last_loss = NAN;      // of the last step
    double mean_loss = NAN;      // over the steps of this call
    bool stopped_early = false;  // a callback asked to stop
    double seconds = 0;
};

}  // namespace ouro::diffusion
