#!/usr/bin/env bash
# analytics_bench.sh - benchmark (not a test) of the throughput report over a
# large lease log (issue 6: "a report over 10 million events answers in under
# a second"). Fills a private PostgreSQL with one project holding ~10 M lease
# events over 30 days (200 annotators working 8-hour shifts, a task every
# 35 s each: grant, then submit or 10% skip; 5 fast clickers), its per-minute
# and per-hour rollups, 1 M complete tasks with 2 M annotations (and their
# per-hour rollup) and 50 k waiting tasks;
# then times GET /v1/projects/{id}/throughput through a real quorumd for the
# windows 15m, 1h, 1d and 7d (and 1d by hour, 7d by vendor), median of RUNS,
# and the same windows with exact=1 (every raw event, no rollup) once, and
# checks that the rollup's figures match the exact ones (counts and activity
# equal, medians within the histogram's 2.2%).
#
# Usage: tests/bench/analytics_bench.sh [BIN_DIR] [RUNS] [OUT.json]
#   BIN_DIR  where quorumd is (default: build-rel/bin, else build/bin)
#   RUNS     timed runs per window (default 3; the median is reported)
#   OUT.json results (default: analytics_bench.json in the current directory)
# Environment: PGOPTIONS reaches quorumd's pool and is recorded in OUT.json
# (the report runs unprepared, so no plan_cache_mode is needed);
# QR_BENCH_DIR keeps the stack's folder (default: a temp dir);
# with QR_BENCH_KEEP=1 the stack is left running at the end, and a later run
# with the same QR_BENCH_DIR reuses its data instead of filling again.
# Takes a few minutes, most of it filling the database. Windows are fixed
# FROM..TO intervals ending 20.5 s before the end of the data (so both edges
# are partial minutes), so that the timed run and the exact one read the
# same events.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-}
[ -n "$bin" ] || { [ -x "$root/build-rel/bin/quorumd" ] && bin=$root/build-rel/bin || bin=$root/build/bin; }
runs=${2:-3}
out=${3:-analytics_bench.json}
[ -x "$bin/quorumd" ] || { echo "analytics_bench: no $bin/quorumd (build it first)" >&2; exit 2; }
. "$root/deploy/common.sh"

dir=${QR_BENCH_DIR:-$(mktemp -d /tmp/quorum-abench.XXXXXX)}
mkdir -p "$dir"
QPID=""
cleanup() {
    [ -n "$QPID" ] && { kill -TERM "$QPID" 2>/dev/null; wait "$QPID" 2>/dev/null || true; }
    [ "${QR_BENCH_KEEP:-0}" = 1 ] || "$root/deploy/stack.sh" stop "$dir/stack" >/dev/null 2>&1 || true
    [ -n "${QR_BENCH_DIR:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
say() { printf 'analytics_bench: %s\n' "$*" >&2; }

reuse=0
if [ -f "$dir/stack/env" ] && [ -f "$dir/state" ] && pg_isready -q -d "$(. "$dir/stack/env"; echo "$QR_PG_CONNINFO")"; then
    reuse=1
else
    "$root/deploy/stack.sh" start "$dir/stack" >/dev/null
fi
. "$dir/stack/env"
PG=$QR_PG_CONNINFO
if [ "$reuse" = 0 ]; then
    psql "$PG" -qc "ALTER SYSTEM SET jit = off" -c "SELECT pg_reload_conf()" >/dev/null
    "$bin/quorumd" migrate --pg "$PG" --sql-dir "$root/sql" 2>"$dir/migrate.log"
    TOKEN=$("$bin/quorumd" bootstrap-admin --pg "$PG")
    make_certs "$dir/tls"
else
    . "$dir/state"
fi
: >"$dir/quorumd.log"
start_quorumd "$bin/quorumd" "$dir/quorumd.log" --pg "$PG" --redis "127.0.0.1:$QR_REDIS_PORT" \
    --cert "$dir/tls/server.crt" --key "$dir/tls/server.key" --rate-limit 0 || exit 1
QPID=$QD_PID port=$QD_PORT
URL=https://127.0.0.1:$port
wait_https "$URL" "$dir/tls/ca.crt" "$QPID"
api() { curl -sS --cacert "$dir/tls/ca.crt" -H "Authorization: Bearer $TOKEN" "$@"; }

if [ "$reuse" = 1 ]; then
    say "reusing project $P in $dir"
else
P=$(api -X POST "$URL/v1/projects" -d '{"name":"bench","labels":["a","b","c","d"],"annotations_per_task":2}' | jq .id)
say "project $P; filling (several minutes)..."
t0=$(date +%s)
psql "$PG" -v ON_ERROR_STOP=1 -q <<SQL
SELECT setseed(0.42);
INSERT INTO organizations (name, kind) VALUES ('vendor-a', 'vendor'), ('vendor-b', 'vendor');
INSERT INTO users (org_id, name, role)
SELECT (SELECT id FROM organizations WHERE name = CASE WHEN i % 2 = 0 THEN 'vendor-a' ELSE 'vendor-b' END),
       'ann-' || i, 'annotator' FROM generate_series(1, 200) i;
CREATE TEMP TABLE ann AS SELECT row_number() OVER (ORDER BY id) AS i, id FROM users WHERE role = 'annotator' AND name LIKE 'ann-%';

-- 1 M complete tasks with 2 annotations each, 50 k waiting.
INSERT INTO tasks (project_id, data, state, required, done_count, priority)
SELECT $P, '{}', CASE WHEN i <= 1000000 THEN 'complete' ELSE 'waiting' END, 2,
       CASE WHEN i <= 1000000 THEN 2 ELSE 0 END, i FROM generate_series(1, 1050000) i;
CREATE TEMP TABLE t AS SELECT row_number() OVER (ORDER BY id) AS i, id FROM tasks WHERE project_id = $P;
INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token, active_ms, created_at)
SELECT t.id, $P, a.id, 'a', t.i * 2 + k, 20000, now() - interval '30 days' + (t.i * 2 + k) * interval '1.296 second'
FROM t, generate_series(0, 1) k, ann a
WHERE t.i <= 1000000 AND a.i = ((t.i + k * 7) % 200) + 1;

-- ~10 M lease events: annotator a works an 8-hour shift a day (shift a % 3),
-- a task every 35 s; time on task 5-30 s (1-5 s for the 5 fast ones), 10% skipped.
INSERT INTO lease_events (project_id, at, kind, task_id, annotator_id, token, granted_at, active_ms, label, reason)
SELECT $P, v.at, v.kind, g.task, g.ann, g.tok, g.gat, v.active, v.label, v.reason
FROM (SELECT a.id AS ann, a.i * 100000000 + d * 10000 + k AS tok, (a.i * 7919 + d * 823 + k) % 1050000 + 1 AS task,
             date_trunc('day', now()) - interval '29 days' + d * interval '1 day' + (a.i % 3) * interval '8 hours'
               + (k * 35 + a.i % 17) * interval '1 second' AS gat,
             CASE WHEN a.i <= 5 THEN 1000 + (random() * 4000)::int ELSE 5000 + (random() * 25000)::int END AS tot,
             random() < 0.1 AS skip, (ARRAY['a','b','c','d'])[1 + (random() * 3.999)::int] AS label
      FROM ann a, generate_series(0, 29) d, generate_series(0, 822) k) g
CROSS JOIN LATERAL (VALUES ('grant', g.gat, NULL::int, NULL::text, NULL::text),
    (CASE WHEN g.skip THEN 'skip' ELSE 'submit' END, g.gat + g.tot * interval '1 millisecond',
     CASE WHEN g.skip THEN NULL ELSE g.tot END, CASE WHEN g.skip THEN NULL ELSE g.label END,
     CASE WHEN g.skip THEN 'unclear' END)) v(kind, at, active, label, reason)
WHERE v.at < now();

-- The rollups, as broker/store/events.c keeps them: 0008's and 0013's own
-- backfill statements (minutes, then hours from the minutes), and the roll
-- of the annotations' closed hours that events.c runs once an hour.
$(sed -n '/^INSERT INTO lease_event_minutes/,/;$/p' "$root/sql/0008_event_minutes.sql")
$(sed -n '/^INSERT INTO lease_event_hours/,/;$/p' "$root/sql/0013_event_hours.sql")
SELECT quorum_roll_annotation_hours(clock_timestamp() - interval '5 minutes');
VACUUM ANALYZE;
SQL
fill_s=$(($(date +%s) - t0))
END_MS=$(psql "$PG" -Atc "SELECT (extract(epoch FROM max(at)) * 1000)::bigint - 20500 FROM lease_events")
echo "TOKEN='$TOKEN' P=$P fill_s=$fill_s END_MS=$END_MS" >"$dir/state"
fi
events=$(psql "$PG" -Atc "SELECT count(*) FROM lease_events WHERE project_id = $P")
minutes=$(psql "$PG" -Atc "SELECT count(*) FROM lease_event_minutes WHERE project_id = $P")
hours=$(psql "$PG" -Atc "SELECT count(*) FROM lease_event_hours WHERE project_id = $P")
annots=$(psql "$PG" -Atc "SELECT count(*) FROM annotations WHERE project_id = $P")
say "filled in ${fill_s}s: $events events, $minutes minute rows, $hours hour rows, $annots annotations"

# time_report QUERY -> seconds of one GET (the body goes to $dir/last.json)
time_report() {
    api -o "$dir/last.json" -w '%{time_total}' "$URL/v1/projects/$P/throughput?$1"
}
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

iso() { date -u -d "@$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ; }
win() { echo "window=$(iso $((END_MS - $1)))..$(iso "$END_MS")"; }
M=60000 H=3600000 D=86400000
cases=("$(win $((15 * M)))" "$(win $H)" "$(win $D)" "$(win $((7 * D)))" "$(win $D)&by=hour" "$(win $((7 * D)))&by=vendor")
names=(15m 1h 1d 7d "1d by hour" "7d by vendor")
printf '%-22s %8s %8s %10s %s\n' query source median exact_s runs >&2
json_rows=()
for ci in "${!cases[@]}"; do
    q=${cases[$ci]}
    ts=()
    for _ in $(seq 1 "$runs"); do ts+=("$(time_report "$q")"); done
    src=$(jq -r .window.source "$dir/last.json")
    cp "$dir/last.json" "$dir/fast.json"
    med=$(echo "${ts[*]}" | median)
    ex=$(time_report "$q&exact=1")
    cp "$dir/last.json" "$dir/exact.json"
    # The rollup against the exact figures.
    agree=$(jq -n --slurpfile f "$dir/fast.json" --slurpfile e "$dir/exact.json" '
        def close(a; b): (a == null and b == null) or (a != null and b != null and ((a - b) | fabs) <= 0.025 * (b | fabs) + 1);
        ($f[0]) as $f | ($e[0]) as $e |
        ($f.totals == $e.totals) and ($f.outcomes == $e.outcomes) and ($f.queue.tasks == $e.queue.tasks)
        and ($f.activity.idle_gaps == $e.activity.idle_gaps)
        and ((($f.activity.active_ms - $e.activity.active_ms) | fabs) <= 2)
        and close($f.time_on_task.median_ms; $e.time_on_task.median_ms)
        and close($f.time_on_task.p90_ms; $e.time_on_task.p90_ms)
        and close($f.time_on_task.mean_ms; $e.time_on_task.mean_ms)
        and ($f.time_on_task.n == $e.time_on_task.n)
        and ([$f.fast_response.flagged[].annotator_id] == [$e.fast_response.flagged[].annotator_id])')
    printf '%-22s %8s %8.3f %10.3f %s  (rollup = exact: %s)\n' "${names[$ci]}" "$src" "$med" "$ex" "${ts[*]}" "$agree" >&2
    json_rows+=("$(jq -nc --arg q "${names[$ci]}: $q" --arg src "$src" --argjson med "$med" --argjson ex "$ex" \
        --argjson agree "$agree" --arg all "${ts[*]}" \
        '{query: $q, source: $src, median_s: $med, exact_s: $ex, runs_s: ($all | split(" ") | map(tonumber)), rollup_matches_exact: $agree}')")
done
printf '%s\n' "${json_rows[@]}" | jq -s --argjson ev "$events" --argjson mi "$minutes" --argjson an "$annots" \
    --argjson fill "$fill_s" --argjson runs "$runs" --argjson ho "$hours" --arg pgo "${PGOPTIONS:-}" \
    '{events: $ev, rollup_rows: $mi, hour_rows: $ho, annotations: $an, pgoptions: $pgo, tasks: 1050000, annotators: 200, fill_s: $fill, runs: $runs, reports: .}' >"$out"
say "results in $out"
