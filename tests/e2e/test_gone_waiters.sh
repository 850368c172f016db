#!/usr/bin/env bash
# Long polls whose client left take nothing (issue 11, finding 5). Replays
# the report: two clients sent {"max": 100, "wait_ms": 30000} and
# disconnected; 200 tasks imported then were granted to the gone waiters
# and stayed locked until the TTL. Now a waiter whose connection closed is
# dropped before anything is granted to it: a live client leases all 200
# right after. And a lease whose answer could not be written (the client
# left while Redis granted it) is released at once.
. "$(dirname "$0")/lib.sh"
unset QUORUM_MAX_LEASES_PER_ANNOTATOR

start_broker
CTL="$QR_BIN_DIR/quorumctl"
tok() { # USER ROLE -> a token
    local r
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "{\"user\":\"$1\",\"role\":\"$2\"}")
    [ "${r%% *}" = 201 ] || { echo "token for $1: $r" >&2; return 1; }
    echo "${r#* }" | jq -r .token
}
GONE=$(tok gone annotator)
LIVE=$(tok live annotator)
rcli() { redis-cli -p "$QR_REDIS_PORT" "$@"; }

P=$("$CTL" project create --name gone --labels a,b --lease-ttl-ms 3600000 --max-leases-per-annotator 1000)
# One task, held by the live client: the project is not complete, so the
# long polls below wait.
echo '{"n":0}' | "$CTL" import --project "$P" - >/dev/null
r=$(api POST "/v1/projects/$P/leases" "$LIVE" '{"max":1}')
check "the live client holds the one task" 1 "$(echo "${r#* }" | jq '.leases | length')"
poll() { # TOKEN -> a long poll in the background, its pid in POLL_PID
    curl -sS --cacert "$CA" -X POST -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
        --data-binary '{"max":100,"wait_ms":30000}' "$URL/v1/projects/$P/leases" >/dev/null 2>&1 &
    POLL_PID=$!
}
poll "$GONE"; A=$POLL_PID
poll "$GONE"; B=$POLL_PID
sleep 1 # both parked: the project has no task
kill -0 "$A" "$B" && pass "both long polls wait" || fail "a long poll ended early"
kill -9 "$A" "$B" 2>/dev/null || true
wait "$A" "$B" 2>/dev/null || true
sleep 0.3 # the broker sees the connections close

seq 1 200 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P" - >/dev/null
sleep 0.5 # what the gone waiters would have taken, they would have by now
check "no lease went to the gone waiters" 1 "$(rcli zcard "{p:$P}:leases")"
n=0
for i in 1 2; do
    r=$(api POST "/v1/projects/$P/leases" "$LIVE" '{"max":100}')
    n=$((n + $(echo "${r#* }" | jq '.leases | length')))
done
check "a live client leases all 200 tasks right after" 200 "$n"
check "201 live leases in Redis, all the live client's" "201 201" \
    "$(rcli zcard "{p:$P}:leases") $(rcli hget "{p:$P}:alive" "$(sql "SELECT id FROM users WHERE name = 'live'")")"

# A client that leaves while its grant is in Redis: Redis is paused, the
# request waits on it, the client goes; once Redis answers the leases are
# granted, the answer reaches nobody, and they are given back at once.
P2=$("$CTL" project create --name gone2 --labels a,b --lease-ttl-ms 3600000)
seq 1 5 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P2" - >/dev/null
r=$(api POST "/v1/projects/$P2/leases" "$LIVE" '{"max":1}') # the window is loaded
L=$(echo "${r#* }" | jq -r '.leases[0].lease')
api POST "/v1/projects/$P2/leases/$L/release" "$LIVE" '{}' >/dev/null
rcli client pause 1500 all >/dev/null
curl -sS --cacert "$CA" -X POST -H "Authorization: Bearer $GONE" -H 'Content-Type: application/json' \
    --data-binary '{"max":5}' "$URL/v1/projects/$P2/leases" >/dev/null 2>&1 &
C=$!
sleep 0.7
kill -9 "$C" 2>/dev/null || true
wait "$C" 2>/dev/null || true
sleep 2 # Redis answers at 1.5 s
check "the leases granted to the gone client were released at once" 0 "$(rcli zcard "{p:$P2}:leases")"
check "and logged as released" 5 \
    "$(sql "SELECT count(*) FROM leases l JOIN users u ON u.id = l.annotator_id WHERE l.project_id = $P2 AND u.name = 'gone' AND l.outcome = 'released'")"
r=$(api POST "/v1/projects/$P2/leases" "$LIVE" '{"max":10}')
check "all 5 tasks leasable again" 5 "$(echo "${r#* }" | jq '.leases | length')"

# Long polls wait on their own project's list: work in one project wakes
# its waiters, and none of another project's.
Q1=$("$CTL" project create --name wake1 --labels a,b --lease-ttl-ms 3600000)
Q2=$("$CTL" project create --name wake2 --labels a,b --lease-ttl-ms 3600000)
for q in "$Q1" "$Q2"; do
    echo '{"n":0}' | "$CTL" import --project "$q" - >/dev/null
    r=$(api POST "/v1/projects/$q/leases" "$LIVE" '{"max":1}') # held: the polls below wait
done
HELD2=$(echo "${r#* }" | jq -r '.leases[0].lease')
W1=$(tok waiter1 annotator) W2=$(tok waiter2 annotator) W3=$(tok waiter3 annotator)
wpoll() { # TOKEN PROJECT OUT -> a long poll writing its answer to OUT, pid in POLL_PID
    curl -sS --cacert "$CA" -X POST -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
        --data-binary '{"max":1,"wait_ms":20000}' "$URL/v1/projects/$2/leases" >"$3" 2>&1 &
    POLL_PID=$!
}
answered() { # FILE... -> how many have an answer
    local f n=0
    for f in "$@"; do [ -s "$f" ] && n=$((n + 1)); done
    echo "$n"
}
wpoll "$W1" "$Q1" "$E2E_DIR/w1.json"; PW1=$POLL_PID
wpoll "$W2" "$Q1" "$E2E_DIR/w2.json"; PW2=$POLL_PID
wpoll "$W3" "$Q2" "$E2E_DIR/w3.json"; PW3=$POLL_PID
sleep 1 # all three parked
check "three long polls wait" 0 "$(answered "$E2E_DIR"/w[123].json)"
echo '{"n":1}' | "$CTL" import --project "$Q1" - >/dev/null
for i in $(seq 1 50); do [ "$(answered "$E2E_DIR"/w[12].json)" = 0 ] || break; sleep 0.1; done
sleep 0.3
check "work in wake1: one of its two waiters takes the new task, within 5 s" 1 \
    "$(cat "$E2E_DIR"/w[12].json | jq -s 'map(.leases | length) | add')"
check "the other waits on, and so does wake2's" "1 0" \
    "$(answered "$E2E_DIR"/w[12].json) $(answered "$E2E_DIR/w3.json")"
api POST "/v1/projects/$Q2/leases/$HELD2/release" "$LIVE" '{}' >/dev/null
for i in $(seq 1 50); do [ "$(answered "$E2E_DIR/w3.json")" = 0 ] || break; sleep 0.1; done
check "a release in wake2 wakes wake2's waiter with that task" 1 "$(jq '.leases | length' "$E2E_DIR/w3.json")"
check "and not wake1's other waiter" 1 "$(answered "$E2E_DIR"/w[12].json)"
kill "$PW1" "$PW2" "$PW3" 2>/dev/null || true
wait "$PW1" "$PW2" "$PW3" 2>/dev/null || true

finish
