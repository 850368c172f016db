#!/usr/bin/env bash
# chaos.sh - the lease engine under faults (deploy/dev.sh chaos; also run by
# ctest as e2e.test_chaos).
#
#   deploy/chaos.sh [--bin DIR] [--tasks N] [--annotators N] [--gold N] [--out FILE]
#                   [--dynamic-overlap]
#
# Two quorumd on one PostgreSQL and one Redis; a crew of simulated annotators
# spread over both (skips, releases, abandoned leases, batch submits); one
# broker SIGKILLed mid-run and restarted, one Redis FLUSHALL, one PostgreSQL
# restart. --gold N (default 200) of the tasks carry a gold answer and the
# project serves them (gold_rate 0.1 after 3 onboarding ones, annotators
# judged against a minimum accuracy of 0.5 after 10; --gold 0: none). Then
# it checks, in PostgreSQL: every normal task holds exactly its required
# annotations; no (task, annotator) pair twice (gold tasks included); every
# submit an agent saw acknowledged is stored; no lease open past TTL +
# reaper period; with review_mode all, every completed task has exactly one
# review item. With --dynamic-overlap the project has dynamic overlap (2
# to 4 annotations a task, one more while support < 0.75) and one more
# check: no task needs or holds more than 4. Exits non-zero if a check
# fails; writes the figures as JSON (--out, default build/chaos.json).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/build/bin"
TASKS=17000
ANNOTATORS=200
GOLD=200
OUT="$ROOT/build/chaos.json"
TTL_MS=3000
DYNAMIC=false
REAPER_MS=200
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --tasks) TASKS=$2; shift 2 ;;
    --annotators) ANNOTATORS=$2; shift 2 ;;
    --gold) GOLD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --dynamic-overlap) DYNAMIC=true; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "chaos.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$(dirname "$OUT")"
. "$ROOT/deploy/common.sh"
W=$(mktemp -d /tmp/quorum-chaos.XXXXXX)
PIDS=()
say() { printf '[chaos %5ss] %s\n' "$SECONDS" "$*"; }

cleanup() {
    local p
    for p in "${PIDS[@]}" ${Q1:-} ${Q2:-} ${SIM:-}; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$ROOT/deploy/stack.sh" stop "$W/stack" >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT


"$ROOT/deploy/stack.sh" start "$W/stack" >/dev/null
. "$W/stack/env"
PG="$QR_PG_CONNINFO"
sql() { psql "$PG" -Atqc "$1"; }
make_certs "$W/tls" 1
"$BIN/quorumd" migrate --pg "$PG" --sql-dir "$ROOT/sql" 2>/dev/null
TOKEN=$("$BIN/quorumd" bootstrap-admin --pg "$PG")
BROKER_FLAGS=(--pg "$PG" --redis "127.0.0.1:$QR_REDIS_PORT" --cert "$W/tls/server.crt"
    --key "$W/tls/server.key" --reaper-ms "$REAPER_MS")
wait_up() {
    wait_https "https://127.0.0.1:$1" "$W/tls/ca.crt" || { echo "chaos: broker on $1 did not come up" >&2; return 1; }
}
# Both brokers bind port 0 (the kernel's choice: nothing takes it first).
start_quorumd "$BIN/quorumd" "$W/q1.log" "${BROKER_FLAGS[@]}"
Q1=$QD_PID P1=$QD_PORT
start_quorumd "$BIN/quorumd" "$W/q2.log" "${BROKER_FLAGS[@]}"
Q2=$QD_PID P2=$QD_PORT
wait_up "$P1"
wait_up "$P2"
# restart_broker1: quorumd again on P1, which the crew's --urls name. The
# port was free for a moment: while another process holds it (address
# already in use), try again, for up to 30 s. Sets Q1.
restart_broker1() {
    local i
    for i in $(seq 1 60); do
        "$BIN/quorumd" serve --listen "127.0.0.1:$P1" "${BROKER_FLAGS[@]}" >>"$W/q1.log" 2>&1 &
        Q1=$!
        wait_https "https://127.0.0.1:$P1" "$W/tls/ca.crt" "$Q1" && return 0
        kill -0 "$Q1" 2>/dev/null && return 1 # up but not answering: a real failure
        tail -1 "$W/q1.log" | grep -q 'address already in use' || return 1
        say "port $P1 is taken for now: retrying"
        sleep 0.5
    done
    return 1
}
export QUORUM_URL="https://127.0.0.1:$P1" QUORUM_TOKEN="$TOKEN" QUORUM_CA="$W/tls/ca.crt"

OVERLAP='"annotations_per_task":1'
if [ "$DYNAMIC" = true ]; then
    OVERLAP='"overlap_min":2,"overlap_max":4,"overlap_agreement_threshold":0.75'
fi
PROJECT=$(curl -fsS --cacert "$W/tls/ca.crt" -H "Authorization: Bearer $TOKEN" \
    --data "{\"name\":\"chaos\",\"labels\":[\"a\",\"b\",\"c\"],$OVERLAP,
             \"overlap_fraction\":0.1,\"overlap_annotations\":3,\"lease_ttl_ms\":$TTL_MS,
             \"gold_rate\":$([ "$GOLD" -gt 0 ] && echo 0.1 || echo 0),
             \"gold_onboarding\":$([ "$GOLD" -gt 0 ] && echo 3 || echo 0),
             \"gold_min_accuracy\":$([ "$GOLD" -gt 0 ] && echo 0.5 || echo null),
             \"gold_min_count\":10,\"review_mode\":\"all\"}" \
    "$QUORUM_URL/v1/projects" | jq .id)
seq 1 "$TASKS" | awk -v g="$GOLD" '{l = substr("abc", $1 % 3 + 1, 1)
    if ($1 <= g) printf "{\"data\":{\"n\":%d,\"true_label\":\"%s\"},\"gold\":\"%s\"}\n", $1, l, l
    else printf "{\"n\":%d,\"true_label\":\"%s\"}\n", $1, l}' >"$W/tasks.jsonl"
"$BIN/quorumctl" import --project "$PROJECT" "$W/tasks.jsonl" >/dev/null
REQUIRED=$(sql "SELECT sum(required) FROM tasks WHERE project_id = $PROJECT AND NOT control")
[ "$DYNAMIC" = true ] && say "dynamic overlap: 2 to 4 annotations a task (required grows as tasks disagree)"
say "project $PROJECT: $TASKS tasks ($GOLD gold), $REQUIRED annotations required; brokers on $P1 and $P2"

"$BIN/quorum-agent" simulate --project "$PROJECT" --annotators "$ANNOTATORS" --accuracy 0.9 \
    --think-ms 0-20 --seed 11 --prefetch 2 --batch --skip-rate 0.03 --release-rate 0.03 \
    --abandon-rate 0.02 --wait-ms 1000 --urls "https://127.0.0.1:$P1,https://127.0.0.1:$P2" \
    --token "$TOKEN" --ca "$W/tls/ca.crt" \
    --ack-log "$W/acks.tsv" --json-summary "$W/sim.json" --max-seconds 600 >"$W/sim.out" 2>"$W/sim.err" &
SIM=$!

done_count() { # annotations of normal tasks (gold answers never fill an overlap)
    sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id
         WHERE a.project_id = $PROJECT AND NOT t.control" 2>/dev/null || echo 0
}
wait_for() { # fraction of REQUIRED, then return
    local target=$(( REQUIRED * $1 / 100 ))
    while [ "$(done_count)" -lt "$target" ]; do
        kill -0 "$SIM" 2>/dev/null || return 0
        sleep 0.5
    done
}
KILLS=0 FLUSHES=0 PGRESTARTS=0
wait_for 20
say "SIGKILL broker 1 at $(done_count) annotations"
kill -KILL "$Q1"; wait "$Q1" 2>/dev/null || true
KILLS=$((KILLS + 1))
sleep 2
restart_broker1 && say "broker 1 restarted"
wait_for 45
say "Redis FLUSHALL at $(done_count) annotations"
redis-cli -p "$QR_REDIS_PORT" flushall >/dev/null
FLUSHES=$((FLUSHES + 1))
wait_for 70
say "PostgreSQL restart at $(done_count) annotations"
# PostgreSQL comes back on its port (the brokers' --pg names it), which was
# free for a moment: while another process holds it, the start fails and
# `pg_ctl restart` (same options, from postmaster.opts) tries again, for up
# to 30 s.
pg_restart() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$QR_PG_BINDIR/pg_ctl" -D "$QR_STACK_DATA/db" -m fast -w restart
    else
        "$QR_PG_BINDIR/pg_ctl" -D "$QR_STACK_DATA/db" -m fast -w restart
    fi
}
for i in $(seq 1 60); do
    pg_restart >/dev/null 2>&1 && break
    [ "$i" = 60 ] && { say "PostgreSQL did not come back"; exit 1; }
    say "PostgreSQL did not start (port $QR_PG_PORT taken?): retrying"
    sleep 0.5
done
PGRESTARTS=$((PGRESTARTS + 1))
say "PostgreSQL back"
SIM_RC=0
wait "$SIM" || SIM_RC=$?
SIM=""
say "crew finished (exit $SIM_RC): $(done_count) of $REQUIRED annotations"
if [ "$SIM_RC" != 0 ]; then # what the crew said, so a failed run can be read
    say "the crew's last words:"
    tail -n 25 "$W/sim.err" | sed 's/^/  /'
fi
# Let the reapers run past the TTL once more, then look for stale leases.
sleep $(( (TTL_MS + REAPER_MS) / 1000 + 1 ))

# --- checks ---------------------------------------------------------------------
bad_overlap=$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $PROJECT AND NOT t.control AND
    t.required <> (SELECT count(*) FROM annotations a WHERE a.task_id = t.id)")
# Dynamic overlap: no task needs or holds more than overlap_max (always 0
# without it; gold tasks, needing no count, are left out).
over_max=$(sql "SELECT count(*) FROM tasks t JOIN projects p ON p.id = t.project_id
    WHERE t.project_id = $PROJECT AND NOT t.control AND p.overlap_max IS NOT NULL
    AND (t.required > p.overlap_max
    OR (SELECT count(*) FROM annotations a WHERE a.task_id = t.id) > p.overlap_max)")
REQUIRED_END=$(sql "SELECT sum(required) FROM tasks WHERE project_id = $PROJECT AND NOT control")
gold_answers=$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id
    WHERE a.project_id = $PROJECT AND t.control")
dup_pairs=$(sql "SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $PROJECT
    GROUP BY task_id, annotator_id HAVING count(*) > 1) d")
bad_reviews=$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $PROJECT AND
    (t.state = 'complete') <> EXISTS (SELECT 1 FROM reviews r WHERE r.task_id = t.id)")
acked=$(cut -f3 "$W/acks.tsv" | sort -u | wc -l)
cut -f1,3 "$W/acks.tsv" | sort -u | awk -F'\t' '{print $1 "," $2}' >"$W/acks.csv"
missing=$(psql "$PG" -Atq <<SQL
CREATE TEMP TABLE acks (task_id bigint, annotation_id bigint);
\copy acks FROM '$W/acks.csv' WITH (FORMAT csv)
SELECT count(*) FROM acks k LEFT JOIN annotations a ON a.id = k.annotation_id AND a.task_id = k.task_id
 WHERE a.id IS NULL;
SQL
)
now_ms=$(( $(date +%s%N) / 1000000 ))
stale=$(redis-cli -p "$QR_REDIS_PORT" zcount "{p:$PROJECT}:leases" -inf $(( now_ms - TTL_MS - REAPER_MS - 1000 )))
live=$(redis-cli -p "$QR_REDIS_PORT" zcard "{p:$PROJECT}:leases")
completions=$(done_count)
outcomes=$(sql "SELECT string_agg(outcome || '=' || n, ' ') FROM (SELECT outcome, count(*) n FROM leases
    WHERE project_id = $PROJECT GROUP BY outcome ORDER BY outcome) o")
say "completions $completions (required $REQUIRED at import, $REQUIRED_END at the end); gold answers $gold_answers; acknowledged $acked; lease outcomes: $outcomes"
# Both brokers stop cleanly (SIGTERM), and neither logged a sanitizer report
# or a crash (the test build runs with ASan + UBSan).
BROKERS_OK=true
for q in 1 2; do # not our children (started in a subshell): poll, then read the log
    pid=Q$q
    kill -TERM "${!pid}" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "${!pid}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${!pid}" 2>/dev/null || [ "$(tail -n1 "$W/q$q.log" | grep -c 'level=info prog=quorumd msg="stopped"$')" != 1 ]; then
        say "broker $q did not stop cleanly: $(tail -n1 "$W/q$q.log")"
        BROKERS_OK=false
    fi
done
Q1="" Q2=""
if grep -l 'Sanitizer\|runtime error' "$W/q1.log" "$W/q2.log"; then
    grep -h -A20 'Sanitizer\|runtime error' "$W/q1.log" "$W/q2.log" | head -60
    BROKERS_OK=false
fi
ok() { [ "$1" = 0 ] && echo true || echo false; }
EXACT=$(ok "$bad_overlap"); NODUP=$(ok "$dup_pairs"); ACKED=$(ok "$missing"); NOSTALE=$(ok "$stale")
WITHIN=$(ok "$over_max")
REVIEWS=$(ok "$bad_reviews")
say "brokers_clean=$BROKERS_OK exact_overlap=$EXACT ($bad_overlap tasks off) no_duplicate_pairs=$NODUP ($dup_pairs) acknowledged_present=$ACKED ($missing missing of $acked) no_stale_leases=$NOSTALE ($stale stale, $live live) within_overlap_max=$WITHIN ($over_max) reviews_selected=$REVIEWS ($bad_reviews tasks off)"
jq -n --argjson completions "$completions" --argjson required "$REQUIRED" --argjson acked "$acked" \
    --argjson kills "$KILLS" --argjson flushes "$FLUSHES" --argjson pgr "$PGRESTARTS" \
    --argjson exact "$EXACT" --argjson nodup "$NODUP" --argjson ackp "$ACKED" --argjson nostale "$NOSTALE" --argjson brokers "$BROKERS_OK" --argjson reviews "$REVIEWS" \
    --argjson annotators "$ANNOTATORS" --argjson tasks "$TASKS" --argjson simrc "$SIM_RC" \
    --argjson within "$WITHIN" --argjson dynamic "$DYNAMIC" --argjson required_end "$REQUIRED_END" \
    --argjson gold "$GOLD" --argjson gold_answers "$gold_answers" \
    --arg outcomes "$outcomes" --slurpfile sim "$W/sim.json" \
    '{completions: $completions, required: $required, required_end: $required_end,
      dynamic_overlap: $dynamic, acknowledged: $acked, tasks: $tasks,
      annotators: $annotators, brokers: 2, simulate_exit: $simrc, lease_outcomes: $outcomes,
      gold: {tasks: $gold, answers: $gold_answers},
      faults: {broker_kill: $kills, redis_flush: $flushes, postgres_restart: $pgr},
      checks: {exact_overlap: $exact, no_duplicate_pairs: $nodup, acknowledged_present: $ackp,
               no_stale_leases: $nostale, brokers_clean: $brokers, within_overlap_max: $within,
               reviews_selected: $reviews},
      simulate: ($sim[0] // null)}' >"$OUT"
say "wrote $OUT"
[ "$EXACT" = true ] && [ "$WITHIN" = true ] && [ "$NODUP" = true ] && [ "$ACKED" = true ] && [ "$NOSTALE" = true ] && [ "$REVIEWS" = true ] && [ "$SIM_RC" = 0 ] && [ "$BROKERS_OK" = true ]
