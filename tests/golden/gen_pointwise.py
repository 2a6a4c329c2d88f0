#!/usr/bin/python3
"""Golden tensors for the pointwise op families, in float64 from PyTorch:
tests/test_norm_activation.cpp, tests/test_linear_embedding.cpp and tests/test_dropout_loss.cpp.

Run with Debian's interpreter (it has torch):  /usr/bin/python3 tests/golden/gen_pointwise.py
Writes tests/golden/pointwise/<case>/<tensor>.npy: the inputs (x, weights, dy, labels) and what
torch computes from them (y, gradients). Labels are int64; scalar losses are arrays of shape (1,).

The timestep embedding follows openai/guided-diffusion (guided_diffusion/nn.py,
`timestep_embedding`), written out here in float64 instead of its float32 (a float32 reference
would be less exact than the code under test). Dropout has no golden: torch draws its masks from
its own generator, ouro from Philox; its tests check the mask's statistics instead.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
torch.manual_seed(20240611)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pointwise")


def save(case, name, t):
    path = os.path.join(OUT, case, name + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    t = np.asarray(t)
    t = t.astype(np.int64) if t.dtype.kind in "iu" else t.astype(np.float64)
    np.save(path, np.ascontiguousarray(t))


def group_norm_case(case, shape, groups, eps=1e-5, offset=0.0, scale=1.0):
    c = shape[1]
    x = (scale * torch.randn(*shape) + offset).requires_grad_()
    gamma = torch.randn(c).requires_grad_()
    beta = torch.randn(c).requires_grad_()
    y = F.group_norm(x, groups, gamma, beta, eps)
    dy = torch.randn(*shape)
    y.backward(dy)
    n, hw = shape[0], int(np.prod(shape[2:])) if len(shape) > 2 else 1
    _, mean, rstd = torch.native_group_norm(x.detach(), gamma.detach(), beta.detach(), n, c, hw, groups, eps)
    for name, t in [("x", x), ("weight", gamma), ("bias", beta), ("dy", dy), ("y", y), ("mean", mean),
                    ("rstd", rstd), ("dx", x.grad), ("grad_weight", gamma.grad), ("grad_bias", beta.grad)]:
        save(case, name, t)


def activation_case(case, fn):
    x = 3.0 * torch.randn(3, 37)
    # Extremes (exp over- and underflow in sigmoid) and exact zeros (the kink of relu).
    x[0, :7] = torch.tensor([-800.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 800.0])
    x[2, 5] = 0.0
    x.requires_grad_()
    y = fn(x)
    dy = torch.randn(3, 37)
    y.backward(dy)
    for name, t in [("x", x), ("dy", dy), ("y", y), ("dx", x.grad)]:
        save(case, name, t)


def linear_case(case, n, fin, fout, bias):
    x = torch.randn(n, fin).requires_grad_()
    w = torch.randn(fout, fin).requires_grad_()
    b = torch.randn(fout).requires_grad_() if bias else None
    y = F.linear(x, w, b)
    dy = torch.randn(n, fout)
    y.backward(dy)
    tensors = [("x", x), ("weight", w), ("dy", dy), ("y", y), ("dx", x.grad), ("grad_weight", w.grad)]
    if bias:
        tensors += [("bias", b), ("grad_bias", b.grad)]
    for name, t in tensors:
        save(case, name, t)


def timestep_embedding(timesteps, dim, max_period=10000):
    """guided-diffusion nn.py timestep_embedding, in float64."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float64) / half)
    args = timesteps[:, None].double() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def timestep_case(case, t, dim, max_period):
    t = torch.tensor(t).requires_grad_()
    y = timestep_embedding(t, dim, max_period)
    dy = torch.randn(*y.shape)
    y.backward(dy)
    for name, v in [("t", t), ("dy", dy), ("y", y), ("dt", t.grad)]:
        save(case, name, v)
    save(case, "max_period", np.array([max_period], dtype=np.float64))


def label_embedding_case(case, classes, dim, labels):
    table = torch.randn(classes, dim).requires_grad_()
    labels = torch.tensor(labels, dtype=torch.int64)
    y = F.embedding(labels, table)
    dy = torch.randn(*y.shape)
    y.backward(dy)
    for name, t in [("weight", table), ("labels", labels), ("dy", dy), ("y", y), ("grad_weight", table.grad)]:
        save(case, name, t)


def mse_case(case, shape):
    pred = torch.randn(*shape).requires_grad_()
    target = torch.randn(*shape)
    loss = F.mse_loss(pred, target)
    loss.backward()
    for name, t in [("pred", pred), ("target", target), ("loss", loss.reshape(1)), ("dpred", pred.grad)]:
        save(case, name, t)


def cross_entropy_case(case, n, k, labels, big_row=None):
    logits = 3.0 * torch.randn(n, k)
    if big_row is not None:
        logits[big_row] *= 1000.0  # naive exp would overflow
    logits.requires_grad_()
    labels = torch.tensor(labels, dtype=torch.int64)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    for name, t in [("logits", logits), ("labels", labels), ("loss", loss.reshape(1)), ("dlogits", logits.grad)]:
        save(case, name, t)


if __name__ == "__main__":
    group_norm_case("group_norm_c6_g3", (2, 6, 5, 7), 3, offset=3.0, scale=2.0)  # H·W = 35
    group_norm_case("group_norm_c8_g4", (1, 8, 3, 5), 4)  # batch 1, H·W = 15
    group_norm_case("group_norm_bcl", (3, 4, 9), 2, eps=1e-6)  # (B, C, L)
    activation_case("silu", F.silu)
    activation_case("relu", F.relu)
    linear_case("linear", 5, 7, 3, True)
    linear_case("linear_no_bias", 1, 4, 6, False)
    timestep_case("timestep_embedding_even", [0.0, 1.0, 17.0, 250.5, 999.0], 16, 10000.0)
    timestep_case("timestep_embedding_odd", [3.0, 42.0, 700.25], 9, 1000.0)
    label_embedding_case("label_embedding", 5, 4, [3, 0, 3, 4, 1, 3])
    mse_case("mse", (2, 3, 4, 5))
    cross_entropy_case("cross_entropy", 6, 5, [1, 0, 4, 4, 2, 3], big_row=2)
