#!/usr/bin/env bash
# run_harness.sh HARNESS SEEDS WORKDIR MAX_LEN SECONDS [LOG]
#
# Runs one libFuzzer harness for SECONDS on a copy of its seed corpus (the
# repository's corpus is never written to): WORKDIR/corpus holds the working
# corpus, WORKDIR/artifacts any crash, leak or timeout input, and LOG
# (default WORKDIR/fuzz.log) libFuzzer's output. The dictionary
# tests/fuzz/HARNESS.dict is used when it exists. Exits with libFuzzer's
# status: 0 when nothing was found. Used by `ctest -L fuzz` and
# deploy/fuzz.sh.
set -euo pipefail
if [ $# -lt 5 ]; then
  echo "usage: $0 HARNESS SEEDS WORKDIR MAX_LEN SECONDS [LOG]" >&2
  exit 2
fi
bin=$1 seeds=$2 work=$3 max_len=$4 seconds=$5
log=${6:-$work/fuzz.log}
name=$(basename "$bin")
dict="$(cd "$(dirname "$0")" && pwd)/$name.dict"

rm -rf "$work/corpus" "$work/artifacts"
mkdir -p "$work/corpus" "$work/artifacts"
if [ -d "$seeds" ]; then
  cp -R "$seeds"/. "$work/corpus/"
fi
args=(-max_total_time="$seconds" -max_len="$max_len" -timeout=25 -rss_limit_mb=2048
  -print_final_stats=1 -artifact_prefix="$work/artifacts/")
if [ -f "$dict" ]; then
  args+=(-dict="$dict")
fi
# detect_leaks is on by default under ASan; say so, for whoever reads the log.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
set +e
"$bin" "${args[@]}" "$work/corpus" >"$log" 2>&1
rc=$?
set -e
grep -E '^(stat::|Done |INFO: Seed: )' "$log" || true
if [ "$rc" -ne 0 ]; then
  tail -n 60 "$log" >&2
fi
exit "$rc"
