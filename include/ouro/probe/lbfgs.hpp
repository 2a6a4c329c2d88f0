// Limited-memory BFGS for smooth, unconstrained objectives f: R^n -> R given with their gradient,
// as the softmax probe (probe/softmax_probe.hpp) is trained: full batch, deterministic, every
// iteration recorded and handed to callbacks. Why ours and not LBFGSpp: docs/ARCHITECTURE.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "ouro/core/error.hpp"
#include "ouro/core/progress.hpp"

namespace ouro::probe {
// ---- L-BFGS -----------------------------------------------------------------------------------
// Limited-memory BFGS (Liu & Nocedal 1989) with the two-loop recursion (Nocedal & Wright,
// "Numerical Optimization", 2nd ed., Algorithm 7.4) and a line search that satisfies the strong
// Wolfe conditions (Algorithms 3.5 and 3.6, cubic interpolation eq. (3.59)).

struct lbfgs_options {
    std::int64_t max_iterations = 500;
    std::int64_t history = 10;          // m: (s, y) pairs kept
    double gradient_tolerance = 1e-6;   // stop when ||g||_2 <= this
    double function_tolerance = 0.0;    // stop when (f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= this;
                                        // 0: when an iteration leaves f unchanged (its rounding floor)
    double c1 = 1e-4;                   // sufficient decrease (Armijo)
    double c2 = 0.9;                    // curvature; 0.9 is the usual choice for quasi-Newton
    std::int64_t max_line_search = 40;  // function evaluations per line search
};

enum class lbfgs_status {
    gradient_tolerance,  // ||g||_2 <= gradient_tolerance: converged
    function_tolerance,  // the relative decrease fell to function_tolerance (by default: f unchanged)
    max_iterations,
    line_search_failed,  // no acceptable step along a descent direction (the gradient is at its noise floor)
    stopped_by_callback,
};

inline const char* to_string(lbfgs_status s) {
    switch (s) {
        case lbfgs_status::gradient_tolerance: return "gradient_tolerance";
        case lbfgs_status::function_tolerance: return "function_tolerance";
        case lbfgs_status::max_iterations: return "max_iterations";
        case lbfgs_status::line_search_failed: return "line_search_failed";
        case lbfgs_status::stopped_by_callback: return "stopped_by_callback";
    }
    return "unknown";
}

// One iteration, as recorded and as handed to callbacks' on_step. Iteration 0 is the start point.
struct lbfgs_iteration {
    std::int64_t iteration = 0;
    double loss = 0;
    double gradient_norm = 0;      // ||g||_2
    double step = 0;               // the accepted line-search step α (0 for iteration 0)
    std::int64_t evaluations = 0;  // objective evaluations so far
};

struct lbfgs_result {
    lbfgs_status status = lbfgs_status::max_iterations;
    std::vector<lbfgs_iteration> history;  // iterations 0..k, one entry each
    double loss = 0;
    double gradient_norm = 0;
    std::int64_t iterations = 0;
    std::int64_t evaluations = 0;
    bool converged() const {
        return status == lbfgs_status::gradient_tolerance || status == lbfgs_status::function_tolerance;
    }
};

// f(x, grad) returns the objective at x and writes its gradient into grad (same size as x).
template <class F>
concept differentiable_objective = requires(F& f, std::span<const double> x, std::span<double> grad) {
    { f(x, grad) } -> std::convertible_to<double>;
};

namespace detail {
using vec = Eigen::VectorXd;

inline std::span<const double> span_of(const vec& v) { return {v.data(), static_cast<std::size_t>(v.size())}; }
inline std::span<double> span_of(vec& v) { return {v.data(), static_cast<std::size_t>(v.size())}; }

// φ(α) = f(x + α d) and φ'(α) = ∇f(x + α d)·d at one trial step.
struct line_point {
    double alpha = 0, f = 0, slope = 0;
};

// Minimiser of the cubic through (a, φ(a), φ'(a)) and (b, φ(b), φ'(b)) (Nocedal & Wright
// eq. (3.59)), kept at least a tenth of the interval away from both ends; bisection where the
// cubic has no minimiser or the values are not finite.
inline double cubic_step(const line_point& a, const line_point& b) {
    const double lo = std::min(a.alpha, b.alpha), hi = std::max(a.alpha, b.alpha), width = hi - lo;
    const double d1 = a.slope + b.slope - 3.0 * (a.f - b.f) / (a.alpha - b.alpha);
    const double disc = d1 * d1 - a.slope * b.slope;
    double alpha = 0.5 * (lo + hi);
    if (disc >= 0) {
        const double d2 = std::copysign(std::sqrt(disc), b.alpha - a.alpha);
        const double t = b.alpha - (b.alpha - a.alpha) * (b.slope + d2 - d1) / (b.slope - a.slope + 2.0 * d2);
        if (std::isfinite(t)) alpha = t;
    }
    return std::clamp(alpha, lo + 0.1 * width, hi - 0.1 * width);
}

// Line search along d from (x, f0, g) for a step with the strong Wolfe conditions
// f(x + αd) <= f0 + c1 α g·d and |∇f(x + αd)·d| <= c2 |g·d| (Nocedal & Wright Algorithms 3.5, 3.6).
// On success x_new, g_new, f_new hold the accepted point. Where the evaluations run out, a point
// with sufficient decrease alone is accepted if one was seen; otherwise the search fails.
// Near the minimum f stops resolving the decrease long before the gradient vanishes (at ||g|| ~
// 1e-9 for a loss of order 1): there the run ends with f unchanged or a failed search.
template <class F>
bool strong_wolfe_search(F& objective, const vec& x, double f0, const vec& d, double slope0, double alpha0,
                         const lbfgs_options& o, vec& x_new, vec& g_new, double& f_new, double& alpha_out,
                         std::int64_t& evaluations) {
    vec x_trial(x.size()), g_trial(x.size());
    bool have_best = false;  // (x_new, g_new, f_new) hold the best point with sufficient decrease
    std::int64_t budget = o.max_line_search;
    auto evaluate = [&](double alpha) {
        x_trial.noalias() = x + alpha * d;
        const double f = objective(span_of(std::as_const(x_trial)), span_of(g_trial));
        ++evaluations;
        --budget;
        return line_point{alpha, f, g_trial.dot(d)};
    };
    auto sufficient = [&](const line_point& p) { return p.f <= f0 + o.c1 * p.alpha * slope0; };  // false for NaN
    auto curvature = [&](const line_point& p) { return std::abs(p.slope) <= -o.c2 * slope0; };
    auto keep = [&](const line_point& p) {
        x_new.swap(x_trial);
        g_new.swap(g_trial);
        x_trial.resize(x.size());
        g_trial.resize(x.size());
        f_new = p.f;
        alpha_out = p.alpha;
        have_best = true;
    };

    // Algorithm 3.6: lo has sufficient decrease and the lowest f seen; [lo, hi] holds a Wolfe step.
    auto zoom = [&](line_point lo, line_point hi) {
        while (budget > 0 && std::abs(hi.alpha - lo.alpha) > std::numeric_limits<double>::epsilon() * lo.alpha) {
            const line_point p = evaluate(cubic_step(lo, hi));
            if (!sufficient(p) || p.f >= lo.f) {
                hi = p;
            } else {
                keep(p);
                if (curvature(p)) return true;
                if (p.slope * (hi.alpha - lo.alpha) >= 0) hi = lo;
                lo = p;
            }
        }
        return have_best;
    };

    // Algorithm 3.5: step out until the interval brackets a Wolfe step.
    line_point prev{0.0, f0, slope0};
    double alpha = alpha0;
    for (bool first = true; budget > 0; first = false) {
        const line_point p = evaluate(alpha);
        if (!sufficient(p) || (!first && p.f >= prev.f)) return zoom(prev, p);
        keep(p);
        if (curvature(p)) return true;
        if (p.slope >= 0) return zoom(p, prev);
        prev = p;
        alpha *= 2.0;
    }
    return have_best;
}

// The L-BFGS memory: the last m pairs s = x_{k+1} - x_k, y = g_{k+1} - g_k with ρ = 1 / yᵀs.
class lbfgs_memory {
public:
    explicit lbfgs_memory(std::int64_t m) : m_(m) {}

    bool empty() const { return count_ == 0; }
    void clear() { count_ = 0; }

    // Stores the pair when yᵀs > ε yᵀy, the curvature condition that keeps H positive definite
    // (always true after a strong Wolfe step; this guards the accepted-on-Armijo fallback).
    void push(vec s, vec y) {
        const double sy = s.dot(y), yy = y.dot(y);
        if (!(sy > std::numeric_limits<double>::epsilon() * yy)) return;
        if (static_cast<std::int64_t>(s_.size()) < m_) {
            s_.push_back(std::move(s));
            y_.push_back(std::move(y));
            rho_.push_back(1.0 / sy);
            newest_ = static_cast<std::int64_t>(s_.size()) - 1;
        } else {
            newest_ = (newest_ + 1) % m_;
            s_[static_cast<std::size_t>(newest_)] = std::move(s);
            y_[static_cast<std::size_t>(newest_)] = std::move(y);
            rho_[static_cast<std::size_t>(newest_)] = 1.0 / sy;
        }
        count_ = std::min(count_ + 1, m_);
        gamma_ = sy / yy;
    }

    // d = -H g by the two-loop recursion (Nocedal & Wright Algorithm 7.4) with H_0 = γ I,
    // γ = sᵀy / yᵀy of the newest pair (eq. (7.20)).
    void direction(const vec& g, vec& d) {
        alpha_.resize(static_cast<std::size_t>(count_));
        d = g;
        for (std::int64_t k = 0; k < count_; ++k) {  // newest to oldest
            const auto i = static_cast<std::size_t>(slot(k));
            alpha_[static_cast<std::size_t>(k)] = rho_[i] * s_[i].dot(d);
            d.noalias() -= alpha_[static_cast<std::size_t>(k)] * y_[i];
        }
        d *= gamma_;
        for (std::int64_t k = count_ - 1; k >= 0; --k) {  // oldest to newest
            const auto i = static_cast<std::size_t>(slot(k));
            const double beta = rho_[i] * y_[i].dot(d);
            d.noalias() += (alpha_[static_cast<std::size_t>(k)] - beta) * s_[i];
        }
        d = -d;
    }

private:
    std::int64_t slot(std::int64_t k) const { return ((newest_ - k) % m_ + m_) % m_; }  // k-th newest

    std::int64_t m_;
    std::int64_t count_ = 0;
    std::int64_t newest_ = -1;
    double gamma_ = 1.0;
    std::vector<vec> s_, y_;
    std::vector<double> rho_, alpha_;
};

inline void check_lbfgs_options(const lbfgs_options& o) {
    require(o.max_iterations >= 0, "lbfgs: expected max_iterations >= 0, found ", o.max_iterations);
    require(o.history >= 1, "lbfgs: expected history m >= 1, found ", o.history);
    require(o.gradient_tolerance >= 0, "lbfgs: expected gradient_tolerance >= 0, found ", o.gradient_tolerance);
    require(o.function_tolerance >= 0, "lbfgs: expected function_tolerance >= 0, found ", o.function_tolerance);
    require(o.c1 > 0 && o.c1 < o.c2 && o.c2 < 1, "lbfgs: expected 0 < c1 < c2 < 1, found c1 = ", o.c1, ", c2 = ", o.c2);
    require(o.max_line_search >= 1, "lbfgs: expected max_line_search >= 1, found ", o.max_line_search);
}
}  // namespace detail

// Minimises `objective` from x (overwritten with the last iterate) by L-BFGS. Each iteration is
// recorded and handed to every callback's on_step(const lbfgs_iteration&) (see core/progress.hpp);
// a hook that returns true stops the run. The loss never increases from one iteration to the next
// (every accepted step has sufficient decrease). Deterministic: serial vector algebra only.
template <differentiable_objective F, class... Callbacks>
lbfgs_result lbfgs_minimize(F&& objective, std::span<double> x_io, const lbfgs_options& options = {},
                            Callbacks&... callbacks) {
    static_assert((training_callback<Callbacks, lbfgs_iteration> && ...),
                  "an L-BFGS callback needs `on_step(const ouro::probe::lbfgs_iteration&)` returning void, or bool "
                  "where true stops the run");
    detail::check_lbfgs_options(options);
    require(!x_io.empty(), "lbfgs: expected at least one parameter, found none");
    using detail::vec;
    const auto n = static_cast<Eigen::Index>(x_io.size());
    vec x = Eigen::Map<const vec>(x_io.data(), n), g(n), x_new(n), g_new(n), d(n);

    lbfgs_result result;
    double f = objective(detail::span_of(std::as_const(x)), detail::span_of(g));
    result.evaluations = 1;
    double gnorm = g.norm();
    auto record = [&](std::int64_t k, double step) {
        const lbfgs_iteration it{k, f, gnorm, step, result.evaluations};
        result.history.push_back(it);
        return invoke_each(on_step, std::tie(callbacks...), it);
    };
    auto finish = [&](lbfgs_status status, std::int64_t k) {
        std::copy(x.data(), x.data() + n, x_io.data());
        result.status = status;
        result.loss = f;
        result.gradient_norm = gnorm;
        result.iterations = k;
        return result;
    };

    if (!std::isfinite(f) || !std::isfinite(gnorm))
        fail("lbfgs: the objective is not finite at the start point (f = ", f, ", ||g|| = ", gnorm, ")");
    if (record(0, 0.0)) return finish(lbfgs_status::stopped_by_callback, 0);
    if (gnorm <= options.gradient_tolerance) return finish(lbfgs_status::gradient_tolerance, 0);

    detail::lbfgs_memory memory(options.history);
    for (std::int64_t k = 1; k <= options.max_iterations; ++k) {
        double f_new = f, alpha = 0;
        bool found = false;
        // A failed search with curvature memory is retried once along -g with the memory dropped.
        for (int attempt = 0; attempt < 2 && !found; ++attempt) {
            if (attempt == 1 && memory.empty()) break;
            if (attempt == 1) memory.clear();
            double alpha0 = 1.0;
            if (memory.empty()) {
                d = -g;
                alpha0 = std::min(1.0, 1.0 / gnorm);  // first step of length at most 1
            } else {
                memory.direction(g, d);
            }
            double slope = g.dot(d);
            if (!(slope < 0)) {  // not a descent direction (rounding): fall back to steepest descent
                memory.clear();
                d = -g;
                slope = -gnorm * gnorm;
                alpha0 = std::min(1.0, 1.0 / gnorm);
            }
            found = detail::strong_wolfe_search(objective, x, f, d, slope, alpha0, options, x_new, g_new, f_new, alpha,
                                                result.evaluations);
        }
        if (!found) return finish(lbfgs_status::line_search_failed, k - 1);

        memory.push(x_new - x, g_new - g);
        const double f_old = f;
        x.swap(x_new);
        g.swap(g_new);
        f = f_new;
        gnorm = g.norm();
        if (record(k, alpha)) return finish(lbfgs_status::stopped_by_callback, k);
        if (gnorm <= options.gradient_tolerance) return finish(lbfgs_status::gradient_tolerance, k);
        if ((f_old - f) / std::max({std::abs(f_old), std::abs(f), 1.0}) <= options.function_tolerance)
            return finish(lbfgs_status::function_tolerance, k);
    }
    return finish(lbfgs_status::max_iterations, options.max_iterations);
}

}  // namespace ouro::probe
