# Sourced by the kill/resume and full-disk scripts.
#
# kill_after: a run killed with SIGKILL after a delay.
# without_columns, strip_seconds, strip_memory: a run directory's CSVs without the columns that
# describe the process rather than the result (a resumed run's differ from an uninterrupted run's),
# found by name in the header so that a new column needs no change here.
# metrics.csv without `seconds` (wall time); diagnostics.csv without its memory columns
# (rss_mib, peak_rss_mib, carried_heap_mib, start_rss_mib).
without_columns() {  # without_columns FILE NAME...
  local file=$1
  shift
  awk -F, -v names="$*" '
    NR == 1 { n = split(names, drop, " "); for (i = 1; i <= NF; ++i) for (j = 1; j <= n; ++j) if ($i == drop[j]) skip[i] = 1 }
    { out = ""; sep = ""; for (i = 1; i <= NF; ++i) if (!(i in skip)) { out = out sep $i; sep = "," } print out }
  ' "$file"
}
strip_seconds() { without_columns "$1" seconds; }
strip_memory() { without_columns "$1" rss_mib peak_rss_mib carried_heap_mib start_rss_mib; }

# kill_after SECONDS LOG PROGRAM ARGS...: runs PROGRAM ARGS in the background (output appended to
# LOG) and kills it with SIGKILL after SECONDS. Returns 0 when the kill landed and 1 when the run
# finished first; a run that failed on its own shows LOG's last lines and ends the script.
kill_after() {
  local delay=$1 log=$2
  shift 2
  "$@" >> "$log" 2>&1 &
  local pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2> /dev/null; then
    wait "$pid" 2> /dev/null || true
    return 0
  fi
  wait "$pid" || { tail -n 40 "$log"; exit 1; }
  return 1
}
