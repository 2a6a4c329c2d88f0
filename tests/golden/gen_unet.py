#!/usr/bin/python3
"""Golden tensors for tests/test_unet.cpp: a PyTorch U-Net of the same layout and parameter names
as ouro::nn::unet for one small spec, built from the reference blocks of gen_attention.py.

Run with Debian's interpreter (it has torch):  /usr/bin/python3 tests/golden/gen_unet.py
Spec: in=2 size=6 base=8 mult=1,2 res=1 attn=0,1 heads=2 groups=4 dropout=0 classes=3.
Writes tests/golden/unet/: parameters by state-dict name and their gradients ("grad/<name>"), both
float32 (parameters are rounded to float32 first, so the stored values are exact); x, t, y, the
upstream gradient, the bottleneck (encode), the output and dx in float64.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_attention import AttentionBlock, ResBlock  # noqa: E402

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unet")

IN, SIZE, BASE, MULT, RES, ATTN, HEADS, GROUPS, CLASSES = 2, 6, 8, (1, 2), 1, (False, True), 2, 4, 3


def timestep_embedding(t, dim, max_period=10000):
    """guided-diffusion's timestep_embedding: cos half, then sin half."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64, device=t.device) / half)
    args = t[:, None].double() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(torch.get_default_dtype())


class Conv(nn.Module):
    """Holds a conv under the attribute name `conv` (ouro's "<name>.conv.*")."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        emb = 4 * BASE
        self.time_embed = nn.Sequential(nn.Linear(BASE, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label_emb = nn.Embedding(CLASSES + 1, emb)
        self.input = Conv(IN, BASE, 1)
        levels = len(MULT)
        self.down = nn.ModuleDict()
        skips, ch = [BASE], BASE
        for l in range(levels):
            level = nn.Module()
            level.res = nn.ModuleList()
            level.attn = nn.ModuleList()
            for _ in range(RES):
                level.res.append(ResBlock(ch, BASE * MULT[l], emb, GROUPS))
                ch = BASE * MULT[l]
                if ATTN[l]:
                    level.attn.append(AttentionBlock(ch, HEADS, GROUPS))
                skips.append(ch)
            if l + 1 < levels:
                level.downsample = Conv(ch, ch, 2)
                skips.append(ch)
            self.down[str(l)] = level
        self.mid = nn.Module()
        self.mid.res1 = ResBlock(ch, ch, emb, GROUPS)
        self.mid.attn = AttentionBlock(ch, HEADS, GROUPS)
        self.mid.res2 = ResBlock(ch, ch, emb, GROUPS)
        self.up = nn.ModuleDict()
        for l in reversed(range(levels)):
            level = nn.Module()
            level.res = nn.ModuleList()
            level.attn = nn.ModuleList()
            for _ in range(RES + 1):
                level.res.append(ResBlock(ch + skips.pop(), BASE * MULT[l], emb, GROUPS))
                ch = BASE * MULT[l]
                if ATTN[l]:
                    level.attn.append(AttentionBlock(ch, HEADS, GROUPS))
            if l > 0:
                level.upsample = Conv(ch, ch, 1)
            self.up[str(l)] = level
        self.out = nn.Module()
        self.out.norm = nn.GroupNorm(GROUPS, ch)
        self.out.conv = nn.Conv2d(ch, IN, 3, padding=1)

    def encode(self, x, t, y):
        emb = self.time_embed(timestep_embedding(t, BASE)) + self.label_emb(y)
        h = self.input.conv(x)
        hs = [h]
        for l in range(len(MULT)):
            level = self.down[str(l)]
            for r in range(RES):
                h = level.res[r](h, emb)
                if ATTN[l]:
                    h = level.attn[r](h)
                hs.append(h)
            if hasattr(level, "downsample"):
                h = level.downsample.conv(h)
                hs.append(h)
        h = self.mid.res2(self.mid.attn(self.mid.res1(h, emb)), emb)
        return h, hs, emb

    def forward(self, x, t, y):
        h, hs, emb = self.encode(x, t, y)
        for l in reversed(range(len(MULT))):
            level = self.up[str(l)]
            for r in range(RES + 1):
                h = level.res[r](torch.cat([h, hs.pop()], dim=1), emb)
                if ATTN[l]:
                    h = level.attn[r](h)
            if hasattr(level, "upsample"):
                h = level.upsample.conv(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out.conv(F.silu(self.out.norm(h)))


def save(name, t, dtype=np.float64):
    path = os.path.join(OUT, name + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, t.detach().numpy().astype(dtype))


def main():
    torch.manual_seed(17)
    net = UNet().eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name:  # move norm affines away from (1, 0) so their gradients matter
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            p.copy_(p.float().double())
    x = torch.randn(3, IN, SIZE, SIZE, requires_grad=True)
    t = torch.tensor([0, 417, 999])
    y = torch.tensor([0, 2, CLASSES])  # the last item carries the null label
    bottleneck, _, _ = net.encode(x, t, y)
    out = net(x, t, y)
    dout = torch.randn_like(out)
    out.backward(dout)
    for name, p in net.named_parameters():
        save(name, p, np.float32)
        save("grad/" + name, p.grad, np.float32)
    for name, v in [("x", x), ("dout", dout), ("bottleneck", bottleneck), ("out", out), ("dx", x.grad)]:
        save(name, v)
    np.save(os.path.join(OUT, "t.npy"), t.numpy())
    np.save(os.path.join(OUT, "y.npy"), y.numpy())


if __name__ == "__main__":
    main()
