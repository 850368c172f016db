#!/usr/bin/env bash
# Label Studio's result shapes on a project with a label schema (issue 15):
# a Label Studio export holding every shape (choices, choices with several
# values, labels with start/end/text, rectanglelabels, rating, textarea) is
# imported; each annotation, the best prediction and a gold answer land as
# labels objects checked against the schema (span offsets turned from
# Label Studio's UTF-16 units into code points past an emoji); an annotator
# labels the rest through the API; `format=ls` gives every value back in
# Label Studio's shapes; that export imported into a second project gives
# the same labels, byte for byte. Labels that break the schema are refused
# with the line and the field, and nothing is imported.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
SCHEMA='{"fields": [
  {"name": "sentiment", "type": "choice", "choices": ["positive", "negative", "neutral"]},
  {"name": "tags", "type": "multi_choice", "choices": ["urgent", "spam", "billing"], "max": 2},
  {"name": "score", "type": "rating", "min": 1, "max": 5},
  {"name": "entities", "type": "spans", "over": "text", "labels": ["ORG", "PER"]},
  {"name": "objects", "type": "boxes", "over": "image", "labels": ["car", "person"], "required": false},
  {"name": "note", "type": "text", "max_length": 40, "required": false}]}'
A=$(new_project "{\"name\": \"ls-a\", \"annotations_per_task\": 2, \"schema\": $SCHEMA}")
B=$(new_project "{\"name\": \"ls-b\", \"annotations_per_task\": 2, \"schema\": $SCHEMA}")
ALICE=$(new_annotator alice)

# import PROJECT FILE [QUERY] [CONTENT_TYPE]: prints "STATUS BODY".
import() {
    local code
    code=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" \
        -H "Content-Type: ${4:-application/json}" --data-binary "@$2" -o "$E2E_DIR/import.out" \
        -w '%{http_code}' "$URL/v1/projects/$1/tasks?${3:-}")
    printf '%s %s' "$code" "$(cat "$E2E_DIR/import.out")"
}

# "😀 " is two code points and three UTF-16 units: Label Studio's start 3 is
# Quorum's 2.
cat >"$E2E_DIR/source.json" <<'JSON'
[
  {"id": 201,
   "data": {"text": "😀 Acme hired Bob", "image": "https://img.example/1.png"},
   "gold": {"sentiment": "positive", "tags": ["billing", "urgent"], "score": 4,
            "entities": [{"start": 13, "end": 16, "label": "PER"}, {"start": 2, "end": 6, "label": "ORG"}]},
   "predictions": [
     {"model_version": "m0", "score": 0.3,
      "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["negative"]}}]},
     {"model_version": "m1", "score": 0.8,
      "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["positive"]}},
                 {"from_name": "entities", "to_name": "text", "type": "labels",
                  "value": {"start": 3, "end": 7, "text": "Acme", "labels": ["ORG"]}}]}],
   "annotations": [
     {"id": 7001, "completed_by": 5, "lead_time": 3.5, "was_cancelled": false, "ground_truth": false,
      "created_at": "2024-05-01T12:00:00Z",
      "result": [
        {"id": "r1", "from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["positive"]}},
        {"id": "r2", "from_name": "tags", "to_name": "text", "type": "choices", "value": {"choices": ["billing", "urgent"]}},
        {"id": "r3", "from_name": "score", "to_name": "text", "type": "rating", "value": {"rating": 4}},
        {"id": "r4", "from_name": "entities", "to_name": "text", "type": "labels",
         "value": {"start": 3, "end": 7, "text": "Acme", "labels": ["ORG"]}},
        {"id": "r5", "from_name": "entities", "to_name": "text", "type": "labels",
         "value": {"start": 14, "end": 17, "text": "Bob", "labels": ["PER"]}},
        {"id": "r6", "from_name": "objects", "to_name": "image", "type": "rectanglelabels",
         "original_width": 640, "original_height": 480,
         "value": {"x": 10, "y": 20.5, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["car"]}},
        {"id": "r7", "from_name": "note", "to_name": "text", "type": "textarea", "value": {"text": ["looks fine"]}}]}]},
  {"id": 202,
   "data": {"text": "Bob met Ann", "image": "https://img.example/2.png"},
   "annotations": [{"id": 7002, "completed_by": 5, "was_cancelled": true, "result": []}]},
  {"id": 203,
   "data": {"text": "Initech", "image": "https://img.example/3.png"}}
]
JSON
r=$(import "$A" "$E2E_DIR/source.json" "count_annotations=1")
check "a Label Studio export into a schema project: 201" 201 "${r%% *}"
check "three tasks" 3 "$(echo "${r#* }" | jq .imported)"

V7001='{"sentiment":"positive","tags":["urgent","billing"],"score":4,"entities":[{"start":2,"end":6,"label":"ORG"},{"start":13,"end":16,"label":"PER"}],"objects":[{"x":10,"y":20.5,"width":30,"height":40,"label":"car"}],"note":"looks fine"}'
check "the annotation's result, one labels object, canonical (UTF-16 start 3 is code point 2)" "$V7001" \
    "$(sql "SELECT label FROM imported_annotations WHERE project_id = $A AND source_id = '7001'")"
check "its result is kept whole too" "7 r4" \
    "$(sql "SELECT jsonb_array_length(result) || ' ' || (result->3->>'id') FROM imported_annotations WHERE project_id = $A AND source_id = '7001'")"
check "a cancelled, empty annotation: kept, without a label" "true true" \
    "$(sql "SELECT was_cancelled || ' ' || (label IS NULL) FROM imported_annotations WHERE project_id = $A AND source_id = '7002'")"
check "counted toward the overlap: one annotation with the same labels" "$V7001|1" \
    "$(sql "SELECT a.label || '|' || t.done_count FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $A AND t.external_id = '201'")"
check "the best prediction (m1), its labels mapped and checked, no field required" \
    "$(jq -cS . <<<'{"labels":{"sentiment":"positive","entities":[{"start":2,"end":6,"label":"ORG"}]},"score":0.8,"model_version":"m1"}')" \
    "$(sql "SELECT prediction::text FROM tasks WHERE project_id = $A AND external_id = '201'" | jq -cS '{labels, score, model_version}')"
GOLD='{"sentiment":"positive","tags":["urgent","billing"],"score":4,"entities":[{"start":2,"end":6,"label":"ORG"},{"start":13,"end":16,"label":"PER"}]}'
check "the gold answer, a labels object, canonical" "$GOLD" \
    "$(sql "SELECT gold FROM tasks WHERE project_id = $A AND external_id = '201'")"
check "the predictions kept whole" 2 \
    "$(sql "SELECT jsonb_array_length(predictions) FROM tasks WHERE project_id = $A AND external_id = '201'")"

# Alice labels what is left: 201 (one more), 202 and 203.
r=$(api POST "/v1/projects/$A/leases" "$ALICE" '{"max": 3}')
check "three leases for alice" 3 "$(echo "${r#* }" | jq '.leases | length')"
submit() { # submit EXTERNAL_ID LABELS
    local lease
    lease=$(echo "${r#* }" | jq -r --arg t "$(sql "SELECT id FROM tasks WHERE project_id = $A AND external_id = '$1'")" \
        '.leases[] | select(.task_id == ($t | tonumber)) | .lease')
    local s
    s=$(api POST "/v1/projects/$A/leases/$lease/submit" "$ALICE" "{\"labels\": $2}")
    check "alice labels task $1: 201" 201 "${s%% *}"
}
submit 201 "$GOLD"
V202='{"sentiment":"neutral","tags":[],"score":2,"entities":[{"start":0,"end":3,"label":"PER"},{"start":8,"end":11,"label":"PER"}],"objects":[{"x":0,"y":0,"width":100,"height":100,"label":"person"}]}'
submit 202 "$V202"
V203='{"sentiment":"negative","tags":["spam"],"score":1,"entities":[{"start":0,"end":7,"label":"ORG"}],"note":"Ünïcode ✓"}'
submit 203 "$V203"

curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$URL/v1/projects/$A/export?format=ls" -o "$E2E_DIR/export.json" -w '%{http_code}' >"$E2E_DIR/export.code"
check "format=ls of a schema project: 200" 200 "$(cat "$E2E_DIR/export.code")"
check "a JSON array of the three tasks" "201 202 203" \
    "$(jq -r '[.[].meta.external_id] | join(" ")' "$E2E_DIR/export.json")"
ann() { # ann EXTERNAL_ID JQ: JQ on alice's annotation of that task (completed_by: her id)
    jq -c --arg t "$1" ".[] | select(.meta.external_id == \$t) | .annotations[] | select(.completed_by == $(sql "SELECT id FROM users WHERE name = 'alice'")) | $2" \
        "$E2E_DIR/export.json"
}
item() { # item EXTERNAL_ID FROM_NAME: the result items of that field, as compact JSON lines
    ann "$1" ".result[] | select(.from_name == \"$2\") | {type, to_name, value}"
}
check "choice: a choices result" '{"type":"choices","to_name":"text","value":{"choices":["positive"]}}' \
    "$(item 201 sentiment)"
check "multi_choice: one choices result, every value" '{"type":"choices","to_name":"text","value":{"choices":["urgent","billing"]}}' \
    "$(item 201 tags)"
check "rating: a rating result" '{"type":"rating","to_name":"text","value":{"rating":4}}' "$(item 201 score)"
check "spans: a labels result each, UTF-16 offsets again, with the text" \
    '{"type":"labels","to_name":"text","value":{"start":3,"end":7,"text":"Acme","labels":["ORG"]}}
{"type":"labels","to_name":"text","value":{"start":14,"end":17,"text":"Bob","labels":["PER"]}}' \
    "$(item 201 entities | jq -c '{type, to_name, value: {start: .value.start, end: .value.end, text: .value.text, labels: .value.labels}}')"
check "boxes: a rectanglelabels result over the image" \
    '{"type":"rectanglelabels","to_name":"image","value":{"x":0,"y":0,"width":100,"height":100,"labels":["person"]}}' \
    "$(item 202 objects | jq -c '{type, to_name, value: {x: .value.x, y: .value.y, width: .value.width, height: .value.height, labels: .value.rectanglelabels}}')"
check "text: a textarea result" '{"type":"textarea","to_name":"text","value":{"text":["Ünïcode ✓"]}}' "$(item 203 note)"
check "an empty multi_choice is an empty choices result" '{"type":"choices","to_name":"text","value":{"choices":[]}}' \
    "$(item 202 tags)"
check "no result for a field left out" "" "$(item 201 objects)"
check "ground_truth: alice's 201 is the gold answer, 203 has none" "true false" \
    "$(echo "$(ann 201 .ground_truth) $(ann 203 .ground_truth)")"
check "the imported annotation as it came (its result and id)" '7 7001' \
    "$(jq -r '.[] | select(.meta.external_id == "201") | .annotations[] | select(.id == 7001) | "\(.result | length) \(.id)"' "$E2E_DIR/export.json")"
check "the counted copy of it is not exported twice" 2 \
    "$(jq '.[] | select(.meta.external_id == "201") | .annotations | length' "$E2E_DIR/export.json")"

# The export imported into a second project: the same labels, byte for byte.
r=$(import "$B" "$E2E_DIR/export.json")
check "the export into a second schema project: 201" 201 "${r%% *}"
labels_of() { # labels_of PROJECT: every labeled annotation's label, by source task, sorted
    sql "SELECT string_agg(x, E'\n' ORDER BY x) FROM (
           SELECT t.external_id || ' ' || a.label AS x FROM annotations a JOIN tasks t ON t.id = a.task_id
            WHERE t.project_id = $1 AND a.fencing_token > 0
           UNION ALL
           SELECT t.external_id || ' ' || ia.label FROM imported_annotations ia JOIN tasks t ON t.id = ia.task_id
            WHERE t.project_id = $1 AND ia.label IS NOT NULL) s"
}
imported_of() {
    sql "SELECT string_agg(t.external_id || ' ' || ia.label, E'\n' ORDER BY t.external_id || ' ' || ia.label)
           FROM imported_annotations ia JOIN tasks t ON t.id = ia.task_id
          WHERE t.project_id = $1 AND ia.label IS NOT NULL"
}
check "every labels object of project A is one of project B's imported annotations" \
    "$(labels_of "$A")" "$(imported_of "$B")"
check "4 labeled annotations made the trip" 4 "$(imported_of "$B" | wc -l)"

# The same file through the whole-body parse (allow_duplicates=1 reads the
# body whole before it writes; the imports above were streamed).
C=$(new_project "{\"name\": \"ls-c\", \"annotations_per_task\": 2, \"schema\": $SCHEMA}")
r=$(import "$C" "$E2E_DIR/source.json" "count_annotations=1&allow_duplicates=1")
check "whole-body parse: 201" 201 "${r%% *}"
check "whole-body parse: the same labels object, gold and prediction" "$V7001 $GOLD {\"sentiment\": \"positive\"}" \
    "$(sql "SELECT ia.label || ' ' || t.gold || ' ' || (t.prediction->'labels') - 'entities' FROM imported_annotations ia JOIN tasks t ON t.id = ia.task_id WHERE t.project_id = $C AND ia.source_id = '7001'")"

# --- refusals: the line, the field, the reason; nothing imported -----------------------------

refused() { # refused DESCRIPTION FILE FIELD MESSAGE_PART [CONTENT_TYPE]
    local before r
    before=$(sql "SELECT count(*) FROM tasks WHERE project_id = $B")
    r=$(import "$B" "$2" "" "${5:-}")
    check "$1: 422 invalid_task" "422 invalid_task" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"
    check "$1: the field" "$3" "$(echo "${r#* }" | jq -r .error.field)"
    case "$(echo "${r#* }" | jq -r .error.message)" in
    *"$4"*) pass "$1: says why ($(echo "${r#* }" | jq -r .error.message))" ;;
    *) fail "$1: message $(echo "${r#* }" | jq -r .error.message)" ;;
    esac
    check "$1: nothing imported" "$before" "$(sql "SELECT count(*) FROM tasks WHERE project_id = $B")"
}
bad() { printf '%s\n' "$2" >"$E2E_DIR/$1"; }
# Every required field but one, so that what is refused is the one given.
LS_OK='{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["positive"]}},'
LS_OK+=' {"from_name": "tags", "to_name": "text", "type": "choices", "value": {"choices": []}}'
LS_SPAN='{"from_name": "entities", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 1, "labels": ["ORG"]}}'
LS_SCORE='{"from_name": "score", "to_name": "text", "type": "rating", "value": {"rating": 3}}'
bad choice.jsonl '{"data": {"text": "x"}}
{"data": {"text": "abc"}, "annotations": [{"result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["great"]}}]}]}'
refused "a choice not among the field's" "$E2E_DIR/choice.jsonl" "annotations[0].result" 'sentiment: "great" is not one of'
r=$(import "$C" "$E2E_DIR/choice.jsonl" "allow_duplicates=1")
check "whole-body parse: the same refusal" "422 annotations[0].result 3" \
    "${r%% *} $(echo "${r#* }" | jq -r .error.field) $(sql "SELECT count(*) FROM tasks WHERE project_id = $C")"
bad span.jsonl "{\"data\": {\"text\": \"abc\"}, \"annotations\": [{\"result\": [$LS_OK, $LS_SCORE, {\"from_name\": \"entities\", \"to_name\": \"text\", \"type\": \"labels\", \"value\": {\"start\": 1, \"end\": 9, \"labels\": [\"ORG\"]}}]}]}"
refused "a span past the end of the text" "$E2E_DIR/span.jsonl" "annotations[0].result" "entities: span 0"
bad from.jsonl '{"data": {"text": "abc"}, "predictions": [{"result": [{"from_name": "mood", "to_name": "text", "type": "choices", "value": {"choices": ["positive"]}}]}]}'
refused "a result naming no field, two fields its type fills" "$E2E_DIR/from.jsonl" "predictions[0].result" '"mood" names no field'
bad gold.jsonl '{"data": {"text": "abc"}, "gold": {"sentiment": "positive"}}'
refused "a gold answer without a required field" "$E2E_DIR/gold.jsonl" "gold" "tags: required"
bad goldstr.jsonl '{"data": {"text": "abc"}, "gold": "positive"}'
refused "a bare gold label on a schema of six fields" "$E2E_DIR/goldstr.jsonl" "gold" "labels:"
bad pred.jsonl '{"data": {"text": "abc"}, "prediction": {"labels": {"colour": "red"}, "score": 0.5}}'
refused "a prediction with a field the schema lacks" "$E2E_DIR/pred.jsonl" "prediction.labels" "colour"
bad rating.json "[{\"data\": {\"text\": \"abc\"}, \"annotations\": [{\"result\": [$LS_OK, $LS_SPAN, {\"from_name\": \"score\", \"to_name\": \"text\", \"type\": \"rating\", \"value\": {\"rating\": 9}}]}]}]"
refused "a rating off the scale (JSON array)" "$E2E_DIR/rating.json" "annotations[0].result" "score: 9"
bad gold.csv 'text,gold
abc,"{""sentiment"": ""happy""}"'
refused "a CSV gold cell against the schema" "$E2E_DIR/gold.csv" "gold" '"happy"' text/csv
bad goldok.csv 'text,image,gold
Acme,https://img.example/9.png,"{""score"": 3, ""sentiment"": ""neutral"", ""tags"": [], ""entities"": [{""start"": 0, ""end"": 4, ""label"": ""ORG""}]}"'
r=$(import "$B" "$E2E_DIR/goldok.csv" "" text/csv)
check "a CSV gold cell holding a labels object: 201" 201 "${r%% *}"
check "kept canonical" '{"sentiment":"neutral","tags":[],"score":3,"entities":[{"start":0,"end":4,"label":"ORG"}]}' \
    "$(sql "SELECT gold FROM tasks WHERE project_id = $B AND data->>'text' = 'Acme'")"

finish
