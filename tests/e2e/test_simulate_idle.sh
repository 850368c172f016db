#!/usr/bin/env bash
# quorum-agent simulate --idle (issue 18, idle_agents, at a small scale): 100
# connected agents (the ASan build on a shared 2-core machine) on a project of
# 10 tasks with a 10 s lease TTL. 10 agents hold a lease each and heartbeat it
# (every 3.3 s), the other 90 sit in long polls. Checked: every agent connected, the broker holds their connections,
# the leases outlive their TTL (no lease lost, none expired, across the
# restart too), the long polls come back empty; then the broker is stopped
# (SIGTERM) and started again on the same port, and every agent is served
# again (within 30 s); at the end the holders release their leases. And the
# flags: --idle refuses the options that do not apply, --spread-ms needs it.
. "$(dirname "$0")/lib.sh"

AGENT=$QR_BIN_DIR/quorum-agent
N=100

# --- flags ---------------------------------------------------------------------------------------
usage() { # usage ARGS... -> "STATUS first line of stderr"
    local st=0 err
    err=$("$AGENT" simulate --url https://127.0.0.1:1 --token x "$@" 2>&1 >/dev/null) || st=$?
    echo "$st $(echo "$err" | head -n1)"
}
check "--idle --batch: usage error" \
    "2 quorum-agent: simulate: --idle sends no results: --batch does not apply" \
    "$(usage --idle --project 1 --annotators 2 --batch)"
check "--idle --accuracy: usage error" \
    "2 quorum-agent: simulate: --idle sends no results: --accuracy does not apply" \
    "$(usage --idle --project 1 --annotators 2 --accuracy 0.9)"
check "--spread-ms without --idle: usage error" \
    "2 quorum-agent: simulate: --spread-ms needs --idle" \
    "$(usage --project 1 --annotators 2 --accuracy 0.9 --spread-ms 10)"
check "--spread-ms out of range: usage error" \
    "2 quorum-agent: simulate: --spread-ms must be 0-600000, not '-1'" \
    "$(usage --idle --project 1 --annotators 2 --spread-ms -1)"
"$AGENT" simulate --help | grepq -- '--spread-ms N' && pass "--help lists --spread-ms" ||
    fail "--help lists --spread-ms"

# --- the idle crew -------------------------------------------------------------------------------
start_broker --reaper-ms 200
r=$(api POST /v1/projects "$ADMIN_TOKEN" \
    '{"name": "idle", "labels": ["a", "b"], "annotations_per_task": 1, "lease_ttl_ms": 10000}')
check "project with a 10 s lease TTL: 201" 201 "${r%% *}"
P=$(echo "${r#* }" | jq .id)
for i in $(seq 1 10); do echo "{\"text\": \"t$i\"}"; done >"$E2E_DIR/tasks.jsonl"
"$QR_BIN_DIR/quorumctl" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
check "10 tasks imported" 10 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P")"

SUMMARY=$E2E_DIR/idle.json
"$AGENT" simulate --idle --project "$P" --annotators $N --wait-ms 4000 --spread-ms 3000 \
    --duration 120 --token "$ADMIN_TOKEN" --ca "$CA" --json-summary "$SUMMARY" \
    >"$E2E_DIR/sim.out" 2>"$E2E_DIR/sim.err" &
SIM=$!
at_exit "kill $SIM 2>/dev/null"

# wait_line PATTERN SECONDS: until the agent's stderr has PATTERN.
wait_line() {
    local i
    for i in $(seq 1 $(($2 * 10))); do
        grep -q "$1" "$E2E_DIR/sim.err" && return 0
        kill -0 "$SIM" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
wait_line "idle: all $N agents connected" 60 && pass "all $N agents connected" ||
    { fail "all $N agents connected"; tail -n 20 "$E2E_DIR/sim.err"; }

# Past the TTL: the holders' heartbeats keep their leases.
sleep 12
# The crew's connections are libcurl's pool: an agent takes any idle one, so
# the 10 holders between heartbeats may leave a few fewer than N open.
conns=$(curl -fsS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/metrics" |
    awk '$1 == "quorum_http_connections" {print $2}')
[ "${conns:-0}" -ge $((N * 9 / 10)) ] && pass "the broker holds the agents' connections ($conns)" ||
    fail "the broker holds the agents' connections (got ${conns:-none}, want >= $((N * 9 / 10)))"
# ...and no more: the connections that created the users are closed (kept,
# they doubled the broker's connections: 20,000 for 10,000 agents).
[ "${conns:-0}" -le $((N + 10)) ] && pass "no connection left from the users' creation ($conns)" ||
    fail "no connection left from the users' creation (got ${conns:-none}, want <= $((N + 10)))"
check "no lease expired or ended while the holders heartbeat" 0 \
    "$(sql "SELECT count(*) FROM leases WHERE project_id = $P")"
lost_before=$(grep '^\[' "$E2E_DIR/sim.err" | tail -n1 | sed 's/.*lost \([0-9]*\).*/\1/')
check "the agents saw no lease lost before the restart" 0 "$lost_before"

# Restart: SIGTERM, the restart mark (SIGUSR1), the same port again.
kill -TERM "$QUORUMD_PID"
wait "$QUORUMD_PID" || true
QUORUMD_PID=""
kill -USR1 "$SIM"
QD_LISTEN=127.0.0.1:$PORT start_quorumd "$QR_BIN_DIR/quorumd" "$E2E_DIR/quorumd.log" \
    --pg "$E2E_PG" --redis "127.0.0.1:$QR_REDIS_PORT" --cert "$E2E_DIR/tls/server.crt" \
    --key "$E2E_DIR/tls/server.key" --reaper-ms 200 || exit 1
QUORUMD_PID=$QD_PID
wait_line "idle: all $N agents served again" 30 && pass "all $N agents served again after the restart" ||
    { fail "all $N agents served again after the restart"; tail -n 20 "$E2E_DIR/sim.err"; }
sleep 2
kill -TERM "$SIM"
SIM_RC=0
wait "$SIM" || SIM_RC=$?
check "simulate --idle ends with 0 on SIGTERM" 0 "$SIM_RC"
check "no sanitizer report from the agent" 0 "$(grep -c 'Sanitizer\|runtime error' "$E2E_DIR/sim.err" || true)"
sed 's/^/# /' "$E2E_DIR/sim.out"

j() { jq -r "$1" "$SUMMARY"; }
check "summary: mode idle, $N agents, all connected" "idle $N $N" "$(j '"\(.mode) \(.agents) \(.connected)"')"
check "summary: heartbeat every 3333 ms" 3333 "$(j .heartbeat_period_ms)"
# A lease whose heartbeats the restart held back past its TTL (a loaded
# machine) is lost and its task leased by another agent: reported, not failed.
echo "# leases held at most $(j .holding_max), lost $(j .leases_lost) (after the restart)"
[ "$(j .heartbeats)" -ge 30 ] && pass "summary: heartbeats ($(j .heartbeats)): 3 or more per holder" ||
    fail "summary: heartbeats ($(j .heartbeats)): 3 or more per holder"
[ "$(j .long_polls)" -ge 90 ] && pass "summary: long polls ended empty ($(j .long_polls))" ||
    fail "summary: long polls ended empty ($(j .long_polls))"
check "summary: every agent served again after the mark" $N "$(j .restart.served_again)"
[ "$(j '.restart.all_served_again_seconds < 30')" = true ] &&
    pass "summary: all served again within 30 s ($(j .restart.all_served_again_seconds) s)" ||
    fail "summary: all served again within 30 s ($(j .restart.all_served_again_seconds))"
check "the holders released the 10 leases at the end" 10 \
    "$(sql "SELECT count(*) FROM leases WHERE project_id = $P AND outcome = 'released'")"
check "no lease expired but those the agents lost" "$(j .leases_lost)" \
    "$(sql "SELECT count(*) FROM leases WHERE project_id = $P AND outcome = 'expired'")"
finish
