#!/usr/bin/env bash
# predictions_bench.sh - a benchmark, not a test: a predictions update of
# ROWS tasks (PUT /v1/projects/{id}/predictions through `quorumctl
# predictions`) against a raw COPY on the same PostgreSQL, side by side on
# one private stack with a Release quorumd (issue 16, point 5: "at >= 0.5x
# COPY speed").
#
#   tests/bench/predictions_bench.sh [ROWS] [RUNS] [OUT.json]
#
# ROWS (default 1000000) tasks are imported once into a project sampled by
# uncertainty. Each of RUNS (default 3) rounds then times, end to end:
#   - copy_tasks: `psql \copy` of the same ROWS task rows into a table like
#     tasks (CREATE TABLE ... (LIKE tasks INCLUDING ALL): the same columns
#     and indexes), the reference the import benchmark uses;
#   - copy_rows: `psql \copy` of the ROWS prediction rows (id, prediction,
#     score) into a bare table: the least any update must do to get them in;
#   - update: `quorumctl predictions` of ROWS lines, each a new label and
#     score for one task (TLS upload, parse, COPY, the new rows appended to
#     task_scores with their priorities, the window's refresh, commit);
#   - prune_after: from the update's answer to the broker's deletion of
#     the rows it superseded (sql/0040_task_scores.sql), which runs after
#     the answer and is waited for before the next round.
# Prints each run, the medians (rows/s) and the ratios update / copy_tasks
# (the issue's figure) and update / copy_rows, and the WAL each run's COPY
# of the task rows and update wrote (bytes: the same on a busy machine,
# where the times are not; the load average is recorded with each run);
# writes the figures as JSON
# (default build/predictions_bench.json).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROWS=${1:-1000000}
RUNS=${2:-3}
OUT=${3:-$ROOT/build/predictions_bench.json}
B="$ROOT/build-rel"
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" --target quorumd quorumctl -j"$(nproc)" >/dev/null
here=$(dirname "$0")
. "$here/bench_lib.sh"
bench_broker "$B/bin" --max-import-tasks "$ROWS"
psql_() { psql "$QR_PG_CONNINFO" -Atq "$@"; }
now() { date +%s.%N; }
lsn() { psql_ -c "SELECT pg_current_wal_lsn()"; }
wal_since() { psql_ -c "SELECT (pg_current_wal_lsn() - '$1'::pg_lsn)::bigint"; } # bytes

P=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $TOKEN" --data-binary \
    '{"name": "bench", "labels": ["pos", "neg"], "sampling": "uncertainty"}' "$URL/v1/projects" | jq .id)
python3 - "$ROWS" "$W/tasks.jsonl" "$W/tasks.copy" <<'PY'
import sys
n = int(sys.argv[1])
with open(sys.argv[2], "w") as a, open(sys.argv[3], "w") as b:
    for i in range(1, n + 1):
        d = '{"text": "review %d: the product arrived on time and works as described", "source": "web", "stars": %d}' % (i, i % 5 + 1)
        a.write('{"data": %s, "prediction": {"label": "pos", "score": %.4f}}\n' % (d, (i % 997) / 997))
        b.write("0\t%s\t1\t%d\n" % (d.replace("\\", "\\\\"), i))
PY
"$B/bin/quorumctl" import --project "$P" "$W/tasks.jsonl" >/dev/null
FIRST=$(psql_ -c "SELECT min(id) FROM tasks WHERE project_id = $P")
sed -i "s/^0\t/$P\t/" "$W/tasks.copy"
psql_ -c "VACUUM ANALYZE tasks"
echo "rows: $ROWS; runs: $RUNS"

round() { # RUN
    local r=$1 t0 t1 ct cr up
    python3 - "$ROWS" "$FIRST" "$r" "$W/pred.jsonl" "$W/pred.copy" <<'PY'
import sys
n, first, r = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with open(sys.argv[4], "w") as a, open(sys.argv[5], "w") as b:
    for k in range(n):
        score = ((k * 7 + r * 131) % 1000) / 1000
        label = "pos" if (k + r) % 2 else "neg"
        a.write('{"task_id": %d, "value": "%s", "score": %.3f, "model_version": "m%d"}\n' % (first + k, label, score, r))
        b.write('%d\t{"label": "%s", "score": %.3f, "model_version": "m%d"}\t%.3f\n' % (first + k, label, score, r, score))
PY
    psql_ -c "DROP TABLE IF EXISTS copy_ref; CREATE TABLE copy_ref (LIKE tasks INCLUDING ALL)"
    l0=$(lsn)
    t0=$(now)
    psql_ -c "\\copy copy_ref (project_id, data, required, priority) FROM '$W/tasks.copy'"
    t1=$(now)
    ct=$(echo "$t1 - $t0" | bc)
    cw=$(wal_since "$l0")
    psql_ -c "DROP TABLE copy_ref; DROP TABLE IF EXISTS copy_rows; CREATE TABLE copy_rows (task_id bigint, prediction jsonb, score double precision)"
    t0=$(now)
    psql_ -c "\\copy copy_rows FROM '$W/pred.copy'"
    t1=$(now)
    cr=$(echo "$t1 - $t0" | bc)
    psql_ -c "DROP TABLE copy_rows; CHECKPOINT"
    l0=$(lsn)
    t0=$(now)
    "$B/bin/quorumctl" predictions --project "$P" "$W/pred.jsonl" >"$W/up.out" 2>&1 || {
        echo "update failed: $(cat "$W/up.out")" >&2
        exit 1
    }
    t1=$(now)
    up=$(echo "$t1 - $t0" | bc)
    uw=$(wal_since "$l0")
    # After its answer the broker deletes the rows the update superseded
    # (sql/0040_task_scores.sql): timed apart, and waited for, so that the
    # next round's COPY does not share the machine with it.
    while [ "$(grep -c 'superseded predictions deleted' "$W/q.log")" -lt "$r" ]; do
        grep -q 'deleting superseded predictions failed' "$W/q.log" && { echo "prune failed" >&2; exit 1; }
        sleep 0.05
    done
    pr=$(echo "$(now) - $t1" | bc)
    jq -nc --argjson rows "$ROWS" --argjson run "$r" --argjson ct "$ct" --argjson cr "$cr" --argjson up "$up" --argjson pr "$pr" \
        --argjson cw "$cw" --argjson uw "$uw" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
        '{rows: $rows, run: $run, copy_tasks_seconds: $ct, copy_rows_seconds: $cr, update_seconds: $up, prune_after_seconds: $pr,
          copy_tasks_rows_per_s: ($rows / $ct | floor), copy_rows_rows_per_s: ($rows / $cr | floor),
          update_rows_per_s: ($rows / $up | floor), copy_tasks_wal_bytes: $cw, update_wal_bytes: $uw,
          load_after: $load}'
    psql_ -c "VACUUM tasks, task_scores"
}
for r in $(seq 1 "$RUNS"); do round "$r"; done | tee "$W/runs.jsonl"
# The next leases follow the last update: their scores are the least in
# PostgreSQL (ties among equal scores go in Redis's member order).
got=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $TOKEN" --data-binary '{"max": 3}' \
    "$URL/v1/projects/$P/leases" | jq -r '[.leases[].task_id] | join(",")')
check_order=$(psql_ -c "SELECT string_agg(prediction_score::text, ',' ORDER BY prediction_score) FROM tasks_scored WHERE id IN ($got)")
want=$(psql_ -c "SELECT string_agg(s::text, ',') FROM (SELECT prediction_score AS s FROM tasks_scored WHERE project_id = $P ORDER BY priority, id LIMIT 3) x")
jq -s --arg got "$check_order" --arg want "$want" '{runs: .,
    median_copy_tasks_rows_per_s: (map(.copy_tasks_rows_per_s) | sort | .[length / 2 | floor]),
    median_copy_rows_rows_per_s: (map(.copy_rows_rows_per_s) | sort | .[length / 2 | floor]),
    median_update_rows_per_s: (map(.update_rows_per_s) | sort | .[length / 2 | floor]),
    median_copy_tasks_wal_bytes: (map(.copy_tasks_wal_bytes) | sort | .[length / 2 | floor]),
    median_update_wal_bytes: (map(.update_wal_bytes) | sort | .[length / 2 | floor]),
    next_leases: $got, least_confident_in_postgresql: $want}
    | .ratio_vs_copy_tasks = ((.median_update_rows_per_s / .median_copy_tasks_rows_per_s * 100 | round) / 100)
    | .ratio_vs_copy_rows = ((.median_update_rows_per_s / .median_copy_rows_rows_per_s * 100 | round) / 100)' \
    "$W/runs.jsonl" >"$OUT"
jq -r '"median of \(.runs | length): update \(.median_update_rows_per_s) rows/s; COPY of the task rows \(.median_copy_tasks_rows_per_s) rows/s (ratio \(.ratio_vs_copy_tasks), goal >= 0.5); bare COPY of the prediction rows \(.median_copy_rows_rows_per_s) rows/s (ratio \(.ratio_vs_copy_rows))",
       "WAL written (medians): update \(.median_update_wal_bytes / 1e6 | floor) MB, COPY of the task rows \(.median_copy_tasks_wal_bytes / 1e6 | floor) MB",
       "scores of the next 3 leases after the last update: \(.next_leases); the 3 least in PostgreSQL: \(.least_confident_in_postgresql)"' "$OUT"
echo "written: $OUT"
