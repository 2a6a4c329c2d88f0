// What diffusion::trainer (and through it the self-consuming loop) asks of an optimiser: its
// Optimizer policy. optim::adamw is the default and the paper's choice; optim::sgd is a second
// model of the concept, and a user's own type works the same way:
//
//   diffusion::trainer<model, diffusion::epsilon_prediction, schedule, optim::sgd<float>> t(model, data, table,
//   options); loop::self_consuming<model, sampler, pooling, methods, probe, score, metrics, optim::sgd<float>>
//   experiment(...);
//
// An optimiser is built for a complete parameter_store from the trainer's settings (it reads those
// it has), takes the learning rate its schedule gives before each step, updates the store from its
// gradients, and names its state buffers so that a checkpoint can save and restore them exactly.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"

namespace ouro::optim {

// The trainer's optimiser settings (diffusion::trainer_options: lr, beta1, beta2, adam_eps,
// weight_decay), which are AdamW's hyper-parameters (optim::adamw_options; the defaults are
// torch.optim.AdamW's). Each optimiser reads the ones it has: AdamW all five, SGD with momentum lr,
// beta1 (as its momentum) and weight_decay.
struct optimizer_settings {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-2;
    // Check that every gradient is finite before a step (one more read of the gradient buffer): a
    // single NaN or Inf gradient would otherwise poison the parameters (and AdamW's moments) for
    // good. The trainer passes false: it has checked the gradient norm before each step.
    bool check_finite = true;
};

// The bits of a double as text ("%a"): equal strings mean bitwise-equal values.
inline std::string hexfloat(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%a", v);
    return buf;
}

// An optimiser over a parameter_store<T, B>:
//   O::from_settings(store, s)     one sized for the (complete) store; settings checked (ouro::error)
//   O::name                        a short name: prefixes its tensors and step count in checkpoints
//   O::state_names                 a std::array of its per-element state buffers' names (may be
//                                  empty); state(i) is the i-th, size() elements in the store's layout
//   step(store)                    one update from store.grads() (the trainer has checked them finite)
//   set_lr(lr), step_count(), set_step_count(n)
//   trajectory()                   the settings that change its trajectory, as text that is equal
//                                  exactly when they are bitwise equal: a resume under other ones is
//                                  refused, naming them
template <class O, class T = float, class B = cpu>
concept optimizer = requires(O& o, const O& co, parameter_store<T, B>& store, const optimizer_settings& settings,
                             double lr, std::int64_t n, std::size_t i) {
    { O::from_settings(std::as_const(store), settings) } -> std::same_as<O>;
    { O::name } -> std::convertible_to<std::string_view>;
    { O::state_names.size() } -> std::convertible_to<std::size_t>;
    { O::state_names[i] } -> std::convertible_to<std::string_view>;
    o.step(store);
    o.set_lr(lr);
    { co.step_count() } -> std::convertible_to<std::int64_t>;
    o.set_step_count(n);
    { co.size() } -> std::convertible_to<std::int64_t>;
    { o.state(i) } -> std::same_as<T*>;
    { co.state(i) } -> std::same_as<const T*>;
    { co.trajectory() } -> std::convertible_to<std::string>;
};

}  // namespace ouro::optim
