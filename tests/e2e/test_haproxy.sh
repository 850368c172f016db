#!/usr/bin/env bash
# A rolling restart behind HAProxy loses no request (issue 19): two quorumd
# on one PostgreSQL and one Redis behind HAProxy (deploy/haproxy/quorum.cfg,
# with this test's ports and CA), 200 simulated agents and one
# `quorum-agent exec` (4 workers) through HAProxy;
# each broker in turn gets SIGTERM while the agents run, drains, and is
# started again (the next one only once HAProxy has it UP again). Then:
# no failed request in the crew's summary (no error of any kind, no
# retry) nor in exec's log, and the chaos checks: no task over its overlap and every
# completed task exactly at it, no (task, annotator) pair twice, every
# acknowledged annotation stored, no lease left past its TTL. Prints the
# time each drain took.
. "$(dirname "$0")/lib.sh"
command -v haproxy >/dev/null || { echo "not ok - haproxy is not installed (deploy/dev.sh deps)"; exit 1; }

TTL_MS=20000
REAPER_MS=200
DRAIN_MS=10000
P1=$(free_port)
P2=$(free_port)
while [ "$P2" = "$P1" ]; do P2=$(free_port); done
QD_LISTEN="127.0.0.1:$P1" start_broker --reaper-ms "$REAPER_MS" --drain-ms "$DRAIN_MS"
QD_LISTEN="127.0.0.1:$P2" start_second_broker --reaper-ms "$REAPER_MS" --drain-ms "$DRAIN_MS"
BROKER_FLAGS=(--pg "$E2E_PG" --redis "127.0.0.1:$QR_REDIS_PORT" --cert "$E2E_DIR/tls/server.crt"
    --key "$E2E_DIR/tls/server.key" --reaper-ms "$REAPER_MS" --drain-ms "$DRAIN_MS")

# --- HAProxy: the shipped configuration, with this test's addresses and CA ---------------------
HP=$(free_port)
CFG="$E2E_DIR/haproxy.cfg"
sed -e "s|^    bind :8443$|    bind 127.0.0.1:$HP|" \
    -e "s|^    server quorumd1 .*|    server quorumd1 127.0.0.1:$P1|" \
    -e "s|^    server quorumd2 .*|    server quorumd2 127.0.0.1:$P2|" \
    -e "s|ca-file /etc/quorum/ca.crt|ca-file $CA|" \
    "$QR_SOURCE_DIR/deploy/haproxy/quorum.cfg" >"$CFG"
check "the test's copy differs from deploy/haproxy/quorum.cfg only in addresses and CA" 4 \
    "$(diff "$QR_SOURCE_DIR/deploy/haproxy/quorum.cfg" "$CFG" | grep -c '^>')"
haproxy -c -f "$CFG" >"$E2E_DIR/haproxy-check.log" 2>&1 && pass "haproxy -c accepts it" ||
    { fail "haproxy -c refuses it"; cat "$E2E_DIR/haproxy-check.log"; }
haproxy -db -f "$CFG" >"$E2E_DIR/haproxy.log" 2>&1 &
HAPROXY_PID=$!
HELPER_PIDS+=("$HAPROXY_PID")
HURL="https://127.0.0.1:$HP"

# up_count NAME: how many times HAProxy has logged NAME going UP.
up_count() { grep -c "^Server quorumd/$1 is UP" "$E2E_DIR/haproxy.log" || true; }
down_count() { grep -c "^Server quorumd/$1 is DOWN" "$E2E_DIR/haproxy.log" || true; }
# wait_up NAME N: until HAProxy has NAME UP for the Nth time (15 s).
wait_up() {
    local i
    for i in $(seq 1 150); do [ "$(up_count "$1")" -ge "$2" ] && return 0; sleep 0.1; done
    return 1
}
for i in $(seq 1 50); do curl -fsS -o /dev/null --cacert "$CA" "$HURL/readyz" 2>/dev/null && break; sleep 0.1; done
check "/readyz through HAProxy" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$HURL/readyz")"

# --- the project and the crew --------------------------------------------------------------------
TASKS=10000
P=$(new_project "{\"name\":\"rolling\",\"labels\":[\"a\",\"b\",\"c\"],\"annotations_per_task\":1,
    \"overlap_fraction\":0.1,\"overlap_annotations\":3,\"lease_ttl_ms\":$TTL_MS}")
seq 1 "$TASKS" | awk '{printf "{\"n\":%d,\"true_label\":\"%s\"}\n", $1, substr("abc", $1 % 3 + 1, 1)}' |
    "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
"$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 200 --accuracy 0.9 \
    --think-ms 100-300 --seed 19 --prefetch 2 --batch --skip-rate 0.02 --release-rate 0.02 \
    --abandon-rate 0.01 --wait-ms 1000 --url "$HURL" --token "$ADMIN_TOKEN" --ca "$CA" \
    --duration 16 --max-seconds 60 --connect-first --ack-log "$E2E_DIR/acks.tsv" \
    --json-summary "$E2E_DIR/sim.json" >"$E2E_DIR/sim.out" 2>"$E2E_DIR/sim.err" &
SIM=$!
at_exit 'kill $SIM 2>/dev/null'
# And one quorum-agent exec (its own libcurl handle a worker, not simulate's
# shared pool), four workers, through the same HAProxy.
EXEC_TOKEN=$(new_annotator exec-bot)
printf '#!/bin/sh\ncat >/dev/null\nsleep 0.05\necho %s\n' "'{\"label\":\"a\"}'" >"$E2E_DIR/cmd.sh"
chmod +x "$E2E_DIR/cmd.sh"
QUORUM_URL=$HURL QUORUM_TOKEN=$EXEC_TOKEN "$QR_BIN_DIR/quorum-agent" exec --project "$P" \
    --concurrency 4 --spool "$E2E_DIR/exec.spool" -- "$E2E_DIR/cmd.sh" 2>"$E2E_DIR/exec.err" &
EXEC=$!
at_exit 'kill $EXEC 2>/dev/null'
done_count() { sql "SELECT count(*) FROM annotations WHERE project_id = $P"; }
# The crew at work first: 300 annotations (at most 10 s).
for _ in $(seq 1 100); do [ "$(done_count)" -ge 300 ] && break; sleep 0.1; done

# roll NAME PIDVAR PORT LOG: SIGTERM, wait for the exit (timed), start again
# on the same port, wait until HAProxy has it UP again.
roll() {
    local name=$1 pidvar=$2 port=$3 log=$4 pid st=0 t0 ms ups
    pid=${!pidvar}
    ups=$(up_count "$name")
    AT_LAST_ROLL=$(done_count)
    echo "# SIGTERM $name at $AT_LAST_ROLL annotations"
    t0=$(date +%s%N)
    kill -TERM "$pid"
    wait "$pid" || st=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "# $name drained and exited (status $st) in $ms ms: $(grep -o 'drained in [0-9]* ms[^"]*\|drain deadline[^"]*' "$log" | tail -n1)"
    check "$name exits 0 after its drain" 0 "$st"
    if [ "$ms" -lt "$DRAIN_MS" ]; then pass "$name drained within --drain-ms ($ms ms)"; else fail "$name took $ms ms"; fi
    QD_LISTEN="127.0.0.1:$port" start_quorumd "$QR_BIN_DIR/quorumd" "$log" "${BROKER_FLAGS[@]}" ||
        { fail "$name does not start again"; return 1; }
    printf -v "$pidvar" '%s' "$QD_PID"
    if wait_up "$name" $((ups + 1)); then pass "HAProxy has $name UP again"; else fail "HAProxy never had $name UP again"; fi
}
roll quorumd1 QUORUMD_PID "$P1" "$E2E_DIR/quorumd.log"
roll quorumd2 QUORUMD2_PID "$P2" "$E2E_DIR/quorumd2.log"
check "HAProxy took each broker out while it drained" "1 1" "$(down_count quorumd1) $(down_count quorumd2)"

SIM_RC=0
wait "$SIM" || SIM_RC=$?
check "the crew ran to its end (exit 0)" 0 "$SIM_RC"
EXEC_RC=0
kill -TERM "$EXEC"
wait "$EXEC" || EXEC_RC=$?
check "quorum-agent exec stops cleanly (exit 0)" 0 "$EXEC_RC"
sed 's/^/# exec: /' "$E2E_DIR/exec.err" | tail -n 3
check "quorum-agent exec saw no failed request (no retry in its log)" 0 \
    "$(grep -c 'retrying\|cannot reach\|unavailable' "$E2E_DIR/exec.err" || true)"
exec_submitted=$(sed -n 's/.*exec: \([0-9]*\) submitted.*/\1/p' "$E2E_DIR/exec.err")
if [ "${exec_submitted:-0}" -gt 20 ]; then pass "exec labeled through the restarts ($exec_submitted)"; else fail "exec submitted '$exec_submitted'"; fi
tail -n 4 "$E2E_DIR/sim.out" | sed 's/^/# /'
sleep 1 # a few reaper periods: a lease expired before now is gone by then

# --- what the agents saw ---------------------------------------------------------------------
check "no failed request in the agents' summary" "{}" "$(jq -c .errors "$E2E_DIR/sim.json")"
check "no request retried" 0 "$(jq '[.per_annotator[].retries] | add' "$E2E_DIR/sim.json")"
echo "# requests sent again at once on a new connection (their kept-alive one closed first): $(jq .reconnects "$E2E_DIR/sim.json")"
grep -v '^$' "$E2E_DIR/sim.err" | head -5 | sed 's/^/# agents: /' || true
submitted=$(jq .total_submitted "$E2E_DIR/sim.json")
if [ "$(done_count)" -gt "$AT_LAST_ROLL" ]; then pass "the crew worked through the restarts ($submitted annotations, $AT_LAST_ROLL at the second SIGTERM)"; else fail "no annotation after the second SIGTERM ($AT_LAST_ROLL)"; fi

# --- the chaos checks ----------------------------------------------------------------------------
check "no task over its overlap" 0 "$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $P AND
    (SELECT count(*) FROM annotations a WHERE a.task_id = t.id) > t.required")"
check "every completed task exactly at its overlap" 0 "$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $P
    AND t.state = 'complete' AND (SELECT count(*) FROM annotations a WHERE a.task_id = t.id) <> t.required")"
check "no (task, annotator) pair twice" 0 "$(sql "SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $P
    GROUP BY task_id, annotator_id HAVING count(*) > 1) d")"
missing=$(acks_missing "$E2E_DIR/acks.tsv")
acked=$(wc -l <"$E2E_DIR/acks.csv")
check "every acknowledged annotation stored ($acked acknowledged)" 0 "$missing"
now_ms=$(( $(date +%s%N) / 1000000 ))
check "no lease left past its expiry (reaper every $REAPER_MS ms)" 0 \
    "$(redis-cli -p "$QR_REDIS_PORT" zcount "{p:$P}:leases" -inf $(( now_ms - REAPER_MS - 2000 )))"
check "stored annotations are the crew's acknowledged ones and exec's" "$((acked + ${exec_submitted:-0}))" "$(done_count)"
# Both stop at once (each drains on its own); then their logs are read.
kill -TERM "$QUORUMD_PID" "$QUORUMD2_PID"
st1=0 st2=0
wait "$QUORUMD_PID" || st1=$?
wait "$QUORUMD2_PID" || st2=$?
QUORUMD_PID="" QUORUMD2_PID=""
check "both brokers stop cleanly at the end" "0 0" "$st1 $st2"
if grep -q 'Sanitizer\|runtime error' "$E2E_DIR/quorumd.log" "$E2E_DIR/quorumd2.log"; then
    fail "a sanitizer report in a broker's log"
else
    pass "no sanitizer report"
fi
finish
