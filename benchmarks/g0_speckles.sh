#!/usr/bin/env bash
# Why some of the quick profile's G0 samples have speckled or hazy backgrounds: one G0 (seed 1)
# trained for 5,000 steps with snapshots, sampled from the same x_T (sample index i, --seed 1) at
# each training length (EMA and raw weights) and, at the quick profile's 2,500 steps, with each
# sampler setting. Each row: the share of speckled samples (>= 3 isolated specks of ink), of hazy ones
# (>= 5 faint pixels away from the strokes; see examples/sample_g0), LeNet-FID against as many MNIST
# test images, and label agreement.
#
#   benchmarks/g0_speckles.sh BUILD_DIR DATA_DIR WORK_DIR [SAMPLES]     (default 1000 samples a row)
#
# Every step whose output exists is skipped. About an hour on 2 cores, most of it DDPM-1000 (run on
# SAMPLES / 5 samples, without a FID) and the 5,000 training steps.
set -euo pipefail

[[ $# -ge 3 ]] || { sed -n '9p' "$0" | sed 's/^#   /usage: /' >&2; exit 2; }
build=$1 data=$2 work=$3 n=${4:-1000}
ex="$build/examples"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
g0="$work/g0" out="$work/speckles"
mkdir -p "$out" "$work/cache"
lenet=(--lenet "$work/cache/lenet_mnist.safetensors" --data "$data")

[[ -s "$g0/model.safetensors" ]] ||
    "$ex/train_g0" --data "$data" --out "$g0" --seed 1 --steps 5000 --snapshot-at 625,1250,2500

# row NAME MODEL SAMPLES FID? SAMPLER-FLAGS...: one line of the table.
row() {
    local name=$1 model=$2 count=$3 fid=$4
    shift 4
    local f="$out/$name"
    if [[ ! -s "$f.line" ]]; then
        "$ex/sample_g0" "$model" --out "$f.npy" --samples "$count" --seed 1 --grid "$f.png" "$@" | tail -1 > "$f.sample"
        local real=() metrics="-"
        [[ -s "$out/real$count.npy" ]] || real=(--real "$out/real$count.npy")
        local agree
        agree=$("$ex/lenet_features" "$f.npy" --out "$f.features.npy" "${lenet[@]}" "${real[@]}" | tail -1 | cut -d' ' -f2)
        if [[ $fid == fid ]]; then
            metrics=$("$ex/compute_metrics" "$out/real$count.npy" "$f.features.npy" | awk '$1 == "fid" { printf "%.2f", $2 }')
        fi
        local speckled hazy
        speckled=$(sed 's/.*speckled \([0-9.]*\).*/\1/' "$f.sample")
        hazy=$(sed 's/.*hazy \([0-9.]*\).*/\1/' "$f.sample")
        printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$count" "$speckled" "$hazy" "$metrics" "$agree" > "$f.line"
    fi
    cat "$f.line"
}

echo "| setting | samples | speckled | hazy | LeNet-FID | label agreement |"
echo "|---|---:|---:|---:|---:|---:|"
for steps in 625 1250 2500 5000; do
    for w in ema raw; do
        file=$(printf '%s/snapshots/step-%06d-%s.safetensors' "$g0" "$steps" "$w")
        [[ $steps == 5000 ]] && file="$g0/$([[ $w == ema ]] && echo model || echo raw).safetensors"
        row "train-$steps-$w" "$file" "$n" fid
    done
done
m="$g0/snapshots/step-002500-ema.safetensors"
row ddim20-clip "$m" "$n" fid
row ddim20-noclip "$m" "$n" fid --x0 none
row ddim20-dynamic "$m" "$n" fid --x0 dynamic
row ddim20-trailing "$m" "$n" fid --spacing trailing
row ddim20-linspace "$m" "$n" fid --spacing linspace
row ddim50 "$m" "$n" fid --steps 50
row ddim100 "$m" "$n" fid --steps 100
row ddim20-guidance0 "$m" "$n" fid --guidance 0
row ddim20-guidance2 "$m" "$n" fid --guidance 2
row ddim20-eta0.5 "$m" "$n" fid --eta 0.5
row ddim20-eta1 "$m" "$n" fid --eta 1
row ddpm20 "$m" "$n" fid --sampler ddpm --steps 20
row ddpm100 "$m" "$n" fid --sampler ddpm --steps 100
row ddpm1000 "$m" $((n / 5)) nofid --sampler ddpm --steps 1000
row train-5000-ema-eta1 "$g0/model.safetensors" "$n" fid --eta 1
