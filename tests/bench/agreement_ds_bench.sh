#!/usr/bin/env bash
# agreement_ds_bench.sh - benchmark (not a test) of the Dawid-Skene consensus
# (issue 16 point 7): through the library, 1,000,000 judgements (200,000
# items x 5 annotators of 50, K = 10 labels): wall and CPU time per run and
# iterations, median of RUNS runs, with 20 iterations in <= 1 s (Release
# build; tests/bench/agreement_ds_bench.c says what is timed); and, for
# information, `quorumctl agreement FILE.csv --json` on the same 1,000,000
# rows with and without --method dawid_skene (reading the CSV included).
#
# Usage: tests/bench/agreement_ds_bench.sh [BUILD_DIR] [RUNS] [OUT.json]
#   BUILD_DIR  a Release build (default build-rel; configured and built here
#              with -DCMAKE_BUILD_TYPE=Release when it has no bench binary)
#   RUNS       timed runs per case (default 5); the median is reported
#   OUT.json   where the results go (default agreement_ds_bench.json)
# Environment: QR_BENCH_DIR keeps the generated CSV (default: a temp dir,
# removed on exit).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"
bench_init agreement_ds_bench agreement_ds_bench quorumctl -- "$@"

# The same shape as a CSV: 200,000 items x 5 annotators of 50 (ann-NN at
# accuracy 0.5 + 0.45 NN / 49), 10 labels, errors uniform over the others.
csv=$dir/ds_1m.csv
if [ ! -s "$csv" ]; then
    awk 'BEGIN {
        srand(16);
        print "item,annotator,label";
        for (i = 0; i < 200000; i++) {
            t = int(rand() * 10); start = int(rand() * 50);
            for (k = 0; k < 5; k++) {
                a = (start + 7 * k) % 50; l = t;
                if (rand() >= 0.5 + 0.45 * a / 49) l = (t + 1 + int(rand() * 9)) % 10;
                printf "item-%06d,ann-%02d,c%d\n", i, a, l;
            }
        }
    }' >"$csv"
fi
# cli NAME ARGS...: prints the median wall seconds of RUNS runs of
# quorumctl agreement FILE.csv ARGS, and a line on stderr.
cli() {
    local name=$1
    shift
    bench_median_wall "$runs" "$build/bin/quorumctl" agreement "$csv" "$@"
    printf '%-22s median %.3f s  (quorumctl agreement FILE.csv %s; all: %s)\n' \
        "$name" "$median" "$*" "${walls[*]}" >&2
    echo "$median"
}
maj=$(cli cli_csv_1m_majority --json)
ds=$(cli cli_csv_1m_dawid_skene --json --method dawid_skene)
iters=$("$build/bin/quorumctl" agreement "$csv" --json --method dawid_skene | jq .dawid_skene.iterations 2>/dev/null || echo null)

printf '{"library": %s, "cli_csv_1m_median_s": %s, "cli_csv_1m_dawid_skene_median_s": %s, "cli_dawid_skene_iterations": %s, "limits_s": {"ds_1m_20it": 1.0}, "cores": %d, "loadavg_1m": %s, "date": "%s"}\n' \
    "$lib_json" "$maj" "$ds" "$iters" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$out"
echo "agreement_ds_bench: results in $out"
