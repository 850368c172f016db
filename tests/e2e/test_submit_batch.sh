#!/usr/bin/env bash
# quorum_submit_batch (sql/0012_submit_batch_set.sql), the group commit,
# called directly: each row's outcome in a batch that mixes stored rows, a
# task filled within the batch, a key used for another task, a pair twice, a
# task of another project and no task at all; what it stores (annotations,
# done_count, state, 'submitted' leases); and two batches over the same
# tasks in opposite orders at once: no deadlock, no task over-filled; and a
# batch through the broker: one group commit, two Redis calls.
. "$(dirname "$0")/lib.sh"

start_broker

r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"sb","labels":["a","b"],"annotations_per_task":2}')
P=$(echo "${r#* }" | jq .id)
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"other","labels":["a"]}')
Q=$(echo "${r#* }" | jq .id)
seq 1 3 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
seq 1 1 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$Q" - >/dev/null
for a in u1 u2 u3; do
    api POST /v1/tokens "$ADMIN_TOKEN" "{\"user\":\"$a\",\"role\":\"annotator\"}" >/dev/null
done
read -r T1 T2 T3 <<<"$(sql "SELECT string_agg(id::text, ' ' ORDER BY id) FROM tasks WHERE project_id = $P")"
TQ=$(sql "SELECT id FROM tasks WHERE project_id = $Q")
read -r U1 U2 U3 <<<"$(sql "SELECT string_agg(id::text, ' ' ORDER BY name) FROM users WHERE name IN ('u1', 'u2', 'u3')")"
NOW=$(( $(date +%s) * 1000 ))

# Rows (ord): 1 T1/u1, 2 T1/u2 created; 3 T1/u3 full (T1 takes 2);
# 4 T2/u1 with u1's key of row 1: duplicate; 5 T2/u1 created; 6 T2/u1 again
# (another key): full; 7 a task of project Q named as P's: full; 8 no such
# task: full.
out=$(sql "SELECT string_agg(ord || ':' || outcome, ' ' ORDER BY ord) || '|'
      || coalesce(string_agg(annotation_id::text, ' ' ORDER BY ord), '')
  FROM quorum_submit_batch(
    ARRAY[$T1, $T1, $T1, $T2, $T2, $T2, $TQ, 999999999]::bigint[],
    ARRAY[$P, $P, $P, $P, $P, $P, $P, $P]::bigint[],
    ARRAY[$U1, $U2, $U3, $U1, $U1, $U1, $U2, $U2]::bigint[],
    ARRAY['a', 'b', 'a', 'a', 'b', 'a', 'a', 'a'],
    ARRAY[11, 12, 13, 14, 15, 16, 17, 18]::bigint[],
    ARRAY['k1', 'k2', 'k3', 'k1', 'k5', 'k6', 'k7', 'k8'],
    ARRAY[100, 100, 100, 100, 100, 100, 100, 100],
    array_fill($NOW::bigint, ARRAY[8]), array_fill($NOW::bigint + 60000, ARRAY[8]))")
check "each row's outcome" \
    "1:created 2:created 3:full 4:duplicate 5:created 6:full 7:full 8:full" "${out%%|*}"
check "the annotations stored are those created, with their tokens" "$U1/11/k1 $U2/12/k2 $U1/15/k5" \
    "$(sql "SELECT string_agg(annotator_id || '/' || fencing_token || '/' || idempotency_key, ' ' ORDER BY fencing_token) FROM annotations WHERE project_id = $P")"
check "the ids returned are the stored ones, in row order" \
    "$(sql "SELECT string_agg(id::text, ' ' ORDER BY fencing_token) FROM annotations WHERE project_id = $P")" "${out#*|}"
check "T1 complete with 2, T2 waiting with 1, T3 untouched" "2 complete|1 waiting|0 waiting" \
    "$(sql "SELECT string_agg(done_count || ' ' || state, '|' ORDER BY id) FROM tasks WHERE project_id = $P")"
check "a 'submitted' lease per annotation created" "11 12 15" \
    "$(sql "SELECT string_agg(fencing_token::text, ' ' ORDER BY fencing_token) FROM leases WHERE project_id = $P AND outcome = 'submitted'")"
check "project Q's task untouched" 0 "$(sql "SELECT done_count FROM tasks WHERE id = $TQ")"

# The same submit again (a resend): nothing more stored, T1 full.
out=$(sql "SELECT string_agg(outcome, ' ' ORDER BY ord) FROM quorum_submit_batch(
    ARRAY[$T1, $T2]::bigint[], ARRAY[$P, $P]::bigint[], ARRAY[$U1, $U1]::bigint[], ARRAY['a', 'b'],
    ARRAY[11, 15]::bigint[], ARRAY['k1', 'k5'], ARRAY[100, 100],
    array_fill($NOW::bigint, ARRAY[2]), array_fill($NOW::bigint + 60000, ARRAY[2]))")
check "a resend of stored rows: full, nothing written" "full full 3" \
    "$out $(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"

# Two batches over the same 200 one-slot tasks in opposite orders, at once.
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"race","labels":["a"]}')
R=$(echo "${r#* }" | jq .id)
seq 1 200 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$R" - >/dev/null
batch() { # ANNOTATOR ORDER TOKEN_BASE
    sql "SELECT count(*) FILTER (WHERE outcome = 'created') FROM quorum_submit_batch(
        (SELECT array_agg(id ORDER BY id $2) FROM tasks WHERE project_id = $R),
        array_fill($R::bigint, ARRAY[200]), array_fill($1::bigint, ARRAY[200]), array_fill('a'::text, ARRAY[200]),
        (SELECT array_agg($3 + g) FROM generate_series(1, 200) g), NULL::text[], NULL::int[],
        array_fill($NOW::bigint, ARRAY[200]), array_fill($NOW::bigint + 60000, ARRAY[200]))"
}
for i in 1 2 3; do
    batch "$U1" ASC $((1000 * i)) >"$E2E_DIR/b1.out" 2>&1 &
    p1=$!
    batch "$U2" DESC $((1000 * i + 500)) >"$E2E_DIR/b2.out" 2>&1 &
    p2=$!
    wait $p1 $p2 || true
    [ "$i" = 1 ] && first=$(( $(cat "$E2E_DIR/b1.out") + $(cat "$E2E_DIR/b2.out") ))
done
check "opposite orders at once: no deadlock, 200 created in all" 200 "$first"
check "no task over-filled, 200 annotations" "0 200" \
    "$(sql "SELECT count(*) FILTER (WHERE done_count <> 1 OR state <> 'complete') FROM tasks WHERE project_id = $R") $(sql "SELECT count(*) FROM annotations WHERE project_id = $R")"
check "as many 'submitted' leases" 200 "$(sql "SELECT count(*) FROM leases WHERE project_id = $R")"

# Through the broker (issue 18): a batch submit of 6 results, one of them a
# lease id never granted, pins its leases in one Redis call, commits its
# rows in one group commit and ends its leases in one more call; each
# result is answered as alone (the stale one 409, the others 201).
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"calls","labels":["a","b"]}')
C=$(echo "${r#* }" | jq .id)
seq 1 8 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$C" - >/dev/null
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"c1","role":"annotator"}')
CT=$(echo "${r#* }" | jq -r .token)
r=$(api POST "/v1/projects/$C/leases" "$CT" '{"max":5}')
body=$(echo "${r#* }" | jq -c '{results: ([.leases[] | {lease, label: "a"}] + [{lease: "999999", label: "a"}])}')
check "5 leases granted" 5 "$(echo "$body" | jq '.results | length - 1')"
# Script calls but the reaper's (it runs every second, one ZRANGEBYSCORE
# per call, which no other script runs).
scripts() {
    redis-cli -p "$QR_REDIS_PORT" info commandstats |
        awk -F'[=,:]' '/^cmdstat_evalsha:/ {s += $3} /^cmdstat_zrangebyscore:/ {s -= $3} END {print s}'
}
commits() {
    curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/metrics" |
        awk '/^quorum_annotation_commits_total / {print $2}'
}
s0=$(scripts) c0=$(commits)
r=$(api POST "/v1/projects/$C/submit" "$CT" "$body")
s1=$(scripts) c1=$(commits)
check "each result answered as alone" "200 201 201 201 201 201 409" \
    "${r%% *} $(echo "${r#* }" | jq -r '[.results[].status] | join(" ")')"
check "one group commit for the batch" 1 "$((c1 - c0))"
check "two Redis script calls for the batch (pin, end)" 2 "$((s1 - s0))"
check "5 annotations, none left leased" "5 0" \
    "$(sql "SELECT count(*) FROM annotations WHERE project_id = $C") $(redis-cli -p "$QR_REDIS_PORT" hlen "{p:$C}:lease")"

finish
