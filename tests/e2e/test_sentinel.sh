#!/usr/bin/env bash
# Redis behind Sentinel (issue 19): a primary, a replica and three sentinels
# of the test's own (Debian's redis-server, `--sentinel` for the sentinels)
# on loopback ports; two brokers find the primary through the sentinels
# (--redis-sentinel, --redis-master). A simulated crew labels a project;
# mid-run the primary is killed (SIGKILL), the sentinels promote the
# replica, the brokers follow, find that the new primary is one they have
# not checked (it may lack acknowledged writes) and rebuild the project's
# Redis state from PostgreSQL as after a FLUSHALL. The crew goes on; the
# chaos checks hold (exact overlap, no duplicate pairs, every acknowledged
# annotation present, no stale lease); the time from the kill to the first
# lease granted after it is printed. Bad --redis-sentinel/--redis-master
# input is refused with a clear message.
. "$(dirname "$0")/lib.sh"

MASTER=qm
TTL_MS=3000
SD=$E2E_DIR/sentinel # the servers' folders

# --- bad input first: refused before anything starts -------------------------
bad() { # bad EXPECTED-MESSAGE FLAGS...: quorumd exits 2 saying so
    local msg=$1 out st=0
    shift
    out=$("$QR_BIN_DIR/quorumd" serve --pg "host=127.0.0.1 port=1" "$@" 2>&1) || st=$?
    if [ "$st" = 2 ] && grepq -F -- "$msg" <<<"$out"; then pass "refused: $*"; else fail "$* (exit $st: $out)"; fi
}
bad "go together" --redis-sentinel 127.0.0.1:1
bad "go together" --redis-master qm
bad "exclude each other" --redis 127.0.0.1:1 --redis-sentinel 127.0.0.1:1 --redis-master qm
bad "wants HOST:PORT[,HOST:PORT...]" --redis-sentinel 127.0.0.1 --redis-master qm
bad "wants HOST:PORT[,HOST:PORT...]" --redis-sentinel 127.0.0.1:1,:5 --redis-master qm
bad "cannot resolve" --redis-sentinel no-such-host.invalid:26379 --redis-master qm
printf 'redis-master = qm\nredis-sentinel = 127.0.0.1\n' >"$E2E_DIR/bad.conf"
bad "bad.conf:2: bad value '127.0.0.1' for redis-sentinel" --config "$E2E_DIR/bad.conf"

# --- the servers --------------------------------------------------------------
# No delay before a full sync (the default waits 5 s for more replicas).
start_redis "$SD/primary" "" --save '' --appendonly no --repl-diskless-sync-delay 0 || exit 1
P1=$RPORT_UP
start_redis "$SD/replica" "" --save '' --appendonly no --repl-diskless-sync-delay 0 --replicaof 127.0.0.1 "$P1" || exit 1
P2=$RPORT_UP
stop_servers() {
    local d p
    for d in primary replica s1 s2 s3; do
        p=$(cat "$SD/$d/redis.pid" 2>/dev/null || true)
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
}
at_exit stop_servers
SPORTS=()
for s in s1 s2 s3; do
    mkdir -p "$SD/$s"
    port=$(free_port)
    cat >"$SD/$s/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
dir $SD/$s
pidfile $SD/$s/redis.pid
logfile $SD/$s/redis.log
daemonize yes
sentinel monitor $MASTER 127.0.0.1 $P1 2
sentinel down-after-milliseconds $MASTER 1000
sentinel failover-timeout $MASTER 4000
sentinel parallel-syncs $MASTER 1
CONF
    redis-server "$SD/$s/sentinel.conf" --sentinel >/dev/null
    SPORTS+=("$port")
done
for port in "${SPORTS[@]}"; do
    for _ in $(seq 1 100); do
        redis-cli -p "$port" sentinel get-master-addr-by-name "$MASTER" 2>/dev/null | grepq "$P1" && break
        sleep 0.1
    done
done
for _ in $(seq 1 100); do
    redis-cli -p "$P2" info replication | grepq 'master_link_status:up' && break
    sleep 0.1
done
check "the replica follows the primary" up \
    "$(redis-cli -p "$P2" info replication | tr -d '\r' | sed -n 's/^master_link_status://p')"
check "the sentinels see the replica" 1 \
    "$(redis-cli -p "${SPORTS[0]}" sentinel replicas "$MASTER" 2>/dev/null | grep -c "^$P2\$" || true)"
SENTINELS="localhost:${SPORTS[0]},127.0.0.1:${SPORTS[1]},127.0.0.1:${SPORTS[2]}"
primary_port() { redis-cli -p "${SPORTS[1]}" sentinel get-master-addr-by-name "$MASTER" | sed -n 2p; }

# --- brokers, project, crew ---------------------------------------------------
E2E_REDIS_FLAGS=(--redis-sentinel "$SENTINELS" --redis-master "$MASTER")
start_broker --reaper-ms 200
start_second_broker --reaper-ms 200 || { fail "second broker"; finish; }
grepq "Sentinel names 127.0.0.1:$P1 the primary" <"$E2E_DIR/quorumd.log" &&
    pass "broker 1 asked the sentinels for the primary" || fail "broker 1: no Sentinel answer in its log"
check "/readyz behind Sentinel" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/readyz")"

TASKS=600
PROJECT=$(new_project "{\"name\":\"sentinel\",\"labels\":[\"a\",\"b\",\"c\"],\"annotations_per_task\":2,\"lease_ttl_ms\":$TTL_MS}")
seq 1 "$TASKS" | awk '{printf "{\"n\":%d,\"true_label\":\"%s\"}\n", $1, substr("abc", $1 % 3 + 1, 1)}' >"$E2E_DIR/tasks.jsonl"
"$QR_BIN_DIR/quorumctl" import --project "$PROJECT" "$E2E_DIR/tasks.jsonl" >/dev/null
REQUIRED=$(sql "SELECT sum(required) FROM tasks WHERE project_id = $PROJECT")
done_count() { sql "SELECT count(*) FROM annotations WHERE project_id = $PROJECT"; }

"$QR_BIN_DIR/quorum-agent" simulate --project "$PROJECT" --annotators 30 --accuracy 0.9 \
    --think-ms 20-60 --seed 19 --prefetch 2 --batch --skip-rate 0.03 --release-rate 0.03 \
    --abandon-rate 0.01 --wait-ms 1000 --urls "$URL,$URL2" --token "$ADMIN_TOKEN" --ca "$CA" \
    --ack-log "$E2E_DIR/acks.tsv" --json-summary "$E2E_DIR/sim.json" --max-seconds 60 \
    >"$E2E_DIR/sim.out" 2>"$E2E_DIR/sim.err" &
SIM=$!
HELPER_PIDS+=("$SIM")
for _ in $(seq 1 300); do
    [ "$(done_count)" -ge $((REQUIRED / 4)) ] && break
    kill -0 "$SIM" 2>/dev/null || break
    sleep 0.1
done

# --- the failover -------------------------------------------------------------
at=$(done_count)
KILL_AT=$(date +%s.%N)
kill -KILL "$(cat "$SD/primary/redis.pid")"
echo "# SIGKILL of the primary (port $P1) at $at of $REQUIRED annotations"
for _ in $(seq 1 300); do [ "$(primary_port)" = "$P2" ] && break; sleep 0.1; done
check "the sentinels promoted the replica" "$P2" "$(primary_port)"
SIM_RC=0
wait "$SIM" || SIM_RC=$?
check "the crew finished" 0 "$SIM_RC"
[ "$SIM_RC" = 0 ] || tail -n 20 "$E2E_DIR/sim.err"
check "one broker found the new primary unchecked and dropped the state to rebuild" 1 \
    "$(cat "$E2E_DIR/quorumd.log" "$E2E_DIR/quorumd2.log" | grep -c "127.0.0.1:$P2 is a primary this deployment has not used before" || true)"
check "both brokers connected to the new primary" "1 1" \
    "$(for l in quorumd quorumd2; do grep -q "connected to 127.0.0.1:$P2 (primary)" "$E2E_DIR/$l.log" && echo 1 || echo 0; done | xargs)"
builds=$(cat "$E2E_DIR/quorumd.log" "$E2E_DIR/quorumd2.log" | grep -c "project $PROJECT: building its Redis state" || true)
[ "$builds" -ge 2 ] && pass "the project's state was built from PostgreSQL again after the failover" ||
    fail "the project's state was built $builds times (wanted the first build and one after the failover)"

# The time to recover: from the kill to the first lease granted from the
# state rebuilt on the new primary (its fencing tokens start at the floor
# the rebuild logged; PostgreSQL's lease log has every lease once it ended).
floor=$(cat "$E2E_DIR/quorumd.log" "$E2E_DIR/quorumd2.log" |
    sed -n "s/.*project $PROJECT: building its Redis state from PostgreSQL (tokens from \([0-9]*\)).*/\1/p" |
    sort -n | tail -1)
first=$(sql "SELECT extract(epoch FROM min(granted_at)) FROM leases
             WHERE project_id = $PROJECT AND fencing_token >= ${floor:-0} AND granted_at > to_timestamp($KILL_AT)")
if [ -n "$first" ]; then
    RECOVER=$(awk -v a="$first" -v b="$KILL_AT" 'BEGIN { printf "%.2f", a - b }')
    echo "# time to recover: $RECOVER s (from the kill to the first lease granted by the new primary)"
    awk -v r="$RECOVER" 'BEGIN { exit !(r > 0 && r <= 20) }' &&
        pass "leases are granted again $RECOVER s after the kill" || fail "recovery took $RECOVER s"
else
    fail "no lease granted from the rebuilt state"
fi

# --- the chaos checks ---------------------------------------------------------
# A lease that expired more than a reaper period ago is stale (the crew's
# abandoned leases expired while it ran).
sleep 1
check "exact overlap: every task holds its required annotations" 0 \
    "$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $PROJECT AND
        t.required <> (SELECT count(*) FROM annotations a WHERE a.task_id = t.id)")"
check "no duplicate (task, annotator) pairs" 0 \
    "$(sql "SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $PROJECT
        GROUP BY task_id, annotator_id HAVING count(*) > 1) d")"
acked=$(cut -f3 "$E2E_DIR/acks.tsv" | sort -u | wc -l)
missing=$(acks_missing "$E2E_DIR/acks.tsv")
check "every acknowledged annotation is present ($acked acknowledged)" 0 "$missing"
[ "$acked" -ge "$REQUIRED" ] && pass "$acked acknowledgements for $REQUIRED required" || fail "only $acked acknowledged"
now_ms=$(($(date +%s%N) / 1000000))
check "no stale lease on the new primary" 0 \
    "$(redis-cli -p "$P2" zcount "{p:$PROJECT}:leases" -inf $((now_ms - TTL_MS - 1200)))"
echo "# completions $(done_count) of $REQUIRED; lease outcomes: $(sql "SELECT string_agg(outcome || '=' || n, ' ') FROM (SELECT outcome, count(*) n FROM leases WHERE project_id = $PROJECT GROUP BY outcome ORDER BY outcome) o")"
finish
