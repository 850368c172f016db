#!/usr/bin/env bash
# Idempotency is exact (issue 13, point 5): the same idempotency key on the
# same lease with another body (another label, another active_ms) used to
# answer 200 "replayed" and silently keep the first label. Now it is 409
# idempotency_conflict naming the key, and nothing changes: the annotation
# count and the stored label stay as they were. The same key and body still
# replays (200, "replayed": true). Single submit and batch submit alike.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
code() { echo "${1%% *} $(echo "${1#* }" | jq -r '.error.code // empty')"; }
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"ann1","role":"annotator"}')
ANN=$(echo "${r#* }" | jq -r .token)
annotations() { sql "SELECT count(*) FROM annotations"; }
label_of() { sql "SELECT label FROM annotations WHERE idempotency_key = '$1'"; }
lease() { # MAX -> the lease answer's body
    local r; r=$(api POST "/v1/projects/$P/leases" "$ANN" "{\"max\":$1}")
    echo "${r#* }"
}

P=$("$CTL" project create --name body --labels a,b)
seq 1 5 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P" - >/dev/null

# --- single submit ---
L=$(lease 1 | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$P/leases/$L/submit" "$ANN" '{"label":"a","idempotency_key":"k1","active_ms":500}')
check "first submit stored" 201 "${r%% *}"
A=$(echo "${r#* }" | jq .annotation_id)
before=$(annotations)

r=$(api POST "/v1/projects/$P/leases/$L/submit" "$ANN" '{"label":"a","idempotency_key":"k1","active_ms":500}')
check "same key, same body: the replay" "200 $A true" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.annotation_id) \(.replayed)"')"

r=$(api POST "/v1/projects/$P/leases/$L/submit" "$ANN" '{"label":"b","idempotency_key":"k1","active_ms":500}')
check "same key, another label: 409 idempotency_conflict" "409 idempotency_conflict" "$(code "$r")"
msg=$(echo "${r#* }" | jq -r .error.message)
case "$msg" in
*'"k1"'*'"a"'*'"b"'*) pass "the message names the key and both labels: $msg" ;;
*) fail "the message names the key and both labels: $msg" ;;
esac
check "no annotation added" "$before" "$(annotations)"
check "the stored label is still a" a "$(label_of k1)"

r=$(api POST "/v1/projects/$P/leases/$L/submit" "$ANN" '{"label":"a","idempotency_key":"k1","active_ms":900}')
check "same key, another active_ms: 409 idempotency_conflict" "409 idempotency_conflict" "$(code "$r")"
r=$(api POST "/v1/projects/$P/leases/$L/submit" "$ANN" '{"label":"a","idempotency_key":"k1"}')
check "same key, active_ms left out: 409 idempotency_conflict" "409 idempotency_conflict" "$(code "$r")"
check "active_ms unchanged" 500 "$(sql "SELECT active_ms FROM annotations WHERE idempotency_key = 'k1'")"

r=$(api POST "/v1/projects/$P/leases/$L/submit" "$ANN" '{"label":"a","idempotency_key":"k1","active_ms":500}')
check "after the conflicts, the same body still replays" "200 $A true" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.annotation_id) \(.replayed)"')"

# --- batch submit ---
b=$(lease 2)
L2=$(echo "$b" | jq -r '.leases[0].lease')
L3=$(echo "$b" | jq -r '.leases[1].lease')
r=$(api POST "/v1/projects/$P/submit" "$ANN" \
    "{\"results\":[{\"lease\":\"$L2\",\"label\":\"a\",\"idempotency_key\":\"k2\"},{\"lease\":\"$L3\",\"label\":\"b\",\"idempotency_key\":\"k3\"}]}")
check "batch: both stored" "201 201" "$(echo "${r#* }" | jq -r '"\(.results[0].status) \(.results[1].status)"')"
before=$(annotations)
r=$(api POST "/v1/projects/$P/submit" "$ANN" \
    "{\"results\":[{\"lease\":\"$L2\",\"label\":\"b\",\"idempotency_key\":\"k2\"},{\"lease\":\"$L3\",\"label\":\"b\",\"idempotency_key\":\"k3\"}]}")
check "batch resent with k2's label changed: 409 idempotency_conflict for it, replay for k3" \
    "409 idempotency_conflict 200 true" \
    "$(echo "${r#* }" | jq -r '"\(.results[0].status) \(.results[0].error.code) \(.results[1].status) \(.results[1].replayed)"')"
case "$(echo "${r#* }" | jq -r '.results[0].error.message')" in
*'"k2"'*) pass "batch: the message names the key" ;;
*) fail "batch: the message names the key" ;;
esac
check "batch: no annotation added" "$before" "$(annotations)"
check "batch: k2's label is still a" a "$(label_of k2)"
check "batch: k3's label is still b" b "$(label_of k3)"

finish
