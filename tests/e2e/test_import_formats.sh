#!/usr/bin/env bash
# Task import in every format: JSONL, a JSON array (Label Studio's task
# export) and CSV (the prediction, prediction_score and gold columns are not
# data), through quorumctl (format from the file's extension or --format) and
# the API; a bad CSV is refused naming its line, with nothing imported.
. "$(dirname "$0")/lib.sh"

start_broker
export QUORUM_URL="$URL" QUORUM_TOKEN="$ADMIN_TOKEN" QUORUM_CA="$CA"
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"formats","labels":["pos","neg"],"sampling":"uncertainty"}')
P=$(echo "${r#* }" | jq .id)
count() { sql "SELECT count(*) FROM tasks WHERE project_id = $P"; }

printf 'text,source,prediction,prediction_score,gold\r\n"Great, ""really"" great",web,pos,0.9,pos\r\n"two\nlines",app,neg,0.2,\r\n' >"$E2E_DIR/t.csv"
out=$("$QR_BIN_DIR/quorumctl" import --project "$P" "$E2E_DIR/t.csv")
check "CSV by extension: 2 tasks" "imported 2 tasks" "${out%% (*}"
check "a CSV row's data holds the other columns, as text" '{"text": "Great, \"really\" great", "source": "web"}' \
    "$(sql "SELECT data::text FROM tasks WHERE project_id = $P ORDER BY id LIMIT 1")"
check "prediction, score and gold come from their columns" 'pos 0.9 pos|neg 0.2' \
    "$(sql "SELECT string_agg(concat_ws(' ', prediction->>'label', prediction_score, gold), '|' ORDER BY id) FROM tasks WHERE project_id = $P")"

out=$(printf 'text\nfrom stdin\n' | "$QR_BIN_DIR/quorumctl" import --project "$P" --format csv -)
check "CSV from stdin with --format csv" "imported 1 tasks" "${out%% (*}"

echo '[{"data": {"text": "ls"}, "predictions": [{"score": 0.1}]}, {"text": "bare"}]' >"$E2E_DIR/t.json"
out=$("$QR_BIN_DIR/quorumctl" import --project "$P" "$E2E_DIR/t.json")
check "a JSON array by extension" "imported 2 tasks" "${out%% (*}"
check "Label Studio's predictions give the score" 0.1 \
    "$(sql "SELECT prediction_score FROM tasks WHERE project_id = $P AND data->>'text' = 'ls'")"

r=$(api POST "/v1/projects/$P/leases" "$ADMIN_TOKEN" '{"max":10}')
scores=$(for t in $(echo "${r#* }" | jq '.leases[].task_id'); do
    sql "SELECT coalesce(prediction_score::text, 'none') FROM tasks WHERE id = $t"; done | paste -sd' ')
check "uncertainty order over CSV and JSON tasks: unscored first, then least confident" \
    "none none 0.1 0.2 0.9" "$scores"

before=$(count)
printf 'text,source\nok,web\n"bad\nrow\n' >"$E2E_DIR/bad.csv"
rc=0
out=$("$QR_BIN_DIR/quorumctl" import --project "$P" "$E2E_DIR/bad.csv" 2>&1) || rc=$?
check "an unclosed quote: quorumctl exits 1" 1 "$rc"
case "$out" in *"line 3: a quoted field is not closed"*) pass "and names line 3" ;; *) fail "no line 3 in: $out" ;; esac
resp=$(mktemp "$E2E_DIR/resp.XXXXXX")
status=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: text/csv' \
    --data-binary $'a,b\n1,2\n3\n' -o "$resp" -w '%{http_code}' "$URL/v1/projects/$P/tasks")
check "a ragged CSV row over the API: 400 invalid_csv naming line 3" \
    "400 invalid_csv line 3: row has 1 fields but the header has 2" \
    "$status $(jq -r '.error.code + " " + .error.message' "$resp")"
status=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: text/csv' \
    --data-binary $'a,b\n1,\xff\n' -o "$resp" -w '%{http_code}' "$URL/v1/projects/$P/tasks")
check "invalid UTF-8 in a CSV: 400 naming the line" "400 line 2: field 2 is not valid UTF-8" \
    "$status $(jq -r .error.message "$resp")"
r=$(api POST "/v1/projects/$P/tasks" "$ADMIN_TOKEN" '[{"text": "a"}, 5]')
check "a JSON array with a non-object: 400 invalid_json naming task 2" "400 invalid_json task 2 (line 1): a task must be a JSON object" \
    "${r%% *} $(echo "${r#* }" | jq -r '.error.code + " " + .error.message')"
check "nothing imported by the bad bodies" "$before" "$(count)"
rc=0
"$QR_BIN_DIR/quorumctl" import --project "$P" --format xml "$E2E_DIR/t.csv" 2>/dev/null || rc=$?
check "an unknown --format: usage error" 2 "$rc"

finish
