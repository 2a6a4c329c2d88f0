#!/usr/bin/python3
"""Golden tensors for tests/test_conv.cpp and tests/test_resample_pool.cpp, in float64 from PyTorch.

Run with Debian's interpreter (it has torch):  /usr/bin/python3 tests/golden/gen_conv.py
Writes tests/golden/conv/<case>/<tensor>.npy. Each case holds its inputs (x, the upstream gradient
dy, parameters), the forward output y and the gradients (dx, and for parameters "grad/<name>.npy").
Module cases store parameters under their state-dict names ("conv.weight.npy"), so the C++ tests
load them by the names ouro's modules register. Everything is float64 on fixed seeds.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv")


def save(case, name, t):
    path = os.path.join(OUT, case, name + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = t.detach().cpu().numpy()
    np.save(path, array if array.dtype == np.int64 else array.astype(np.float64))


def conv_case(case, seed, x_shape, cout, k, stride, padding):
    """F.conv2d with bias; dy random, gradients by autograd."""
    g = torch.Generator().manual_seed(seed)
    cin = x_shape[1]
    x = torch.randn(x_shape, generator=g).requires_grad_()
    w = (torch.randn(cout, cin, k, k, generator=g) / (cin * k * k) ** 0.5).requires_grad_()
    b = torch.randn(cout, generator=g).requires_grad_()
    y = F.conv2d(x, w, b, stride=stride, padding=padding)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    for name, t in [("x", x), ("weight", w), ("bias", b), ("dy", dy), ("y", y), ("dx", x.grad),
                    ("grad/weight", w.grad), ("grad/bias", b.grad)]:
        save(case, name, t)


def upsample_case(case, seed, x_shape):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(x_shape, generator=g).requires_grad_()
    y = F.interpolate(x, scale_factor=2, mode="nearest")
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    for name, t in [("x", x), ("dy", dy), ("y", y), ("dx", x.grad)]:
        save(case, name, t)


def pool_case(case, seed, x_shape, kind, k, stride, integer_valued=False):
    """avg or max pooling; integer-valued inputs make ties, which max pooling breaks by first index."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(x_shape, generator=g)
    if integer_valued:
        x = torch.round(x)
    x.requires_grad_()
    if kind == "max":
        y, indices = F.max_pool2d(x, k, stride, return_indices=True)
    else:
        y = F.avg_pool2d(x, k, stride)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    for name, t in [("x", x), ("dy", dy), ("y", y), ("dx", x.grad)]:
        save(case, name, t)
    if kind == "max":
        save(case, "indices", indices)


class Downsample(nn.Module):
    """guided-diffusion Downsample(use_conv=True): 3×3 conv, stride 2, padding 1."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    """guided-diffusion / DDPM Upsample(with_conv=True): nearest 2× then 3×3 conv, padding 1."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def module_case(case, seed, make_module, x_shape):
    torch.manual_seed(seed)  # before the module is built: PyTorch's default init draws from it
    module = make_module()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(x_shape, generator=g).requires_grad_()
    y = module(x)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    for name, t in [("x", x), ("dy", dy), ("y", y), ("dx", x.grad)]:
        save(case, name, t)
    for name, p in module.named_parameters():
        save(case, name, p)
        save(case, "grad/" + name, p.grad)


def main():
    conv_case("k3_s1_p1", 1, (2, 3, 7, 5), 4, 3, 1, 1)
    conv_case("k3_s2_p1", 2, (2, 3, 7, 5), 4, 3, 2, 1)
    conv_case("k1", 3, (2, 3, 7, 5), 5, 1, 1, 0)
    conv_case("k1_s2", 4, (2, 3, 7, 5), 4, 1, 2, 0)
    conv_case("k5_p0", 5, (2, 3, 7, 6), 2, 5, 1, 0)
    conv_case("k3_s3_p2", 6, (1, 2, 8, 7), 3, 3, 3, 2)

    upsample_case("upsample_nearest2x", 10, (2, 3, 3, 5))
    pool_case("avg_pool_k2_s2", 11, (2, 3, 7, 5), "avg", 2, 2)
    pool_case("avg_pool_k3_s1", 12, (1, 2, 6, 5), "avg", 3, 1)
    pool_case("max_pool_k2_s2", 13, (2, 3, 7, 5), "max", 2, 2)
    pool_case("max_pool_k3_s2_ties", 14, (1, 2, 7, 6), "max", 3, 2, integer_valued=True)

    module_case("downsample", 20, lambda: Downsample(3), (2, 3, 7, 5))
    module_case("upsample", 21, lambda: Upsample(3), (2, 3, 3, 4))


if __name__ == "__main__":
    main()
