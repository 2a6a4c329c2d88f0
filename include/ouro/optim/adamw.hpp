// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 2) over a
// whole parameter_store: one vectorised pass over the flat value, gradient and moment buffers per
// step, after a read of the gradients that refuses NaN/Inf; matches torch.optim.AdamW
// (amsgrad=False, maximize=False) operation for operation.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/optim/adamw_update.hpp"
#include "ouro/optim/optimizer.hpp"

namespace ouro::optim {

// Hyper-parameters of AdamW: the trainer's optimizer_settings (optim/optimizer.hpp), all five of
// them; the defaults are torch.optim.AdamW's.
using adamw_options = optimizer_settings;

// Throws ouro::error unless lr >= 0, 0 <= beta1, beta2 < 1, eps >= 0 and weight_decay >= 0
// (the checks of torch.optim.AdamW's constructor).
inline void validate(const adamw_options& o) {
    require(o.lr >= 0, "adamw: lr must be >= 0, found ", o.lr);
    require(o.beta1 >= 0 && o.beta1 < 1, "adamw: beta1 must be in [0, 1), found ", o.beta1);
    require(o.beta2 >= 0 && o.beta2 < 1, "adamw: beta2 must be in [0, 1), found ", o.beta2);
    require(o.eps >= 0, "adamw: eps must be >= 0, found ", o.eps);
    require(o.weight_decay >= 0, "adamw: weight_decay must be >= 0, found ", o.weight_decay);
}

// Index of the first element of x[0, n) that is NaN or ±Inf, or -1. Chunks are scanned in
// parallel and their answers taken in order, so the answer does not depend on the thread count.
template <real_scalar T>
std::int64_t first_non_finite(const T* x, std::int64_t n) {
    constexpr std::int64_t chunk = 4096;
    const std::int64_t chunks = (n + chunk - 1) / chunk;
    std::vector<std::int64_t> first(static_cast<std::size_t>(chunks), -1);
    parallel_for(
        chunks,
        [&](std::int64_t c) {
            const std::int64_t begin = c * chunk, end = std::min(n, begin + chunk);
            // x - x is 0 for finite x and NaN for NaN or ±Inf; this form vectorises, isfinite does not.
            bool finite = true;
            for (std::int64_t i = begin; i < end; ++i) finite &= (x[i] - x[i] == T(0));
            if (finite) return;
            for (std::int64_t i = begin; i < end; ++i)
                if (!std::isfinite(x[i])) {
                    first[static_cast<std::size_t>(c)] = i;
                    return;
                }
        },
        chunk);
    for (std::int64_t f : first)
        if (f >= 0) return f;
    return -1;
}

// AdamW with its state: the step count and the first and second moments, two flat buffers of the
// store's layout (element i of exp_avg() belongs to element i of store.values()).
//
//   optim::adamw<float> opt(store, {.lr = 2e-4, .weight_decay = 0.0});
//   for (step ...) { store.zero_grad(); /* forward, backward */ opt.set_lr(schedule(step)); opt.step(store); }
template <real_scalar T = float>
class adamw {
public:
    // Its name and state buffers in checkpoints ("adamw.exp_avg.<parameter>", "adamw_step"), as torch.
    static constexpr std::string_view name = "adamw";
    static constexpr std::array<std::string_view, 2> state_names{"exp_avg", "exp_avg_sq"};

    // Elements per parallel work item: a multiple of every SIMD width, so only the last item has a tail.
    static constexpr std::int64_t chunk_elements = 4096;

    // Moments zero and step count 0, sized for `store`, which must be complete: a store that gains
    // parameters afterwards no longer fits and step() refuses it.
    explicit adamw(const parameter_store<T>& store, const adamw_options& options = {})
        : options_(options),
          exp_avg_(static_cast<std::size_t>(store.size()), T{}),
          exp_avg_sq_(static_cast<std::size_t>(store.size()), T{}) {
        validate(options_);
    }

    // The trainer's way in (the optim::optimizer concept).
    static adamw from_settings(const parameter_store<T>& store, const optimizer_settings& s) { return adamw(store, s); }

    // One AdamW step on every parameter of `store` from its gradients, as torch's _single_tensor_adamw:
    //   t += 1;  p *= 1 - lr·wd                                   (decoupled weight decay)
    //   m = β1·m + (1 − β1)·g;   v = β2·v + (1 − β2)·g²
    //   p -= lr / (1 − β1^t) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
    // Requires store.size() == size(). With check_finite (the default), a NaN or Inf gradient
    // throws ouro::error naming the parameter, and nothing (parameters, moments, t) changes.
    void step(parameter_store<T>& store) {
        require(store.size() == size(), "adamw: the store has ", store.size(), " elements, expected ", size(),
                " (the size of the store this optimizer was built for)");
        if (options_.check_finite) require_finite_gradients(store);

        const std::int64_t t = step_ + 1;
        const adamw_step_scalars<T> scalars = adamw_scalars_for<T>(options_.lr, options_.beta1, options_.beta2,
                                                                   options_.eps, options_.weight_decay, t);
        // The formula every backend runs (adamw_update.hpp), on a batch or on one scalar of the tail.
        const auto sqrt = [](const auto& x) { return xsimd::sqrt(x); };
        auto update = [&](auto& p, auto& m, auto& v, const auto& g) { adamw_update(p, m, v, g, scalars, sqrt); };
        using batch = xsimd::batch<T>;
        constexpr std::int64_t w = static_cast<std::int64_t>(batch::size);
        static_assert(chunk_elements % w == 0, "adamw: chunk size must be a multiple of the SIMD width");
        T* values = store.values();
        const T* grads = store.grads();
        T* m = exp_avg_.data();
        T* v = exp_avg_sq_.data();
        const std::int64_t n = size();
        const std::int64_t chunks = (n + chunk_elements - 1) / chunk_elements;
        parallel_for(
            chunks,
            [&](std::int64_t c) {
                const std::int64_t begin = c * chunk_elements, end = std::min(n, begin + chunk_elements);
                std::int64_t i = begin;
                for (; i + w <= end; i += w) {
                    batch pb = xsimd::load_unaligned(values + i), mb = xsimd::load_unaligned(m + i);
                    batch vb = xsimd::load_unaligned(v + i);
                    const batch gb = xsimd::load_unaligned(grads + i);
                    update(pb, mb, vb, gb);
                    pb.store_unaligned(values + i);
                    mb.store_unaligned(m + i);
                    vb.store_unaligned(v + i);
                }
                for (; i < end; ++i) update(values[i], m[i], v[i], grads[i]);
            },
            chunk_elements * 12);
        step_ = t;
    }

    // The learning rate of the next steps (a schedule sets it before each step).
    void set_lr(double lr) {
        require(lr >= 0, "adamw: lr must be >= 0, found ", lr);
        options_.lr = lr;
    }
    double lr() const { return options_.lr; }
    const adamw_options& options() const { return options_; }

    // Steps taken so far (torch's state['step']); the bias corrections use it.
    std::int64_t step_count() const { return step_; }
    // For restoring a checkpoint together with the moment buffers.
    void set_step_count(std::int64_t steps) {
        require(steps >= 0, "adamw: step count must be >= 0, found ", steps);
        step_ = steps;
    }

    // Elements of each moment buffer (= the store's size()).
    std::int64_t size() const { return static_cast<std::int64_t>(exp_avg_.size()); }
    // First moment m (torch's exp_avg) and second moment v (exp_avg_sq), in the store's layout.
    T* exp_avg() { return exp_avg_.data(); }
    const T* exp_avg() const { return exp_avg_.data(); }
    T* exp_avg_sq() { return exp_avg_sq_.data(); }
    const T* exp_avg_sq() const { return exp_avg_sq_.data(); }

    // State buffer i of state_names (0: exp_avg, 1: exp_avg_sq).
    T* state(std::size_t i) { return i == 0 ? exp_avg() : exp_avg_sq(); }
    const T* state(std::size_t i) const { return i == 0 ? exp_avg() : exp_avg_sq(); }

    // What changes its trajectory besides the lr (which the trainer's schedule sets): β1 β2 eps wd.
    std::string trajectory() const {
        return hexfloat(options_.beta1) + " " + hexfloat(options_.beta2) + " " + hexfloat(options_.eps) + " " +
               hexfloat(options_.weight_decay);
    }

    // Forgets all state: moments zero, step count 0.
    void reset() {
        std::fill(exp_avg_.begin(), exp_avg_.end(), T{});
        std::fill(exp_avg_sq_.begin(), exp_avg_sq_.end(), T{});
        step_ = 0;
    }

private:
    static void require_finite_gradients(const parameter_store<T>& store) {
        const std::int64_t bad = first_non_finite(store.grads(), store.size());
        if (bad < 0) return;
        const T value = store.grads()[bad];
        for (const auto& e : store.entries())
            if (bad >= e.offset && bad < e.offset + e.dims.numel())
                fail("adamw: the gradient of '", e.name, "' ", e.dims, " is not finite (", value, " at element ",
                     bad - e.offset, "); no step taken");
        fail("adamw: the gradient buffer is not finite (", value, " at element ", bad,
             ", padding between parameters); no step taken");
    }

    adamw_options options_;
    std::int64_t step_ = 0;
    aligned_vector<T> exp_avg_;
    aligned_vector<T> exp_avg_sq_;
};

}  // namespace ouro::optim
