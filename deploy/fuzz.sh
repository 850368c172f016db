#!/usr/bin/env bash
# fuzz.sh - builds and runs every libFuzzer harness of tests/fuzz (issue 7).
#
#   deploy/fuzz.sh [SECONDS]    SECONDS in all (default 600), split evenly
#   deploy/fuzz.sh --ci [SECONDS]   each harness SECONDS (default 10) on its seeds,
#                                   as `ctest -L fuzz` (what deploy/dev.sh test runs)
#
# Configures and builds build-fuzz with clang (QUORUM_FUZZ, QUORUM_SANITIZE:
# ASan + UBSan + libFuzzer), then runs each harness for its share on a copy of
# its seed corpus in a temporary folder (the repository is not written to).
# Prints per harness the executions, executions per second, final corpus
# size and whether a crash, leak, timeout or sanitizer report happened;
# writes the same to build/fuzz.json. An input that made a harness fail is
# kept in build/fuzz-artifacts/HARNESS/. Exits 1 if any harness found
# something, 2 on a usage or build error.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build-fuzz"
OUT_JSON="$ROOT/build/fuzz.json"
ARTIFACTS="$ROOT/build/fuzz-artifacts"

# harness:max_len (as in tests/fuzz/CMakeLists.txt)
HARNESSES=(fuzz_http:8192 fuzz_import:8192 fuzz_json:4096 fuzz_agreement_csv:8192 fuzz_cert:8192
    fuzz_agreement_jsonl:8192)

say() { printf 'fuzz.sh: %s\n' "$*" >&2; }

ci=0
if [ "${1:-}" = --ci ]; then
    ci=1
    shift
fi
total=${1:-$([ $ci = 1 ] && echo 10 || echo 600)}
if [ $# -gt 1 ] || ! [[ "$total" =~ ^[0-9]+$ ]] || [ "$total" -lt 1 ]; then
    say "usage: deploy/fuzz.sh [--ci] [SECONDS]"
    exit 2
fi
share=$((total / ${#HARNESSES[@]}))
[ "$share" -ge 1 ] || share=1

command -v clang >/dev/null || { say "clang is needed (apt-get install clang libclang-rt-14-dev)"; exit 2; }
say "configuring and building $BUILD"
# QUORUM_FUZZ_SECONDS is how long each harness runs under ctest -L fuzz.
if ! CC=clang cmake -S "$ROOT" -B "$BUILD" -DQUORUM_FUZZ=ON -DQUORUM_SANITIZE=ON \
    -DQUORUM_FUZZ_SECONDS="$([ $ci = 1 ] && echo "$total" || echo 10)" >"$BUILD.cmake.log" 2>&1; then
    cat "$BUILD.cmake.log" >&2
    exit 2
fi
rm -f "$BUILD.cmake.log"
if ! cmake --build "$BUILD" -j"$(nproc)" --target fuzz_all >/dev/null; then
    say "build failed"
    exit 2
fi

# CI: every harness for SECONDS on a copy of its seeds, two at a time; a
# crash, leak or sanitizer report fails its test (run_harness.sh prints the
# tail of libFuzzer's log).
if [ $ci = 1 ]; then
    say "ctest -L fuzz: each harness ${total} s"
    exec ctest --test-dir "$BUILD" -L fuzz -j2 --output-on-failure
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/quorum-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$OUT_JSON")"

say "running ${#HARNESSES[@]} harnesses, ${share} s each"
printf '%-20s %10s %8s %8s %10s  %s\n' harness executions exec/s corpus corpus_kb result
failed=0
json_entries=()
for entry in "${HARNESSES[@]}"; do
    h=${entry%%:*} max_len=${entry##*:}
    dir="$work/$h"
    log="$dir.log"
    mkdir -p "$dir"
    set +e
    "$ROOT/tests/fuzz/run_harness.sh" "$BUILD/fuzz/$h" "$ROOT/tests/fuzz/corpus/$h" "$dir" \
        "$max_len" "$share" "$log" >/dev/null 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    # The last status line, e.g. "#123456 DONE cov: 812 ft: 2950 corp: 410/38Kb ...".
    corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n1 | sed 's/corp: //')
    units=${corp%%/*}
    size=${corp##*/}
    case "$size" in
    *Mb) kb=$((${size%Mb} * 1024)) ;;
    *Kb) kb=${size%Kb} ;;
    *b) kb=$(((${size%b} + 1023) / 1024)) ;;
    *) kb=0 ;;
    esac
    finding=""
    if grep -qE 'ERROR: LeakSanitizer' "$log"; then
        finding="leak"
    elif grep -qE 'ERROR: (Address|Undefined|Memory|Thread)Sanitizer|runtime error:' "$log"; then
        finding="sanitizer report"
    elif grep -qE 'ERROR: libFuzzer: timeout' "$log"; then
        finding="timeout"
    elif grep -qE 'ERROR: libFuzzer: out-of-memory' "$log"; then
        finding="out of memory"
    elif grep -qE 'ERROR: libFuzzer|deadly signal' "$log"; then
        finding="crash"
    elif [ "$rc" -ne 0 ]; then
        finding="exit status $rc"
    fi
    if [ -n "$finding" ]; then
        failed=1
        result="FOUND: $finding"
        rm -rf "${ARTIFACTS:?}/$h"
        mkdir -p "$ARTIFACTS/$h"
        cp -R "$dir/artifacts/." "$ARTIFACTS/$h/" 2>/dev/null || true
        cp "$log" "$ARTIFACTS/$h/fuzz.log"
    else
        result="ok (no crash, leak or sanitizer report)"
    fi
    printf '%-20s %10s %8s %8s %10s  %s\n' "$h" "${execs:-0}" "${rate:-0}" "${units:-0}" "${kb}" "$result"
    if [ -n "$finding" ]; then
        say "$h: $finding; inputs and log in $ARTIFACTS/$h/"
        grep -m1 -E 'ERROR: |runtime error:' "$log" | sed 's/^/    /' >&2 || true
    fi
    json_entries+=("$(printf '{"harness":"%s","seconds":%d,"max_len":%d,"executions":%d,"exec_per_sec":%d,"corpus_units":%d,"corpus_kb":%d,"exit_status":%d,"finding":%s}' \
        "$h" "$share" "$max_len" "${execs:-0}" "${rate:-0}" "${units:-0}" "$kb" "$rc" \
        "$([ -n "$finding" ] && printf '"%s"' "$finding" || printf null)")")
done

{
    printf '{"seconds_total":%d,"seconds_each":%d,"clang":"%s","ok":%s,"harnesses":[' \
        "$total" "$share" "$(clang -dumpversion)" "$([ $failed = 0 ] && echo true || echo false)"
    (IFS=,; printf '%s' "${json_entries[*]}")
    printf ']}\n'
} >"$OUT_JSON"
say "wrote $OUT_JSON"
if [ $failed != 0 ]; then
    say "a harness found something (see above)"
    exit 1
fi
say "no crash, leak or sanitizer report"
