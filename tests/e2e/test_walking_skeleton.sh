#!/usr/bin/env bash
# End to end over TLS: a project, an import, a simulated crew through Redis
# leases, the report; then the bad-input paths, each checked to change nothing.
. "$(dirname "$0")/lib.sh"

start_broker --max-body-bytes 262144 --max-stream-bytes 262144

# Migrations are recorded and safe to run again.
"$QR_BIN_DIR/quorumd" migrate --pg "$E2E_PG" --sql-dir "$QR_SOURCE_DIR/sql" 2>"$E2E_DIR/migrate2.log"
check "second migrate applies nothing" 1 "$(grep -c '(0 applied' "$E2E_DIR/migrate2.log")"
check "migrations recorded" "$(ls "$QR_SOURCE_DIR"/sql/[0-9][0-9][0-9][0-9]_*.sql | wc -l)" \
    "$(sql "SELECT count(*) FROM schema_migrations")"

# --- the main job -------------------------------------------------------------
head -n 300 "$QR_SOURCE_DIR/deploy/sample/news.jsonl" >"$E2E_DIR/tasks.jsonl"
PROJECT=$("$QR_BIN_DIR/quorumctl" project create --name e2e --labels sports,technology,cooking,weather \
    --annotations-per-task 3)
check "project created" 1 "$PROJECT"
"$QR_BIN_DIR/quorumctl" import --project "$PROJECT" "$E2E_DIR/tasks.jsonl"
check "300 tasks in PostgreSQL" 300 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $PROJECT")"

timeout 300 "$QR_BIN_DIR/quorum-agent" simulate --project "$PROJECT" --annotators 5 --accuracy 0.9 \
    --think-ms 0-2 --seed 1 >"$E2E_DIR/sim.out"
check "simulate exits 0" 0 $?
REPORT=$("$QR_BIN_DIR/quorumctl" report --project "$PROJECT" --json)
echo "$REPORT" | jq -c . | cut -c1-400
check "report: tasks" 300 "$(echo "$REPORT" | jq .tasks)"
check "report: every task complete" 300 "$(echo "$REPORT" | jq .tasks_complete)"
check "report: 3 annotations per task" 900 "$(echo "$REPORT" | jq .annotations)"
check "report: 5 annotators" 5 "$(echo "$REPORT" | jq .annotators)"
check "report: duplicate_assignments" 0 "$(echo "$REPORT" | jq .duplicate_assignments)"
check "report: overfilled_tasks" 0 "$(echo "$REPORT" | jq .overfilled_tasks)"
check "report: per-annotator counts add up" 900 "$(echo "$REPORT" | jq '[.per_annotator[].annotations] | add')"
check "report: completions per second > 0" true "$(echo "$REPORT" | jq '.completions_per_second > 0')"
check "report: agreement is a number in (0,1]" true \
    "$(echo "$REPORT" | jq '(.agreement.percent_agreement > 0) and (.agreement.percent_agreement <= 1) and (.agreement.krippendorff_alpha_nominal | type == "number")')"
# Independently of the broker: nobody labeled a task twice, no task over-filled.
check "SQL: no task with more than 3 annotations" 0 \
    "$(sql "SELECT count(*) FROM (SELECT task_id FROM annotations GROUP BY task_id HAVING count(*) > 3) x")"
check "SQL: every task exactly 3" 300 \
    "$(sql "SELECT count(*) FROM (SELECT task_id FROM annotations GROUP BY task_id HAVING count(*) = 3) x")"
check "SQL: submitted leases recorded with fencing tokens" 900 \
    "$(sql "SELECT count(*) FROM leases l JOIN annotations a ON a.fencing_token = l.fencing_token AND a.project_id = l.project_id WHERE l.outcome = 'submitted'")"
check "tokens stored hashed (no plaintext)" 0 \
    "$(sql "SELECT count(*) FROM api_tokens WHERE token_sha256 = '$ADMIN_TOKEN' OR prefix = '$ADMIN_TOKEN'")"

# --- the lease log and throughput (issue 6) ----------------------------------------------
sleep 0.5 # the event log flushes every 200 ms
check "every grant and submit is in the lease log" "900 900" \
    "$(sql "SELECT count(*) FILTER (WHERE kind = 'grant') || ' ' || count(*) FILTER (WHERE kind = 'submit') FROM lease_events WHERE project_id = $PROJECT")"
TP=$("$QR_BIN_DIR/quorumctl" throughput --project "$PROJECT" --window 1h --json)
check "throughput: 900 annotations in the last hour" 900 "$(echo "$TP" | jq .totals.annotations)"
check "throughput: every lease submitted" 1 "$(echo "$TP" | jq .outcomes.submitted_share)"
check "throughput: queue empty, ETA 0" "0 0" "$(echo "$TP" | jq -r '"\(.queue.annotations_remaining) \(.eta.annotations_remaining)"')"
check "throughput: one row per annotator" 5 "$(echo "$TP" | jq '.rows | length')"
"$QR_BIN_DIR/quorumctl" throughput --project "$PROJECT" >"$E2E_DIR/tp.txt" && pass "throughput table prints" || fail "throughput table"
r=$(api GET "/v1/projects/$PROJECT/throughput?window=forever")
check "throughput with a bad window: 422" 422 "${r%% *}"
# quorumctl report carries the crew's throughput too (issue 6 item 4).
REPORT=$("$QR_BIN_DIR/quorumctl" report --project "$PROJECT" --window 1h --json)
check "report --json: the throughput's rows and totals" "5 900" \
    "$(echo "$REPORT" | jq -r '"\(.throughput.rows | length) \(.throughput.totals.annotations)"')"
"$QR_BIN_DIR/quorumctl" report --project "$PROJECT" >"$E2E_DIR/report.txt"
check "report: each annotator in the summary and in the throughput table" 10 "$(grep -c '^sim-' "$E2E_DIR/report.txt")"
grep -q '^total' "$E2E_DIR/report.txt" && pass "report's table has totals" || fail "no totals in: $(cat "$E2E_DIR/report.txt")"
rc=0
"$QR_BIN_DIR/quorumctl" report --project "$PROJECT" --window forever >/dev/null 2>&1 || rc=$?
check "report --window forever: usage error" 2 "$rc"
rc=0
"$QR_BIN_DIR/quorumctl" report --project "$PROJECT" --watch=0 >/dev/null 2>&1 || rc=$?
check "report --watch=0: usage error" 2 "$rc"
timeout 3 "$QR_BIN_DIR/quorumctl" report --project "$PROJECT" --watch=1 >"$E2E_DIR/watch.txt" 2>&1 || true
check "report --watch refreshes (at least twice in 3 s)" true \
    "$([ "$(grep -c 'annotations' "$E2E_DIR/watch.txt")" -ge 4 ] && echo true || echo "false: $(grep -c annotations "$E2E_DIR/watch.txt")")"
r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/metrics")
echo "$r" | grepq '^quorum_annotations{project="'"$PROJECT"'"} 900' && pass "/metrics counts the project's annotations" || fail "/metrics: $(echo "$r" | head -5)"

# --- bad input, each changing nothing --------------------------------------------
P2=$("$QR_BIN_DIR/quorumctl" project create --name bad --labels a,b --annotations-per-task 1 --lease-ttl-ms 3000)
before=$(sql "SELECT count(*) FROM tasks")
printf '{"data":{"text":"one"}}\n{"text":"two"}\n{"data": oops}\n{"text":"four"}\n' >"$E2E_DIR/bad.jsonl"
r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/x-ndjson' \
    --data-binary @"$E2E_DIR/bad.jsonl" -w ' %{http_code}' "$URL/v1/projects/$P2/tasks")
check "malformed JSONL line: 400" 400 "${r##* }"
check "malformed JSONL names line 3" invalid_jsonl "$(echo "${r% *}" | jq -r .error.code)"
case "$(echo "${r% *}" | jq -r .error.message)" in "line 3:"*) pass "message names line 3" ;; *) fail "message: ${r% *}" ;; esac
check "malformed JSONL imports nothing" "$before" "$(sql "SELECT count(*) FROM tasks")"

r=$(api GET "/v1/projects/$PROJECT/report" "")
check "missing token: 401" 401 "${r%% *}"
r=$(api GET "/v1/projects/$PROJECT/report" "qr_0000000000000000000000000000000000000000000000000000000000000000")
check "wrong token: 401" 401 "${r%% *}"
check "401 body is the error shape" unauthorized "$(echo "${r#* }" | jq -r .error.code)"

printf '{"text":"x"}\n{"text":"y"}\n' | "$QR_BIN_DIR/quorumctl" import --project "$P2" - >/dev/null
ANN_TOKEN=$(api POST /v1/users "$ADMIN_TOKEN" '{"name":"e2e-ann","role":"annotator"}' | cut -d' ' -f2- | jq -r .token)
r=$(api POST "/v1/projects/$P2/leases" "$ANN_TOKEN" '{"max":1}')
check "annotator gets a lease" 200 "${r%% *}"
LEASE=$(echo "${r#* }" | jq -r '.leases[0].lease')
ann_before=$(sql "SELECT count(*) FROM annotations")
r=$(api POST "/v1/projects/$P2/leases/$LEASE/submit" "$ANN_TOKEN" '{"label":"c","idempotency_key":"k1"}')
check "label outside the choices: 422" 422 "${r%% *}"
check "422 code" unknown_label "$(echo "${r#* }" | jq -r .error.code)"
check "422 stores nothing" "$ann_before" "$(sql "SELECT count(*) FROM annotations")"
r=$(api POST "/v1/projects/$P2/leases/$LEASE/submit" "$ANN_TOKEN" '{"label":"a","idempotency_key":"k1"}')
check "valid submit: 201" 201 "${r%% *}"
r=$(api POST "/v1/projects/$P2/leases/$LEASE/submit" "$ANN_TOKEN" '{"label":"a","idempotency_key":"k1"}')
check "same idempotency key: 200 replay" "200 true" "${r%% *} $(echo "${r#* }" | jq .replayed)"
check "replay writes nothing" "$((ann_before + 1))" "$(sql "SELECT count(*) FROM annotations")"
r=$(api POST "/v1/projects/$P2/leases/$LEASE/submit" "$ANN_TOKEN" '{"label":"a","idempotency_key":"k2"}')
check "ended lease, new key: 409 lease_expired" "409 lease_expired" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"

# A lease left alone expires (TTL 3 s) and its slot returns within the reaper period.
r=$(api POST "/v1/projects/$P2/leases" "$ANN_TOKEN" '{"max":1}')
LEASE2=$(echo "${r#* }" | jq -r '.leases[0].lease')
sleep 4.5
r=$(api POST "/v1/projects/$P2/leases/$LEASE2/heartbeat" "$ANN_TOKEN" '')
check "heartbeat on an expired lease: 409" 409 "${r%% *}"
check "expired lease recorded" expired "$(sql "SELECT outcome FROM leases WHERE project_id = $P2 AND fencing_token = $LEASE2")"
r=$(api POST "/v1/projects/$P2/leases" "$ANN_TOKEN" '{"max":1}')
check "expired slot is leased again" 1 "$(echo "${r#* }" | jq '.leases | length')"

head -c 300000 /dev/zero | tr '\0' 'x' >"$E2E_DIR/big"
r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" --data-binary @"$E2E_DIR/big" \
    -w ' %{http_code}' "$URL/v1/projects/$P2/tasks" 2>/dev/null || true)
check "body over the limit: 413" 413 "${r##* }"
check "413 imports nothing" 2 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P2")"

# --- TLS below 1.2 is refused, by a client that can really offer it ----------------
# The control: the same client completes a TLS 1.1 handshake with a server
# that allows it, so a refusal below is quorumd's, not the client's.
# Port 0, read back from its ACCEPT line. Its stdin is a FIFO it holds open
# itself: without -quiet (which hides that line) an EOF on stdin stops it.
mkfifo "$E2E_DIR/s_server.in"
openssl s_server -accept 127.0.0.1:0 -cert "$E2E_DIR/tls/server.crt" -key "$E2E_DIR/tls/server.key" \
    -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' <>"$E2E_DIR/s_server.in" >"$E2E_DIR/s_server.out" 2>&1 &
S_SERVER_PID=$!
CTRL_PORT=$(wait_accept_line "$E2E_DIR/s_server.out" "$S_SERVER_PID") || { cat "$E2E_DIR/s_server.out"; CTRL_PORT=0; }
for v in tls1 tls1_1; do
    ctrl=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$CTRL_PORT" -$v -cipher 'DEFAULT:@SECLEVEL=0' 2>&1 | grep -c 'Protocol *: TLSv1' || true)
    [ $v = tls1_1 ] && check "control: the client can negotiate TLS 1.1" 1 "$ctrl"
done
kill "$S_SERVER_PID" 2>/dev/null; S_SERVER_PID=""
for v in tls1 tls1_1; do
    if echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -$v -cipher 'DEFAULT:@SECLEVEL=0' >"$E2E_DIR/s_client.$v" 2>&1; then
        fail "quorumd accepted $v"
    else
        grep -q 'Cipher is (NONE)\|alert\|no protocols available\|wrong version\|unsupported protocol' "$E2E_DIR/s_client.$v" \
            && pass "quorumd refuses $v" || fail "quorumd $v: unexpected output $(head -c 300 "$E2E_DIR/s_client.$v")"
    fi
done
for v in tls1_2 tls1_3; do
    out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -$v -CAfile "$CA" 2>&1 || true)
    echo "$out" | grepq 'Verify return code: 0' && pass "quorumd accepts $v" || fail "quorumd $v: $(echo "$out" | tail -3)"
done

finish
