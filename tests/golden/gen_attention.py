#!/usr/bin/python3
"""Golden tensors for tests/test_attention.cpp and tests/test_blocks.cpp, in float64 from PyTorch.

Run with Debian's interpreter (it has torch):  /usr/bin/python3 tests/golden/gen_attention.py
Writes tests/golden/attention/<case>/<tensor>.npy. Parameters are stored under their state-dict
names (e.g. "qkv.weight.npy") and their gradients under "grad/<name>.npy", so the C++ tests load
them by the names their modules register.

The references follow openai/guided-diffusion (unet.py): QKVAttentionLegacy, AttentionBlock and
ResBlock, written out here with ouro's parameter names (norm/qkv/proj, norm1/conv1/emb_proj/
norm2/conv2/skip) and without guided-diffusion's float32 casts (GroupNorm32, softmax(weight.float())),
which would spoil a float64 reference. Dropout runs in eval mode: ouro draws its masks from Philox,
torch from its own generator, so only the deterministic path can be compared.
"""
import math
import os

import numpy as np
import torch
from torch import nn

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attention")


def save(case, name, t):
    path = os.path.join(OUT, case, name + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, t.detach().cpu().numpy().astype(np.float64))


def qkv_attention_legacy(qkv, n_heads):
    """guided-diffusion QKVAttentionLegacy.forward: qkv (B, H*3*d, L) -> (B, H*d, L), heads first.
    Also returns the softmax probabilities (B, H, L, L) that ouro keeps for backward."""
    bs, width, length = qkv.shape
    assert width % (3 * n_heads) == 0
    ch = width // (3 * n_heads)
    q, k, v = qkv.reshape(bs * n_heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)  # More stable with f16 than dividing afterwards
    weight = torch.softmax(weight, dim=-1)
    a = torch.einsum("bts,bcs->bct", weight, v)
    return a.reshape(bs, -1, length), weight.reshape(bs, n_heads, length, length)


class AttentionBlock(nn.Module):
    """guided-diffusion AttentionBlock (legacy order) with 1×1 Conv2d in place of its Conv1d."""

    def __init__(self, channels, heads, groups):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        b, c, hh, ww = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3 * c, hh * ww)
        a, _ = qkv_attention_legacy(qkv, self.heads)
        return x + self.proj(a.reshape(b, c, hh, ww))


class ResBlock(nn.Module):
    """guided-diffusion ResBlock (no scale-shift norm, no up/down): emb added after conv1."""

    def __init__(self, cin, cout, emb_dim, groups, dropout=0.1):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.emb_proj(nn.functional.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(nn.functional.silu(self.norm2(h))))
        return self.skip(x) + h


def randomise(module):
    """Random weights everywhere: PyTorch's init for convs and linears, and norm affines away from
    (1, 0) so that their gradients matter."""
    for name, p in module.named_parameters():
        if name.endswith("norm.weight") or name.endswith("norm1.weight") or name.endswith("norm2.weight"):
            with torch.no_grad():
                p.copy_(1 + 0.2 * torch.randn_like(p))
        elif "norm" in name:
            with torch.no_grad():
                p.copy_(0.2 * torch.randn_like(p))


def save_module(case, module):
    for name, p in module.named_parameters():
        save(case, name, p)
        save(case, "grad/" + name, p.grad)


def op_case(case, b, c, heads, h, w):
    qkv = torch.randn(b, 3 * c, h * w, requires_grad=True)
    out, probs = qkv_attention_legacy(qkv, heads)
    dout = torch.randn_like(out)
    out.backward(dout)
    for name, t in [("qkv", qkv), ("out", out), ("probs", probs), ("dout", dout), ("dqkv", qkv.grad)]:
        save(case, name, t)


def attention_block_case(case, b, c, heads, groups, h, w):
    block = AttentionBlock(c, heads, groups)
    randomise(block)
    x = torch.randn(b, c, h, w, requires_grad=True)
    y = block(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    for name, t in [("x", x), ("y", y), ("dy", dy), ("dx", x.grad)]:
        save(case, name, t)
    save_module(case, block)


def res_block_case(case, b, cin, cout, emb_dim, groups, h, w):
    block = ResBlock(cin, cout, emb_dim, groups).eval()
    randomise(block)
    x = torch.randn(b, cin, h, w, requires_grad=True)
    emb = torch.randn(b, emb_dim, requires_grad=True)
    y = block(x, emb)
    dy = torch.randn_like(y)
    y.backward(dy)
    for name, t in [("x", x), ("emb", emb), ("y", y), ("dy", dy), ("dx", x.grad), ("demb", emb.grad)]:
        save(case, name, t)
    save_module(case, block)


if __name__ == "__main__":
    torch.manual_seed(20260101)
    # The op on L = 5×3 = 15 positions.
    op_case("op_heads1", b=2, c=4, heads=1, h=5, w=3)
    op_case("op_heads2", b=2, c=6, heads=2, h=5, w=3)
    # The blocks: GroupNorm with a given group count (small channels keep the files small).
    attention_block_case("attention_block", b=2, c=8, heads=2, groups=4, h=5, w=3)
    res_block_case("res_block_4_to_6", b=2, cin=4, cout=6, emb_dim=5, groups=2, h=5, w=3)
    res_block_case("res_block_4_to_4", b=2, cin=4, cout=4, emb_dim=5, groups=2, h=5, w=3)
