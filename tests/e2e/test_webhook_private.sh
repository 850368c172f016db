#!/usr/bin/env bash
# Webhooks never reach into the broker's own networks unless it is told they
# may (quorumd --webhook-allow-private): a manager could otherwise make the
# broker POST to its loopback services, the cloud metadata address or the
# private network behind it. A URL naming such an address (or localhost) is
# refused when the webhook is made (422, nothing made); a name that
# resolves there is refused on connection, with the reason in the delivery
# log, and the receiver listening there gets nothing. A broker started with
# the flag delivers to the same receiver.
. "$(dirname "$0")/lib.sh"

openssl rand -hex 32 >"$E2E_DIR/webhook.key"
start_broker --webhook-key-file "$E2E_DIR/webhook.key" --webhook-retry-ms 300
RPORT=$(free_port)
RLOG="$E2E_DIR/received.jsonl"
webhook_receiver "$RPORT" "$RLOG"
received() { grep -c '"event_id": *"[^"]' "$RLOG" 2>/dev/null || true; }
before=$(received)

P=$(new_project '{"name":"private","labels":["a","b"],"annotations_per_task":1}')
refused() { # URL KIND
    local r
    r=$(api POST "/v1/projects/$P/webhooks" "$ADMIN_TOKEN" "{\"url\":\"$1\"}")
    check "$1: 422" 422 "${r%% *}"
    case "${r#* }" in
    *"url points into a private network: "*"$2"*"--webhook-allow-private"*) pass "$1: says it is $2" ;;
    *) fail "$1: '${r#* }' does not say it is $2" ;;
    esac
}
refused "http://127.0.0.1:$RPORT/hook" "a loopback address"
refused "http://169.254.169.254/latest/meta-data/" "a link-local (169.254/16) address"
refused "http://10.0.0.5/hook" "a private (10/8) address"
refused "http://192.168.1.20:8080/" "a private (192.168/16) address"
refused "http://[::1]:$RPORT/" "a loopback address"
refused "http://[::ffff:127.0.0.1]:$RPORT/" "a loopback address"
refused "http://localhost:$RPORT/" "a loopback name"
check "none of them made a webhook" 0 "$(sql "SELECT count(*) FROM webhooks")"

# A name that resolves into a private network passes at creation (the
# broker resolves no name on its event loop) and is refused on connection.
NAME=$(hostname)
ADDR=$(getent ahostsv4 "$NAME" | awk 'NR == 1 {print $1}')
case "$ADDR" in
127.* | 10.* | 192.168.* | 172.1[6-9].* | 172.2[0-9].* | 172.3[01].*) ;;
*) NAME="" ;;
esac
if [ -z "$NAME" ]; then
    fail "this machine's host name does not resolve to a private IPv4 address; nothing to check"
    finish
fi
echo "# $NAME resolves to $ADDR"
r=$(api POST "/v1/projects/$P/webhooks" "$ADMIN_TOKEN" "{\"url\":\"http://$NAME:$RPORT/hook\"}")
check "http://$NAME:$RPORT/ (a name): made, 201" 201 "${r%% *}"
W=$(echo "${r#* }" | jq .id)
# label_one N: imports a task and labels it through the API (events).
TOK=$(new_annotator ann)
label_one() {
    echo "{\"text\":\"x$1\"}" | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
    local r L
    r=$(api POST "/v1/projects/$P/leases" "$TOK" '{}')
    L=$(echo "${r#* }" | jq -r '.leases[0].lease')
    r=$(api POST "/v1/projects/$P/leases/$L/submit" "$TOK" '{"label":"a"}')
    check "task $1 labeled: 201" 201 "${r%% *}"
}
label_one 1
err=$(wait_sql t "SELECT bool_or(last_error LIKE 'refused: $ADDR is a loopback address%' OR last_error LIKE 'refused: $ADDR is a private%') AND min(attempts) >= 2 FROM webhook_deliveries WHERE webhook_id = $W")
check "every delivery is refused on connection, and retried (twice or more)" t "$err"
sql "SELECT event_id, state, attempts, last_error FROM webhook_deliveries WHERE webhook_id = $W LIMIT 3" | sed 's/^/    /'
r=$(api GET "/v1/projects/$P/webhooks/$W/deliveries")
case "${r#* }" in
*"refused: $ADDR is a "*"(quorumd --webhook-allow-private allows it)"*) pass "the delivery log says why, through the API" ;;
*) fail "the delivery log does not say why: ${r#* }" ;;
esac
check "the receiver got nothing" "$before" "$(received)"

# A broker allowed to: it makes a webhook to the same receiver and delivers.
stop_broker
start_second_broker --webhook-key-file "$E2E_DIR/webhook.key" --webhook-retry-ms 300 \
    --webhook-allow-private
API_URL=$URL2
QUORUM_URL=$URL2
r=$(api POST "/v1/projects/$P/webhooks" "$ADMIN_TOKEN" "{\"url\":\"http://127.0.0.1:$RPORT/hook\"}")
check "with --webhook-allow-private: http://127.0.0.1:$RPORT/ made, 201" 201 "${r%% *}"
label_one 2
got=""
for i in $(seq 1 100); do
    got=$(received)
    [ "$got" -gt "$before" ] && break
    sleep 0.1
done
[ "$got" -gt "$before" ] && pass "and the receiver gets the events ($((got - before)))" ||
    fail "the receiver got nothing with --webhook-allow-private"
kill -TERM "$QUORUMD2_PID" 2>/dev/null || true
wait "$QUORUMD2_PID" 2>/dev/null || true
QUORUMD2_PID=""
grep -q 'Sanitizer\|runtime error' "$E2E_DIR/quorumd2.log" && fail "sanitizer report in the second broker's log" ||
    pass "the second broker's log has no sanitizer report"
finish
