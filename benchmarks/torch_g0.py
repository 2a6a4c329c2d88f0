#!/usr/bin/python3
"""The PyTorch peer of the self-consuming loop's G0 (examples/train_g0, the quick profile): the same
U-Net (spec "Q" of torch_unet.py, built from the reference blocks of tests/golden/gen_unet.py), the
same init scheme, data, recipe and sampler, so that the samples of both can be compared by LeNet-FID
and label agreement (benchmarks/g0_parity.sh).

  /usr/bin/python3 benchmarks/torch_g0.py --data data/mnist --out runs/torch_g0/seed1 --seed 1
        [--plan runs/g0/seed1/plan.npy] [--steps 2500] [--samples 2000] [--threads 1]
        [--export-like runs/g0/seed1/model.safetensors]
  /usr/bin/python3 benchmarks/torch_g0.py --sample-only runs/g0/seed1/model.safetensors --out DIR ...

What is the same as ouro's (include/ouro/diffusion/trainer.hpp, optim/ema.hpp, presets/experiments.hpp):
  data    D_r = the first 100 images of each class of the MNIST training split, in file order, v/127.5 - 1
  model   1x28x28, base 16, mult 1,2,2, one res block a level, attention only in the middle, 8 groups,
          dropout 0.1, 10 classes + the null class; PyTorch's default init, with every res block's conv2,
          the attention's proj and the output conv at zero (guided-diffusion's zero_module)
  DDPM    linear betas 1e-4 .. 0.02 over T = 1000 (float64 tables), epsilon prediction, t ~ U{0..999},
          MSE over every element
  recipe  2500 steps of batch 32; AdamW (0.9, 0.999, eps 1e-8, weight decay 0), lr 1e-3 after a linear
          warm-up lr * (s + 1) / 200 for s < 200; gradients clipped to global norm 1; label dropped to
          the null class with probability 0.1
  EMA     starts as a copy of the initial weights; update n (1-based) has decay 0 for n = 1, else
          min((n) / (n + 9), 0.9999) (diffusers' EMAModel with warm-up); the samples use the EMA
  sampler DDIM (Song et al. 2021) with 20 "leading" timesteps 950, 900, ..., 0, eta 0, x_0 clipped to
          [-1, 1] and epsilon recomputed from the clipped x_0, the last step to alpha_bar = 1;
          no guidance; labels i % 10
With --plan (train_g0 --plan), every batch takes ouro's items, dropped labels and timesteps, so the
data order is the same too; the Gaussian noise, dropout masks and initial weights are torch's own
(from --seed). Writes <out>/samples.npy (N, 1, 28, 28) float32 in [-1, 1] (not quantised), the EMA
weights <out>/model_ema.pt and, with --export-like REF, <out>/model.safetensors in REF's layout and
metadata, which ouro's load_model accepts (to sample torch's weights with ouro's sampler).
"""
import argparse
import json
import math
import os
import struct
import sys
import time
import zlib

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import gen_attention  # noqa: E402
import gen_unet  # noqa: E402

T = 1000
CLASSES = 10


# ---- data -----------------------------------------------------------------------------------------

def read_idx(path):
    with open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        dims = struct.unpack(">" + "I" * (magic & 0xFF), f.read(4 * (magic & 0xFF)))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def real_set(data_dir, per_class=100):
    images = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte"))
    labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte")).astype(np.int64)
    keep, taken = [], [0] * CLASSES
    for i, y in enumerate(labels):
        if taken[y] < per_class:
            keep.append(i)
            taken[y] += 1
    x = images[keep].astype(np.float64) / 127.5 - 1.0
    return torch.from_numpy(x.astype(np.float32)).unsqueeze(1), torch.from_numpy(labels[keep])


# ---- model ----------------------------------------------------------------------------------------

def build_unet(seed):
    torch.set_default_dtype(torch.float32)
    gen_unet.IN, gen_unet.SIZE, gen_unet.BASE, gen_unet.MULT = 1, 28, 16, (1, 2, 2)
    gen_unet.RES, gen_unet.ATTN, gen_unet.HEADS, gen_unet.GROUPS, gen_unet.CLASSES = 1, (False, False, False), 1, 8, CLASSES
    torch.manual_seed(seed)
    net = gen_unet.UNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.1
            if isinstance(m, gen_attention.ResBlock):
                m.conv2.weight.zero_(), m.conv2.bias.zero_()
            if isinstance(m, gen_attention.AttentionBlock):
                m.proj.weight.zero_(), m.proj.bias.zero_()
        net.out.conv.weight.zero_(), net.out.conv.bias.zero_()
    return net


# ---- safetensors (ouro's model files) ---------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", (path, name, e["dtype"])
        b, en = e["data_offsets"]
        tensors[name] = np.frombuffer(data[b:en], dtype="<f4").reshape(e["shape"]).copy()
    return tensors, meta, header


def load_ouro_weights(net, path):
    tensors, _, _ = read_safetensors(path)
    state = net.state_dict()
    missing = set(state) - set(tensors)
    extra = set(tensors) - set(state)
    assert not missing and not extra, (path, sorted(missing)[:5], sorted(extra)[:5])
    net.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})


def export_like(net, ref, path):
    """Writes net's weights with REF's tensor order and metadata (its data CRC-32 recomputed)."""
    _, meta, header = read_safetensors(ref)
    state = {k: v.detach().cpu().numpy().astype("<f4") for k, v in net.state_dict().items()}
    order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    blobs, offset, entries = [], 0, {}
    for name in order:
        b = state[name].tobytes()
        assert list(state[name].shape) == header[name]["shape"], name
        entries[name] = {"dtype": "F32", "shape": header[name]["shape"], "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    data = b"".join(blobs)
    meta = dict(meta)
    if "data_crc32" in meta:
        meta["data_crc32"] = "%08x" % (zlib.crc32(data) & 0xFFFFFFFF)
    meta["written_by"] = "benchmarks/torch_g0.py"
    text = json.dumps({"__metadata__": meta, **entries}, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    os.replace(path + ".tmp", path)


# ---- DDPM -----------------------------------------------------------------------------------------

def alphas_cumprod():
    betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def train(net, x_all, y_all, a, plan):
    ab = alphas_cumprod()
    sqrt_ab = torch.from_numpy(np.sqrt(ab)).float()
    sqrt_1mab = torch.from_numpy(np.sqrt(1.0 - ab)).float()
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ema = [p.detach().clone() for p in net.parameters()]
    gen = torch.Generator().manual_seed(a.seed + 1)  # order, label drops, timesteps and noise
    n = x_all.shape[0]
    order, pos = torch.randperm(n, generator=gen), 0
    net.train()
    start, window = time.time(), []
    for s in range(a.steps):
        if plan is not None:
            items = torch.from_numpy(plan[s, :, 0].astype(np.int64))
            y = torch.from_numpy(plan[s, :, 1].astype(np.int64))
            t = torch.from_numpy(plan[s, :, 2].astype(np.int64))
        else:
            idx = []
            for _ in range(a.batch):
                if pos == n:
                    order, pos = torch.randperm(n, generator=gen), 0
                idx.append(order[pos])
                pos += 1
            items = torch.stack(idx)
            y = y_all[items].clone()
            y[torch.rand(a.batch, generator=gen) < a.label_drop] = CLASSES
            t = torch.randint(0, T, (a.batch,), generator=gen)
        x0 = x_all[items]
        eps = torch.randn(x0.shape, generator=gen)
        x_t = sqrt_ab[t].view(-1, 1, 1, 1) * x0 + sqrt_1mab[t].view(-1, 1, 1, 1) * eps  # DDPM eq. (4)
        lr = a.lr * (s + 1) / a.warmup if s < a.warmup else a.lr
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(x_t, t, y), eps)  # DDPM eq. (14)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        update = s + 1  # EMAModel.get_decay with update_after_step 0 and warm-up
        tt = update - 1
        decay = 0.0 if tt <= 0 else min((1 + tt) / (10 + tt), 0.9999)
        with torch.no_grad():
            for e, p in zip(ema, net.parameters()):
                e.sub_((1.0 - decay) * (e - p))
        window.append(loss.item())
        if (s + 1) % 100 == 0 or s + 1 == a.steps:
            el = time.time() - start
            print(f"step {s + 1}/{a.steps} loss {np.mean(window):.4f} lr {lr:.2e} {el:.0f} s", flush=True)
            window = []
    with torch.no_grad():
        for e, p in zip(ema, net.parameters()):
            p.copy_(e)
    return net


@torch.no_grad()
def ddim_sample(net, count, seed, steps=20, chunk=250):
    """DDIM eq. (12), eta = 0, leading timesteps, x_0 clipped and epsilon recomputed from it."""
    net.eval()
    ab = alphas_cumprod()
    ts = [(steps - 1 - i) * (T // steps) for i in range(steps)]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for begin in range(0, count, chunk):
        m = min(chunk, count - begin)
        y = torch.arange(begin, begin + m) % CLASSES
        x = torch.randn(m, 1, 28, 28, generator=gen, dtype=torch.float64)
        for i, t in enumerate(ts):
            a_t, s_t = math.sqrt(ab[t]), math.sqrt(1.0 - ab[t])
            ab_prev = ab[ts[i + 1]] if i + 1 < len(ts) else 1.0
            eps = net(x.float(), torch.full((m,), t, dtype=torch.int64), y).double()
            x0 = ((x - s_t * eps) / a_t).clamp(-1.0, 1.0)
            eps = (x - a_t * x0) / s_t
            x = math.sqrt(ab_prev) * x0 + math.sqrt(1.0 - ab_prev) * eps
        out.append(x.float())
    return torch.cat(out).numpy()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/mnist")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plan", help="train_g0's plan.npy: ouro's items, labels and timesteps for every batch")
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--label-drop", type=float, default=0.1)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--sample-seed", type=int, default=None, help="default: 1000 + --seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sample-only", help="an ouro model file (safetensors) to sample instead of training")
    p.add_argument("--export-like", help="an ouro model file whose layout and metadata model.safetensors copies")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    net = build_unet(a.seed)
    if a.sample_only:
        load_ouro_weights(net, a.sample_only)
    else:
        x_all, y_all = real_set(a.data)
        plan = None
        if a.plan:
            plan = np.load(a.plan)
            assert plan.shape[0] >= a.steps and plan.shape[1] == a.batch, (plan.shape, a.steps, a.batch)
        start = time.time()
        train(net, x_all, y_all, a, plan)
        print(f"trained {a.steps} steps in {time.time() - start:.1f} s", flush=True)
        torch.save(net.state_dict(), os.path.join(a.out, "model_ema.pt"))
        if a.export_like:
            export_like(net, a.export_like, os.path.join(a.out, "model.safetensors"))
    if a.samples > 0:
        start = time.time()
        seed = a.sample_seed if a.sample_seed is not None else 1000 + a.seed
        x = ddim_sample(net, a.samples, seed)
        np.save(os.path.join(a.out, "samples.npy"), x.astype(np.float32))
        print(f"sampled {a.samples} in {time.time() - start:.1f} s -> {os.path.join(a.out, 'samples.npy')}", flush=True)


if __name__ == "__main__":
    main()
