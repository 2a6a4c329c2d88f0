// Learning-rate schedules: small value types mapping a step index to a learning rate, composed
// by nesting (a warm-up wraps the schedule it ramps into), and the concept they satisfy.
//
//   optim::linear_warmup<optim::constant_lr> sched{.steps = 5000, .base = {2e-4}};
//   // DDPM's CIFAR-10 setting (Ho et al. 2020: lr 2e-4; 5000 warm-up steps in their code)
//   opt.set_lr(sched(step));
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numbers>

#include "ouro/core/error.hpp"

namespace ouro::optim {

// A learning-rate schedule: `s(step)` is the learning rate of step `step` (0 for the first step).
template <class S>
concept lr_schedule = std::copy_constructible<S> && requires(const S& s, std::int64_t step) {
    { s(step) } -> std::convertible_to<double>;
};

// The same learning rate at every step.
struct constant_lr {
    double lr = 1e-4;

    double operator()(std::int64_t step) const {
        require(step >= 0, "constant_lr: step must be >= 0, found ", step);
        return lr;
    }
};

// Cosine annealing of SGDR (Loshchilov & Hutter 2017, eq. 5) without restarts:
//   lr_t = min_lr + (lr − min_lr) · (1 + cos(π (t − begin) / (end − begin))) / 2   for begin <= t <= end,
// lr before `begin`, min_lr after `end`. Requires end > begin.
struct cosine_decay {
    double lr = 1e-4;
    double min_lr = 0.0;
    std::int64_t begin = 0;
    std::int64_t end = 1;

    double operator()(std::int64_t step) const {
        require(step >= 0, "cosine_decay: step must be >= 0, found ", step);
        require(end > begin, "cosine_decay: end must be after begin, found begin ", begin, ", end ", end);
        if (step <= begin) return lr;
        if (step >= end) return min_lr;
        const double progress = static_cast<double>(step - begin) / static_cast<double>(end - begin);
        return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    }
};

// Linear warm-up into `base`: base(step) · min(1, (step + 1) / steps), so the first step already
// moves (lr / steps) and step `steps − 1` reaches the full rate. steps = 0 means no warm-up.
template <class S = constant_lr>
struct linear_warmup {
    static_assert(lr_schedule<S>,
                  "linear_warmup<S>: S must be a learning-rate schedule, a type with `double operator()(std::int64_t "
                  "step) const`");

    std::int64_t steps = 0;
    S base{};

    double operator()(std::int64_t step) const {
        require(steps >= 0, "linear_warmup: steps must be >= 0, found ", steps);
        require(step >= 0, "linear_warmup: step must be >= 0, found ", step);
        const double rate = base(step);
        if (step >= steps) return rate;
        return rate * (static_cast<double>(step + 1) / static_cast<double>(steps));
    }
};

// Warm-up over `warmup_steps`, then cosine decay from lr to min_lr at `total_steps` (the shape of
// transformers' get_cosine_schedule_with_warmup, with its warm-up counted from step + 1).
inline linear_warmup<cosine_decay> warmup_cosine(double lr, std::int64_t warmup_steps, std::int64_t total_steps,
                                                 double min_lr = 0.0) {
    return {warmup_steps, cosine_decay{lr, min_lr, warmup_steps, total_steps}};
}

static_assert(lr_schedule<constant_lr>);
static_assert(lr_schedule<cosine_decay>);
static_assert(lr_schedule<linear_warmup<constant_lr>>);
static_assert(lr_schedule<linear_warmup<cosine_decay>>);

}  // namespace ouro::optim
