#!/usr/bin/env bash
# commit_fn_bench.sh - PostgreSQL CPU per annotation in the commit function
# alone (quorum_submit_batch and what fires around it: foreign keys,
# triggers, the deferred ones at once), measured in one backend: a figure
# that moves less than a crew's run does (passes still spread by up to a
# third on the 2-core machine: quote the median of several). A benchmark,
# not a test: it prints figures and writes them as JSON.
#
#   tests/bench/commit_fn_bench.sh [--rows N] [--calls C] [--passes P]
#                                  [--build DIR] [--out FILE]
#
# A private PostgreSQL + Redis, the schema migrated by DIR/bin/quorumd
# (default build-rel), one project with enough new tasks imported. Then P
# passes (default 5) of each shape, every pass in one transaction that is
# rolled back (so each pass finds the same tasks new), with
# SET CONSTRAINTS ALL IMMEDIATE (the deferred triggers fire with their
# statement, inside the measurement):
#   batch     C calls (default 100) of N new annotations each (default 64):
#             the backend's CPU time (user + system, /proc) per annotation;
#   one_row   10 x C calls of 1 annotation: the CPU time per call, what a
#             call costs whatever its size.
# Medians over the passes, and every pass, in FILE (default
# build/commit_fn_bench.json): {rows_per_call, calls, passes,
# batch_cpu_us_per_annotation {median, passes}, one_row_cpu_us_per_call
# {median, passes}, load_average}. What the broker adds around a call (its
# own statement, the commit's WAL flush, the lease log) is not in it:
# tests/bench/pg_commit_bench.sh measures the whole path under a crew.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
ROWS=64 CALLS=100 PASSES=5
B="$ROOT/build-rel"
OUT="$ROOT/build/commit_fn_bench.json"
usage_error() { echo "commit_fn_bench.sh: $*" >&2; exit 2; }
count() { # OPTION VALUE MAX: VALUE, a positive integer up to MAX
    [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] && [ "$2" -le "$3" ] ||
        usage_error "$1 wants an integer from 1 to $3, not '${2:-}'"
    echo "$2"
}
while [ $# -gt 0 ]; do
    case "$1" in
    --rows) ROWS=$(count "$1" "${2:-}" 1000); shift 2 ;;
    --calls) CALLS=$(count "$1" "${2:-}" 10000); shift 2 ;;
    --passes) PASSES=$(count "$1" "${2:-}" 50); shift 2 ;;
    --build) [ -n "${2:-}" ] || usage_error "--build wants a folder"; B=$2; shift 2 ;;
    --out) [ -n "${2:-}" ] || usage_error "--out wants a file"; OUT=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) usage_error "unknown option $1 (--help lists them)" ;;
    esac
done
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
if ! [ -x "$B/bin/quorumd" ] || ! [ -x "$B/bin/quorumctl" ]; then
    echo "building (Release) in $B..."
    cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
    nice cmake --build "$B" --target quorumd quorumctl -j2 >/dev/null
fi
mkdir -p "$(dirname "$OUT")"

# A private stack and broker (bench_lib.sh): W, PG's conninfo, QPID, and
# the connection settings of quorumctl; all stopped and removed at exit.
# shellcheck disable=SC2034 # root is bench_broker's
root=$ROOT
. "$here/bench_lib.sh"
bench_broker "$B/bin"
PG="$QR_PG_CONNINFO"
q() { psql "$PG" -Atqc "$1"; }
P=$("$B/bin/quorumctl" project create --name commit-fn --labels a,b,c --lease-ttl-ms 60000)
# The tasks of the batch shape; the one-row shape uses the first 10 x C + 2.
N=$(((CALLS + 2) * ROWS))
[ "$N" -ge $((10 * CALLS + 2)) ] || N=$((10 * CALLS + 2))
seq 1 "$N" | awk '{printf "{\"n\":%d}\n", $1}' >"$W/tasks.jsonl"
"$B/bin/quorumctl" import --project "$P" "$W/tasks.jsonl" >/dev/null
# The broker is not needed from here on: only PostgreSQL runs.
kill "$QPID" && wait "$QPID" 2>/dev/null || true
QPID=""
read -r LO HI CNT < <(q "SELECT min(id), max(id), count(*) FROM tasks WHERE project_id = $P" | tr '|' ' ')
[ "$((HI - LO + 1))" = "$CNT" ] || { echo "commit_fn_bench: the task ids are not one range" >&2; exit 1; }
U=$(q "SELECT min(id) FROM users")
q "ANALYZE" >/dev/null

# pass CALLS ROWS -> the backend's CPU time (µs) for CALLS calls of ROWS
# annotations, after 2 calls of warm-up, rolled back.
pass() {
    local calls=$1 rows=$2
    cat >"$W/pass.sql" <<EOS
CREATE FUNCTION pg_temp.calls(base bigint, calls int, n int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE b bigint;
BEGIN
  FOR k IN 0..calls - 1 LOOP
    b := base + k * n;
    PERFORM count(*) FROM quorum_submit_batch(
      (SELECT array_agg(b + i) FROM generate_series(0, n - 1) i), array_fill($P::bigint, ARRAY[n]),
      array_fill($U::bigint, ARRAY[n]), array_fill('a'::text, ARRAY[n]),
      (SELECT array_agg(1000000000 + b + i) FROM generate_series(0, n - 1) i),
      array_fill(NULL::text, ARRAY[n]), array_fill(5, ARRAY[n]),
      array_fill(1700000000000::bigint, ARRAY[n]), array_fill(1700000060000::bigint, ARRAY[n]));
  END LOOP;
END \$\$;
BEGIN;
SET CONSTRAINTS ALL IMMEDIATE;
SELECT pg_temp.calls($LO, 2, $rows);
SELECT pg_backend_pid() AS bpid \\gset
\\setenv BPID :bpid
\\! echo "CPU0 \$(awk '{print \$14 + \$15}' /proc/\$BPID/stat)"
SELECT pg_temp.calls($LO + 2 * $rows, $calls, $rows);
\\! echo "CPU1 \$(awk '{print \$14 + \$15}' /proc/\$BPID/stat)"
ROLLBACK;
EOS
    psql "$PG" -Xq -v ON_ERROR_STOP=1 -f "$W/pass.sql" >"$W/pass.out" 2>&1 ||
        { cat "$W/pass.out" >&2; exit 1; }
    awk -v tck="$(getconf CLK_TCK)" '/^CPU0/ {a = $2} /^CPU1/ {b = $2} END {printf "%.0f", (b - a) * 1e6 / tck}' "$W/pass.out"
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "commit_fn_bench: 2 cores, load $(cut -d' ' -f1-3 /proc/loadavg), $PASSES passes of $CALLS calls x $ROWS annotations and of $((10 * CALLS)) calls x 1"
: >"$W/batch" && : >"$W/one"
for i in $(seq 1 "$PASSES"); do
    b=$(pass "$CALLS" "$ROWS")
    o=$(pass $((10 * CALLS)) 1)
    awk -v c="$b" -v n=$((CALLS * ROWS)) 'BEGIN {printf "%.1f\n", c / n}' >>"$W/batch"
    awk -v c="$o" -v n=$((10 * CALLS)) 'BEGIN {printf "%.1f\n", c / n}' >>"$W/one"
    echo "pass $i: $(tail -1 "$W/batch") us per annotation in calls of $ROWS; $(tail -1 "$W/one") us per call of 1"
done
jq -n --argjson rows "$ROWS" --argjson calls "$CALLS" --argjson passes "$PASSES" \
    --argjson bm "$(median <"$W/batch")" --argjson om "$(median <"$W/one")" \
    --argjson b "$(jq -s . "$W/batch")" --argjson o "$(jq -s . "$W/one")" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{rows_per_call: $rows, calls: $calls, passes: $passes,
      batch_cpu_us_per_annotation: {median: $bm, passes: $b},
      one_row_cpu_us_per_call: {median: $om, passes: $o}, load_average: $load}' >"$OUT"
echo "median of $PASSES: $(jq .batch_cpu_us_per_annotation.median "$OUT") us of PostgreSQL CPU per annotation in calls of $ROWS, $(jq .one_row_cpu_us_per_call.median "$OUT") us per call of 1; wrote $OUT"
