#!/usr/bin/python3
"""The PyTorch peer of benchmarks/bench_unet.cpp: the same U-Nets (built from the reference blocks
of tests/golden/gen_unet.py), one measurement per process, for benchmarks/run-vs-pytorch.

  /usr/bin/python3 benchmarks/torch_unet.py --spec S|M|Q --mode train|sample|flops [--threads N] [--reps R]
                                            [--device cpu|cuda]

train: forward + backward + AdamW at batch 128; sample: one forward under no_grad at batch 256;
flops: the forward FLOPs of one image (2 per multiply-add of every conv, linear and attention
product), the count both sides share. Prints one JSON line. PyTorch's best CPU configuration is the
caller's job for what must precede the interpreter (LD_PRELOAD of jemalloc, MALLOC_CONF); this
script sets OPENBLAS_NUM_THREADS=1 before importing torch and torch.set_num_threads(N).
"""
import argparse
import json
import os
import resource
import sys
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before torch is imported: its BLAS must not start threads of its own
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import gen_attention  # noqa: E402
import gen_unet  # noqa: E402

# (BASE, MULT, RES, ATTN, GROUPS): every spec is 1x28x28, 10 classes, one head, dropout 0.1.
SPECS = {
    "S": (32, (1, 2, 2), 1, (False, False, True), 8),   # presets::mnist_unet
    "M": (64, (1, 2, 2), 2, (False, False, True), 8),   # the wider U-Net of issue #10
    "Q": (16, (1, 2, 2), 1, (False, False, False), 8),  # presets::small_unet(1, 28, 10), the quick profile's
}


def build(spec):
    base, mult, res, attn, groups = SPECS[spec]
    torch.set_default_dtype(torch.float32)
    gen_unet.IN, gen_unet.SIZE, gen_unet.BASE, gen_unet.MULT = 1, 28, base, mult
    gen_unet.RES, gen_unet.ATTN, gen_unet.HEADS, gen_unet.GROUPS, gen_unet.CLASSES = res, attn, 1, groups, 10
    torch.manual_seed(0)
    net = gen_unet.UNet()
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.1
    return net


def batch(n, device="cpu"):
    return tuple(v.to(device) for v in (torch.randn(n, 1, 28, 28), torch.arange(n) * 37 % 1000, torch.arange(n) % 10))


def forward_flops(net):
    """FLOPs of one image's forward pass, counted with hooks."""
    total = [0]

    def conv(m, inp, out):
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, inp, out):
        total[0] += 2 * out.numel() * m.in_features

    def attention(m, inp, out):
        b, c, h, w = inp[0].shape
        total[0] += 2 * 2 * b * (h * w) ** 2 * c  # q·kᵀ and softmax·v

    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(linear)
        elif isinstance(m, gen_attention.AttentionBlock):
            m.register_forward_hook(attention)
    with torch.no_grad():
        net(*batch(1))
    return total[0]


def per_call(f, warmup, reps, sync=lambda: None):
    for _ in range(warmup):
        f()
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        f()
    sync()
    return (time.perf_counter() - start) / reps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spec", choices=SPECS, default="S")
    p.add_argument("--mode", choices=("train", "sample", "flops"), default="train")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_unet.py: --device cuda, but this PyTorch has no CUDA device")
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    net = build(a.spec)
    if a.mode == "flops":
        print(json.dumps({"side": "pytorch", "spec": a.spec, "mode": "flops", "forward_flops_per_image": forward_flops(net),
                          "parameters": sum(q.numel() for q in net.parameters())}))
        return
    net = net.to(a.device)
    if a.mode == "train":
        x, t, y = batch(128, a.device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        net.train()

        def step():
            opt.zero_grad(set_to_none=True)
            net(x, t, y).square().mean().backward()
            opt.step()

        s = per_call(step, 1, a.reps, sync)
        ips = 128 / s
    else:
        x, t, y = batch(256, a.device)
        net.eval()
        with torch.no_grad():
            s = per_call(lambda: net(x, t, y), 1, a.reps, sync)
        ips = 256 / s
    if a.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        print(json.dumps({"side": "pytorch", "device": "cuda", "spec": a.spec, "mode": a.mode,
                          "images_per_s": round(ips, 3), "device_peak_mib": round(peak, 1), "torch": torch.__version__}))
        return
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"side": "pytorch", "spec": a.spec, "mode": a.mode, "threads": torch.get_num_threads(),
                      "images_per_s": round(ips, 3), "peak_rss_mib": round(rss, 1), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
