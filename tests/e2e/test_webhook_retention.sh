#!/usr/bin/env bash
# Webhook events do not pile up forever: quorumd --webhook-keep-days D
# deletes an event, with its delivery log, D days after it was made once
# none of its deliveries is still pending; an event a receiver has not taken
# yet is kept however old (at least once comes first). Here D is 0.00004
# days (3.5 s), so the broker looks for old events every 1.7 s.
. "$(dirname "$0")/lib.sh"

openssl rand -hex 32 >"$E2E_DIR/webhook.key"
start_broker --webhook-key-file "$E2E_DIR/webhook.key" --webhook-retry-ms 300 \
    --webhook-allow-private --webhook-keep-days 0.00004
RPORT=$(free_port)
DEAD=$(free_port)
webhook_receiver "$RPORT" "$E2E_DIR/received.jsonl"

TOK=$(new_annotator ann)
# label PROJECT N: imports N tasks into PROJECT and labels them through the API.
label() {
    local i r L
    for i in $(seq 1 "$2"); do echo "{\"text\":\"t$i\"}"; done |
        "$QR_BIN_DIR/quorumctl" import --project "$1" - >/dev/null
    for i in $(seq 1 "$2"); do
        r=$(api POST "/v1/projects/$1/leases" "$TOK" '{}')
        L=$(echo "${r#* }" | jq -r '.leases[0].lease')
        r=$(api POST "/v1/projects/$1/leases/$L/submit" "$TOK" '{"label":"a"}')
        check "project $1: task $i labeled" 201 "${r%% *}"
    done
}
P1=$(new_project '{"name":"live","labels":["a","b"],"annotations_per_task":1}')
P2=$(new_project '{"name":"dead","labels":["a","b"],"annotations_per_task":1}')
r=$(api POST "/v1/projects/$P1/webhooks" "$ADMIN_TOKEN" "{\"url\":\"http://127.0.0.1:$RPORT/hook\",\"events\":[\"annotation.created\"]}")
check "a webhook to a live receiver" 201 "${r%% *}"
W1=$(echo "${r#* }" | jq .id)
r=$(api POST "/v1/projects/$P2/webhooks" "$ADMIN_TOKEN" "{\"url\":\"http://127.0.0.1:$DEAD/hook\",\"events\":[\"annotation.created\"]}")
check "a webhook to a port where nothing listens" 201 "${r%% *}"
W2=$(echo "${r#* }" | jq .id)
label "$P1" 3
label "$P2" 1
events() { sql "SELECT count(*) FROM webhook_events WHERE project_id = $1"; }
check "3 events delivered to the live receiver" 3 \
    "$(wait_sql 3 "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $W1 AND state = 'delivered'")"
check "the dead receiver's event is pending, retried" t \
    "$(wait_sql t "SELECT state = 'pending' AND attempts >= 2 FROM webhook_deliveries WHERE webhook_id = $W2")"

# Past 3.5 s and the next look: the delivered events go, with their log.
gone=""
for i in $(seq 1 150); do
    gone=$(events "$P1")
    [ "$gone" = 0 ] && break
    sleep 0.1
done
check "the delivered events are deleted once older than --webhook-keep-days" 0 "$gone"
check "and their delivery log with them" 0 \
    "$(sql "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $W1")"
# The dead receiver's event came after the live ones: wait until it too is
# past the retention (4 s; on a loaded machine it may not be yet), then it
# must still be there.
for i in $(seq 1 100); do
    age=$(sql "SELECT round(extract(epoch FROM now() - created_at))::int >= 4 FROM webhook_events WHERE project_id = $P2")
    [ "$age" = t ] && break
    sleep 0.1
done
sleep 1.8 # one more look of the retention pass (every 1.7 s here)
check "an event still pending is kept, older than that too" "t 1" "$age $(events "$P2")"
check "with its delivery" 1 "$(sql "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $W2")"
grepq 'webhook: [0-9]* events older than 3 s deleted with their deliveries' <"$E2E_DIR/quorumd.log" &&
    pass "the broker logs what it deleted" || fail "no retention line in the log: $(grep webhook "$E2E_DIR/quorumd.log" | tail -3)"
r=$(api GET "/v1/projects/$P1/webhooks")
check "the webhook itself stays, with nothing in its log" "$W1 0 0" \
    "$(echo "${r#* }" | jq -r '.webhooks[0] | "\(.id) \(.delivered) \(.pending)"')"
finish
