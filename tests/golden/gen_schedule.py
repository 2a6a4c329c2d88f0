#!/usr/bin/python3
"""Golden data for tests/test_schedule.cpp and tests/test_sampler.cpp, in float64 with NumPy.

Run with Debian's interpreter:  /usr/bin/python3 tests/golden/gen_schedule.py
Writes tests/golden/diffusion/*.npy.

diffusers is not installed here, so the references are written out from the papers and from the
documented behaviour of diffusers' schedulers (DDPMScheduler, DDIMScheduler, betas_for_alpha_bar)
and openai/guided-diffusion's GaussianDiffusion, in float64 (diffusers keeps betas in float32;
ouro and these references use double throughout).

Files:
  schedule_<name>_T20.npy      (10, 20)  every table field at every t, T = 20
  schedule_<name>_T1000.npy    (10, K)   every table field at the K timesteps of schedule_T1000_index.npy
  schedule_T1000_index.npy     (K,)      int64
      field order: betas, alphas, alphas_cumprod, alphas_cumprod_prev, sqrt_alphas_cumprod,
      sqrt_one_minus_alphas_cumprod, posterior_variance, posterior_log_variance_clipped,
      posterior_mean_coef1, posterior_mean_coef2
  timesteps_<spacing>_T<T>_N<N>.npy      int64, the sampler's timesteps (diffusers' set_timesteps)
  step_x_t.npy, step_model_output.npy, step_noise.npy   (2, 3, 4, 5) fixed inputs of one step
  step_<case>.npy              (2, 3, 4, 5) x_prev of one DDPM or DDIM step (cases in STEP_CASES)
"""
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffusion")


def save(name, a):
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


# ---- schedules (betas) -----------------------------------------------------------------------

def linear_ho2020(T, b0=1e-4, b1=0.02):
    # Ho et al. 2020, diffusion_utils_2.get_beta_schedule("linear")
    return np.linspace(b0, b1, T, dtype=np.float64)


def scaled_linear(T, b0=0.00085, b1=0.012):
    # diffusers "scaled_linear": linspace(b0**0.5, b1**0.5, T) ** 2
    return np.linspace(b0 ** 0.5, b1 ** 0.5, T, dtype=np.float64) ** 2


def cosine_nichol_dhariwal(T, s=0.008, max_beta=0.999):
    # Nichol & Dhariwal 2021 eq. (17); guided-diffusion betas_for_alpha_bar / diffusers squaredcos_cap_v2
    def alpha_bar(t):
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    return np.array([min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)])


def sigmoid_geodiff(T, b0=1e-7, b1=2e-3):
    # GeoDiff (Xu et al. 2022) get_beta_schedule("sigmoid")
    def sigmoid(x):
        return 1 / (np.exp(-x) + 1)

    return sigmoid(np.linspace(-6, 6, T)) * (b1 - b0) + b0


SCHEDULES = {
    "linear_ho2020": linear_ho2020,
    "scaled_linear": scaled_linear,
    "cosine_nichol_dhariwal": cosine_nichol_dhariwal,
    "sigmoid_geodiff": sigmoid_geodiff,
}


def table(betas):
    """guided-diffusion GaussianDiffusion.__init__ (DDPM eq. (4), (6), (7))."""
    alphas = 1.0 - betas
    ac = np.cumprod(alphas)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    post_log_clipped = np.log(np.append(post_var[1], post_var[1:]))
    coef1 = betas * np.sqrt(ac_prev) / (1.0 - ac)
    coef2 = (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac)
    return np.stack([betas, alphas, ac, ac_prev, np.sqrt(ac), np.sqrt(1.0 - ac), post_var, post_log_clipped,
                     coef1, coef2])


# ---- timesteps (diffusers DDIMScheduler.set_timesteps) ------------------------------------------

def timesteps(T, N, spacing):
    if spacing == "linspace":
        return np.linspace(0, T - 1, N).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        step_ratio = T // N
        return (np.arange(0, N) * step_ratio).round()[::-1].copy().astype(np.int64)
    if spacing == "trailing":
        step_ratio = T / N
        # np.arange(T, 0, -step_ratio) can hold N + 1 entries when T / step_ratio rounds above N
        # (diffusers then visits t = -1); ouro takes the first N.
        return (np.round(np.arange(T, 0, -step_ratio)).astype(np.int64) - 1)[:N]
    raise ValueError(spacing)


# ---- one reverse step (diffusers DDPMScheduler.step / DDIMScheduler.step) -------------------------

def to_x0_eps(param, out, x, ac_t):
    a, s = ac_t ** 0.5, (1 - ac_t) ** 0.5
    if param == "epsilon":
        return (x - s * out) / a, out
    if param == "x0":
        return out, (x - a * out) / s
    if param == "v":
        return a * x - s * out, a * out + s * x
    raise ValueError(param)


def threshold(x0, p, max_value=np.inf):
    """diffusers _threshold_sample (Saharia et al. 2022): per sample, s = clamp(quantile(|x0|, p), 1, max)."""
    b = x0.shape[0]
    flat = x0.reshape(b, -1)
    s = np.quantile(np.abs(flat), p, axis=1)  # linear interpolation, as torch.quantile
    s = np.clip(s, 1, max_value)[:, None]
    return (np.clip(flat, -s, s) / s).reshape(x0.shape)


def process(x0, mode, p):
    if mode == "clip":
        return np.clip(x0, -1, 1)
    if mode == "threshold":
        return threshold(x0, p)
    return x0


def ddpm_step(ac, t, t_prev, x, out, noise, param="epsilon", var="fixed_small", mode="none", p=0.995):
    ac_t = ac[t]
    ac_prev = ac[t_prev] if t_prev >= 0 else 1.0
    beta_prod_t, beta_prod_prev = 1 - ac_t, 1 - ac_prev
    cur_alpha = ac_t / ac_prev
    cur_beta = 1 - cur_alpha
    x0, _ = to_x0_eps(param, out, x, ac_t)
    x0 = process(x0, mode, p)
    c_x0 = ac_prev ** 0.5 * cur_beta / beta_prod_t
    c_x = cur_alpha ** 0.5 * beta_prod_prev / beta_prod_t
    mean = c_x0 * x0 + c_x * x
    if t_prev < 0:
        return mean
    variance = beta_prod_prev / beta_prod_t * cur_beta if var == "fixed_small" else cur_beta
    return mean + variance ** 0.5 * noise


def ddim_step(ac, eta, t, t_prev, x, out, noise, param="epsilon", mode="none", p=0.995):
    ac_t = ac[t]
    ac_prev = ac[t_prev] if t_prev >= 0 else 1.0
    x0, eps = to_x0_eps(param, out, x, ac_t)
    if mode != "none":
        x0 = process(x0, mode, p)
        eps = (x - ac_t ** 0.5 * x0) / (1 - ac_t) ** 0.5  # use_clipped_model_output=True
    variance = (1 - ac_prev) / (1 - ac_t) * (1 - ac_t / ac_prev)  # DDIM eq. (16) without eta
    std = eta * variance ** 0.5
    prev = ac_prev ** 0.5 * x0 + (1 - ac_prev - std ** 2) ** 0.5 * eps
    if eta > 0:
        prev = prev + std * noise
    return prev


def main():
    # Schedules.
    index = np.array(sorted(set([0, 1, 2, 3, 10, 100, 250, 487, 500, 750, 900, 990, 997, 998, 999] +
                                list(range(37, 1000, 97)))), dtype=np.int64)
    save("schedule_T1000_index", index)
    for name, fn in SCHEDULES.items():
        save(f"schedule_{name}_T20", table(fn(20)))
        save(f"schedule_{name}_T1000", table(fn(1000))[:, index])

    # Timesteps.
    for spacing in ("leading", "trailing", "linspace"):
        for T, N in ((1000, 50), (1000, 3), (10, 7), (10, 10), (1000, 1)):
            save(f"timesteps_{spacing}_T{T}_N{N}", timesteps(T, N, spacing))

    # One step on fixed inputs.
    rng = np.random.default_rng(20240611)
    shape = (2, 3, 4, 5)
    x = rng.standard_normal(shape)
    out = rng.standard_normal(shape)
    noise = rng.standard_normal(shape)
    save("step_x_t", x)
    save("step_model_output", out)
    save("step_noise", noise)
    ac = np.cumprod(1 - linear_ho2020(1000))
    ac_cos = np.cumprod(1 - cosine_nichol_dhariwal(1000))
    cases = {
        "ddpm_small_eps_t500": ddpm_step(ac, 500, 499, x, out, noise),
        "ddpm_large_eps_t500": ddpm_step(ac, 500, 499, x, out, noise, var="fixed_large"),
        "ddpm_small_v_t500_to_480": ddpm_step(ac, 500, 480, x, out, noise, param="v"),
        "ddpm_large_x0_t500_to_480": ddpm_step(ac, 500, 480, x, 3 * out, noise, param="x0", var="fixed_large"),
        "ddpm_small_eps_clip_t500": ddpm_step(ac, 500, 499, x, out, noise, mode="clip"),
        "ddpm_small_eps_threshold_t500": ddpm_step(ac, 500, 499, x, out, noise, mode="threshold", p=0.995),
        "ddpm_small_eps_t0_final": ddpm_step(ac, 0, -1, x, out, noise),
        "ddim_eta0_eps_t500_to_480": ddim_step(ac, 0.0, 500, 480, x, out, noise),
        "ddim_eta1_eps_t500_to_480": ddim_step(ac, 1.0, 500, 480, x, out, noise),
        "ddim_eta0_v_cosine_t700_to_650": ddim_step(ac_cos, 0.0, 700, 650, x, out, noise, param="v"),
        "ddim_eta05_x0_threshold_t500_to_480": ddim_step(ac, 0.5, 500, 480, x, 3 * out, noise, param="x0",
                                                         mode="threshold", p=0.9),
        "ddim_eta0_eps_clip_t500_to_480": ddim_step(ac, 0.0, 500, 480, x, out, noise, mode="clip"),
        "ddim_eta1_eps_t20_final": ddim_step(ac, 1.0, 20, -1, x, out, noise),
    }
    for name, value in cases.items():
        save("step_" + name, value)


if __name__ == "__main__":
    main()
