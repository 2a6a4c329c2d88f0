#!/usr/bin/env bash
# cli_flags.sh BIN_DIR [PROGRAM]: the examples refuse bad command lines in one line naming the flag,
# exit 2, and write nothing; --help and --version answer with exit 0. With PROGRAM, only that
# example's cases (`example_command_lines`, label `integration`, checks them all).
set -euo pipefail
bin=$1
only=${2:-}
# wants PROGRAM: whether this run checks PROGRAM.
wants() { [[ -z $only || $only == "$1" ]]; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0

# expect_refusal PROGRAM "TEXT THE MESSAGE MUST HOLD" ARGS...
expect_refusal() {
  local program=$1 want=$2 status=0
  shift 2
  wants "$program" || return 0
  "$bin/$program" "$@" >out.txt 2>err.txt || status=$?
  if [[ $status -ne 2 ]] || ! grep -qF -- "$want" err.txt || [[ $(wc -l <err.txt) -ne 1 ]]; then
    echo "FAIL $program $*: exit $status, stderr:"; sed 's/^/    /' err.txt
    failures=$((failures + 1))
  else
    echo "ok   $program $*: $(cat err.txt)"
  fi
}

for args in "--t -5" "--t 5000" "--draws 0" "--generations 0" "--probe-l2 nan" "--seed -1" "--seed 18446744073709551616" \
            "--profile huge" "--methods ACU,NOPE" "--bogus 3" "--t 12abc" "--pooling max"; do
  flag=${args%% *}
  [[ $flag == --bogus ]] && flag=bogus
  expect_refusal lsf_experiment "$flag" --out "$work/run" $args
done
[[ -e "$work/run" ]] && { echo "FAIL: a refused command created its run directory"; failures=$((failures + 1)); }

# --summarise-only: needs --seeds; names a seed whose metrics.csv is missing; summarises those present.
if wants lsf_experiment; then
expect_refusal lsf_experiment "--seeds" --summarise-only --out "$work/summary"
mkdir -p "$work/summary/seed_1" "$work/summary/seed_2"
printf 'method,generation,fid,seconds\nACU,0,10,1\nACU,1,12,1\n' >"$work/summary/seed_1/metrics.csv"
status=0
"$bin/lsf_experiment" --seeds 1-2 --summarise-only --methods ACU --out "$work/summary" >out.txt 2>err.txt || status=$?
if [[ $status -eq 0 ]] || ! grep -q "seed_2/metrics.csv: expected the metrics of seed 2" err.txt; then
  echo "FAIL lsf_experiment --summarise-only with seed 2 missing: exit $status"; sed 's/^/    /' err.txt
  failures=$((failures + 1))
fi
printf 'method,generation,fid,seconds\nACU,0,14,1\nACU,1,18,1\n' >"$work/summary/seed_2/metrics.csv"
status=0
"$bin/lsf_experiment" --seeds 1-2 --summarise-only --methods ACU --out "$work/summary" >out.txt 2>err.txt || status=$?
# Means over the two seeds: (10 + 14) / 2 = 12 at G0, (12 + 18) / 2 = 15 at G1.
if [[ $status -ne 0 ]] || ! grep -q '^ACU,0,fid,12,' "$work/summary/summary.csv" || ! grep -q '^ACU,1,fid,15,' "$work/summary/summary.csv"; then
  echo "FAIL lsf_experiment --summarise-only: exit $status"; sed 's/^/    /' err.txt; cat "$work/summary/summary.csv" 2>/dev/null
  failures=$((failures + 1))
else
  echo "ok   lsf_experiment --summarise-only: $(grep -c . "$work/summary/summary.csv") lines of summary.csv"
fi
fi

printf '\x93NUMPY' >real.npy
for args in "--k 4294967297" "--k 0" "--kid-subsets 99999999999999" "--seed -1" "--density-k x"; do
  expect_refusal compute_metrics "${args%% *}" real.npy real.npy $args
done
expect_refusal compute_metrics "missing.npy" real.npy missing.npy

for program in lsf_experiment compute_metrics; do
  wants "$program" || continue
  "$bin/$program" --help >help.txt 2>&1 || { echo "FAIL $program --help"; failures=$((failures + 1)); }
  grep -q -- "--seed" help.txt || { echo "FAIL $program --help lists no --seed"; failures=$((failures + 1)); }
  [[ "$("$bin/$program" --version)" == "ouro "* ]] || { echo "FAIL $program --version"; failures=$((failures + 1)); }
done

for args in "--generations 0" "--samples x" "--epochs 1e3" "--seed -1"; do
  expect_refusal toy_2d "${args%% *}" --out "$work/toy" $args
done
[[ -e "$work/toy" ]] && { echo "FAIL: a refused toy_2d created its run directory"; failures=$((failures + 1)); }
# An --out that cannot be a run directory: an existing file, a folder under /proc.
printf 'x\n' > afile
expect_refusal toy_2d "afile: cannot create the run directory" --out afile
expect_refusal toy_2d "/proc/ouro_run: cannot create the run directory" --out /proc/ouro_run
expect_refusal lenet_mnist "--lr" --lr 0
# --device cuda (train_mnist, lsf_experiment): a build without the CUDA examples refuses it at parse
# time naming the CMake option; a CUDA build on a machine without a GPU stops before any work
# saying so (and where a GPU is present, the case is left to benchmarks/gpu-check).
for program in train_mnist lsf_experiment; do
  wants "$program" || continue
  expect_refusal "$program" "--device" --device gpu
  if "$bin/$program" --help | grep -q "this build has no CUDA"; then
    expect_refusal "$program" "-DOURO_EXAMPLES_ON_CUDA=ON" --device cuda --out "$work/cuda_run"
  elif ! nvidia-smi -L >/dev/null 2>&1; then
    status=0
    "$bin/$program" --device cuda --out "$work/cuda_run" >out.txt 2>err.txt || status=$?
    if [[ $status -eq 0 ]] || ! grep -qF "no usable GPU" err.txt; then
      echo "FAIL $program --device cuda without a GPU: exit $status"; sed 's/^/    /' err.txt
      failures=$((failures + 1))
    else
      echo "ok   $program --device cuda without a GPU: $(cat err.txt)"
    fi
  fi
  [[ -e "$work/cuda_run" ]] && { echo "FAIL: $program --device cuda created its run directory"; failures=$((failures + 1)); }
done
expect_refusal train_mnist "--bf16" --bf16 --device cuda
expect_refusal train_mnist "--ddim-steps" --ddim-steps 25
expect_refusal cluster_mnist "--n" --n 5
expect_refusal mnist_latents "--t" --t 1000
expect_refusal lsf_steps "--run" --run "$work/no-such-run"
expect_refusal sampler_steps "--run" --run "$work/no-such-run"
expect_refusal sampler_steps "--samples" --samples 5
expect_refusal custom_filter "max_synthetic_share" 6 1.5
expect_refusal fid_vs_count "--counts" --counts 250,255
expect_refusal fid_vs_count "--counts" --counts 500,500
expect_refusal fid_vs_count "--bootstrap" --bootstrap 5

# Every example: --help and --version answer with exit 0; an unknown flag is refused in one line.
for program in cluster_mnist compute_metrics custom_filter fid_vs_count latent_structure lenet_mnist lsf_experiment lsf_steps mnist_latents \
               sampler_steps toy_2d train_mnist; do
  wants "$program" || continue
  status=0
  "$bin/$program" --help >help.txt 2>&1 || status=$?
  [[ $status -eq 0 && -s help.txt ]] || { echo "FAIL $program --help: exit $status"; failures=$((failures + 1)); }
  status=0
  version=$("$bin/$program" --version 2>&1) || status=$?
  [[ $status -eq 0 && $version == "ouro "* ]] || { echo "FAIL $program --version: exit $status, '$version'"; failures=$((failures + 1)); }
  positionals=()
  [[ $program == compute_metrics ]] && positionals=(real.npy real.npy)  # else "REAL is required" comes first
  [[ $program == latent_structure ]] && positionals=(real.npy)  # else "MODEL is required" comes first
  expect_refusal "$program" "--no-such-flag" "${positionals[@]}" --no-such-flag
done

# The G0 tools (train_g0, sample_g0, lenet_features): refusals before any work, --help, --version.
expect_refusal train_g0 "--profile" --profile huge
expect_refusal train_g0 "--snapshot-at" --snapshot-at 0
expect_refusal sample_g0 "--steps" real.npy --out x.npy --steps 30
expect_refusal sample_g0 "--x0" real.npy --out x.npy --x0 foo
expect_refusal sample_g0 "--guidance 2: an unconditional model" real.npy --out x.npy --unconditional --guidance 2
expect_refusal lenet_features "IMAGES" missing.npy --out x.npy
[[ -e x.npy || -e runs ]] && { echo "FAIL: a refused G0 tool wrote output"; failures=$((failures + 1)); }
for program in train_g0 sample_g0 lenet_features; do
  wants "$program" || continue
  "$bin/$program" --help >help.txt 2>&1 || { echo "FAIL $program --help"; failures=$((failures + 1)); }
  [[ "$("$bin/$program" --version)" == "ouro "* ]] || { echo "FAIL $program --version"; failures=$((failures + 1)); }
  positionals=()
  [[ $program != train_g0 ]] && positionals=(real.npy --out x.npy)
  expect_refusal "$program" "--no-such-flag" "${positionals[@]}" --no-such-flag
done

if ((failures)); then echo "$failures case(s) failed"; exit 1; fi
echo "all command-line cases of ${only:-every example} passed"
