#!/usr/bin/env bash
# kill_resume.sh PROGRAM WORKDIR [ARGS...]
# Runs PROGRAM --out WORKDIR/whole ARGS to the end; then runs PROGRAM --out WORKDIR/cut ARGS again
# and again, killing it with SIGKILL after a different delay each time, until a run finishes on its
# own. The interrupted run's metrics.csv must equal the uninterrupted one's in every column but the
# last (seconds: wall time, which no two runs share), and its diagnostics.csv must be identical.
set -euo pipefail
program=$1
work=$2
shift 2
rm -rf "$work"
mkdir -p "$work"

"$program" --out "$work/whole" "$@" > "$work/whole.log" 2>&1 || { cat "$work/whole.log"; exit 1; }

kills=0
for delay in 1.5 4 2.5 6 3 5 2 7 4.5 8; do
  "$program" --out "$work/cut" "$@" >> "$work/cut.log" 2>&1 &
  pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2> /dev/null; then
    wait "$pid" 2> /dev/null || true
    kills=$((kills + 1))
    echo "killed after ${delay} s"
  else
    wait "$pid" || { cat "$work/cut.log"; exit 1; }
    echo "finished on its own after ${kills} kills"
    break
  fi
done
# Whatever is left, without interruption.
"$program" --out "$work/cut" "$@" >> "$work/cut.log" 2>&1 || { cat "$work/cut.log"; exit 1; }
echo "runs killed: $kills"
[ "$kills" -ge 2 ] || { echo "FAIL: expected at least 2 kills (the program finished too fast for this test)"; exit 1; }

strip_seconds() { sed 's/,[^,]*$//' "$1"; }
# diagnostics.csv without its last three columns (rss_mib, peak_rss_mib, carried_heap_mib: the process's memory).
strip_memory() { sed -E 's/(,[^,]*){3}$//' "$1"; }
if ! diff <(strip_seconds "$work/whole/metrics.csv") <(strip_seconds "$work/cut/metrics.csv"); then
  echo "FAIL: metrics.csv of the interrupted run differs"
  exit 1
fi
if ! diff <(strip_memory "$work/whole/diagnostics.csv") <(strip_memory "$work/cut/diagnostics.csv"); then
  echo "FAIL: diagnostics.csv of the interrupted run differs"
  exit 1
fi
echo "metrics.csv and diagnostics.csv identical after $kills kills ($(($(wc -l < "$work/cut/metrics.csv") - 1)) rows)"
