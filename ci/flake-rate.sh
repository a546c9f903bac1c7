#!/usr/bin/env bash
# Flake rate of the cases that start from a fresh deploy: N consecutive `harness run`s, each on a
# fresh local cluster, every second one with a bounded CPU load beside it. Prints one line per
# run and a total; exits 1 when any run had a failed case or a deploy warning.
# Not part of .ci/run (it takes minutes per ten runs and wants root).
#
#   ci/flake-rate.sh [-n RUNS] [-o OUT_DIR] [-l LOCK_FILE] [-c CASE]...
#
# -l wraps each run (never the whole loop) in `flock LOCK_FILE`, so other users of the machine's
# one cluster can interleave. The load is LOAD_CMD (default: a shell busy loop), started before
# the run and stopped after it, bounded by LOAD_SECONDS (default 300) in any case.
# HARNESS is the harness binary (default: target/debug/harness, built first).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=20 out=/tmp/flake lock="" cases=()
while getopts "n:o:l:c:" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    o) out=$OPTARG ;;
    l) lock=$OPTARG ;;
    c) cases+=("$OPTARG") ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
  esac
done
[ ${#cases[@]} -gt 0 ] || cases=(REG-001 REG-002 HEALTH-001 LOGIN-001)
load_cmd=${LOAD_CMD:-"while :; do :; done"}
load_seconds=${LOAD_SECONDS:-300}
if [ -z "${HARNESS:-}" ]; then
  cargo build --quiet -p harness
  HARNESS=target/debug/harness
fi
# The runs use the services' dev builds (as the debug harness does); build them now, not inside
# a run (or its lock).
cargo build-images --quiet
case_args=()
for id in "${cases[@]}"; do case_args+=(--case "$id"); done

mkdir -p "$out"
summary="$out/summary.tsv"
printf 'run\tload\texit\tseconds\tfailed_cases\tdeploy_warnings\tcontainer_failures\n' > "$summary"
bad_runs=0
for ((i = 1; i <= runs; i++)); do
  dir="$out/$i"
  rm -rf "$dir" && mkdir -p "$dir"
  load=none load_pid=""
  if ((i % 2 == 0)); then
    load=cpu
    timeout "$load_seconds" sh -c "$load_cmd" > "$dir/load.log" 2>&1 & load_pid=$!
  fi
  started=$SECONDS
  run=("$HARNESS" run --backend local "${case_args[@]}" --report-dir "$dir")
  [ -n "$lock" ] && run=(flock "$lock" "${run[@]}")
  # The kubelet's INFO lines record every container start and exit with its code.
  status=0
  RUST_LOG=${RUST_LOG:-warn} "${run[@]}" > "$dir/harness.log" 2>&1 || status=$?
  seconds=$((SECONDS - started))
  if [ -n "$load_pid" ]; then kill "$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true; fi
  # Logs carry ANSI colours; strip them before matching.
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/harness.log")
  warnings=$(grep -c '^\[deploy\] warning' <<< "$plain" || true)
  # Exits with a non-zero code, i.e. crashes (stops the harness asked for exit 0 or by signal).
  crashes=$( (grep 'container exited' <<< "$plain" || true) | grep -vc 'code=0' || true)
  if [ -f "$dir/conformance-report.yaml" ]; then
    failed=$(python3 ci/report-cases.py "$dir/conformance-report.yaml" failed notRun | tr ' ' ',')
  else
    failed=no-report
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$load" "$status" "$seconds" "${failed:--}" "$warnings" "$crashes" >> "$summary"
  printf 'run %2d load=%-4s exit=%s %3ss failed=%s deploy-warnings=%s container-failures=%s\n' \
    "$i" "$load" "$status" "$seconds" "${failed:--}" "$warnings" "$crashes"
  if [ -n "$failed" ] || [ "$warnings" -gt 0 ] || [ "$crashes" -gt 0 ]; then bad_runs=$((bad_runs + 1)); fi
done
echo "runs: $runs, runs with a failure, deploy warning or container failure: $bad_runs (table: $summary)"
[ "$bad_runs" -eq 0 ]
