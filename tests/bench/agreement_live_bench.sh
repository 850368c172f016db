#!/usr/bin/env bash
# agreement_live_bench.sh - a benchmark, not a test: GET /v1/projects/{id}/agreement
# on a project holding 1,000,000 annotations (200,000 tasks x 5 judgements,
# 50 annotators, 10 labels), served by a Release quorumd on a private stack.
#
#   tests/bench/agreement_live_bench.sh [RUNS] [OUT.json]
#
# Prints the cold first answer (loading 1M judgements) and the median and
# p90 of RUNS warm answers (curl time_total, TLS keep-alive off: a new
# connection each time, so the figure includes the handshake), and writes
# them as JSON.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${1:-21}
OUT=${2:-$ROOT/build/agreement_live_bench.json}
B="$ROOT/build-rel"
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" --target quorumd -j"$(nproc)" >/dev/null
W=$(mktemp -d /tmp/quorum-bench.XXXXXX)
cleanup() {
    [ -n "${QPID:-}" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
    "$ROOT/deploy/stack.sh" stop "$W/stack" >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT
"$ROOT/deploy/stack.sh" start "$W/stack" >/dev/null
. "$W/stack/env"
"$B/bin/quorumd" migrate --pg "$QR_PG_CONNINFO" --sql-dir "$ROOT/sql" 2>/dev/null
TOKEN=$("$B/bin/quorumd" bootstrap-admin --pg "$QR_PG_CONNINFO")
echo "loading 1,000,000 annotations into PostgreSQL..."
psql -q -v ON_ERROR_STOP=1 "$QR_PG_CONNINFO" <<'SQL'
INSERT INTO users (org_id, name, role) SELECT 1, 'ann' || g, 'annotator' FROM generate_series(1, 50) g;
INSERT INTO projects (org_id, name, labels, annotations_per_task)
  SELECT 1, 'bench', '["l0","l1","l2","l3","l4","l5","l6","l7","l8","l9"]', 5;
INSERT INTO tasks (project_id, data, required, done_count, state, priority)
  SELECT 1, '{}', 5, 5, 'complete', g FROM generate_series(1, 200000) g;
-- Each task: 5 distinct annotators (a rotating window over 50); the label
-- is the task's "true" label 70 % of the time, else pseudo-random.
INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token)
  SELECT t, 1, u.id, 'l' || CASE WHEN (t * 7 + k * 13) % 10 < 7 THEN t % 10 ELSE (t * 31 + k * 17) % 10 END,
         t * 10 + k
    FROM generate_series(1, 200000) t CROSS JOIN generate_series(0, 4) k
    JOIN users u ON u.name = 'ann' || (((k * 10 + t) % 50) + 1);
ANALYZE;
SQL
. "$ROOT/deploy/common.sh"
make_certs "$W/tls" 1
start_quorumd "$B/bin/quorumd" "$W/q.log" --pg "$QR_PG_CONNINFO" --redis "127.0.0.1:$QR_REDIS_PORT" \
    --cert "$W/tls/server.crt" --key "$W/tls/server.key" || exit 1
QPID=$QD_PID PORT=$QD_PORT
for i in $(seq 1 50); do curl -fsS --cacert "$W/tls/ca.crt" "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
get() { curl -fsS --cacert "$W/tls/ca.crt" -H "Authorization: Bearer $TOKEN" -o "$W/a.json" -w '%{time_total}' "https://127.0.0.1:$PORT/v1/projects/1/agreement$1"; }
cold=$(get "")
echo "judgements: $(jq .counts.judgements "$W/a.json"), alpha nominal $(jq .metrics.krippendorff_alpha_nominal.value "$W/a.json")"
times=()
for i in $(seq 1 "$RUNS"); do times+=("$(get "")"); done
sorted=$(printf '%s\n' "${times[@]}" | sort -g)
median=$(echo "$sorted" | awk -v n="$RUNS" 'NR == int((n + 1) / 2)')
p90=$(echo "$sorted" | awk -v n="$RUNS" 'NR == int(n * 0.9 + 0.5)')
fresh=$(get "?fresh=1")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$QPID/status")
printf 'cold first answer %.3f s; warm answers median %.1f ms, p90 %.1f ms (%d runs); fresh refresh %.1f ms; broker RSS %d MiB\n' \
    "$cold" "$(echo "$median * 1000" | bc -l)" "$(echo "$p90 * 1000" | bc -l)" "$RUNS" "$(echo "$fresh * 1000" | bc -l)" $((rss / 1024))
jq -n --argjson cold "$cold" --argjson median "$median" --argjson p90 "$p90" --argjson fresh "$fresh" \
    --argjson runs "$RUNS" --argjson rss "$rss" \
    '{annotations: 1000000, cold_seconds: $cold, warm_ms: {median: ($median * 1000), p90: ($p90 * 1000), runs: $runs}, fresh_ms: ($fresh * 1000), broker_rss_mb: ($rss / 1024)}' >"$OUT"
echo "wrote $OUT"
