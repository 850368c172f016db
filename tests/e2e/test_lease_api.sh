#!/usr/bin/env bash
# The lease API end to end: overlap policy and sampling orders as imported,
# release, skip, batch submit, progress, and long polls woken across two
# brokers through Redis pub/sub.
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200
start_second_broker --reaper-ms 200

mkuser() { api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"$1\",\"role\":\"annotator\"}" | cut -d' ' -f2- | jq -r .token; }
A=$(mkuser ann-a)
B=$(mkuser ann-b)

# --- overlap: exactly 10 % of an import at 3, the rest at 1 -----------------------------
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"ov","labels":["x","y"],"annotations_per_task":1,"overlap_fraction":0.1,"overlap_annotations":3,"overlap_first":true,"max_leases_per_annotator":20}')
check "project with overlap policy: 201" 201 "${r%% *}"
P=$(echo "${r#* }" | jq .id)
check "overlap policy echoed" "0.1 3 true" "$(echo "${r#* }" | jq -r '"\(.overlap_fraction) \(.overlap_annotations) \(.overlap_first)"')"
seq 1 200 | sed 's/.*/{"text":"t&"}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
check "20 of 200 tasks need 3" 20 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND required = 3 AND overlap")"
check "180 need 1" 180 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND required = 1")"
r=$(api POST "/v1/projects/$P/leases" "$A" '{"max":20}')
check "overlap first: the first 20 leases are the overlap tasks" 20 \
    "$(sql "SELECT count(*) FROM tasks WHERE id IN ($(echo "${r#* }" | jq -r '[.leases[].task_id] | join(",")')) AND overlap")"

# --- sampling: uncertainty-first ------------------------------------------------------
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"unc","labels":["x","y"],"sampling":"uncertainty"}')
PU=$(echo "${r#* }" | jq .id)
printf '%s\n' '{"data":{"n":1},"prediction":{"label":"x","score":0.9}}' \
    '{"data":{"n":2},"prediction":{"label":"x","score":0.2}}' \
    '{"data":{"n":3},"predictions":[{"score":0.5}]}' | "$QR_BIN_DIR/quorumctl" import --project "$PU" - >/dev/null
r=$(api POST "/v1/projects/$PU/leases" "$A" '{"max":3}')
check "uncertainty: least confident first" "2 3 1" "$(echo "${r#* }" | jq -r '[.leases[].data.n] | join(" ")')"
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"bad","labels":["x"],"sampling":"stratified"}')
check "stratified without a field: 422" 422 "${r%% *}"
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"bad","labels":["x"],"sampling":"alphabetical"}')
check "unknown sampling: 422" 422 "${r%% *}"

# --- release, skip ------------------------------------------------------------------
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"rs","labels":["x","y"],"annotations_per_task":1}')
PR=$(echo "${r#* }" | jq .id)
printf '{"text":"only"}\n' | "$QR_BIN_DIR/quorumctl" import --project "$PR" - >/dev/null
r=$(api POST "/v1/projects/$PR/leases" "$A" '{}')
L=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$PR/leases/$L/release" "$B" '{"reason":"not mine"}')
check "release of someone else's lease: 409" 409 "${r%% *}"
r=$(api POST "/v1/projects/$PR/leases/$L/release" "$A" '{"reason":"coffee"}')
check "release: 200" "200 true" "${r%% *} $(echo "${r#* }" | jq .released)"
check "release recorded with its reason" "released coffee" "$(sql "SELECT outcome || ' ' || reason FROM leases WHERE project_id = $PR AND fencing_token = $L")"
r=$(api POST "/v1/projects/$PR/leases" "$A" '{}')
check "released task comes back to the same annotator" 1 "$(echo "${r#* }" | jq '.leases | length')"
L=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$PR/leases/$L/skip" "$A" '{"reason":"unreadable"}')
check "skip: 200" "200 true" "${r%% *} $(echo "${r#* }" | jq .skipped)"
r=$(api POST "/v1/projects/$PR/leases" "$A" '{}')
check "skipped task never comes back to its skipper" "0 false" "$(echo "${r#* }" | jq -r '"\(.leases | length) \(.project_complete)"')"

# --- long poll across brokers ---------------------------------------------------------
# B waits on broker 2 while A (who cannot take it) holds nothing; then broker 1
# gets a release of a lease held by... B itself first takes the task on broker 1.
r=$(api POST "/v1/projects/$PR/leases" "$B" '{}')
LB=$(echo "${r#* }" | jq -r '.leases[0].lease')
C=$(mkuser ann-c)
t0=$(date +%s%N)
API_URL=$URL2 api POST "/v1/projects/$PR/leases" "$C" '{"wait_ms":10000}' >"$E2E_DIR/poll.out" &
POLL=$!
sleep 0.7
api POST "/v1/projects/$PR/leases/$LB/release" "$B" '{}' >/dev/null
wait $POLL
t1=$(date +%s%N)
r=$(cat "$E2E_DIR/poll.out")
check "long poll on broker 2 gets the task released on broker 1" 1 "$(echo "${r#* }" | jq '.leases | length')"
ms=$(( (t1 - t0) / 1000000 ))
if [ $ms -ge 600 ] && [ $ms -lt 5000 ]; then pass "woken after ${ms} ms (not at its 10 s deadline)"; else fail "long poll took ${ms} ms"; fi
t0=$(date +%s%N)
r=$(api POST "/v1/projects/$PR/leases" "$A" '{"wait_ms":800}')
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
check "a long poll with nothing to do ends empty" 0 "$(echo "${r#* }" | jq '.leases | length')"
if [ $ms -ge 700 ] && [ $ms -lt 3000 ]; then pass "and at its deadline (${ms} ms)"; else fail "deadline poll took ${ms} ms"; fi
r=$(api POST "/v1/projects/$PR/leases" "$A" '{"wait_ms":70000}')
check "wait_ms over 60000: 422" 422 "${r%% *}"

# --- batch submit and progress ----------------------------------------------------------
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"batch","labels":["x","y"]}')
PB=$(echo "${r#* }" | jq .id)
seq 1 5 | sed 's/.*/{"text":"b&"}/' | "$QR_BIN_DIR/quorumctl" import --project "$PB" - >/dev/null
r=$(api POST "/v1/projects/$PB/leases" "$A" '{"max":4}')
body=$(echo "${r#* }" | jq -c '{results: ([.leases[] | {lease, label: "x", idempotency_key: ("k" + .lease)}]
    + [{lease: "999999", label: "x"}] | .[1].label = "nope")}')
r=$(api POST "/v1/projects/$PB/submit" "$A" "$body")
check "batch submit: 200" 200 "${r%% *}"
check "batch statuses in order" "201 422 201 201 409" "$(echo "${r#* }" | jq -r '[.results[].status] | join(" ")')"
check "batch stored 3" 3 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $PB")"
r=$(api POST "/v1/projects/$PB/submit" "$A" "$body")
check "batch replay: same keys replayed, nothing new" "200 201 422 201 201 409 3" \
    "$(echo "${r%% *}") $(echo "${r#* }" | jq -r '[.results[] | if .replayed then 201 else .status end] | join(" ")') $(sql "SELECT count(*) FROM annotations WHERE project_id = $PB")"
r=$(api POST "/v1/projects/$PB/submit" "$A" '{"results": []}')
check "empty batch: 400" 400 "${r%% *}"
r=$(api POST "/v1/projects/$PB/submit" "$A" '{"results": "x"}')
check "malformed batch: 400" 400 "${r%% *}"
r=$(api GET "/v1/projects/$PB/progress" "$A")
check "progress" "5 3 2 3 3" "$(echo "${r#* }" | jq -r '"\(.tasks) \(.tasks_complete) \(.annotations_remaining) \(.my_annotations) \(.my_annotations_today)"')"

# --- undo -------------------------------------------------------------------------------------
# The lease lives 6 s: the steps up to the last submit take under 1.5 s on
# an idle machine, but 2 s and more when the sanitizer build shares two
# cores with other tests.
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"undo","labels":["x","y"],"annotations_per_task":1,"lease_ttl_ms":6000}')
PUN=$(echo "${r#* }" | jq .id)
printf '{"text":"u1"}\n{"text":"u2"}\n' | "$QR_BIN_DIR/quorumctl" import --project "$PUN" - >/dev/null
r=$(api POST "/v1/projects/$PUN/leases" "$A" '{}')
L=$(echo "${r#* }" | jq -r '.leases[0].lease'); T=$(echo "${r#* }" | jq '.leases[0].task_id')
r=$(api POST "/v1/projects/$PUN/leases/$L/submit" "$A" '{"label":"x"}')
AN=$(echo "${r#* }" | jq .annotation_id)
r=$(api POST "/v1/projects/$PUN/annotations/$AN/undo" "$B" '{}')
check "someone else's annotation cannot be undone" 409 "${r%% *}"
r=$(api POST "/v1/projects/$PUN/annotations/$AN/undo" "$A" '{}')
check "undo: 200 with a new lease on the same task" "200 $T" "${r%% *} $(echo "${r#* }" | jq .lease.task_id)"
check "undo: the annotation is gone, the task open again" "0 waiting" \
    "$(sql "SELECT count(*) FROM annotations WHERE project_id = $PUN") $(sql "SELECT state FROM tasks WHERE id = $T")"
L2=$(echo "${r#* }" | jq -r .lease.lease)
r=$(api POST "/v1/projects/$PUN/leases/$L2/submit" "$A" '{"label":"y"}')
check "the new lease takes the corrected label" "201 y" "${r%% *} $(sql "SELECT label FROM annotations WHERE task_id = $T")"
AN2=$(echo "${r#* }" | jq .annotation_id)
sleep 6.2
r=$(api POST "/v1/projects/$PUN/annotations/$AN2/undo" "$A" '{}')
check "undo after the lease's expiry: 409, label kept" "409 1" "${r%% *} $(sql "SELECT count(*) FROM annotations WHERE project_id = $PUN")"

# --- Redis loses everything: the broker rebuilds from PostgreSQL --------------------------
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"flush","labels":["x","y"],"annotations_per_task":2}')
PF=$(echo "${r#* }" | jq .id)
seq 1 10 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$PF" - >/dev/null
r=$(api POST "/v1/projects/$PF/leases" "$A" '{"max":5}')
body=$(echo "${r#* }" | jq -c '{results: [.leases[] | {lease, label: "x"}]}')
maxtok=$(echo "${r#* }" | jq '[.leases[].fencing_token] | max')
r=$(api POST "/v1/projects/$PF/submit" "$A" "$body")
check "5 labeled before the flush" "201 201 201 201 201" "$(echo "${r#* }" | jq -r '[.results[].status] | join(" ")')"
r=$(api POST "/v1/projects/$PF/leases" "$A" '{"max":1}')
LIVE=$(echo "${r#* }" | jq -r '.leases[0].lease')
sleep 0.5 # the lease log (batched every 200 ms) records the grant
redis-cli -p "$QR_REDIS_PORT" flushall >/dev/null
r=$(api POST "/v1/projects/$PF/leases" "$A" '{"max":10}')
check "after FLUSHALL the annotator gets only what they have not labeled" 5 "$(echo "${r#* }" | jq '.leases | length')"
check "none of them one they labeled" 0 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $PF AND annotator_id = (SELECT id FROM users WHERE name = 'ann-a') AND task_id IN ($(echo "${r#* }" | jq -r '[.leases[].task_id] | join(",")'))")"
check "fencing tokens keep growing past the flush" true "$(echo "${r#* }" | jq "[.leases[].fencing_token] | min > $maxtok")"
r=$(api POST "/v1/projects/$PF/leases" "$B" '{"max":10}')
check "another annotator still gets all 10" 10 "$(echo "${r#* }" | jq '.leases | length')"
r=$(api POST "/v1/projects/$PF/leases/$LIVE/submit" "$A" '{"label":"x"}')
check "a lease Redis forgot but PostgreSQL's log knows: accepted" "201 6" "${r%% *} $(sql "SELECT count(*) FROM annotations WHERE project_id = $PF")"
r=$(api POST "/v1/projects/$PF/leases/$LIVE/submit" "$A" '{"label":"x"}')
check "the same lease again: 409" 409 "${r%% *}"
r=$(api POST "/v1/projects/$PF/leases/999999/submit" "$A" '{"label":"x"}')
check "a lease nobody knows: 409, nothing stored" "409 6" "${r%% *} $(sql "SELECT count(*) FROM annotations WHERE project_id = $PF")"
check "no task over-filled" 0 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $PF AND done_count > required")"

# --- PostgreSQL failing under a batch submit ------------------------------------------------
# Each result of the batch answers 503 on its own (this path once crashed the
# broker), nothing is stored, and the leases stay live for a retry.
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"pgfail","labels":["x","y"]}')
PF=$(echo "${r#* }" | jq .id)
seq 1 2 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$PF" - >/dev/null
r=$(api POST "/v1/projects/$PF/leases" "$B" '{"max":2}')
L1=$(echo "${r#* }" | jq -r '.leases[0].lease')
L2=$(echo "${r#* }" | jq -r '.leases[1].lease')
before=$(sql "SELECT count(*) FROM annotations WHERE project_id = $PF")
sql "ALTER FUNCTION quorum_submit_batch RENAME TO quorum_submit_batch_away" >/dev/null
r=$(api POST "/v1/projects/$PF/submit" "$B" "{\"results\":[{\"lease\":\"$L1\",\"label\":\"x\"},{\"lease\":\"$L2\",\"label\":\"x\"}]}")
sql "ALTER FUNCTION quorum_submit_batch_away RENAME TO quorum_submit_batch" >/dev/null
check "batch submit while PostgreSQL fails: 200 with 503 per result" "200 503 503" \
    "${r%% *} $(echo "${r#* }" | jq -r '[.results[].status] | join(" ")')"
check "and nothing stored" "$before" "$(sql "SELECT count(*) FROM annotations WHERE project_id = $PF")"
r=$(api GET /healthz "")
check "the broker is still up" 200 "${r%% *}"
r=$(api POST "/v1/projects/$PF/submit" "$B" "{\"results\":[{\"lease\":\"$L1\",\"label\":\"x\"},{\"lease\":\"$L2\",\"label\":\"x\"}]}")
check "the retry is stored" "201 201" "$(echo "${r#* }" | jq -r '[.results[].status] | join(" ")')"

finish
