#!/usr/bin/env bash
# The browser labeler on a project with a label schema (issue 17, point 2):
# choice, multi_choice, rating, spans over the task's text, boxes over its
# image and an optional text field, ten tasks labeled in Debian's chromium
# (tests/ui/label_schema.py) with the keyboard (Tab between fields, number
# keys, Enter) and the mouse (a label button for a selected span, a box
# dragged on the image). The annotations in PostgreSQL are the values given:
# every field exact, the boxes within a percent of where they were drawn.
# Then the time from a submission to the next task on screen per label type
# (issue 17's acceptance, for each type): 51 tasks in a project of one
# field of each type, labeled with that type's least input, 50 figures
# each; a table is printed and the figures written to
# build/ui-screenshots/latency.json.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3 # Debian's, which has python3-selenium
start_broker
CTL="$QR_BIN_DIR/quorumctl"

cat >"$E2E_DIR/schema.json" <<'JSON'
{"fields": [
  {"name": "sentiment", "type": "choice", "choices": ["positive", "negative"]},
  {"name": "tags", "type": "multi_choice", "choices": ["food", "service", "price"]},
  {"name": "score", "type": "rating", "min": 1, "max": 5, "step": 1},
  {"name": "entities", "type": "spans", "over": "text", "labels": ["PER", "ORG"], "overlap": false},
  {"name": "objects", "type": "boxes", "over": "image", "labels": ["car", "dog"]},
  {"name": "note", "type": "text", "max_length": 100, "required": false}]}
JSON
P=$("$CTL" project create --name "reviews" --schema "$E2E_DIR/schema.json" --annotations-per-task 1)
IMG="data:image/svg+xml;base64,$(printf '%s' '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"><rect width="400" height="300" fill="#cde"/><circle cx="200" cy="150" r="60" fill="#e84"/></svg>' | base64 -w0)"
for i in $(seq 1 10); do
    printf '{"data":{"text":"Zoë met Bob at ACME in Paris, visit %d","image":"%s"}}\n' "$i" "$IMG"
done | "$CTL" import --project "$P" - >/dev/null
# One project of one field per type, 51 tasks each, for the latency run.
LN=51
LAT=""
for spec in 'choice:{"type": "choice", "choices": ["yes", "no", "maybe"]}' \
    'multi_choice:{"type": "multi_choice", "choices": ["food", "service", "price"]}' \
    'rating:{"type": "rating", "min": 1, "max": 5}' \
    'text:{"type": "text", "max_length": 100}' \
    'spans:{"type": "spans", "over": "text", "labels": ["PER", "ORG"]}' \
    'boxes:{"type": "boxes", "over": "image", "labels": ["car", "dog"]}'; do
    kind=${spec%%:*}
    echo "{\"fields\": [$(jq -c '. + {name: "f"}' <<<"${spec#*:}")]}" >"$E2E_DIR/schema-$kind.json"
    L=$("$CTL" project create --name "latency $kind" --schema "$E2E_DIR/schema-$kind.json" --annotations-per-task 1)
    for i in $(seq 1 $LN); do
        printf '{"data":{"text":"Zoë met Bob at ACME in Paris, visit %d","image":"%s"}}\n' "$i" "$IMG"
    done | "$CTL" import --project "$L" - >/dev/null
    LAT="$LAT${LAT:+,}$kind:$L"
done
T=$(new_annotator ann1)
U=$(sql "SELECT id FROM users WHERE name = 'ann1'")

SHOTS="$QR_SOURCE_DIR/build/ui-screenshots"
mkdir -p "$SHOTS"
if out=$(timeout 400 "$PY" "$QR_SOURCE_DIR/tests/ui/label_schema.py" --url "$URL" --ca "$CA" --token "$T" --project "$P" \
    --n 10 --shots "$SHOTS" --out "$E2E_DIR/given.jsonl" --latency "$LAT" --latency-n $LN \
    --latency-out "$SHOTS/latency.json" 2>"$E2E_DIR/browser.log"); then :; else
    fail "tests/ui/label_schema.py exited $?: $(tail -20 "$E2E_DIR/browser.log")"
fi
echo "$out"
PASSES=$((PASSES + $(grep -c '^ok - ' <<<"$out" || true)))
FAILS=$((FAILS + $(grep -c '^not ok - ' <<<"$out" || true)))

sql "SELECT json_build_object('task', task_id, 'labels', label::json) FROM annotations
     WHERE project_id = $P AND annotator_id = $U ORDER BY task_id" >"$E2E_DIR/stored.jsonl"
check "ten annotations stored" 10 "$(wc -l <"$E2E_DIR/stored.jsonl")"
check "ten sets of labels given" 10 "$(wc -l <"$E2E_DIR/given.jsonl")"
"$PY" - "$E2E_DIR/given.jsonl" "$E2E_DIR/stored.jsonl" <<'PY' && pass "every field stored as given (boxes within 1 %)" || fail "stored labels differ from those given"
import json, sys
given = {j['task']: j['labels'] for j in map(json.loads, open(sys.argv[1]))}
stored = {j['task']: j['labels'] for j in map(json.loads, open(sys.argv[2]))}
bad = 0
for t, g in given.items():
    s = stored.get(t)
    if s is None:
        print('task %d: not stored' % t); bad += 1; continue
    gb, sb = g.pop('objects'), s.pop('objects')
    if g != s:
        print('task %d: %s != %s' % (t, g, s)); bad += 1
    if len(gb) != len(sb) or any(a['label'] != b['label'] or any(abs(a[k] - b[k]) > 1.0 for k in ('x', 'y', 'width', 'height'))
                                 for a, b in zip(gb, sb)):
        print('task %d boxes: %s != %s' % (t, gb, sb)); bad += 1
sys.exit(1 if bad or set(given) != set(stored) else 0)
PY
for kv in ${LAT//,/ }; do
    check "latency ${kv%%:*}: all $LN tasks labeled" $LN \
        "$(sql "SELECT count(*) FROM annotations WHERE project_id = ${kv#*:} AND annotator_id = $U")"
done
check "latency.json has the six types" "boxes choice multi_choice rating spans text" \
    "$(jq -r '.types | keys | join(" ")' "$SHOTS/latency.json" 2>&1)"
check "screenshot label-schema.png written" true "$([ -s "$SHOTS/label-schema.png" ] && echo true || echo false)"
finish
