#!/usr/bin/python3
"""Golden data for tests/test_optim.cpp, in float64 from PyTorch: torch.optim.AdamW over a few
steps and torch.nn.utils.clip_grad_norm_.

Run with Debian's interpreter (it has torch):  /usr/bin/python3 tests/golden/gen_optim.py
Writes tests/golden/optim/<case>/<array>.npy.

AdamW cases: three parameters p0, p1, p2 of the shapes in SHAPES, a fixed gradient per step
(p<k>_grads, shape (steps, ...)) and a learning rate per step (lrs, changed between steps through
param_groups, as a schedule does); hyper = [beta1, beta2, eps, weight_decay]. Expected: the values
after every step (p<k>_values, shape (steps, ...)) and the moments after the last step
(p<k>_exp_avg, p<k>_exp_avg_sq).

Clip cases: gradients p<k>_grad, max_norm (1,), the returned total norm (1,) and the gradients
after clipping (p<k>_clipped).
"""
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
torch.manual_seed(20240612)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim")
# Sizes that are not multiples of a SIMD width, so the scalar tails run too.
SHAPES = [(3, 4), (5,), (2, 1, 3)]


def save(case, name, t):
    path = os.path.join(OUT, case, name + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    np.save(path, np.ascontiguousarray(np.asarray(t, dtype=np.float64)))


def adamw_case(case, lrs, betas, eps, weight_decay, grad_scale=1.0):
    params = [torch.nn.Parameter(torch.randn(*s)) for s in SHAPES]
    for k, p in enumerate(params):
        save(case, f"p{k}_init", p)
    steps = len(lrs)
    grads = [grad_scale * torch.randn(steps, *s) for s in SHAPES]
    # An exact zero gradient: the update of that element is then weight decay and momentum only.
    grads[1][2, 3] = 0.0
    opt = torch.optim.AdamW(params, lr=lrs[0], betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
    values = [[] for _ in SHAPES]
    for step, lr in enumerate(lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        for k, p in enumerate(params):
            p.grad = grads[k][step].clone()
        opt.step()
        for k, p in enumerate(params):
            values[k].append(p.detach().clone())
    for k, p in enumerate(params):
        save(case, f"p{k}_grads", grads[k])
        save(case, f"p{k}_values", torch.stack(values[k]))
        state = opt.state[p]
        assert int(state["step"]) == steps
        save(case, f"p{k}_exp_avg", state["exp_avg"])
        save(case, f"p{k}_exp_avg_sq", state["exp_avg_sq"])
    save(case, "lrs", np.array(lrs))
    save(case, "hyper", np.array([betas[0], betas[1], eps, weight_decay]))


def clip_case(case, max_norm, grad_scale):
    params = [torch.nn.Parameter(torch.randn(*s)) for s in SHAPES]
    for k, p in enumerate(params):
        p.grad = grad_scale * torch.randn(*SHAPES[k])
        save(case, f"p{k}_grad", p.grad)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    save(case, "max_norm", np.array([max_norm]))
    save(case, "total_norm", np.array([float(total)]))
    for k, p in enumerate(params):
        save(case, f"p{k}_clipped", p.grad)


if __name__ == "__main__":
    # torch defaults except a larger weight decay (so its effect shows) and a changing lr.
    adamw_case("adamw_decay_lr_changes", lrs=[1e-2, 1e-2, 5e-3, 2e-2, 1e-3], betas=(0.9, 0.999), eps=1e-8,
               weight_decay=0.1)
    # Other betas, no weight decay, gradients small enough that eps matters.
    adamw_case("adamw_small_grads", lrs=[5e-2] * 6, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.0,
               grad_scale=1e-4)
    clip_case("clip_scaled", max_norm=1.0, grad_scale=1.0)
    clip_case("clip_unchanged", max_norm=10.0, grad_scale=0.5)
