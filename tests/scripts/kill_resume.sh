#!/usr/bin/env bash
# kill_resume.sh PROGRAM WORKDIR [ARGS...]
# Runs PROGRAM --out WORKDIR/whole ARGS to the end; then runs PROGRAM --out WORKDIR/cut ARGS again
# and again, killing it with SIGKILL after a different delay each time, until a run finishes on its
# own. The delays are fractions of the uninterrupted run's wall time (10% to 45%, ten of them), so
# the kills land at moments spread over the run on a slow machine and a fast one alike, and the test
# costs about twice one run instead of a fixed minute. The interrupted run's metrics.csv must equal
# the uninterrupted one's but for the wall time, and its diagnostics.csv but for the memory columns
# (run_helpers.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/run_helpers.sh"
program=$1
work=$2
shift 2
rm -rf "$work"
mkdir -p "$work"

started=$(date +%s.%N)
"$program" --out "$work/whole" "$@" > "$work/whole.log" 2>&1 || { cat "$work/whole.log"; exit 1; }
whole_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
echo "uninterrupted run: ${whole_s} s"

kills=0
for fraction in 0.10 0.25 0.15 0.35 0.20 0.30 0.12 0.40 0.22 0.45; do
  delay=$(awk -v f="$fraction" -v t="$whole_s" 'BEGIN { d = f * t; printf "%.2f", (d < 0.3 ? 0.3 : d) }')
  if kill_after "$delay" "$work/cut.log" "$program" --out "$work/cut" "$@"; then
    kills=$((kills + 1))
    echo "killed after ${delay} s"
  else
    echo "finished on its own after ${kills} kills"
    break
  fi
done
# Whatever is left, without interruption.
"$program" --out "$work/cut" "$@" >> "$work/cut.log" 2>&1 || { cat "$work/cut.log"; exit 1; }
echo "runs killed: $kills"
[ "$kills" -ge 2 ] || { echo "FAIL: expected at least 2 kills (the program finished too fast for this test)"; exit 1; }

if ! diff <(strip_seconds "$work/whole/metrics.csv") <(strip_seconds "$work/cut/metrics.csv"); then
  echo "FAIL: metrics.csv of the interrupted run differs"
  exit 1
fi
if ! diff <(strip_memory "$work/whole/diagnostics.csv") <(strip_memory "$work/cut/diagnostics.csv"); then
  echo "FAIL: diagnostics.csv of the interrupted run differs"
  exit 1
fi
echo "metrics.csv and diagnostics.csv identical after $kills kills ($(($(wc -l < "$work/cut/metrics.csv") - 1)) rows)"
