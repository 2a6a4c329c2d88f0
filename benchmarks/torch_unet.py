#!/usr/bin/python3
"""The PyTorch peer of benchmarks/bench_unet.cpp: the same U-Net (MNIST preset, built from the
reference blocks of tests/golden/gen_unet.py) timed the same way on the same machine.
Run with Debian's interpreter: /usr/bin/python3 benchmarks/torch_unet.py [reps] [ouro_train_ips ouro_sample_ips]
With ouro's two figures given, it prints the ratios ouro/PyTorch."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import gen_unet  # noqa: E402

torch.set_default_dtype(torch.float32)
gen_unet.IN, gen_unet.SIZE, gen_unet.BASE, gen_unet.MULT = 1, 28, 32, (1, 2, 2)
gen_unet.RES, gen_unet.ATTN, gen_unet.HEADS, gen_unet.GROUPS, gen_unet.CLASSES = 1, (False, False, True), 1, 8, 10


def per_call(f, warmup, reps):
    for _ in range(warmup):
        f()
    start = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - start) / reps


def main():
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count())  # as ouro, which uses every core by default
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.manual_seed(0)
    net = gen_unet.UNet()
    for m in net.modules():  # dropout 0.1 as the preset
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.1
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{sum(p.numel() for p in net.parameters())} parameters")

    def batch(n):
        return (torch.randn(n, 1, 28, 28), torch.arange(n) * 37 % 1000, torch.arange(n) % 10)

    x, t, y = batch(128)
    net.train()

    def train_step():
        opt.zero_grad(set_to_none=True)
        net(x, t, y).float().square().mean().backward()
        opt.step()

    s = per_call(train_step, 1, reps)
    train_ips = 128 / s
    print(f"train  batch 128: {s:.3f} s/step, {train_ips:.1f} images/s")

    xs, ts, ys = batch(256)
    net.eval()
    with torch.no_grad():
        s = per_call(lambda: net(xs, ts, ys), 1, reps)
    sample_ips = 256 / s
    print(f"sample batch 256: {s:.3f} s/forward, {sample_ips:.1f} images/s")
    if len(sys.argv) > 3:
        print(f"ratio ouro/torch: train {float(sys.argv[2]) / train_ips:.2f}, sample {float(sys.argv[3]) / sample_ips:.2f}")


if __name__ == "__main__":
    main()
