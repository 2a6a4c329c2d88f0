// A trainer callback that reports progress (core/progress.hpp): a bar redrawn in place when stderr is
// a terminal, a log line every log_every steps otherwise, each showing the mean loss since the
// trainer's last log event, the learning rate, the rate in images/s and the time left.
//
//   run.train(diffusion::training_progress({.label = "G0"}), my_callback);
//
// A trainer without one prints nothing. The bar starts at the first step it sees, so a resumed
// run's rate counts from where it resumed; it prints its last state when the callback is
// destroyed (after train() returns, for a temporary), also when a callback stopped the run early.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "ouro/core/progress.hpp"
#include "ouro/diffusion/training_events.hpp"

namespace ouro::diffusion {

class training_progress {
public:
    // options.items_per_step and options.initial_step are taken from the trainer's first event,
    // and the rate is in images (a trainer's items are images), whatever options.unit says.
    explicit training_progress(progress_options options = {.label = "train"}) : options_(std::move(options)) {}

    training_progress(const training_progress&) = delete;
    training_progress& operator=(const training_progress&) = delete;
    ~training_progress() {
        if (bar_) bar_->finish();
    }

    void on_step(const step_event& e) {
        if (!bar_) {
            progress_options o = options_;
            o.items_per_step = std::max<std::int64_t>(e.batch_size, 1);
            o.initial_step = e.step - 1;
            o.unit = "img";
            bar_.emplace(e.total_steps, std::move(o));
        }
        window_loss_ += e.loss;
        ++window_steps_;
        bar_->update(e.step, {{"loss", window_loss_ / static_cast<double>(window_steps_)}, {"lr", e.lr}});
    }

    // The trainer's log events close the window the shown loss is the mean of.
    void on_log(const log_event&) {
        window_loss_ = 0;
        window_steps_ = 0;
    }

private:
    progress_options options_;
    std::optional<progress> bar_;
    double window_loss_ = 0;
    std::int64_t window_steps_ = 0;
};

}  // namespace ouro::diffusion
