#!/usr/bin/env bash
# Redis Cluster (issue 19): three primaries and three replicas of the test's
# own (Debian's redis-server, --cluster-enabled, joined with redis-cli
# --cluster create) on loopback ports; two brokers given the nodes
# (--redis-cluster) read the slot map and route each project's keys and
# scripts to the primary of its {p:<id>} slot. 20 projects, spread over the
# primaries, are labeled by a simulated crew (one simulate a project); mid-run
# one primary is killed (SIGKILL) and the cluster promotes its replica
# (cluster-node-timeout 1000 ms); the brokers find the new primary, drop the
# state it may have lost and rebuild it from PostgreSQL, and register every
# project again (the test drops the registry first). Then the chaos
# checks hold for every project: exact overlap, no duplicate pairs, every
# acknowledged annotation present, no stale lease. Bad --redis-cluster input
# is refused with a clear message. (The crews of 3 never skip: two skips of
# one task would leave it an annotator short for its overlap of 2.)
. "$(dirname "$0")/lib.sh"
. "$QR_SOURCE_DIR/tests/e2e/cluster_lib.sh"

TTL_MS=3000
CD=$E2E_DIR/cluster
NPROJ=20

bad() { # bad EXPECTED-MESSAGE FLAGS...: quorumd exits 2 saying so
    local msg=$1 out st=0
    shift
    out=$("$QR_BIN_DIR/quorumd" serve --pg "host=127.0.0.1 port=1" "$@" 2>&1) || st=$?
    if [ "$st" = 2 ] && grepq -F -- "$msg" <<<"$out"; then pass "refused: $*"; else fail "$* (exit $st: $out)"; fi
}
bad "wants HOST:PORT[,HOST:PORT...]" --redis-cluster 127.0.0.1
bad "excludes --redis" --redis-cluster 127.0.0.1:1 --redis 127.0.0.1:2

# --- the cluster --------------------------------------------------------------
cluster_start "$CD" 6 1 20000
echo "# ${SECONDS}s: six nodes started, the cluster made"
# primaries: "port" of each node that is a master with slots
primaries() {
    redis-cli -p "$1" cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9 { split($2, a, "[:@]"); print a[2] }' | sort
}
PRIM=($(primaries "${PORTS[0]}"))
check "three primaries" 3 "${#PRIM[@]}"
echo "# ${SECONDS}s: the cluster is up"

# --- brokers, projects, crews ---------------------------------------------------
E2E_REDIS_FLAGS=(--redis-cluster "127.0.0.1:${PORTS[0]},localhost:${PORTS[1]}")
start_broker --reaper-ms 200
start_second_broker --reaper-ms 200 || { fail "second broker"; finish; }
check "/readyz on a cluster" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/readyz")"
echo "# ${SECONDS}s: the brokers are up"

# owner PROJECT: the port of the primary that holds the project's slot now.
owner() {
    local slot
    slot=$(redis-cli -p "${PORTS[5]}" cluster keyslot "{p:$1}:ready")
    redis-cli -p "${PORTS[5]}" cluster nodes | awk -v s="$slot" '$3 ~ /master/ && $3 !~ /fail/ {
        for (i = 9; i <= NF; i++) {
            n = split($i, r, "-"); lo = r[1] + 0; hi = (n == 2 ? r[2] : r[1]) + 0
            if (s >= lo && s <= hi) { split($2, a, "[:@]"); print a[2]; exit }
        } }'
}
seq 1 12 | awk '{printf "{\"n\":%d,\"true_label\":\"%s\"}\n", $1, substr("abc", $1 % 3 + 1, 1)}' >"$E2E_DIR/tasks.jsonl"
IMPORTS=()
# The projects are made, then filled, side by side (a few seconds less).
for i in $(seq 1 $NPROJ); do
    new_project "{\"name\":\"c$i\",\"labels\":[\"a\",\"b\",\"c\"],\"annotations_per_task\":2,\"lease_ttl_ms\":$TTL_MS}" >"$E2E_DIR/project-$i" &
    IMPORTS+=($!)
done
for i in "${IMPORTS[@]}"; do wait "$i" || fail "a project was not made"; done
PROJECTS=() IMPORTS=()
for i in $(seq 1 $NPROJ); do
    p=$(cat "$E2E_DIR/project-$i")
    curl -fsS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" \
        --data-binary "@$E2E_DIR/tasks.jsonl" -o /dev/null "$URL/v1/projects/$p/tasks" &
    IMPORTS+=($!)
    PROJECTS+=("$p")
done
for i in "${IMPORTS[@]}"; do wait "$i" || fail "an import failed"; done
echo "# ${SECONDS}s: $NPROJ projects made and filled"
REQUIRED=$(sql "SELECT sum(required) FROM tasks")
declare -A OWNERS=()
for p in "${PROJECTS[@]}"; do OWNERS[$(owner "$p")]=1; done
spread=${#OWNERS[@]}
[ "$spread" -ge 2 ] && pass "the $NPROJ projects lie on $spread primaries" || fail "the projects lie on $spread primary"
done_count() { sql "SELECT count(*) FROM annotations"; }

# The primary to kill: the one holding the first project.
VICTIM=$(owner "${PROJECTS[0]}")
for i in 1 2 3 4 5 6; do [ "${PORTS[$((i - 1))]}" = "$VICTIM" ] && VDIR=$CD/n$i; done
SIMS=()
for p in "${PROJECTS[@]}"; do
    "$QR_BIN_DIR/quorum-agent" simulate --project "$p" --annotators 3 --accuracy 0.9 \
        --think-ms 50-150 --seed "$p" --prefetch 1 --release-rate 0.03 \
        --abandon-rate 0.01 --wait-ms 1000 --urls "$URL,$URL2" --token "$ADMIN_TOKEN" --ca "$CA" \
        --ack-log "$E2E_DIR/acks-$p.tsv" --json-summary "$E2E_DIR/sim-$p.json" --max-seconds 50 \
        >"$E2E_DIR/sim-$p.out" 2>"$E2E_DIR/sim-$p.err" &
    SIMS+=($!)
    HELPER_PIDS+=($!)
done
for _ in $(seq 1 100); do
    [ "$(done_count)" -ge $((REQUIRED / 10)) ] && break
    sleep 0.2
done

# --- the failover -------------------------------------------------------------
# As if the node holding the reaper's registry (quorum:projects, one key on
# one node) had lost it: after the failover, the brokers scan every primary
# for the projects it holds and register them again.
check "the registry lists the $NPROJ projects" "$NPROJ" "$(redis-cli -c -p "${PORTS[5]}" scard quorum:projects)"
redis-cli -c -p "${PORTS[5]}" del quorum:projects >/dev/null
KILL_AT=$(date +%s.%N)
kill -KILL "$(cat "$VDIR/redis.pid")"
echo "# ${SECONDS}s: SIGKILL of primary $VICTIM (holding project ${PROJECTS[0]}) at $(done_count) of $REQUIRED annotations"
newowner=""
for _ in $(seq 1 300); do
    newowner=$(owner "${PROJECTS[0]}")
    [ -n "$newowner" ] && [ "$newowner" != "$VICTIM" ] && break
    sleep 0.1
done
[ -n "$newowner" ] && [ "$newowner" != "$VICTIM" ] && pass "the cluster promoted a replica ($newowner)" ||
    fail "no replica promoted"
SIM_FAILS=0
for s in "${SIMS[@]}"; do wait "$s" || SIM_FAILS=$((SIM_FAILS + 1)); done
check "every crew finished" 0 "$SIM_FAILS"
echo "# ${SECONDS}s: the crews are done"
[ "$SIM_FAILS" = 0 ] || tail -n 5 "$E2E_DIR"/sim-*.err | head -40 || true
# (Both brokers may check the new primary at once and both drop: that is
# two FLUSHALLs of its projects, which the rebuild survives.)
n=$(cat "$E2E_DIR/quorumd.log" "$E2E_DIR/quorumd2.log" | grep -c "a cluster primary this deployment has not used before" || true)
[ "$n" -ge 1 ] && pass "a broker found the new primary unchecked and dropped its projects' state ($n)" ||
    fail "no broker dropped the state on the new primary"
floor=$(cat "$E2E_DIR/quorumd.log" "$E2E_DIR/quorumd2.log" |
    sed -n "s/.*project ${PROJECTS[0]}: building its Redis state from PostgreSQL (tokens from \([0-9]*\)).*/\1/p" |
    sort -n | tail -1)
first=$(sql "SELECT extract(epoch FROM min(granted_at)) FROM leases
             WHERE project_id = ${PROJECTS[0]} AND fencing_token >= ${floor:-0} AND granted_at > to_timestamp($KILL_AT)")
if [ -n "$first" ]; then
    echo "# time to recover: $(awk -v a="$first" -v b="$KILL_AT" 'BEGIN { printf "%.2f", a - b }') s (project ${PROJECTS[0]}: from the kill to its first lease from the rebuilt state)"
    pass "project ${PROJECTS[0]} was rebuilt and leased again"
else
    fail "project ${PROJECTS[0]}: no lease from a rebuilt state"
fi

# --- the chaos checks ---------------------------------------------------------
cluster_chaos_checks "${PORTS[5]}" "${PROJECTS[@]}"
check "the registry lists the $NPROJ projects again" "$NPROJ" "$(redis-cli -c -p "${PORTS[5]}" scard quorum:projects)"
echo "# completions $(done_count) of $REQUIRED; lease outcomes: $(sql "SELECT string_agg(outcome || '=' || n, ' ') FROM (SELECT outcome, count(*) n FROM leases GROUP BY outcome ORDER BY outcome) o")"
finish
