#!/usr/bin/env bash
# Redis Cluster resharding under load (issue 19, point 1: the broker follows
# MOVED and ASK). Three primaries of the test's own (Debian's redis-server,
# --cluster-enabled, joined with redis-cli --cluster create; no replicas:
# test_redis_cluster.sh covers failover) on loopback ports; two brokers
# given the nodes (--redis-cluster). While simulated crews label four
# projects, the slot of the busiest one's {p:<id>} moves from its primary
# to another the standard way: CLUSTER SETSLOT IMPORTING on the target,
# MIGRATING on the source, MIGRATE of its keys eight at a time with a pause
# between batches (the brokers meet ASK, and TRYAGAIN for a script whose
# keys are split between the two nodes), then CLUSTER SETSLOT NODE on every
# primary (the brokers meet MOVED). Every crew finishes without an error;
# the brokers' /metrics count the ASK and MOVED answers they followed
# (quorum_redis_redirects_total{kind="ask|moved"}, each > 0); the project's
# keys all lie on the target; the chaos checks hold for every project:
# exact overlap, no duplicate pairs, every acknowledged annotation present,
# no stale lease.
. "$(dirname "$0")/lib.sh"
. "$QR_SOURCE_DIR/tests/e2e/cluster_lib.sh"

# Longer than the move: a submit that waits out TRYAGAIN answers while the
# slot migrates must not find its lease expired.
TTL_MS=10000
CD=$E2E_DIR/cluster
NPROJ=4

# --- the cluster --------------------------------------------------------------
cluster_start "$CD" 3 0 30000
echo "# ${SECONDS}s: the cluster is up"

# --- brokers, projects, crews ---------------------------------------------------
E2E_REDIS_FLAGS=(--redis-cluster "127.0.0.1:${PORTS[0]}")
start_broker --reaper-ms 200
start_second_broker --reaper-ms 200 || { fail "second broker"; finish; }
echo "# ${SECONDS}s: the brokers are up"

# owner SLOT: the port of the primary that serves SLOT, as node 3 sees it.
owner() {
    redis-cli -p "${PORTS[2]}" cluster nodes | awk -v s="$1" '$3 ~ /master/ {
        for (i = 9; i <= NF; i++) {
            if ($i ~ /^\[/) continue
            n = split($i, r, "-"); lo = r[1] + 0; hi = (n == 2 ? r[2] : r[1]) + 0
            if (s >= lo && s <= hi) { split($2, a, "[:@]"); print a[2]; exit }
        } }'
}
# The busy project (the first) has 60 tasks and a crew of 4; the others 12
# and 3. (The crews never skip: two skips of one task would leave it an
# annotator short for its overlap of 2.)
seq 1 60 | awk '{printf "{\"n\":%d,\"true_label\":\"%s\"}\n", $1, substr("abc", $1 % 3 + 1, 1)}' >"$E2E_DIR/busy.jsonl"
head -n 12 "$E2E_DIR/busy.jsonl" >"$E2E_DIR/tasks.jsonl"
PROJECTS=()
for i in $(seq 1 $NPROJ); do
    p=$(new_project "{\"name\":\"r$i\",\"labels\":[\"a\",\"b\",\"c\"],\"annotations_per_task\":2,\"lease_ttl_ms\":$TTL_MS}")
    f=$E2E_DIR/tasks.jsonl
    [ "$i" = 1 ] && f=$E2E_DIR/busy.jsonl
    curl -fsS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" --data-binary "@$f" \
        -o /dev/null "$URL/v1/projects/$p/tasks" || fail "an import failed"
    PROJECTS+=("$p")
done
BUSY=${PROJECTS[0]}
REQUIRED=$(sql "SELECT sum(required) FROM tasks")
SLOT=$(redis-cli -p "${PORTS[0]}" cluster keyslot "{p:$BUSY}:ready")
SRC=$(owner "$SLOT")
for p in "${PORTS[@]}"; do [ "$p" != "$SRC" ] && DST=$p && break; done
echo "# ${SECONDS}s: $NPROJ projects; project $BUSY's slot $SLOT lies on $SRC, moves to $DST"

SIMS=()
for p in "${PROJECTS[@]}"; do
    n=3
    [ "$p" = "$BUSY" ] && n=4
    "$QR_BIN_DIR/quorum-agent" simulate --project "$p" --annotators "$n" --accuracy 0.9 \
        --think-ms 50-150 --seed "$p" --prefetch 1 --wait-ms 1000 --urls "$URL,$URL2" \
        --token "$ADMIN_TOKEN" --ca "$CA" --ack-log "$E2E_DIR/acks-$p.tsv" \
        --json-summary "$E2E_DIR/sim-$p.json" --max-seconds 40 \
        >"$E2E_DIR/sim-$p.out" 2>"$E2E_DIR/sim-$p.err" &
    SIMS+=($!)
    HELPER_PIDS+=($!)
done
busy_done() { sql "SELECT count(*) FROM annotations WHERE project_id = $BUSY"; }
for _ in $(seq 1 100); do
    [ "$(busy_done)" -ge 15 ] && break
    sleep 0.1
done

# --- the resharding -------------------------------------------------------------
SRC_ID=$(redis-cli -p "$SRC" cluster myid)
DST_ID=$(redis-cli -p "$DST" cluster myid)
nkeys=$(redis-cli -p "$SRC" cluster countkeysinslot "$SLOT")
echo "# ${SECONDS}s: moving slot $SLOT ($nkeys keys) at $(busy_done) annotations of project $BUSY"
check "IMPORTING on the target" OK "$(redis-cli -p "$DST" cluster setslot "$SLOT" importing "$SRC_ID")"
check "MIGRATING on the source" OK "$(redis-cli -p "$SRC" cluster setslot "$SLOT" migrating "$DST_ID")"
batches=0 bad=0
for _ in $(seq 1 40); do
    # (redis-cli prints an empty line for an empty list)
    mapfile -t keys < <(redis-cli -p "$SRC" cluster getkeysinslot "$SLOT" 8 | grep -v '^$')
    [ "${#keys[@]}" = 0 ] && break
    r=$(redis-cli -p "$SRC" migrate 127.0.0.1 "$DST" "" 0 5000 keys "${keys[@]}")
    case $r in OK | NOKEY) ;; *) bad=$((bad + 1)) && echo "# MIGRATE: $r" ;; esac
    batches=$((batches + 1))
    # The brokers meet ASK and TRYAGAIN meanwhile. The slot stays split
    # for the whole move, and a request retries TRYAGAIN for at most the
    # broker's 5 s command timeout: batches of 8, near redis-cli's own
    # reshard (10), keep the move well inside it on a loaded machine
    # (batches of 2: one run took 12 s and failed 7 requests with 503).
    sleep 0.15
done
check "every MIGRATE answered OK" 0 "$bad"
sleep 0.3 # all keys on the target, the slot not yet moved: ASK for every command
left=$(redis-cli -p "$SRC" cluster countkeysinslot "$SLOT")
check "no key of the slot left on the source after $batches batches" 0 "$left"
for p in "$DST" "$SRC" "${PORTS[@]}"; do
    redis-cli -p "$p" cluster setslot "$SLOT" node "$DST_ID" >/dev/null
done
echo "# ${SECONDS}s: slot $SLOT given to $DST at $(busy_done) annotations of project $BUSY"
for _ in $(seq 1 50); do [ "$(owner "$SLOT")" = "$DST" ] && break; sleep 0.1; done
check "the cluster says the target serves the slot" "$DST" "$(owner "$SLOT")"

SIM_FAILS=0
for s in "${SIMS[@]}"; do wait "$s" || SIM_FAILS=$((SIM_FAILS + 1)); done
check "every crew finished" 0 "$SIM_FAILS"
[ "$SIM_FAILS" = 0 ] || tail -n 5 "$E2E_DIR"/sim-*.err | head -40 || true
errs=$(cat "$E2E_DIR"/sim-*.json | jq -s '[.[].errors | to_entries[].value] | add // 0')
check "no crew met an error" 0 "$errs"
[ "$errs" = 0 ] || jq -c .errors "$E2E_DIR"/sim-*.json
echo "# ${SECONDS}s: the crews are done"

# --- what the brokers followed ----------------------------------------------------
# metric NAME_AND_LABELS: its sum over both brokers' /metrics.
metric() {
    local u total=0 v
    for u in "$URL" "$URL2"; do
        v=$(curl -fsS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$u/metrics" |
            awk -v m="$1" '$1 == m { print $2 }')
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
ask=$(metric 'quorum_redis_redirects_total{kind="ask"}')
moved=$(metric 'quorum_redis_redirects_total{kind="moved"}')
tryagain=$(metric 'quorum_redis_tryagain_total')
echo "# redirects followed by the two brokers: ask=$ask moved=$moved; TRYAGAIN retried: $tryagain"
[ "$ask" -gt 0 ] && pass "the brokers followed ASK ($ask)" || fail "no ASK followed"
[ "$moved" -gt 0 ] && pass "the brokers followed MOVED ($moved)" || fail "no MOVED followed"
on_dst=$(redis-cli -p "$DST" cluster countkeysinslot "$SLOT")
[ "$on_dst" -gt 0 ] && pass "project $BUSY's keys lie on the target ($on_dst)" || fail "no key on the target"
check "none on the source" 0 "$(redis-cli -p "$SRC" cluster countkeysinslot "$SLOT")"

# --- the chaos checks ---------------------------------------------------------
cluster_chaos_checks "${PORTS[2]}" "${PROJECTS[@]}"
echo "# completions $(sql "SELECT count(*) FROM annotations") of $REQUIRED; lease outcomes: $(sql "SELECT string_agg(outcome || '=' || n, ' ') FROM (SELECT outcome, count(*) n FROM leases GROUP BY outcome ORDER BY outcome) o")"
finish
