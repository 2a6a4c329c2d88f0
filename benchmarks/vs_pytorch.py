#!/usr/bin/python3
"""Runs ouro (build/release/benchmarks/bench_unet) and PyTorch (benchmarks/torch_unet.py, in its best
CPU configuration) side by side on identical U-Nets and prints the ratios. Called by
benchmarks/run-vs-pytorch, which installs and builds what this needs first.

One process per measurement, the two sides alternating, `--processes` of each (medians reported).
For each spec (S, M, Q) and thread count (1, 2): training images/s at batch 128, one-forward images/s
at batch 256, peak RSS of each process, GFLOP/s (forward FLOPs per image counted by torch_unet.py
--mode flops; training counts 3x the forward, the usual estimate for forward + backward) and that
rate's share of the FP32 FMA peak bench_unet measures on the spot at the same thread count.
Unless --no-bf16, also ouro's opt-in bf16 forward (sample-bf16: the convolutions' products on bf16
operands, fp32 sums) against PyTorch's FP32 forward, one more line per spec and thread count:
  <spec> threads=<n> bf16_sample_ratio=<ouro bf16 / pytorch fp32>
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BENCH = os.path.join(ROOT, "build", "release", "benchmarks", "bench_unet")
TORCH = os.path.join(ROOT, "benchmarks", "torch_unet.py")
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ouro(spec, mode, threads, reps):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="active")
    return run([BENCH, "--spec", spec, "--mode", mode, "--threads", str(threads), "--reps", str(reps)], env)


def pytorch(spec, mode, threads, reps):
    # PyTorch at its best on this CPU: jemalloc with page decay off, one OpenBLAS thread (set in
    # torch_unet.py before the import), torch.set_num_threads(threads).
    env = dict(os.environ, LD_PRELOAD=JEMALLOC, MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1")
    env.pop("OMP_NUM_THREADS", None)
    return run(["/usr/bin/python3", TORCH, "--spec", spec, "--mode", mode, "--threads", str(threads), "--reps", str(reps)], env)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--specs", default="S,M,Q")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--processes", type=int, default=3, help="processes per side and measurement (medians)")
    p.add_argument("--reps", type=int, default=3, help="timed steps inside each process, after one warm-up")
    p.add_argument("--markdown", help="also write the tables to this file")
    p.add_argument("--no-bf16", action="store_true", help="skip ouro's bf16 forward (sample-bf16)")
    a = p.parse_args()
    specs, threads = a.specs.split(","), [int(t) for t in a.threads.split(",")]
    started = time.time()
    lines = [f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]
    torch_version = run(["/usr/bin/python3", "-c", "import json, torch; print(json.dumps({'v': torch.__version__}))"])["v"]
    lines.append(f"PyTorch {torch_version} (jemalloc, decay off, OPENBLAS_NUM_THREADS=1, set_num_threads(n)); "
                 f"{a.processes} processes per side and measurement, {a.reps} timed steps each, medians")
    print(lines[0] + "\n" + lines[1], flush=True)

    peak = {n: statistics.median(ouro("S", "peak", n, 1)["gflops"] for _ in range(2)) for n in threads}
    flops = {s: run(["/usr/bin/python3", TORCH, "--spec", s, "--mode", "flops"]) for s in specs}
    for n in threads:
        lines.append(f"FP32 FMA peak measured at {n} thread(s): {peak[n]:.1f} GFLOP/s")
    for s in specs:
        lines.append(f"spec {s}: {flops[s]['parameters']:,} parameters, {flops[s]['forward_flops_per_image'] / 1e9:.3f} "
                     "GFLOP per image forward")
    print("\n".join(lines[2:]), flush=True)

    table = ["| spec | threads | mode | ouro images/s | PyTorch images/s | ratio | ouro GFLOP/s (peak share) | "
             "PyTorch GFLOP/s (peak share) | ouro RSS MiB | PyTorch RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ratio_lines, bf16_lines = [], []
    for s in specs:
        for n in threads:
            result = {}
            for mode in ("train", "sample"):
                samples = {"ouro": [], "pytorch": []}
                with_bf16 = mode == "sample" and not a.no_bf16
                if with_bf16:
                    samples["ouro-bf16"] = []
                for _ in range(a.processes):  # alternate the sides
                    samples["ouro"].append(ouro(s, mode, n, a.reps))
                    samples["pytorch"].append(pytorch(s, mode, n, a.reps))
                    if with_bf16:
                        samples["ouro-bf16"].append(ouro(s, "sample-bf16", n, a.reps))
                med = {side: {k: statistics.median(r[k] for r in rs) for k in ("images_per_s", "peak_rss_mib")}
                       for side, rs in samples.items()}
                per_image = flops[s]["forward_flops_per_image"] * (3 if mode == "train" else 1)
                gf = {side: med[side]["images_per_s"] * per_image / 1e9 for side in med}
                ratio = med["ouro"]["images_per_s"] / med["pytorch"]["images_per_s"]
                result[mode] = (ratio, med)
                table.append(f"| {s} | {n} | {mode} | {med['ouro']['images_per_s']:.1f} | {med['pytorch']['images_per_s']:.1f} | "
                             f"{ratio:.2f} | {gf['ouro']:.1f} ({gf['ouro'] / peak[n]:.0%}) | {gf['pytorch']:.1f} "
                             f"({gf['pytorch'] / peak[n]:.0%}) | {med['ouro']['peak_rss_mib']:.0f} | "
                             f"{med['pytorch']['peak_rss_mib']:.0f} |")
                print(table[-1], flush=True)
                if with_bf16:
                    bf16 = med["ouro-bf16"]
                    result["bf16"] = bf16["images_per_s"] / med["pytorch"]["images_per_s"]
                    gf16 = bf16["images_per_s"] * per_image / 1e9
                    table.append(f"| {s} | {n} | sample-bf16 (ouro bf16, PyTorch fp32) | {bf16['images_per_s']:.1f} | "
                                 f"{med['pytorch']['images_per_s']:.1f} | {result['bf16']:.2f} | {gf16:.1f} "
                                 f"({gf16 / peak[n]:.0%} of fp32) | {gf['pytorch']:.1f} ({gf['pytorch'] / peak[n]:.0%}) | "
                                 f"{bf16['peak_rss_mib']:.0f} | {med['pytorch']['peak_rss_mib']:.0f} |")
                    print(table[-1], flush=True)
            memory = max(result[m][1]["ouro"]["peak_rss_mib"] / result[m][1]["pytorch"]["peak_rss_mib"]
                         for m in ("train", "sample"))
            ratio_lines.append(f"{s} threads={n} train_ratio={result['train'][0]:.2f} sample_ratio={result['sample'][0]:.2f} "
                               f"memory_ratio={memory:.2f}")
            if "bf16" in result:
                bf16_lines.append(f"{s} threads={n} bf16_sample_ratio={result['bf16']:.2f}")
    print("\n".join(table[:2]))
    print("\n".join(table[2:]))
    print("\n".join(ratio_lines + bf16_lines))
    print(f"({time.time() - started:.0f} s)")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("\n".join(lines) + "\n\n" + "\n".join(table) + "\n\n```\n" + "\n".join(ratio_lines + bf16_lines) + "\n```\n")


if __name__ == "__main__":
    sys.exit(main())
