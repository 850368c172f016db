#!/usr/bin/env bash
# SIGTERM drains quorumd (issue 19): /readyz answers 503 at once; a parked
# long poll is answered (200, no lease, Connection: close), not dropped; an
# idle kept-alive connection is closed; new connections are accepted for the
# listening window (a health checker asked /readyz), then refused; the
# broker exits 0 well within --drain-ms, and the lease another annotator
# holds is still live in Redis (nothing is released by a drain). Then: a
# drain waiting for a client half-way through a request stops at once on a
# second SIGTERM; without a health checker the listener closes at once;
# SIGINT alone stops at once, no drain; and bad --drain-ms /
# QUORUM_DRAIN_MS values are refused.
. "$(dirname "$0")/lib.sh"
PROBE="$QR_SOURCE_DIR/tests/e2e/drain_probe.py"

# --- bad values: a clear error, status 2, nothing started ------------------------------------
for bad in -1 abc 3600001; do
    st=0
    "$QR_BIN_DIR/quorumd" serve --drain-ms "$bad" --cert x --key y 2>"$E2E_DIR/bad.err" || st=$?
    check "--drain-ms $bad: status 2 naming the flag" "2 1" "$st $(grep -c -- "--drain-ms" "$E2E_DIR/bad.err")"
done
st=0
QUORUM_DRAIN_MS=soon "$QR_BIN_DIR/quorumd" serve --cert x --key y 2>"$E2E_DIR/bad.err" || st=$?
check "QUORUM_DRAIN_MS=soon: status 2 naming the variable" "2 1" "$st $(grep -c QUORUM_DRAIN_MS "$E2E_DIR/bad.err")"

start_broker --drain-ms 6000
P=$(new_project '{"name":"drain","labels":["a","b"],"annotations_per_task":1,"lease_ttl_ms":60000}')
echo '{"n":1}' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
A1=$(new_annotator a1)
A2=$(new_annotator a2)
r=$(api POST "/v1/projects/$P/leases" "$A1" '{"max":1,"wait_ms":0}')
check "a1 holds the only task" 1 "$(echo "${r#* }" | jq '.leases | length')"

# --- the drain as clients see it -------------------------------------------------------------
t0=$(date +%s%N)
python3 "$PROBE" drain "$PORT" "$CA" "$QUORUMD_PID" "$P" "$A2" >"$E2E_DIR/probe.out" 2>&1 || true
cat "$E2E_DIR/probe.out"
val() { sed -n "s/^$1=//p" "$E2E_DIR/probe.out"; }
check "before: /readyz 200" 200 "$(val readyz_before)"
check "the long poll is answered, not dropped" 200 "$(val poll_status)"
check "with no lease, as its timeout would" "[]" "$(val poll_leases)"
check "and Connection: close" close "$(val poll_connection)"
check "the connection closes after that answer" 1 "$(val poll_closed_after)"
pms=$(val poll_ms)
if [ -n "$pms" ] && [ "$pms" -lt 1000 ]; then pass "answered at once ($pms ms)"; else fail "the long poll took '$pms' ms"; fi
check "an idle kept-alive connection is closed" 1 "$(val idle_closed)"
check "during the drain: /readyz 503 draining, Connection: close" "503 draining=true connection=close" "$(val readyz_during)"
check "after the listening window: new connections refused" 1 "$(val refused_after_window)"
st=0
wait "$QUORUMD_PID" || st=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
QUORUMD_PID=""
check "quorumd exits 0 after the drain" 0 "$st"
if [ "$ms" -lt 6000 ]; then pass "within --drain-ms 6000 ($ms ms from SIGTERM to exit)"; else fail "took $ms ms"; fi
grep 'drain' "$E2E_DIR/quorumd.log" | sed 's/^/  log: /'
check "the log says it drained" 1 "$(grep -c 'drained in [0-9]* ms' "$E2E_DIR/quorumd.log")"
if grep -q 'Sanitizer\|runtime error' "$E2E_DIR/quorumd.log"; then fail "sanitizer report"; else pass "no sanitizer report"; fi
check "a1's lease is still live in Redis" 1 "$(redis-cli -p "$QR_REDIS_PORT" zcard "{p:$P}:leases")"
check "and not released in PostgreSQL" 0 "$(sql "SELECT count(*) FROM leases WHERE project_id = $P AND outcome = 'released'")"

# --- a client the drain waits for; a second SIGTERM ends the wait -----------------------------
# hold_client PORT: a connection half-way through a request head, kept until fd 7 closes.
hold_client() {
    : >"$E2E_DIR/hold.out"
    exec 7> >(exec python3 "$PROBE" hold "$1" "$CA" >"$E2E_DIR/hold.out" 2>&1)
    for _ in $(seq 1 50); do grep -q held "$E2E_DIR/hold.out" 2>/dev/null && return 0; sleep 0.1; done
    fail "the held client did not connect"
}
# stop_now SIGNAL WHAT: SIGNAL to the second broker, which must exit 0 at once.
stop_now() {
    local t0 st=0 ms
    t0=$(date +%s%N)
    kill "-$1" "$QUORUMD2_PID"
    wait "$QUORUMD2_PID" || st=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    QUORUMD2_PID=""
    exec 7>&-
    check "$2: stopped at once, status 0" 0 "$st"
    if [ "$ms" -lt 3000 ]; then pass "$2: in $ms ms"; else fail "$2 took $ms ms"; fi
    if grep -q 'Sanitizer\|runtime error' "$E2E_DIR/quorumd2.log"; then fail "$2: sanitizer report"; else pass "$2: no sanitizer report"; fi
}
start_second_broker --drain-ms 60000
hold_client "${URL2##*:}"
kill -TERM "$QUORUMD2_PID"
sleep 1
check "no health checker asked /readyz: the listener closes at once" 000 \
    "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL2/healthz" || true)"
if kill -0 "$QUORUMD2_PID" 2>/dev/null; then pass "the drain waits for a request half read"; else fail "the broker left a request half read"; fi
stop_now TERM "a second SIGTERM during the drain"

# --- SIGINT alone stops at once, as it always did, whoever is connected ----------------------
start_second_broker --drain-ms 60000
hold_client "${URL2##*:}"
stop_now INT "SIGINT with a request half read"
check "no drain on SIGINT" 0 "$(grep -c 'draining' "$E2E_DIR/quorumd2.log")"

finish
