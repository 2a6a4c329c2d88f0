#!/usr/bin/env bash
# G0 parity with PyTorch: for each seed, trains the quick profile's G0 with ouro (examples/train_g0)
# and with PyTorch on the same batches (benchmarks/torch_g0.py --plan), draws 2,000 class-balanced
# DDIM-20 samples (x_0 clipped, eta 0: the loop's sampler) from each, and scores them alike with the
# LeNet (examples/lenet_features, 8-bit rounding) against 2,000 MNIST test images (compute_metrics).
# Also samples torch's weights with ouro's sampler (row "torch weights, ouro sampler"), which
# separates training from sampling. Ends with a table per seed and the mean ± sample std per side.
#
#   benchmarks/g0_parity.sh BUILD_DIR DATA_DIR WORK_DIR [SEEDS...]     (default seeds: 1 2 3)
#
# BUILD_DIR holds the built examples train_g0, sample_g0, lenet_features and compute_metrics;
# DATA_DIR the MNIST IDX files (scripts/fetch-data mnist). Every step whose output exists is skipped,
# so an interrupted run continues. Each G0 trains in about 10 to 30 minutes per side on 2 cores;
# the LeNet is trained once into WORK_DIR/cache. Uses OMP_NUM_THREADS (default 1) per process.
set -euo pipefail

[[ $# -ge 3 ]] || { sed -n '9p' "$0" | sed 's/^#   /usage: /' >&2; exit 2; }
build=$1 data=$2 work=$3
shift 3
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(1 2 3)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ex="$build/examples"
python=/usr/bin/python3  # Debian's, which has torch
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$work/cache" "$work/features"
lenet=(--lenet "$work/cache/lenet_mnist.safetensors" --data "$data")

# score NAME SAMPLES: features and label agreement of SAMPLES, then LeNet-FID etc. against the real set.
score() {
    local name=$1 samples=$2 out="$work/features/$1"
    [[ -s "$out.metrics" ]] && return
    local real=()
    [[ -s "$work/features/real.npy" ]] || real=(--real "$work/features/real.npy")
    "$ex/lenet_features" "$samples" --out "$out.npy" "${lenet[@]}" "${real[@]}" | tail -1 > "$out.agreement"
    "$ex/compute_metrics" "$work/features/real.npy" "$out.npy" > "$out.metrics.tmp"
    cat "$out.agreement" >> "$out.metrics.tmp"
    mv "$out.metrics.tmp" "$out.metrics"
}

for s in "${seeds[@]}"; do
    o="$work/ouro/seed$s" t="$work/torch/seed$s"
    [[ -s "$o/model.safetensors" ]] || "$ex/train_g0" --data "$data" --out "$o" --seed "$s" --plan
    [[ -s "$t/samples.npy" ]] || "$python" "$here/torch_g0.py" --data "$data" --out "$t" --seed "$s" \
        --plan "$o/plan.npy" --samples 2000 --sample-seed $((1000 + s)) --export-like "$o/model.safetensors"
    [[ -s "$o/samples.npy" ]] || "$ex/sample_g0" "$o/model.safetensors" --out "$o/samples.npy" --samples 2000 \
        --seed $((1000 + s)) --grid "$o/samples.png"
    [[ -s "$t/samples_ouro_sampler.npy" ]] || "$ex/sample_g0" "$t/model.safetensors" --out "$t/samples_ouro_sampler.npy" \
        --samples 2000 --seed $((1000 + s)) --grid "$t/samples_ouro_sampler.png"
    score "ouro$s" "$o/samples.npy"
    score "torch$s" "$t/samples.npy"
    score "torch_weights_ouro_sampler$s" "$t/samples_ouro_sampler.npy"
done

"$python" - "$work" "${seeds[@]}" <<'EOF'
import statistics, sys
work, seeds = sys.argv[1], sys.argv[2:]
def read(name):
    d = {}
    for line in open(f"{work}/features/{name}.metrics"):
        k, v = line.split()
        d[k] = float(v)
    return d
rows = [("ouro", "ouro"), ("torch", "PyTorch"), ("torch_weights_ouro_sampler", "torch weights, ouro sampler")]
print("| side | seed | LeNet-FID | label agreement | precision | recall |\n|---|---:|---:|---:|---:|---:|")
summary = []
for key, label in rows:
    ms = [read(f"{key}{s}") for s in seeds]
    for s, m in zip(seeds, ms):
        print(f"| {label} | {s} | {m['fid']:.2f} | {m['label_agreement']:.4f} | {m['precision']:.3f} | {m['recall']:.3f} |")
    def ms_(k):
        v = [m[k] for m in ms]
        return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else float("nan"))
    summary.append((label, ms_("fid"), ms_("label_agreement"), ms_("precision"), ms_("recall")))
print("\n| side | LeNet-FID | label agreement | precision | recall |\n|---|---:|---:|---:|---:|")
for label, *cols in summary:
    print(f"| {label} | " + " | ".join(f"{m:.{3 if i else 2}f} ± {sd:.{3 if i else 2}f}" for i, (m, sd) in enumerate(cols)) + " |")
print(f"\n(mean ± sample std over seeds {', '.join(seeds)}; 2,000 samples and 2,000 MNIST test images, classes balanced)")
EOF
