// Stochastic gradient descent with momentum and L2 weight decay, as torch.optim.SGD (dampening 0,
// nesterov off): a second optim::optimizer beside AdamW, small enough to read whole, for trainers
// and loops that want another optimiser (diffusion::trainer's and loop::self_consuming's Optimizer).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/optim/adamw.hpp"
#include "ouro/optim/optimizer.hpp"

namespace ouro::optim {

struct sgd_options {
    double lr = 1e-3;
    double momentum = 0.0;      // μ; 0: plain SGD
    double weight_decay = 0.0;  // λ, added to the gradient (L2), not decoupled as in AdamW
    bool check_finite = true;   // refuse a NaN/Inf gradient before the step, as adamw does
};

inline void validate(const sgd_options& o) {
    require(o.lr >= 0, "sgd: lr must be >= 0, found ", o.lr);
    require(o.momentum >= 0 && o.momentum < 1, "sgd: momentum must be in [0, 1), found ", o.momentum);
    require(o.weight_decay >= 0, "sgd: weight_decay must be >= 0, found ", o.weight_decay);
}

// Per element, in torch's order:  g += λ·p;  b = μ·b + g;  p -= lr·b   (b starts at 0, so the first
// step's b is g, as torch's clone of the first gradient).
template <real_scalar T = float, backend B = cpu>
class sgd {
public:
    static constexpr std::string_view name = "sgd";
    static constexpr std::array<std::string_view, 1> state_names{"momentum_buffer"};

    explicit sgd(const parameter_store<T, B>& store, const sgd_options& options = {})
        : options_(options), buffer_(static_cast<std::size_t>(store.size())) {
        validate(options_);
    }

    // The trainer's way in: lr, beta1 as the momentum, weight_decay.
    static sgd from_settings(const parameter_store<T, B>& store, const optimizer_settings& s) {
        return sgd(store,
                   {.lr = s.lr, .momentum = s.beta1, .weight_decay = s.weight_decay, .check_finite = s.check_finite});
    }

    void step(parameter_store<T, B>& store) {
        require(store.size() == size(), "sgd: the store has ", store.size(), " elements, expected ", size(),
                " (the size of the store this optimizer was built for)");
        const shape flat{size()};
        const tensor_view<const T, B> grads(store.grads(), flat);
        if (options_.check_finite) {
            const std::int64_t bad = ops<B>::template first_non_finite<T>(grads);
            require(bad < 0, "sgd: the gradient buffer is not finite at element ", bad, "; no step taken");
        }
        ops<B>::template sgd_step<T>(tensor_view<T, B>(store.values(), flat), tensor_view<T, B>(buffer_.data(), flat),
                                     grads, static_cast<T>(options_.lr), static_cast<T>(options_.momentum),
                                     static_cast<T>(options_.weight_decay));
        ++steps_;
    }

    void set_lr(double lr) {
        require(lr >= 0, "sgd: lr must be >= 0, found ", lr);
        options_.lr = lr;
    }
    double lr() const { return options_.lr; }
    const sgd_options& options() const { return options_; }

    std::int64_t step_count() const { return steps_; }
    void set_step_count(std::int64_t steps) {
        require(steps >= 0, "sgd: step count must be >= 0, found ", steps);
        steps_ = steps;
    }

    std::int64_t size() const { return static_cast<std::int64_t>(buffer_.size()); }
    T* state(std::size_t) { return buffer_.data(); }
    const T* state(std::size_t) const { return buffer_.data(); }

    std::string trajectory() const { return hexfloat(options_.momentum) + " " + hexfloat(options_.weight_decay); }

private:
    sgd_options options_;
    std::int64_t steps_ = 0;
    flat_buffer<T, B> buffer_;
};

}  // namespace ouro::optim
