#!/usr/bin/python3
"""Groups a `perf record` profile of bench_unet into kernel families (the table in benchmarks/RESULTS.md):
    /usr/bin/python3 benchmarks/perf_families.py perf.data"""
import re
import subprocess
import sys

data = sys.argv[1]
out = subprocess.run(["perf","report","-i",data,"--no-children","--sort","symbol","-g","none","--percent-limit","0.05"],capture_output=True,text=True).stdout
cats = {"GEMM micro-kernel (Eigen gebp)":0,"GEMM packing (Eigen)":0,"im2col / col2im, and every memmove / memset":0,"GroupNorm":0,"SiLU, adds, per-channel ops":0,"dropout":0,"attention":0,"kernel (page faults, scheduling)":0,"other":0}
for line in out.splitlines():
    m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if not m: continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
    if kind == "k": c = "kernel (page faults, scheduling)"
    elif "gebp_kernel" in sym: c = "GEMM micro-kernel (Eigen gebp)"
    elif "gemm_pack" in sym: c = "GEMM packing (Eigen)"
    elif "conv_ops" in sym or "memmove" in sym or "memset" in sym or "im2col" in sym: c = "im2col / col2im, and every memmove / memset"
    elif "norm_ops" in sym: c = "GroupNorm"
    elif "dropout" in sym: c = "dropout"
    elif "attention" in sym: c = "attention"
    elif "activation_ops" in sym or "elementwise" in sym or "per_channel" in sym: c = "SiLU, adds, per-channel ops"
    else: c = "other"
    cats[c] += pct
for k, v in cats.items(): print(f"| {k} | {v:.1f}% |")
