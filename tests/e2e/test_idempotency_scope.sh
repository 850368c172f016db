#!/usr/bin/env bash
# Idempotency keys belong to (project, annotator), and a replay must be one
# (issue 11, finding 4). Replays the report: a key used in project 1 sent
# again on a lease of project 3 (fencing tokens restart in every project, so
# a client that uses its lease id as key collides) used to answer 200
# "replayed" with project 1's annotation, store nothing and end the lease as
# committed: the task was never offered again. Now that submit is stored;
# a key reused in one project on another task is 409 idempotency_conflict,
# nothing is stored, and the lease is given back (released): the task is
# offered again and labelable. A real resend still replays; batch too.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
code() { echo "${1%% *} $(echo "${1#* }" | jq -r '.error.code // empty')"; }
tok() { # USER ROLE -> a token
    local r
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "{\"user\":\"$1\",\"role\":\"$2\"}")
    [ "${r%% *}" = 201 ] || { echo "token for $1: $r" >&2; return 1; }
    echo "${r#* }" | jq -r .token
}
ANN=$(tok ann1 annotator)
annotations() { sql "SELECT count(*) FROM annotations"; }
lease() { # PROJECT MAX -> the lease answer's body
    local r; r=$(api POST "/v1/projects/$1/leases" "$ANN" "{\"max\":$2}")
    echo "${r#* }"
}

P1=$("$CTL" project create --name one --labels a,b)
P2=$("$CTL" project create --name two --labels a,b)
P3=$("$CTL" project create --name three --labels a,b)
check "projects 1 and 3, as in the report" "1 3" "$P1 $P3"
seq 1 5 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P1" - >/dev/null
seq 1 5 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P3" - >/dev/null

# Project 1: the client labels with its lease id as key.
b=$(lease "$P1" 1)
L1=$(echo "$b" | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$P1/leases/$L1/submit" "$ANN" "{\"label\":\"a\",\"idempotency_key\":\"$L1\"}")
check "project 1: stored" 201 "${r%% *}"

# Project 3: the same lease id, so the same key.
b=$(lease "$P3" 1)
L3=$(echo "$b" | jq -r '.leases[0].lease')
T3=$(echo "$b" | jq -r '.leases[0].task_id')
check "fencing tokens restart per project: the same lease id" "$L1" "$L3"
before=$(annotations)
r=$(api POST "/v1/projects/$P3/leases/$L3/submit" "$ANN" "{\"label\":\"b\",\"idempotency_key\":\"$L3\"}")
check "project 3, a key project 1 used: stored, not a replay" "201 $T3 false" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.task_id) \(.replayed)"')"
check "one annotation more in PostgreSQL" "$((before + 1))" "$(annotations)"
check "it is in project 3, on task $T3" "1" \
    "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P3 AND task_id = $T3 AND idempotency_key = '$L3'")"
A3=$(echo "${r#* }" | jq .annotation_id)

# A resend of that submit (same lease, same key) replays it.
r=$(api POST "/v1/projects/$P3/leases/$L3/submit" "$ANN" "{\"label\":\"b\",\"idempotency_key\":\"$L3\"}")
check "a resend replays the first answer" "200 $A3 true" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.annotation_id) \(.replayed)"')"

# The same key in the same project, on another task: a conflict.
b=$(lease "$P3" 1)
LX=$(echo "$b" | jq -r '.leases[0].lease')
TX=$(echo "$b" | jq -r '.leases[0].task_id')
before=$(annotations)
r=$(api POST "/v1/projects/$P3/leases/$LX/submit" "$ANN" "{\"label\":\"a\",\"idempotency_key\":\"$L3\"}")
check "a key of another task: 409 idempotency_conflict" "409 idempotency_conflict" "$(code "$r")"
check "nothing stored" "$before" "$(annotations)"
check "no annotation of task $TX" 0 "$(sql "SELECT count(*) FROM annotations WHERE task_id = $TX")"
check "the lease ended as released, not submitted" "released idempotency_conflict" \
    "$(sql "SELECT outcome || ' ' || reason FROM leases WHERE project_id = $P3 AND fencing_token = $LX")"
r=$(api POST "/v1/projects/$P3/leases/$LX/heartbeat" "$ANN" '{}')
check "the lease is no longer live" "409 lease_expired" "$(code "$r")"
check "nothing of it left in Redis" 0 "$(redis-cli -p "$QR_REDIS_PORT" hexists "{p:$P3}:lease" "$LX")"
b=$(lease "$P3" 10)
check "task $TX is offered again" 1 "$(echo "$b" | jq "[.leases[] | select(.task_id == $TX)] | length")"
LY=$(echo "$b" | jq -r ".leases[] | select(.task_id == $TX) | .lease")
r=$(api POST "/v1/projects/$P3/leases/$LY/submit" "$ANN" '{"label":"a","idempotency_key":"fresh"}')
check "and labelable" "201 $TX" "${r%% *} $(echo "${r#* }" | jq .task_id)"

# Batch: one entry with a conflicting key, one fine.
OTHER=$(echo "$b" | jq -r "[.leases[] | select(.task_id != $TX)] | .[0].lease")
OTHER_T=$(echo "$b" | jq -r "[.leases[] | select(.task_id != $TX)] | .[0].task_id")
LAST=$(echo "$b" | jq -r "[.leases[] | select(.task_id != $TX)] | .[1].lease")
before=$(annotations)
r=$(api POST "/v1/projects/$P3/submit" "$ANN" \
    "{\"results\":[{\"lease\":\"$OTHER\",\"label\":\"a\",\"idempotency_key\":\"$L3\"},{\"lease\":\"$LAST\",\"label\":\"b\",\"idempotency_key\":\"k-last\"}]}")
check "batch: 409 idempotency_conflict for the reused key, 201 for the other" \
    "409 idempotency_conflict 201" \
    "$(echo "${r#* }" | jq -r '"\(.results[0].status) \(.results[0].error.code) \(.results[1].status)"')"
check "batch: one annotation stored" "$((before + 1))" "$(annotations)"
b=$(lease "$P3" 10)
check "batch: the conflicting entry's task is offered again" 1 \
    "$(echo "$b" | jq "[.leases[] | select(.task_id == $OTHER_T)] | length")"

# The constraint itself: the same key twice in one project is refused by
# PostgreSQL, in another project it is not.
check "the unique constraint is per (project, annotator, key)" "project_id, annotator_id, idempotency_key" \
    "$(sql "SELECT string_agg(a.attname, ', ' ORDER BY k.n) FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(att, n) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att WHERE c.conrelid = 'annotations'::regclass AND c.contype = 'u' AND 'idempotency_key' = ANY (SELECT attname FROM pg_attribute WHERE attrelid = c.conrelid AND attnum = ANY (c.conkey))")"

finish
