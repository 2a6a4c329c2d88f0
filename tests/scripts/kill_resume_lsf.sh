#!/usr/bin/env bash
# kill_resume_lsf.sh PROGRAM WORKDIR [ARGS...]
# PROGRAM is lsf_experiment built with OURO_FAULT_INJECTION (the target lsf_experiment_faults).
# 1. Runs PROGRAM --out WORKDIR/whole ARGS to the end, tracing every file it writes.
# 2. Runs PROGRAM --out WORKDIR/cut ARGS again and again, each time killed with SIGKILL at one
#    planned moment: inside a write of G0's checkpoint, the model, a pool, state.json, a CSV, the
#    report, a grid or a plot (half written, written but not moved into place, or moved but its
#    folder not synced; io/atomic_file.hpp), or after a delay in the middle of computing.
# 3. Finishes the cut run without interruption and requires: at least 10 kills that landed,
#    metrics.csv equal to the uninterrupted run's in every column but the wall time, diagnostics.csv
#    equal but for the memory columns, sources.csv identical, and no temporary file left.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/run_helpers.sh"
program=$1
work=$2
shift 2
rm -rf "$work"
mkdir -p "$work"

OURO_FAULT_TRACE=1 "$program" --out "$work/whole" "$@" > "$work/whole.log" 2>&1 || { tail -n 40 "$work/whole.log"; exit 1; }
writes=$(grep -c '^ouro-fault: write ' "$work/whole.log" || true)
echo "uninterrupted run: $writes file writes"
[ "$writes" -gt 0 ] || { echo "FAIL: no traced writes: is $program built with OURO_FAULT_INJECTION?"; exit 1; }
count_of() { grep '^ouro-fault: write ' "$work/whole.log" | grep -c -F -- "$1" || true; }

# Kills in the order the run reaches them (each process counts its own writes from 1, and resumes
# from the last committed step, so a later kill finds the run further along). "sleep:<s>" kills
# after s seconds whatever the run is doing then.
plan=(
  "checkpoint#1@partial" "checkpoint.json#1@unmoved" "g0/model.safetensors#1@moved" "sleep:12"
  "state.json#1@partial" "pool.safetensors#1@unmoved" "metrics.csv#1@partial" "model.safetensors#2@moved"
  "diagnostics.csv#1@unmoved" "aux.safetensors#1@partial" "sleep:40" "sources.csv#2@moved"
  "report.md#1@partial" ".png#2@unmoved" "state.json#2@moved" ".svg#3@partial" "sleep:25"
)
landed=0
for kill_at in "${plan[@]}"; do
  if [[ $kill_at == sleep:* ]]; then
    if kill_after "${kill_at#sleep:}" "$work/cut.log" "$program" --out "$work/cut" "$@"; then
      landed=$((landed + 1))
      echo "killed after ${kill_at#sleep:} s"
    else
      echo "the run finished before ${kill_at#sleep:} s"
    fi
    continue
  fi
  substring=${kill_at%%#*}
  if [ "$(count_of "$substring")" -eq 0 ]; then
    echo "skipped $kill_at: this run writes no file matching '$substring'"
    continue
  fi
  status=0
  OURO_FAULT_KILL="$kill_at" "$program" --out "$work/cut" "$@" >> "$work/cut.log" 2>&1 || status=$?
  if [ "$status" -eq 137 ]; then
    landed=$((landed + 1))
    echo "killed at $kill_at"
  elif [ "$status" -eq 0 ]; then
    echo "not reached: $kill_at (the resumed run wrote fewer such files and finished)"
  else
    echo "FAIL: exit $status at $kill_at"; tail -n 40 "$work/cut.log"; exit 1
  fi
done
"$program" --out "$work/cut" "$@" >> "$work/cut.log" 2>&1 || { tail -n 40 "$work/cut.log"; exit 1; }
echo "kills that landed: $landed"
[ "$landed" -ge 10 ] || { echo "FAIL: expected at least 10 kills to land"; exit 1; }

diff <(strip_seconds "$work/whole/metrics.csv") <(strip_seconds "$work/cut/metrics.csv") ||
  { echo "FAIL: metrics.csv of the interrupted run differs"; exit 1; }
diff <(strip_memory "$work/whole/diagnostics.csv") <(strip_memory "$work/cut/diagnostics.csv") ||
  { echo "FAIL: diagnostics.csv of the interrupted run differs"; exit 1; }
diff "$work/whole/sources.csv" "$work/cut/sources.csv" || { echo "FAIL: sources.csv differs"; exit 1; }
if find "$work/cut" -name '*.ouro-tmp-*' | grep -q .; then
  echo "FAIL: temporaries left behind:"; find "$work/cut" -name '*.ouro-tmp-*'; exit 1
fi
echo "metrics.csv, diagnostics.csv and sources.csv identical after $landed kills ($(($(wc -l < "$work/cut/metrics.csv") - 1)) rows)"
