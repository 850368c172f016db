#!/usr/bin/env bash
# import_bench.sh - a benchmark, not a test: Quorum's import against a raw
# COPY of the same rows into the same table (tasks) on the same PostgreSQL,
# side by side on one private stack with a Release quorumd (issue 14, point 2).
#
#   tests/bench/import_bench.sh [ROWS] [RUNS] [OUT.json] [BIG_ROWS]
#
# ROWS (default 1000000) JSONL tasks are made once; each of RUNS (default 3)
# rounds then, each into an empty tasks table,
#   - COPYs them with `psql \copy` into tasks (a project of their own; the
#     same data text, required, priority; ids from the sequence), and
#   - imports them with `quorumctl import` (TLS upload, parse, COPY, the
#     import's record, all in one transaction),
# timing both end to end. Prints each run, the medians (rows/s) and their
# ratio (import / COPY; the issue asks >= 0.8), and the broker's peak RSS
# (VmHWM, reset before each import) at ROWS and, once, at BIG_ROWS (default
# 10000000; 0 skips it). Writes the figures as JSON (default
# build/import_bench.json).
#
# The broker runs with limits raised so that one body of BIG_ROWS tasks is
# accepted (--max-body-bytes, --max-import-tasks): with the default 64 MiB
# body an import of 1M tasks is refused (413). The import streams (the
# project uses the default policy), so the body is never held whatever
# the limit; --max-import-parse-bytes is raised for a whole-body import.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROWS=${1:-1000000}
RUNS=${2:-3}
OUT=${3:-$ROOT/build/import_bench.json}
BIG=${4:-10000000}
B="$ROOT/build-rel"
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" --target quorumd quorumctl -j"$(nproc)" >/dev/null
LIMIT=$((BIG > ROWS ? BIG : ROWS))
here=$(dirname "$0")
. "$here/bench_lib.sh"
bench_broker "$B/bin" --max-body-bytes $((LIMIT * 128)) --max-body-total-bytes $((LIMIT * 128)) \
    --max-import-parse-bytes $((LIMIT * 512)) --max-import-tasks "$LIMIT"
psql_() { psql "$QR_PG_CONNINFO" -Atq "$@"; }
now() { date +%s.%N; }

# The rows: one JSONL file, and the same data as COPY text for tasks.
make_rows() { # N JSONL COPYTEXT PROJECT
    python3 - "$1" "$2" "$3" "$4" <<'PY'
import sys
n, jl, cp, proj = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
with open(jl, "w") as a, open(cp, "w") as b:
    for i in range(1, n + 1):
        d = '{"text": "review %d: the product arrived on time and works as described", "source": "web", "stars": %d}' % (i, i % 5 + 1)
        a.write(d + "\n")
        b.write("%s\t%s\t1\t%d\n" % (proj, d.replace("\\", "\\\\"), i))
PY
}

project() { "$B/bin/quorumctl" project create --name "$1" --labels pos,neg; }
rss_reset() { echo 5 >"/proc/$QPID/clear_refs"; }
rss_peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$QPID/status"; }

# Empties tasks (and what refers to it), so that each side starts from the
# same empty table and indexes.
empty() {
    psql_ -c "TRUNCATE annotations, leases, imported_annotations, imports, tasks CASCADE"
    psql_ -c "VACUUM ANALYZE tasks"
}

# One round: COPY, then import, of the same rows, each into an empty tasks.
round() { # N JSONL COPYTEXT RUN
    local n=$1 p t0 t1 copy_s imp_s rss
    p=$(project "copy-$4")
    sed -i "s/^[0-9]*\t/$p\t/" "$3"
    t0=$(now)
    psql_ -c "\\copy tasks (project_id, data, required, priority) FROM '$3'"
    t1=$(now)
    copy_s=$(echo "$t1 - $t0" | bc)
    empty
    p=$(project "import-$4")
    rss_reset
    t0=$(now)
    "$B/bin/quorumctl" import --project "$p" "$2" >"$W/import.out" 2>"$W/import.err" || {
        echo "import failed: $(cat "$W/import.out" "$W/import.err")" >&2
        imp_s=null
    }
    t1=$(now)
    [ "${imp_s:-}" = null ] || imp_s=$(echo "$t1 - $t0" | bc)
    rss=$(rss_peak_mib)
    jq -nc --argjson rows "$n" --argjson run "$4" --argjson copy_s "$copy_s" --argjson import_s "$imp_s" \
        --argjson rss "$rss" '{rows: $rows, run: $run, copy_seconds: $copy_s, import_seconds: $import_s,
        copy_rows_per_s: ($rows / $copy_s | floor),
        import_rows_per_s: (if $import_s == null then null else ($rows / $import_s | floor) end),
        broker_peak_rss_mib: $rss}'
    empty
}

make_rows "$ROWS" "$W/rows.jsonl" "$W/rows.copy" 0
echo "rows: $ROWS ($(du -m "$W/rows.jsonl" | cut -f1) MB of JSONL); runs: $RUNS"
for r in $(seq 1 "$RUNS"); do round "$ROWS" "$W/rows.jsonl" "$W/rows.copy" "$r"; done | tee "$W/runs.jsonl"
big='null'
if [ "$BIG" -gt 0 ]; then
    rm -f "$W/rows.jsonl" "$W/rows.copy"
    make_rows "$BIG" "$W/big.jsonl" "$W/big.copy" 0
    echo "big: $BIG rows ($(du -m "$W/big.jsonl" | cut -f1) MB of JSONL), once"
    big=$(round "$BIG" "$W/big.jsonl" "$W/big.copy" 0)
    echo "$big"
fi
jq -s --argjson big "$big" '{runs: ., big: $big,
    median_copy_rows_per_s: (map(.copy_rows_per_s) | sort | .[length / 2 | floor]),
    median_import_rows_per_s: (map(.import_rows_per_s // 0) | sort | .[length / 2 | floor]),
    peak_rss_mib_at_rows: (map(.broker_peak_rss_mib) | max),
    peak_rss_mib_at_big: (if $big == null then null else $big.broker_peak_rss_mib end)}
    | .ratio = ((.median_import_rows_per_s / .median_copy_rows_per_s * 100 | round) / 100)' \
    "$W/runs.jsonl" >"$OUT"
jq -r '"median of \(.runs | length): import \(.median_import_rows_per_s) rows/s, raw COPY \(.median_copy_rows_per_s) rows/s, ratio \(.ratio) (goal >= 0.8)",
       "broker peak RSS: \(.peak_rss_mib_at_rows) MiB at \(.runs[0].rows) rows" +
       (if .big then ", \(.big.broker_peak_rss_mib) MiB at \(.big.rows) rows (import \(.big.import_rows_per_s // "failed") rows/s, COPY \(.big.copy_rows_per_s) rows/s)" else "" end)' "$OUT"
echo "written: $OUT"
