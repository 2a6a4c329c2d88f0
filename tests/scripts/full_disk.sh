#!/usr/bin/env bash
# full_disk.sh PROGRAM WORKDIR [ARGS...]
# A run directory's program on a full disk, as a user meets it: PROGRAM --out DIR ARGS runs under a
# file-size limit (ulimit -f, i.e. RLIMIT_FSIZE: writes past it fail with EFBIG, as ENOSPC would on
# a full disk, with no root or mount needed; SIGXFSZ is ignored so the write fails instead of the
# process dying), first into a fresh directory, then under ever larger limits into the same one,
# then without a limit. Every limited run must exit 2 (an ouro::error, not a signal) with a line
# "FILE: writing N bytes failed: ... (disk full?)", leave no temporary file, and leave FILE as it
# was before that run (or absent). The unlimited run must finish with an uninterrupted run's
# metrics.csv (every column but the wall time) and diagnostics.csv. Last, a finished run whose CSVs
# are stale must keep a stale file when rewriting it fails, and rewrite it once it can.
set -euo pipefail
program=$1
work=$2
shift 2
rm -rf "$work"
mkdir -p "$work"

"$program" --out "$work/whole" "$@" > "$work/whole.log" 2>&1 || { cat "$work/whole.log"; exit 1; }
run="$work/run"

# Runs the program into $run under a limit of $1 KiB; checks what a failed write must leave.
limited_run() {
  local kib=$1
  shift
  rm -rf "$work/before"
  if [ -d "$run" ]; then cp -a "$run" "$work/before"; else mkdir -p "$work/before"; fi
  local rc=0
  ( trap '' XFSZ; ulimit -f "$kib"; exec "$program" --out "$run" "$@" ) > "$work/limited.log" 2>&1 || rc=$?
  cat "$work/limited.log" >> "$work/all_limited.log"
  if [ "$rc" -ne 2 ]; then
    echo "FAIL: under a ${kib} KiB limit the program exited $rc, expected 2 (an ouro::error)"; tail -5 "$work/limited.log"; exit 1
  fi
  local line file rel
  line=$(grep -m1 "(disk full?)" "$work/limited.log") || { echo "FAIL: no 'disk full?' error under ${kib} KiB"; tail -5 "$work/limited.log"; exit 1; }
  file=${line#*error: }
  file=${file%%: writing *}
  rel=${file#"$run"/}
  [ "$rel" != "$file" ] || { echo "FAIL: the error does not name a file of the run directory: $line"; exit 1; }
  if [ -e "$work/before/$rel" ]; then
    cmp -s "$work/before/$rel" "$file" || { echo "FAIL: $rel changed although writing it failed"; exit 1; }
  else
    [ ! -e "$file" ] || { echo "FAIL: $rel exists although writing it failed"; exit 1; }
  fi
  if find "$run" -name '*.ouro-tmp-*' | grep -q .; then
    echo "FAIL: temporaries left under ${kib} KiB:"; find "$run" -name '*.ouro-tmp-*'; exit 1
  fi
  failed_rel=$rel
  echo "limit ${kib} KiB: exit 2, writing $rel failed, kept as it was, no temporary"
}

# ulimit -f counts 1024-byte blocks. 1 KiB: config.json; 64 KiB: G0's checkpoint model file;
# 512 KiB: the trainer state beside it (moments and EMA, about three times the model).
for kib in 1 64 512; do limited_run "$kib" "$@"; done
"$program" --out "$run" "$@" >> "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }

source "$(dirname "${BASH_SOURCE[0]}")/run_helpers.sh"
compare() {
  diff <(strip_seconds "$work/whole/metrics.csv") <(strip_seconds "$run/metrics.csv") ||
    { echo "FAIL: metrics.csv differs from the uninterrupted run's ($1)"; exit 1; }
  diff <(strip_memory "$work/whole/diagnostics.csv") <(strip_memory "$run/diagnostics.csv") ||
    { echo "FAIL: diagnostics.csv differs from the uninterrupted run's ($1)"; exit 1; }
}
compare "after the limits were lifted"

# A finished run rewrites its outputs; with the disk full, a stale CSV whose rewrite fails stays
# as it was (limited_run compares it with its copy from before).
printf 'stale\n' > "$run/metrics.csv"
printf 'stale\n' > "$run/diagnostics.csv"
limited_run 1 "$@"
case $failed_rel in
  metrics.csv | diagnostics.csv) ;;
  *) echo "FAIL: expected the rewrite of a CSV to fail, not of $failed_rel"; exit 1 ;;
esac
"$program" --out "$run" "$@" >> "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
compare "rewritten after the limit"
echo "full disk: every limited run stopped with a named 'disk full?' error and resumed to the uninterrupted run's results"
