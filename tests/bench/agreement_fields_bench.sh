#!/usr/bin/env bash
# agreement_fields_bench.sh - benchmark (not a test) of agreement per field
# (issue 15): through the library, 1,000,000 judgements of a multi_choice
# field in <= 0.5 s and 100,000 span annotations in <= 1 s (Release build,
# median of RUNS runs; tests/bench/agreement_fields_bench.c says what is
# timed); and, for information, `quorumctl agreement FILE.jsonl --json` on
# 1,000,000 JSONL lines of a multi_choice field (parsing included).
#
# Usage: tests/bench/agreement_fields_bench.sh [BUILD_DIR] [RUNS] [OUT.json]
#   BUILD_DIR  a Release build (default build-rel; configured and built here
#              with -DCMAKE_BUILD_TYPE=Release when it has no bench binary)
#   RUNS       timed runs per case (default 5); the median is reported
#   OUT.json   where the results go (default agreement_fields_bench.json)
# Environment: QR_BENCH_DIR keeps the generated JSONL (default: a temp dir,
# removed on exit).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"
bench_init agreement_fields_bench agreement_fields_bench quorumctl -- "$@"

# 1,000,000 JSONL lines: 200,000 items x 5 annotators of 50, a tags field of
# 10 choices (the truth's 1-3 tags, each choice flipped with p = 0.1).
jsonl=$dir/tags_1m.jsonl
if [ ! -s "$jsonl" ]; then
    awk 'BEGIN {
        srand(15);
        for (i = 0; i < 200000; i++) {
            n = 1 + int(rand() * 3);
            for (c = 0; c < 10; c++) t[c] = 0;
            for (k = 0; k < n; k++) t[int(rand() * 10)] = 1;
            start = int(rand() * 50);
            for (k = 0; k < 5; k++) {
                v = ""; sep = "";
                for (c = 0; c < 10; c++) {
                    x = t[c]; if (rand() < 0.1) x = 1 - x;
                    if (x) { v = v sep "\"c" c "\""; sep = "," }
                }
                printf "{\"item\":\"item-%06d\",\"annotator\":\"ann-%02d\",\"field\":\"tags\",\"value\":[%s]}\n", i, (start + 7 * k) % 50, v;
            }
        }
    }' >"$jsonl"
fi
bench_median_wall "$runs" "$build/bin/quorumctl" agreement "$jsonl" --json
printf 'cli_jsonl_1m  median %.3f s  (quorumctl agreement FILE.jsonl --json, 1000000 lines, %s bytes; all: %s)\n' \
    "$median" "$(wc -c <"$jsonl")" "${walls[*]}"

printf '{"library": %s, "cli_jsonl_1m_median_s": %s, "cli_jsonl_1m_walls_s": [%s], "limits_s": {"multi_choice_1m": 0.5, "spans_100k": 1.0}, "cores": %d, "loadavg_1m": %s, "date": "%s"}\n' \
    "$lib_json" "$median" "$(IFS=,; echo "${walls[*]}")" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$out"
echo "agreement_fields_bench: results in $out"
