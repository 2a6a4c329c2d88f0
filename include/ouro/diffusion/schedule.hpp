// Noise schedules of the forward diffusion process and the table of every per-timestep constant the
// training loss and the samplers read (Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic
// Models", NeurIPS 2020). Schedules are small types named by their source formula, all satisfying
// one concept; the table is computed once, in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numbers>
#include <utility>
#include <vector>

#include "ouro/core/error.hpp"

namespace ouro::diffusion {

// ---- The concept ------------------------------------------------------------------------------

// A noise schedule names itself and gives β_0 … β_{T−1} for T timesteps, each in (0, 1).
template <class S>
concept noise_schedule = requires(const S& s, std::int64_t timesteps) {
    { S::name } -> std::convertible_to<const char*>;
    { s.betas(timesteps) } -> std::same_as<std::vector<double>>;
};

// static_assert(check_noise_schedule<S>()) explains in words what S lacks to be a noise_schedule.
template <class S>
constexpr bool check_noise_schedule() {
    static_assert(
        requires {
            { S::name } -> std::convertible_to<const char*>;
        },
        "a noise schedule needs a name: `static constexpr const char* name = \"...\";`");
    static_assert(
        requires(const S& s, std::int64_t timesteps) {
            { s.betas(timesteps) } -> std::same_as<std::vector<double>>;
        },
        "a noise schedule needs `std::vector<double> betas(std::int64_t timesteps) const` "
        "returning beta_0 ... beta_{T-1}");
    return noise_schedule<S>;
}

namespace detail {
// numpy.linspace(start, stop, n) as NumPy computes it: start + i·step, the last entry exactly stop.
inline std::vector<double> linspace(double start, double stop, std::int64_t n) {
    std::vector<double> v(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
    if (n == 1) v[0] = start;
    if (n <= 1) return v;
    const double step = (stop - start) / static_cast<double>(n - 1);
    for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<double>(i) * step + start;
    v.back() = stop;
    return v;
}

inline void require_timesteps(const char* who, std::int64_t timesteps) {
    require(timesteps >= 1, who, ": expected at least 1 timestep, found T = ", timesteps);
}
}  // namespace detail

// ---- Schedules --------------------------------------------------------------------------------

// Ho et al. 2020, §4: β linear from 1e-4 to 0.02 over T = 1000 (numpy.linspace(β_0, β_1, T)).
struct linear_ho2020 {
    static constexpr const char* name = "linear_ho2020";
    double beta_start = 1e-4;
    double beta_end = 0.02;

    std::vector<double> betas(std::int64_t timesteps) const {
        detail::require_timesteps(name, timesteps);
        return detail::linspace(beta_start, beta_end, timesteps);
    }
};

// diffusers' "scaled_linear" (Stable Diffusion, Rombach et al. 2022): linear in sqrt(β),
// β = linspace(sqrt(β_0), sqrt(β_1), T)². Defaults are Stable Diffusion's.
struct scaled_linear {
    static constexpr const char* name = "scaled_linear";
    double beta_start = 0.00085;
    double beta_end = 0.012;

    std::vector<double> betas(std::int64_t timesteps) const {
        detail::require_timesteps(name, timesteps);
        std::vector<double> b = detail::linspace(std::sqrt(beta_start), std::sqrt(beta_end), timesteps);
        for (double& x : b) x = x * x;
        return b;
    }
};

// Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models" (ICML 2021), eq. (17):
// ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T + s)/(1 + s))·π/2), and β_t = 1 − ᾱ(t+1)/ᾱ(t) clipped at
// 0.999 so the last steps stay finite (guided-diffusion; diffusers' "squaredcos_cap_v2").
struct cosine_nichol_dhariwal {
    static constexpr const char* name = "cosine_nichol_dhariwal";
    double s = 0.008;
    double max_beta = 0.999;

    std::vector<double> betas(std::int64_t timesteps) const {
        detail::require_timesteps(name, timesteps);
        const auto alpha_bar = [this](double t) {
            const double c = std::cos((t + s) / (1.0 + s) * std::numbers::pi / 2.0);
            return c * c;
        };
        std::vector<double> b(static_cast<std::size_t>(timesteps));
        const double n = static_cast<double>(timesteps);
        for (std::int64_t i = 0; i < timesteps; ++i) {
            const double t1 = static_cast<double>(i) / n, t2 = static_cast<double>(i + 1) / n;
            b[static_cast<std::size_t>(i)] = std::min(1.0 - alpha_bar(t2) / alpha_bar(t1), max_beta);
        }
        return b;
    }
};

// Xu et al., "GeoDiff" (ICLR 2022), their "sigmoid" schedule (also diffusers'):
// β = sigmoid(linspace(−6, 6, T))·(β_1 − β_0) + β_0. Defaults are GeoDiff's.
struct sigmoid_geodiff {
    static constexpr const char* name = "sigmoid_geodiff";
    double beta_start = 1e-7;
    double beta_end = 2e-3;

    std::vector<double> betas(std::int64_t timesteps) const {
        detail::require_timesteps(name, timesteps);
        std::vector<double> b = detail::linspace(-6.0, 6.0, timesteps);
        for (double& x : b) x = 1.0 / (std::exp(-x) + 1.0) * (beta_end - beta_start) + beta_start;
        return b;
    }
};

// Betas given by the user (diffusers' trained_betas); T must equal their count.
struct user_betas {
    static constexpr const char* name = "user_betas";
    std::vector<double> values;

    std::vector<double> betas(std::int64_t timesteps) const {
        require(timesteps == static_cast<std::int64_t>(values.size()), "user_betas: expected T = ", values.size(),
                " (the number of betas given), found T = ", timesteps);
        detail::require_timesteps(name, timesteps);
        return values;
    }
};

// ---- The table --------------------------------------------------------------------------------

// Every per-timestep constant of a schedule, in double, indexed by t = 0 … T−1 (t = 0 is the
// first noising step, Ho et al.'s t = 1). With ᾱ_{−1} = 1:
//   α_t = 1 − β_t,  ᾱ_t = Π_{s<=t} α_s                                          (DDPM eq. (4))
//   β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)                       posterior variance, DDPM eq. (7)
//   μ̃_t(x_t, x_0) = coef1_t x_0 + coef2_t x_t,                 posterior mean, DDPM eq. (7):
//     coef1_t = β_t sqrt(ᾱ_{t−1}) / (1 − ᾱ_t),  coef2_t = (1 − ᾱ_{t−1}) sqrt(α_t) / (1 − ᾱ_t)
//   q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 − ᾱ_t) I)                                (DDPM eq. (4))
// β̃_0 = 0, so its log is replaced by log β̃_1 (Ho's and guided-diffusion's
// posterior_log_variance_clipped); with T = 1 there is no β̃_1 and the entry is log β_0.
class schedule_table {
public:
    // Requires T >= 1 and every β_t in (0, 1) (ouro::error naming the offending t and value).
    template <class S>
    schedule_table(const S& schedule, std::int64_t timesteps) {
        static_assert(check_noise_schedule<S>());
        if constexpr (noise_schedule<S>) {  // no cascade of errors after the one above
            detail::require_timesteps(S::name, timesteps);
            std::vector<double> b = schedule.betas(timesteps);
            require(static_cast<std::int64_t>(b.size()) == timesteps, S::name, ": expected ", timesteps,
                    " betas, found ", b.size());
            build_(std::move(b), S::name);
        }
    }

    // The table of the given betas (user_betas by another name).
    static schedule_table from_betas(std::vector<double> betas) {
        const auto n = static_cast<std::int64_t>(betas.size());
        return schedule_table(user_betas{std::move(betas)}, n);
    }

    std::int64_t timesteps() const { return static_cast<std::int64_t>(betas_.size()); }

    const std::vector<double>& betas() const { return betas_; }
    const std::vector<double>& alphas() const { return alphas_; }
    const std::vector<double>& alphas_cumprod() const { return alphas_cumprod_; }
    const std::vector<double>& alphas_cumprod_prev() const { return alphas_cumprod_prev_; }  // ᾱ_{t−1}, 1 at t = 0
    const std::vector<double>& sqrt_alphas_cumprod() const { return sqrt_alphas_cumprod_; }
    const std::vector<double>& sqrt_one_minus_alphas_cumprod() const { return sqrt_one_minus_alphas_cumprod_; }
    const std::vector<double>& posterior_variance() const { return posterior_variance_; }
    const std::vector<double>& posterior_log_variance_clipped() const { return posterior_log_variance_clipped_; }
    const std::vector<double>& posterior_mean_coef1() const { return posterior_mean_coef1_; }
    const std::vector<double>& posterior_mean_coef2() const { return posterior_mean_coef2_; }

    // ᾱ_t for t in [−1, T): t = −1 is the clean end of the chain, ᾱ_{−1} = 1 (DDIM's α_0 = 1).
    double alpha_bar(std::int64_t t) const {
        if (t == -1) return 1.0;
        require_timestep(t, "schedule_table::alpha_bar");
        return alphas_cumprod_[static_cast<std::size_t>(t)];
    }

    // Requires 0 <= t < T; `who` names the caller in the message.
    void require_timestep(std::int64_t t, const char* who) const {
        if (t < 0 || t >= timesteps()) fail(who, ": expected a timestep 0 <= t < T = ", timesteps(), ", found t = ", t);
    }

private:
    void build_(std::vector<double> b, const char* who) {
        const std::size_t n = b.size();
        for (std::size_t t = 0; t < n; ++t)
            if (!(b[t] > 0.0 && b[t] < 1.0)) fail(who, ": expected every beta in (0, 1), found beta[", t, "] = ", b[t]);
        betas_ = std::move(b);
        alphas_.resize(n);
        alphas_cumprod_.resize(n);
        alphas_cumprod_prev_.resize(n);
        sqrt_alphas_cumprod_.resize(n);
        sqrt_one_minus_alphas_cumprod_.resize(n);
        posterior_variance_.resize(n);
        posterior_log_variance_clipped_.resize(n);
        posterior_mean_coef1_.resize(n);
        posterior_mean_coef2_.resize(n);
        double cumprod = 1.0;
        for (std::size_t t = 0; t < n; ++t) {
            const double beta = betas_[t], alpha = 1.0 - beta, prev = cumprod;
            cumprod *= alpha;
            alphas_[t] = alpha;
            alphas_cumprod_prev_[t] = prev;
            alphas_cumprod_[t] = cumprod;
            sqrt_alphas_cumprod_[t] = std::sqrt(cumprod);
            sqrt_one_minus_alphas_cumprod_[t] = std::sqrt(1.0 - cumprod);
            posterior_variance_[t] = beta * (1.0 - prev) / (1.0 - cumprod);
            posterior_mean_coef1_[t] = beta * std::sqrt(prev) / (1.0 - cumprod);
            posterior_mean_coef2_[t] = (1.0 - prev) * std::sqrt(alpha) / (1.0 - cumprod);
        }
        for (std::size_t t = 1; t < n; ++t) posterior_log_variance_clipped_[t] = std::log(posterior_variance_[t]);
        posterior_log_variance_clipped_[0] = n > 1 ? posterior_log_variance_clipped_[1] : std::log(betas_[0]);
    }

    std::vector<double> betas_, alphas_, alphas_cumprod_, alphas_cumprod_prev_, sqrt_alphas_cumprod_,
        sqrt_one_minus_alphas_cumprod_, posterior_variance_, posterior_log_variance_clipped_, posterior_mean_coef1_,
        posterior_mean_coef2_;
};

}  // namespace ouro::diffusion
