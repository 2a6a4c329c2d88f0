// Exponential moving average of a model's weights in one flat buffer of its parameter store's
// layout, with the warm-up of the decay used by diffusers' EMAModel; the average is what a
// diffusion model samples with (copy_to / swap put it into the store for evaluation). The average
// lives in B's memory and is updated by ops<B>::ema_blend.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::optim {

// Settings of the EMA; the defaults are diffusers' EMAModel defaults (decay 0.9999, min_decay 0,
// update_after_step 0, use_ema_warmup=False).
struct ema_options {
    double max_decay = 0.9999;
    double min_decay = 0.0;
    // The first update_after_step updates copy the weights instead of averaging them (with
    // warmup the next one too, as in EMAModel).
    std::int64_t update_after_step = 0;
    // true: decay warms up as (1 + t) / (10 + t) (see ema::decay); false: max_decay from the
    // first update after update_after_step on (the fixed EMA of Ho et al. 2020).
    bool warmup = true;
};

// Throws ouro::error unless 0 <= min_decay <= max_decay <= 1 and update_after_step >= 0.
inline void validate(const ema_options& o) {
    require(o.max_decay >= 0 && o.max_decay <= 1, "ema: max_decay must be in [0, 1], found ", o.max_decay);
    require(o.min_decay >= 0 && o.min_decay <= o.max_decay, "ema: min_decay must be in [0, max_decay = ", o.max_decay,
            "], found ", o.min_decay);
    require(o.update_after_step >= 0, "ema: update_after_step must be >= 0, found ", o.update_after_step);
}

// The averaged weights and the number of updates made.
//
//   optim::ema<float> avg(store);           // starts as a copy of the weights
//   ... opt.step(store); avg.update(store);  // after every optimizer step
//   avg.swap(store); /* sample */ avg.swap(store);
template <real_scalar T = float, backend B = cpu>
class ema {
public:
    // The average starts as a copy of store.values() (as EMAModel's shadow_params), with 0 updates.
    explicit ema(const parameter_store<T, B>& store, const ema_options& options = {}) : options_(options) {
        validate(options_);
        reset(store);
    }

    // The decay of the `update`-th update (1 for the first), diffusers' EMAModel.get_decay:
    //   t = update − update_after_step − 1;  decay = 0 if t <= 0, else
    //   clamp((1 + t) / (10 + t), min_decay, max_decay)   (warmup; the formula of TensorFlow's
    //   ExponentialMovingAverage with num_updates), or max_decay without warmup.
    double decay(std::int64_t update) const {
        require(update >= 1, "ema: updates are counted from 1, found ", update);
        const std::int64_t t = update - options_.update_after_step - 1;
        if (!options_.warmup) return t < 0 ? 0.0 : options_.max_decay;
        if (t <= 0) return 0.0;
        const double ramp = static_cast<double>(1 + t) / static_cast<double>(10 + t);
        return std::max(std::min(ramp, options_.max_decay), options_.min_decay);
    }

    // One update from the store's current weights: e −= (1 − decay) · (e − p), EMAModel.step's form.
    // Requires store.size() == size(). Returns the decay used.
    double update(const parameter_store<T, B>& store) {
        require_fits(store, "update");
        const double d = decay(updates_ + 1);
        ops<B>::template ema_blend<T>(average_(), weights_(store), static_cast<T>(1.0 - d));
        ++updates_;
        return d;
    }

    // Writes the averaged weights into store.values(). Requires store.size() == size().
    void copy_to(parameter_store<T, B>& store) const {
        require_fits(store, "copy_to");
        copy(average_(), tensor_view<T, B>(store.values(), shape{size()}));
    }

    // Exchanges the averaged and the store's weights: once to evaluate with the average, once more
    // to resume training. Requires store.size() == size().
    void swap(parameter_store<T, B>& store) {
        require_fits(store, "swap");
        ops<B>::template swap_contents<T>(average_(), tensor_view<T, B>(store.values(), shape{size()}));
    }

    // Starts over from the store's current weights, with 0 updates.
    void reset(const parameter_store<T, B>& store) {
        values_.resize(static_cast<std::size_t>(store.size()));
        copy(weights_(store), average_());
        updates_ = 0;
    }

    // The averaged weights, in the store's layout (for checkpoints).
    T* values() { return values_.data(); }
    const T* values() const { return values_.data(); }
    std::int64_t size() const { return static_cast<std::int64_t>(values_.size()); }

    // Updates made so far (EMAModel's optimization_step); restored with the weights from a checkpoint.
    std::int64_t update_count() const { return updates_; }
    void set_update_count(std::int64_t updates) {
        require(updates >= 0, "ema: update count must be >= 0, found ", updates);
        updates_ = updates;
    }
    const ema_options& options() const { return options_; }

private:
    tensor_view<T, B> average_() { return {values_.data(), shape{size()}}; }
    tensor_view<const T, B> average_() const { return {values_.data(), shape{size()}}; }
    static tensor_view<const T, B> weights_(const parameter_store<T, B>& store) {
        return {store.values(), shape{store.size()}};
    }

    void require_fits(const parameter_store<T, B>& store, const char* what) const {
        require(store.size() == size(), "ema ", what, ": the store has ", store.size(), " elements, expected ", size(),
                " (the size of the store this average was built from)");
    }

    ema_options options_;
    flat_buffer<T, B> values_;
    std::int64_t updates_ = 0;
};

}  // namespace ouro::optim
