#!/usr/bin/env bash
# Label schemas (issue 15): a project made with a schema of named fields
# (choice, multi_choice, rating, spans, boxes, text) takes a "labels" object
# per submission, checked against it; a bad value is 422 invalid_labels
# naming the field, nothing is stored and the lease stays held (a heartbeat
# goes through, and a valid resubmission is stored). Every schema rule
# broken on POST /v1/projects is 422 invalid_schema naming the field, with
# no project made. Stored text is the canonical JSON (byte-identical for the
# same value however written, so an idempotent resend replays); spans are
# measured in code points of the task's text (read from PostgreSQL);
# exports give "label": null and "labels"; webhooks the same. Plain
# projects keep today's "label" and also take {"labels": {"label": ...}}.
. "$(dirname "$0")/lib.sh"

openssl rand -hex 32 >"$E2E_DIR/webhook.key"
start_broker --webhook-key-file "$E2E_DIR/webhook.key" --webhook-allow-private
CTL="$QR_BIN_DIR/quorumctl"
ANN=$(new_annotator ann1)
code() { echo "${1%% *} $(echo "${1#* }" | jq -r '.error.code // empty')"; }
errfield() { echo "${1#* }" | jq -r '.error.field // empty'; }
message() { echo "${1#* }" | jq -r '.error.message // empty'; }
projects() { sql "SELECT count(*) FROM projects"; }

# refusal DESCRIPTION ANSWER CODE FIELD REASON: ANSWER is 422 CODE naming
# FIELD, and its message starts "FIELD: " and holds REASON.
refusal() {
    local msg
    check "$1: 422 $3, field $4" "422 $3 $4" "$(code "$2") $(errfield "$2")"
    msg=$(message "$2")
    case "$msg" in
    "$4: "*"$5"*) pass "$1: the message says why: $msg" ;;
    *) fail "$1: the message '$msg' is not '$4: ...$5...'" ;;
    esac
}

# --- schemas refused ---------------------------------------------------------------------

# schema_refused DESCRIPTION SCHEMA FIELD REASON: POST /v1/projects with
# SCHEMA is 422 invalid_schema naming FIELD; the message starts "FIELD: " and
# holds REASON; no project is made.
schema_refused() {
    local before r
    before=$(projects)
    r=$(api POST /v1/projects "$ADMIN_TOKEN" "{\"name\": \"bad\", \"schema\": $2}")
    refusal "$1" "$r" invalid_schema "$3" "$4"
    check "$1: no project made" "$before" "$(projects)"
}

F='{"name": "f", "type":'
schema_refused "an empty schema" '{"fields": []}' schema "fields must be an array of 1 to 32 fields"
schema_refused "no fields" '{}' schema "fields must be an array"
schema_refused "an unknown schema key" '{"fields": [{"name": "a", "type": "text"}], "x": 1}' schema \
    'unknown key "x"'
schema_refused "33 fields" "{\"fields\": [$(for i in $(seq 1 33); do printf '%s{"name": "t%d", "type": "text"}' "$([ "$i" = 1 ] || echo ,)" "$i"; done)]}" \
    schema "1 to 32 fields"
schema_refused "a field that is no object" '{"fields": ["sentiment"]}' "fields[0]" "must be an object"
schema_refused "a bad field name" '{"fields": [{"name": "my field", "type": "text"}]}' "fields[0]" \
    "name must be 1 to 64 characters"
schema_refused "a name twice" '{"fields": [{"name": "a", "type": "text"}, {"name": "a", "type": "text"}]}' \
    a "two fields have this name"
schema_refused "an unknown type" "{\"fields\": [$F \"polygon\"}]}" f "type must be choice, multi_choice"
schema_refused "an unknown field key" "{\"fields\": [$F \"text\", \"choices\": [\"a\"]}]}" f \
    'unknown key "choices" for a text field'
schema_refused "required not a boolean" "{\"fields\": [$F \"text\", \"required\": \"no\"}]}" f \
    "required must be true or false"
schema_refused "choice without choices" "{\"fields\": [$F \"choice\"}]}" f \
    "choices must be an array of 1 to 1000 strings"
schema_refused "a choice twice" "{\"fields\": [$F \"choice\", \"choices\": [\"a\", \"a\"]}]}" f \
    'choices holds "a" twice'
schema_refused "an empty choice" "{\"fields\": [$F \"choice\", \"choices\": [\"\"]}]}" f \
    "choices[0] must be a string of 1 to 200 bytes"
schema_refused "multi_choice max above its choices" \
    "{\"fields\": [$F \"multi_choice\", \"choices\": [\"a\", \"b\"], \"max\": 3}]}" f \
    "max must be an integer from 1 to 2"
schema_refused "multi_choice min above its choices" \
    "{\"fields\": [$F \"multi_choice\", \"choices\": [\"a\", \"b\"], \"min\": 3}]}" f \
    "min must be an integer from 0 to 2"
schema_refused "rating min not below max" "{\"fields\": [$F \"rating\", \"min\": 5, \"max\": 1}]}" f \
    "min (5) must be less than max (1)"
schema_refused "rating without max" "{\"fields\": [$F \"rating\", \"min\": 1}]}" f \
    "min and max must be numbers"
schema_refused "rating step 0" "{\"fields\": [$F \"rating\", \"min\": 1, \"max\": 5, \"step\": 0}]}" f \
    "step must be a number greater than 0"
schema_refused "rating off its own grid" "{\"fields\": [$F \"rating\", \"min\": 1, \"max\": 5, \"step\": 1.5}]}" \
    f "(max - min) / step must be a whole number"
schema_refused "rating of 1001 levels" "{\"fields\": [$F \"rating\", \"min\": 0, \"max\": 100, \"step\": 0.1}]}" \
    f "at most 1000"
schema_refused "spans without over" "{\"fields\": [$F \"spans\", \"labels\": [\"PER\"]}]}" f \
    "over must name the task's data key"
schema_refused "spans without labels" "{\"fields\": [$F \"spans\", \"over\": \"text\"}]}" f \
    "labels must be an array"
schema_refused "spans overlap not a boolean" \
    "{\"fields\": [$F \"spans\", \"over\": \"text\", \"labels\": [\"A\"], \"overlap\": 0}]}" f \
    "overlap must be true or false"
schema_refused "boxes without labels" "{\"fields\": [$F \"boxes\", \"over\": \"image\"}]}" f \
    "labels must be an array"
schema_refused "boxes with overlap" \
    "{\"fields\": [$F \"boxes\", \"over\": \"image\", \"labels\": [\"A\"], \"overlap\": true}]}" f \
    'unknown key "overlap" for a boxes field'
schema_refused "text max_length 0" "{\"fields\": [$F \"text\", \"max_length\": 0}]}" f \
    "max_length must be an integer from 1 to 100000"
schema_refused "labels and a schema" "{\"fields\": [$F \"text\"}]}, \"labels\": [\"a\"]" schema \
    "labels (one choice among them) or a schema, not both"
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "none"}')
check "neither labels nor a schema: 422 invalid (as before)" "422 invalid" "$(code "$r")"
check "no project made" 0 "$(projects)"

# --- a project of every type ----------------------------------------------------------------

cat >"$E2E_DIR/schema.json" <<'EOF'
{"fields": [
 {"name": "sentiment", "type": "choice", "choices": ["positive", "negative", "neutral"]},
 {"name": "tags", "type": "multi_choice", "choices": ["food", "service", "price", "place"], "min": 1, "max": 2},
 {"name": "score", "type": "rating", "min": 1, "max": 5},
 {"name": "quality", "type": "rating", "min": 0, "max": 1, "step": 0.25, "required": false},
 {"name": "entities", "type": "spans", "over": "text", "labels": ["PER", "ORG"], "overlap": false, "required": false},
 {"name": "mentions", "type": "spans", "over": "text", "labels": ["PER", "ORG"], "required": false},
 {"name": "objects", "type": "boxes", "over": "image", "labels": ["car", "dog"], "required": false},
 {"name": "note", "type": "text", "max_length": 10, "required": false}
]}
EOF
P=$("$CTL" project create --name reviews --schema "$E2E_DIR/schema.json" --annotations-per-task 1)
check "quorumctl project create --schema FILE makes the project" 1 "$P"
r=$(api GET "/v1/projects/$P")
check "a schema project's labels are []" "[]" "$(echo "${r#* }" | jq -c .labels)"
check "the schema is stored normalized (defaults filled in)" \
    'true|1|2|1|0.25|false|true|false' \
    "$(echo "${r#* }" | jq -r '.schema.fields | "\(.[0].required)|\(.[1].min)|\(.[1].max)|\(.[2].step)|\(.[3].step)|\(.[3].required)|\(.[5].overlap)|\(.[4].overlap)"')"
check "the fields keep their order and types" \
    "sentiment:choice tags:multi_choice score:rating quality:rating entities:spans mentions:spans objects:boxes note:text" \
    "$(echo "${r#* }" | jq -r '[.schema.fields[] | "\(.name):\(.type)"] | join(" ")')"
check "PostgreSQL holds the schema and labels []" "8 []" \
    "$(sql "SELECT jsonb_array_length(schema -> 'fields') || ' ' || labels::text FROM projects WHERE id = $P")"
show=$("$CTL" project show "$P")
for line in "schema: 8 fields" "field: sentiment choice required choices=positive,negative,neutral" \
    "field: tags multi_choice required min=1 max=2 choices=food,service,price,place" \
    "field: score rating required min=1 max=5 step=1" \
    "field: quality rating optional min=0 max=1 step=0.25" \
    "field: entities spans optional over=text overlap=no labels=PER,ORG" \
    "field: objects boxes optional over=image labels=car,dog" \
    "field: note text optional max_length=10"; do
    grepq -xF "$line" <<<"$show" && pass "project show: $line" || fail "project show lacks '$line': $show"
done
"$CTL" project list | grepq -E "^$P +active .* reviews +schema:sentiment,tags,score,quality,entities,mentions,objects,note$" &&
    pass "project list shows the schema's fields" || fail "project list: $("$CTL" project list)"

# PATCH cannot change a schema, nor give a schema project labels.
r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"schema": {"fields": [{"name": "x", "type": "text"}]}}')
check "PATCH schema: 422" 422 "${r%% *}"
case "$(message "$r")" in *"schema is fixed"*) pass "it says the schema is fixed" ;; *) fail "PATCH schema: $r" ;; esac
r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"labels": ["a"]}')
check "PATCH labels on a schema project: 422" 422 "${r%% *}"
check "labels still []" "[]" "$(sql "SELECT labels::text FROM projects WHERE id = $P")"
r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"name": "reviews2"}')
check "PATCH name on a schema project: 200, schema kept" "200 8" \
    "${r%% *} $(echo "${r#* }" | jq '.schema.fields | length')"

# Tasks: one with text (22 code points in 28 bytes) and an image, one with
# no text, one whose text is a number.
printf '%s\n' '{"text": "Zoë met Ünïcode Corp 😀", "image": "https://example.com/1.png"}' \
    '{"image": "https://example.com/2.png"}' '{"text": 5}' | "$CTL" import --project "$P" - >/dev/null
check "three tasks imported" 3 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P")"
r=$(api POST "/v1/projects/$P/leases" "$ANN" '{"max": 3}')
L1=$(echo "${r#* }" | jq -r '.leases[0].lease')
L2=$(echo "${r#* }" | jq -r '.leases[1].lease')
L3=$(echo "${r#* }" | jq -r '.leases[2].lease')
check "three leases, in import order" "1 2 3" \
    "$(echo "${r#* }" | jq -r '[.leases[].task_id] | join(" ")')"
stored() { sql "SELECT count(*) FROM annotations WHERE project_id = $P"; }

# value_refused DESCRIPTION BODY FIELD REASON [LEASE]: a submit of BODY on
# LEASE (L1) is 422 invalid_labels naming FIELD with REASON; nothing is
# stored; the lease is still held (its heartbeat answers 200).
value_refused() {
    local lease=${5:-$L1} before r
    before=$(stored)
    r=$(api POST "/v1/projects/$P/leases/$lease/submit" "$ANN" "$2")
    refusal "$1" "$r" invalid_labels "$3" "$4"
    check "$1: nothing stored" "$before" "$(stored)"
    r=$(api POST "/v1/projects/$P/leases/$lease/heartbeat" "$ANN")
    check "$1: the lease is still held (heartbeat 200)" 200 "${r%% *}"
}
OK='"sentiment": "positive", "tags": ["food"], "score": 3'
value_refused "an unknown field" "{\"labels\": {$OK, \"colour\": \"red\"}}" colour \
    "not a field of this project's schema"
value_refused "a required field missing" '{"labels": {"tags": ["food"], "score": 3}}' sentiment "required"
value_refused "a wrong type" '{"labels": {"sentiment": "positive", "tags": ["food"], "score": "3"}}' score \
    "must be a number from 1 to 5"
value_refused "a choice not in the list" '{"labels": {"sentiment": "great", "tags": ["food"], "score": 3}}' \
    sentiment '"great" is not one of the field'"'"'s choices'
value_refused "multi_choice below min" '{"labels": {"sentiment": "positive", "tags": [], "score": 3}}' tags \
    "holds 0 choices; it must hold 1 to 2"
value_refused "multi_choice above max" \
    '{"labels": {"sentiment": "positive", "tags": ["food", "price", "place"], "score": 3}}' tags "holds 3 choices"
value_refused "multi_choice twice the same" \
    '{"labels": {"sentiment": "positive", "tags": ["food", "food"], "score": 3}}' tags '"food" appears twice'
value_refused "a rating off the grid" '{"labels": {"sentiment": "positive", "tags": ["food"], "score": 2.5}}' \
    score "2.5 is not on the scale"
value_refused "a rating out of range" '{"labels": {"sentiment": "positive", "tags": ["food"], "score": 6}}' \
    score "6 is out of range"
value_refused "a decimal rating off its grid" "{\"labels\": {$OK, \"quality\": 0.3}}" quality \
    "0.3 is not on the scale"
value_refused "a span past the text (in code points, not bytes)" \
    "{\"labels\": {$OK, \"entities\": [{\"start\": 16, \"end\": 23, \"label\": \"ORG\"}]}}" entities \
    'ends outside the text of "text" (22 characters)'
value_refused "a span with end = start" \
    "{\"labels\": {$OK, \"mentions\": [{\"start\": 5, \"end\": 5, \"label\": \"PER\"}]}}" mentions \
    "end (5) must be greater than start (5)"
value_refused "a span with end < start" \
    "{\"labels\": {$OK, \"mentions\": [{\"start\": 5, \"end\": 2, \"label\": \"PER\"}]}}" mentions \
    "must be greater than start"
value_refused "a span of an unknown label" \
    "{\"labels\": {$OK, \"mentions\": [{\"start\": 0, \"end\": 2, \"label\": \"LOC\"}]}}" mentions \
    '"LOC" is not one of the field'"'"'s labels'
value_refused "spans overlapping where overlap is false" \
    "{\"labels\": {$OK, \"entities\": [{\"start\": 0, \"end\": 5, \"label\": \"PER\"}, {\"start\": 3, \"end\": 8, \"label\": \"ORG\"}]}}" \
    entities "spans overlap at [3, 5)"
value_refused "a box past the right edge" \
    "{\"labels\": {$OK, \"objects\": [{\"x\": 60, \"y\": 0, \"width\": 50, \"height\": 10, \"label\": \"car\"}]}}" \
    objects "is outside 0-100"
value_refused "a box of width 0" \
    "{\"labels\": {$OK, \"objects\": [{\"x\": 10, \"y\": 0, \"width\": 0, \"height\": 10, \"label\": \"car\"}]}}" \
    objects "is outside 0-100"
value_refused "a rotated box" \
    "{\"labels\": {$OK, \"objects\": [{\"x\": 10, \"y\": 0, \"width\": 5, \"height\": 10, \"label\": \"car\", \"rotation\": 30}]}}" \
    objects "rotation must be 0"
value_refused "a text too long (11 code points)" "{\"labels\": {$OK, \"note\": \"très bien!!\"}}" note \
    "is 11 characters long; at most 10"
value_refused '"label" on a schema of several fields' '{"label": "positive"}' labels \
    'send them as "labels"'
value_refused '"label" and "labels" both' "{\"label\": \"positive\", \"labels\": {$OK}}" labels \
    'give "label" or "labels", not both'
value_refused "labels not an object" '{"labels": ["positive"]}' labels "must be an object"
value_refused "spans over a data key the task lacks" "{\"labels\": {$OK, \"entities\": []}}" entities \
    'the task'"'"'s data has no "text"' "$L2"
value_refused "spans over data that is not a string" \
    "{\"labels\": {$OK, \"mentions\": [{\"start\": 0, \"end\": 1, \"label\": \"PER\"}]}}" mentions \
    'the task'"'"'s data "text" is not a string' "$L3"

# A valid value of every type, given out of order and with "text" and
# "rotation" 0 (dropped), is stored as canonical JSON. "très bien" is 9 code
# points (10 bytes) against max_length 10; the spans reach the text's end.
V1='{"note": "très bien", "objects": [{"x": 50, "y": 50, "width": 50, "height": 50, "label": "dog"},
 {"x": 0, "y": 0.0, "width": 10.5, "height": 20, "label": "car", "rotation": 0}],
 "mentions": [{"start": 8, "end": 15, "label": "ORG"}, {"start": 0, "end": 3, "label": "PER"},
  {"start": 16, "end": 22, "label": "ORG"}],
 "entities": [{"start": 8, "end": 20, "label": "ORG", "text": "Ünïcode Corp"}, {"start": 0, "end": 3, "label": "PER"}],
 "quality": 0.75, "score": 4.0, "tags": ["price", "food"], "sentiment": "positive"}'
CANON='{"sentiment":"positive","tags":["food","price"],"score":4,"quality":0.75,"entities":[{"start":0,"end":3,"label":"PER"},{"start":8,"end":20,"label":"ORG"}],"mentions":[{"start":0,"end":3,"label":"PER"},{"start":8,"end":15,"label":"ORG"},{"start":16,"end":22,"label":"ORG"}],"objects":[{"x":0,"y":0,"width":10.5,"height":20,"label":"car"},{"x":50,"y":50,"width":50,"height":50,"label":"dog"}],"note":"très bien"}'
r=$(api POST "/v1/projects/$P/leases/$L1/submit" "$ANN" "{\"labels\": $V1, \"idempotency_key\": \"k1\", \"active_ms\": 900}")
check "after the refusals, a valid value on the same lease: 201" 201 "${r%% *}"
A1=$(echo "${r#* }" | jq .annotation_id)
check "stored as the canonical JSON text" "$CANON" "$(sql "SELECT label FROM annotations WHERE id = $A1")"
# The same value written another way (keys and elements reordered, 4 as 4.0,
# "text" left out) is the same bytes: the resend replays.
V1B='{"sentiment": "positive", "tags": ["food", "price"], "score": 4, "quality": 0.75,
 "entities": [{"label": "PER", "start": 0, "end": 3}, {"start": 8, "end": 20, "label": "ORG"}],
 "mentions": [{"start": 16, "end": 22, "label": "ORG"}, {"start": 8, "end": 15, "label": "ORG"}, {"start": 0, "end": 3, "label": "PER"}],
 "objects": [{"label": "car", "x": 0, "y": 0, "width": 10.5, "height": 20.0}, {"x": 50, "y": 50, "width": 50, "height": 50, "label": "dog"}],
 "note": "très bien"}'
r=$(api POST "/v1/projects/$P/leases/$L1/submit" "$ANN" "{\"labels\": $V1B, \"idempotency_key\": \"k1\", \"active_ms\": 900}")
check "the same value written otherwise, same key: 200 replayed" "200 $A1 true" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.annotation_id) \(.replayed)"')"
r=$(api POST "/v1/projects/$P/leases/$L1/submit" "$ANN" \
    "{\"labels\": {$OK, \"note\": \"other\"}, \"idempotency_key\": \"k1\", \"active_ms\": 900}")
check "another value, same key: 409 idempotency_conflict" "409 idempotency_conflict" "$(code "$r")"
check "one annotation, unchanged" "1 $CANON" "$(stored) $(sql "SELECT label FROM annotations WHERE id = $A1")"
check "the lease log records no label for a schema project" "1 0" \
    "$(wait_sql "1 0" "SELECT count(*) || ' ' || count(label) FROM lease_events WHERE project_id = $P AND kind = 'submit'")"

# The batch path: a refusal in one entry (the data check: text not a
# string) leaves its lease held; the other entry is stored.
r=$(api POST "/v1/projects/$P/submit" "$ANN" "{\"results\": [
 {\"lease\": $L2, \"labels\": {\"sentiment\": \"neutral\", \"tags\": [\"place\", \"service\"], \"score\": 1,
   \"objects\": [{\"x\": 0, \"y\": 0, \"width\": 100, \"height\": 100, \"label\": \"car\"}]}},
 {\"lease\": $L3, \"labels\": {$OK, \"mentions\": [{\"start\": 0, \"end\": 1, \"label\": \"PER\"}]}}]}")
check "batch: 201 and 422 invalid_labels (mentions)" "200 201 422 invalid_labels mentions" \
    "${r%% *} $(echo "${r#* }" | jq -r '[.results[0].status, .results[1].status, .results[1].error.code, .results[1].error.field] | join(" ")')"
check "batch: the valid entry stored canonically" \
    '{"sentiment":"neutral","tags":["service","place"],"score":1,"objects":[{"x":0,"y":0,"width":100,"height":100,"label":"car"}]}' \
    "$(sql "SELECT label FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.id = 2")"
r=$(api POST "/v1/projects/$P/leases/$L3/heartbeat" "$ANN")
check "batch: the refused entry's lease is still held" 200 "${r%% *}"
r=$(api POST "/v1/projects/$P/submit" "$ANN" "{\"results\": [{\"lease\": $L3, \"labels\": {\"score\": 9}}]}")
check "batch: a static refusal names its field too" "422 invalid_labels sentiment" \
    "$(echo "${r#* }" | jq -r '[.results[0].status, .results[0].error.code, .results[0].error.field] | join(" ")')"
r=$(api POST "/v1/projects/$P/leases/$L3/submit" "$ANN" "{\"labels\": {$OK, \"note\": \"éééééééééé\"}}")
check "the refused lease takes a valid value (10 code points in 20 bytes)" 201 "${r%% *}"
check "three annotations" 3 "$(stored)"

# --- exports -------------------------------------------------------------------------------

r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/v1/projects/$P/export?format=jsonl")
check "JSONL: label null and labels parsed" "null $CANON" \
    "$(echo "$r" | jq -c 'select(.task_id == 1) | [.label, .labels]' | jq -r '"\(.[0]) \(.[1] | tojson)"')"
check "JSONL: every row has labels" 3 "$(echo "$r" | jq -c 'select(.labels | type == "object")' | wc -l)"
curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/v1/projects/$P/export?format=csv" \
    >"$E2E_DIR/export.csv"
check "CSV: today's columns and labels last" \
    "task_id,annotator,label,created_at,annotator_id,organization,external_id,lead_time,annotation_id,event,labels" \
    "$(head -1 "$E2E_DIR/export.csv" | tr -d '\r')"
check "CSV: the label cell empty, labels the canonical text" "|$CANON" \
    "$(python3 -c 'import csv,sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
r = [x for x in rows if x["task_id"] == "1"][0]
print(r["label"] + "|" + r["labels"])' "$E2E_DIR/export.csv")"
r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/v1/projects/$P/export?format=jsonl&kind=consensus")
check "consensus JSONL: consensus per field, the value its one annotation gave" "$CANON" \
    "$(echo "$r" | jq -c 'select(.task_id == 1) | .consensus')"
r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/v1/projects/$P/export?format=csv&kind=consensus" | head -1 | tr -d '\r')
check "consensus CSV: labels last" "task_id,external_id,consensus,support,annotators,gold,data,labels" "$r"
r=$(api GET "/v1/projects/$P/export?format=ls")
check "Label Studio export of a schema project: its results are the stored labels' fields" \
    "$(echo "$CANON" | jq -c '[keys_unsorted[]] | sort')" \
    "$(echo "${r#* }" | jq -c '[.[] | select(.id == 1) | .annotations[0].result[].from_name] | unique')"

# --- a webhook's payload ---------------------------------------------------------------------

r=$(api POST "/v1/projects/$P/webhooks" "$ADMIN_TOKEN" "{\"url\": \"http://127.0.0.1:$(free_port)/hook\", \"events\": [\"annotation.created\"]}")
check "a webhook on the schema project" 201 "${r%% *}"
printf '%s\n' '{"text": "a"}' | "$CTL" import --project "$P" - >/dev/null
L4=$(api POST "/v1/projects/$P/leases" "$ANN" '{"max": 1}' | cut -d' ' -f2- | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$P/leases/$L4/submit" "$ANN" "{\"labels\": {$OK}}")
check "a fourth annotation" 201 "${r%% *}"
check "annotation.created carries label null and labels parsed" "null true" \
    "$(sql "SELECT payload::text FROM webhook_events WHERE project_id = $P" |
        jq -r '"\(.label) \(.labels == {"sentiment": "positive", "tags": ["food"], "score": 3})"')"

# --- plain projects and a one-choice schema --------------------------------------------------

Q=$(new_project '{"name": "plain", "labels": ["a", "b"]}')
check "a plain project's schema is null" null "$(api GET "/v1/projects/$Q" | cut -d' ' -f2- | jq -c .schema)"
printf '%s\n' '{"n": 1}' '{"n": 2}' | "$CTL" import --project "$Q" - >/dev/null
r=$(api POST "/v1/projects/$Q/leases" "$ANN" '{"max": 2}')
M1=$(echo "${r#* }" | jq -r '.leases[0].lease')
M2=$(echo "${r#* }" | jq -r '.leases[1].lease')
r=$(api POST "/v1/projects/$Q/leases/$M1/submit" "$ANN" '{"labels": {"label": "zzz"}}')
check "plain, labels with an unknown label: 422 invalid_labels label" "422 invalid_labels label" \
    "$(code "$r") $(errfield "$r")"
r=$(api POST "/v1/projects/$Q/leases/$M1/submit" "$ANN" '{"label": "zzz"}')
check "plain, label unknown: 422 unknown_label as before" "422 unknown_label" "$(code "$r")"
r=$(api POST "/v1/projects/$Q/leases/$M1/submit" "$ANN" '{"labels": {"label": "b"}}')
check "plain, labels {label: b}: 201" 201 "${r%% *}"
r=$(api POST "/v1/projects/$Q/leases/$M2/submit" "$ANN" '{"label": "a"}')
check "plain, label a: 201 as before" 201 "${r%% *}"
check "plain projects store the label itself" "a b" \
    "$(sql "SELECT string_agg(label, ' ' ORDER BY label) FROM annotations WHERE project_id = $Q")"
r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/v1/projects/$Q/export?format=jsonl")
check "plain export: label as before, no labels key" "a false|b false" \
    "$(echo "$r" | jq -r '"\(.label) \(has("labels"))"' | sort | paste -sd'|')"
check "plain CSV export: today's header" \
    "task_id,annotator,label,created_at,annotator_id,organization,external_id,lead_time,annotation_id,event" \
    "$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/v1/projects/$Q/export?format=csv" | head -1 | tr -d '\r')"

echo '{"schema": {"fields": [{"name": "animal", "type": "choice", "choices": ["cat", "dog"]}]}}' >"$E2E_DIR/one.json"
O=$("$CTL" project create --name one --schema - <"$E2E_DIR/one.json")
check "quorumctl project create --schema - reads {\"schema\": ...} from stdin" \
    "animal:choice" "$(api GET "/v1/projects/$O" | cut -d' ' -f2- | jq -r '.schema.fields[] | "\(.name):\(.type)"')"
printf '%s\n' '{"n": 1}' | "$CTL" import --project "$O" - >/dev/null
N1=$(api POST "/v1/projects/$O/leases" "$ANN" '{"max": 1}' | cut -d' ' -f2- | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$O/leases/$N1/submit" "$ANN" '{"label": "cow"}')
check "one-choice schema, label outside the choices: 422 invalid_labels animal" "422 invalid_labels animal" \
    "$(code "$r") $(errfield "$r")"
r=$(api POST "/v1/projects/$O/leases/$N1/submit" "$ANN" '{"label": "dog"}')
check "one-choice schema, label dog: 201" 201 "${r%% *}"
check "stored as its labels object" '{"animal":"dog"}' "$(sql "SELECT label FROM annotations WHERE project_id = $O")"
"$CTL" project create --name x --labels a --schema "$E2E_DIR/one.json" >/dev/null 2>&1 && rc=0 || rc=$?
check "quorumctl project create with --labels and --schema: usage error" 2 "$rc"
echo '[1]' >"$E2E_DIR/bad.json"
"$CTL" project create --name x --schema "$E2E_DIR/bad.json" >/dev/null 2>"$E2E_DIR/err" && rc=0 || rc=$?
check "quorumctl project create --schema of no schema: usage error" 2 "$rc"
grepq "not a schema" <"$E2E_DIR/err" && pass "it says so" || fail "stderr: $(cat "$E2E_DIR/err")"
echo '{"fields": [{"name": "x", "type": "rating", "min": 1, "max": 1}]}' >"$E2E_DIR/bad.json"
"$CTL" project create --name x --schema "$E2E_DIR/bad.json" >/dev/null 2>"$E2E_DIR/err" && rc=0 || rc=$?
check "quorumctl project create with a schema the broker refuses: exit 1" 1 "$rc"
grepq "x: min (1) must be less than max (1)" <"$E2E_DIR/err" && pass "it prints the broker's reason" ||
    fail "stderr: $(cat "$E2E_DIR/err")"

# --- a lease Redis lost: the lease log vouches for it, the data check still runs -------------

R=$(new_project '{"name": "lost", "schema": {"fields": [{"name": "ents", "type": "spans", "over": "text", "labels": ["X"]}]}}')
printf '%s\n' '{"text": "abcdef"}' '{"text": "ghijkl"}' | "$CTL" import --project "$R" - >/dev/null
LIVE=$(api POST "/v1/projects/$R/leases" "$ANN" '{"max": 1}' | cut -d' ' -f2- | jq -r '.leases[0].lease')
check "the grant is in the lease log" 1 \
    "$(wait_sql 1 "SELECT count(*) FROM lease_events WHERE project_id = $R AND kind = 'grant'")"
redis-cli -p "$QR_REDIS_PORT" flushall >/dev/null
BOB=$(new_annotator bob)
r=$(api POST "/v1/projects/$R/leases" "$BOB" '{"max": 1}')
check "another annotator's grant rebuilds the project's Redis state" 200 "${r%% *}"
r=$(api POST "/v1/projects/$R/leases/$LIVE/submit" "$ANN" '{"labels": {"ents": [{"start": 0, "end": 7, "label": "X"}]}}')
check "a lost lease's span past the text: 422 invalid_labels ents" "422 invalid_labels ents" \
    "$(code "$r") $(errfield "$r")"
check "nothing stored" 0 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $R")"
r=$(api POST "/v1/projects/$R/leases/$LIVE/submit" "$ANN" '{"labels": {"ents": [{"start": 0, "end": 6, "label": "X"}]}}')
check "the same lease with a valid value: 201" 201 "${r%% *}"
check "stored" '{"ents":[{"start":0,"end":6,"label":"X"}]}' "$(sql "SELECT label FROM annotations WHERE project_id = $R")"

finish
