// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 2) over a
// whole parameter_store: one pass of ops<B>::adamw_step over the flat value, gradient and moment
// buffers per step, after a read of the gradients that refuses NaN/Inf; matches torch.optim.AdamW
// (amsgrad=False, maximize=False) operation for operation. The moments live in B's memory.
// Like the nn modules, it names no backend: a program includes the one it runs
// (ouro/backend/cpu/ops.hpp for ouro::cpu, or ouro/ouro.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ouro/backend/adamw_update.hpp"
#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/finite.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
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

// The host scan (core/finite.hpp), under the name the optimisers' callers have used.
using ouro::first_non_finite;

// AdamW with its state: the step count and the first and second moments, two flat buffers of the
// store's layout (element i of exp_avg() belongs to element i of store.values()).
//
//   optim::adamw<float> opt(store, {.lr = 2e-4, .weight_decay = 0.0});
//   for (step ...) { store.zero_grad(); /* forward, backward */ opt.set_lr(schedule(step)); opt.step(store); }
template <real_scalar T = float, backend B = cpu>
class adamw {
public:
    // Its name and state buffers in checkpoints ("adamw.exp_avg.<parameter>", "adamw_step"), as torch.
    static constexpr std::string_view name = "adamw";
    static constexpr std::array<std::string_view, 2> state_names{"exp_avg", "exp_avg_sq"};

    // Moments zero and step count 0, sized for `store`, which must be complete: a store that gains
    // parameters afterwards no longer fits and step() refuses it.
    explicit adamw(const parameter_store<T, B>& store, const adamw_options& options = {})
        : options_(options),
          exp_avg_(static_cast<std::size_t>(store.size())),
          exp_avg_sq_(static_cast<std::size_t>(store.size())) {
        validate(options_);
    }

    // The trainer's way in (the optim::optimizer concept).
    static adamw from_settings(const parameter_store<T, B>& store, const optimizer_settings& s) {
        return adamw(store, s);
    }

    // One AdamW step on every parameter of `store` from its gradients, as torch's _single_tensor_adamw:
    //   t += 1;  p *= 1 - lr·wd                                   (decoupled weight decay)
    //   m = β1·m + (1 − β1)·g;   v = β2·v + (1 − β2)·g²
    //   p -= lr / (1 − β1^t) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
    // Requires store.size() == size(). With check_finite (the default), a NaN or Inf gradient
    // throws ouro::error naming the parameter, and nothing (parameters, moments, t) changes.
    void step(parameter_store<T, B>& store) {
        require(store.size() == size(), "adamw: the store has ", store.size(), " elements, expected ", size(),
                " (the size of the store this optimizer was built for)");
        if (options_.check_finite) require_finite_gradients(store);

        const std::int64_t t = step_ + 1;
        const adamw_step_scalars<T> scalars =
            adamw_scalars_for<T>(options_.lr, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, t);
        const shape flat{size()};
        ops<B>::template adamw_step<T>(
            tensor_view<T, B>(store.values(), flat), tensor_view<T, B>(exp_avg_.data(), flat),
            tensor_view<T, B>(exp_avg_sq_.data(), flat), tensor_view<const T, B>(store.grads(), flat), scalars);
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
        zero_fill(exp_avg_);
        zero_fill(exp_avg_sq_);
        step_ = 0;
    }

private:
    static void require_finite_gradients(const parameter_store<T, B>& store) {
        const tensor_view<const T, B> grads(store.grads(), shape{store.size()});
        const std::int64_t bad = ops<B>::template first_non_finite<T>(grads);
        if (bad < 0) return;
        const T value = to_host(grads)[bad];  // the error path only
        for (const auto& e : store.entries())
            if (bad >= e.offset && bad < e.offset + e.dims.numel())
                fail("adamw: the gradient of '", e.name, "' ", e.dims, " is not finite (", value, " at element ",
                     bad - e.offset, "); no step taken");
        fail("adamw: the gradient buffer is not finite (", value, " at element ", bad,
             ", padding between parameters); no step taken");
    }

    adamw_options options_;
    std::int64_t step_ = 0;
    flat_buffer<T, B> exp_avg_;
    flat_buffer<T, B> exp_avg_sq_;
};

}  // namespace ouro::optim
