# Sourced by the kill/resume and full-disk scripts: a run directory's CSVs without the columns that
# describe the process rather than the result (a resumed run's differ from an uninterrupted run's),
# found by name in the header so that a new column needs no change here.
# metrics.csv without `seconds` (wall time); diagnostics.csv without its memory columns
# (rss_mib, peak_rss_mib, carried_heap_mib).
without_columns() {  # without_columns FILE NAME...
  local file=$1
  shift
  awk -F, -v names="$*" '
    NR == 1 { n = split(names, drop, " "); for (i = 1; i <= NF; ++i) for (j = 1; j <= n; ++j) if ($i == drop[j]) skip[i] = 1 }
    { out = ""; sep = ""; for (i = 1; i <= NF; ++i) if (!(i in skip)) { out = out sep $i; sep = "," } print out }
  ' "$file"
}
strip_seconds() { without_columns "$1" seconds; }
strip_memory() { without_columns "$1" rss_mib peak_rss_mib carried_heap_mib; }
