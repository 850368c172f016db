#!/usr/bin/env bash
# Label Studio task objects in, nothing lost: a file written by hand to Label
# Studio's documented task shape (ids, data, predictions with model_version,
# score and result, annotations with result, completed_by, lead_time,
# was_cancelled, ground_truth) imported through quorumctl; every id becomes
# the task's external_id, every data field, prediction and annotation is kept
# whole; the best-scored prediction feeds prediction/prediction_score; the
# annotations belong to --annotations-as NAME or the `imported` pseudo-user
# and count toward the overlap only with --count-annotations (then the task
# needs that many fewer leases). A NAME of another organization is refused
# and nothing is imported.
. "$(dirname "$0")/lib.sh"

start_broker
P=$(new_project '{"name":"ls","labels":[" positive","negative ","neutral"],"annotations_per_task":2}')
check "labels are trimmed at project create" '["positive", "negative", "neutral"]' \
    "$(sql "SELECT labels::text FROM projects WHERE id = $P")"
A=$(new_annotator alice)

cat >"$E2E_DIR/ls_export.json" <<'JSON'
[
  {
    "id": 101,
    "data": {"text": "I love it", "meta": {"source": "app", "stars": 5}},
    "predictions": [
      {"model_version": "m1", "score": 0.55,
       "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                   "value": {"choices": ["neutral"]}}]},
      {"model_version": "m2", "score": 0.93,
       "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                   "value": {"choices": ["positive"]}}]}
    ],
    "annotations": [
      {"id": 9001, "completed_by": 3, "lead_time": 4.25, "was_cancelled": false,
       "ground_truth": true, "created_at": "2024-05-01T12:00:00.000000Z",
       "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                   "value": {"choices": ["positive"]}}]}
    ]
  },
  {
    "id": 102,
    "data": {"text": "meh"},
    "annotations": [
      {"id": 9002, "completed_by": 4, "lead_time": 1.5, "was_cancelled": true,
       "ground_truth": false, "result": []}
    ]
  },
  {"id": 103, "data": {"text": "awful"}, "predictions": [], "annotations": []}
]
JSON

out=$("$QR_BIN_DIR/quorumctl" import --project "$P" "$E2E_DIR/ls_export.json")
check "quorumctl imports the Label Studio file" "imported 3 tasks" "${out%% (*}"
check "every Label Studio id is the task's external_id" "101 102 103" \
    "$(sql "SELECT string_agg(external_id, ' ' ORDER BY id) FROM tasks WHERE project_id = $P")"
check "every data field is kept as it was" \
    '{"meta": {"stars": 5, "source": "app"}, "text": "I love it"}|{"text": "meh"}|{"text": "awful"}' \
    "$(sql "SELECT string_agg(data::text, '|' ORDER BY id) FROM tasks WHERE project_id = $P")"
check "predictions are kept whole (both models, scores and results)" \
    'm1 0.55 neutral|m2 0.93 positive' \
    "$(sql "SELECT string_agg(concat_ws(' ', p->>'model_version', p->>'score', p->'result'->0->'value'->'choices'->>0), '|')
            FROM tasks, jsonb_array_elements(predictions) p WHERE project_id = $P AND external_id = '101'")"
check "the best-scored prediction is the task's prediction" 'positive 0.93 m2' \
    "$(sql "SELECT concat_ws(' ', prediction->>'label', prediction_score, prediction->>'model_version') FROM tasks WHERE project_id = $P AND external_id = '101'")"
check "tasks without predictions have none" "2" \
    "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND predictions IS NULL AND prediction IS NULL")"
check "annotations are imported with every field, as the imported pseudo-user" \
    '101 imported positive 4.25 f t 9001 2024-05-01 12:00:00|102 imported  1.5 t f 9002 -' \
    "$(sql "SELECT string_agg(concat_ws(' ', t.external_id, u.name, coalesce(a.label, ''), a.lead_time, a.was_cancelled, a.ground_truth, a.source_id,
                   CASE WHEN a.source_id = '9001' THEN (a.created_at AT TIME ZONE 'UTC')::text ELSE '-' END), '|' ORDER BY a.id)
            FROM imported_annotations a JOIN tasks t ON t.id = a.task_id JOIN users u ON u.id = a.annotator_id WHERE a.project_id = $P")"
check "an annotation's result is kept whole" \
    '[{"type": "choices", "value": {"choices": ["positive"]}, "to_name": "text", "from_name": "sentiment"}]' \
    "$(sql "SELECT result::text FROM imported_annotations a JOIN tasks t ON t.id = a.task_id WHERE t.external_id = '101' AND a.project_id = $P")"
check "without --count-annotations nothing counts toward the overlap" "0 0" \
    "$(sql "SELECT sum(done_count) || ' ' || (SELECT count(*) FROM annotations WHERE project_id = $P) FROM tasks WHERE project_id = $P")"
check "the pseudo-user is an annotator of the project's organization" "annotator 1" \
    "$(sql "SELECT u.role || ' ' || count(*) FROM users u JOIN projects p ON p.org_id = u.org_id WHERE p.id = $P AND u.name = 'imported' GROUP BY u.role")"

# --- counted, as a named user ----------------------------------------------------------------
P2=$(new_project '{"name":"ls2","labels":["positive","negative","neutral"],"annotations_per_task":2}')
sed 's/"id": 1\([0-9][0-9]\)/"id": 2\1/' "$E2E_DIR/ls_export.json" >"$E2E_DIR/ls2.json"
out=$("$QR_BIN_DIR/quorumctl" import --project "$P2" --annotations-as alice --count-annotations "$E2E_DIR/ls2.json")
check "--annotations-as alice --count-annotations" "imported 3 tasks" "${out%% (*}"
check "the annotations are alice's" "alice alice" \
    "$(sql "SELECT string_agg(u.name, ' ') FROM imported_annotations a JOIN users u ON u.id = a.annotator_id WHERE a.project_id = $P2")"
check "a labeled, not cancelled annotation counts: task 201 has 1 of 2, the others 0" "201:1 202:0 203:0" \
    "$(sql "SELECT string_agg(external_id || ':' || done_count, ' ' ORDER BY id) FROM tasks WHERE project_id = $P2")"
check "and is a row of annotations by alice" "alice positive 4250" \
    "$(sql "SELECT concat_ws(' ', u.name, a.label, a.active_ms) FROM annotations a JOIN users u ON u.id = a.annotator_id WHERE a.project_id = $P2")"
r=$(api POST "/v1/projects/$P2/leases" "$A" '{"max":10}')
check "alice is not offered the task she annotated already" "202 203" \
    "$(for t in $(echo "${r#* }" | jq '.leases[].task_id'); do sql "SELECT external_id FROM tasks WHERE id = $t"; done | sort | paste -sd' ')"
B=$(new_annotator bob)
r=$(api POST "/v1/projects/$P2/leases" "$B" '{"max":10}')
L=$(echo "${r#* }" | jq -r '.leases[] | select(.data.text == "I love it") | .lease')
T=$(echo "${r#* }" | jq -r '.leases[] | select(.data.text == "I love it") | .task_id')
r=$(api POST "/v1/projects/$P2/leases/$L/submit" "$B" '{"label":"positive"}')
check "bob's annotation completes task 201 (1 imported + 1 from a lease)" "complete 2" \
    "$(sql "SELECT state || ' ' || done_count FROM tasks WHERE id = $T")"

# --- refusals: nothing imported ---------------------------------------------------------------
O=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"other-org"}' | cut -d' ' -f2- | jq .id)
api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"mallory\",\"role\":\"annotator\",\"organization\":\"other-org\"}" >/dev/null
sed 's/"id": 1\([0-9][0-9]\)/"id": 3\1/' "$E2E_DIR/ls_export.json" >"$E2E_DIR/ls3.json"
before=$(sql "SELECT count(*) FROM tasks WHERE project_id = $P2")
rc=0
out=$("$QR_BIN_DIR/quorumctl" import --project "$P2" --annotations-as mallory "$E2E_DIR/ls3.json" 2>&1) || rc=$?
check "a user of another organization: exit 1" 1 "$rc"
case "$out" in *'no user named "mallory"'*) pass "and says no such user in the organization" ;; *) fail "no refusal in: $out" ;; esac
resp=$(mktemp "$E2E_DIR/resp.XXXXXX")
status=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    --data-binary @"$E2E_DIR/ls3.json" -o "$resp" -w '%{http_code}' "$URL/v1/projects/$P2/tasks?annotations_as=nobody")
check "an unknown user over the API: 422 unknown_user" "422 unknown_user" "$status $(jq -r .error.code "$resp")"
check "nothing imported by the refused imports (tasks, annotations, users)" "$before 2 0" \
    "$(sql "SELECT concat_ws(' ', (SELECT count(*) FROM tasks WHERE project_id = $P2), (SELECT count(*) FROM imported_annotations WHERE project_id = $P2), (SELECT count(*) FROM users WHERE org_id = $O AND name = 'imported'))")"
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"blank","labels":["a","  "]}')
check "a blank label is refused at project create" "422" "${r%% *}"
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"twice","labels":["a"," a"]}')
check "labels equal once trimmed are refused as duplicates" '422 label "a" appears twice' \
    "${r%% *} $(echo "${r#* }" | jq -r .error.message)"

finish
