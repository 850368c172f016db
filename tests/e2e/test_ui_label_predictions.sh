#!/usr/bin/env bash
# Pre-annotation in the browser labeler (issue 16 point 9, issue 17 point 2):
# a project with show_predictions shows each task's prediction as a "model
# suggestion (score S)" and pre-fills the answer with it, every label type
# (choice, multi_choice, rating, text, spans and boxes drawn as editable
# regions). In Debian's chromium (tests/ui/label_predictions.py) an
# annotator accepts 5 suggestions unchanged with Enter and edits 5 (another
# choice, a tag more, another rating, a span's ends moved, a span removed
# and one added, the box moved, resized and relabeled, the note rewritten);
# the annotations in PostgreSQL are exactly the predictions for the first five and the edits for the
# others, and the report's quality.shown_predictions agrees (10 compared, 5
# accepted). On a plain project Enter accepts the suggested label (an undo
# shows the task again with its suggestion) and a number gives another. Projects without show_predictions whose tasks carry
# predictions show no suggestion: the page's DOM has none.
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
IMG="data:image/svg+xml;base64,$(printf '%s' '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"><rect width="400" height="300" fill="#cde"/><circle cx="200" cy="150" r="60" fill="#e84"/></svg>' | base64 -w0)"
# Ten tasks, each with a prediction of every field (scores 0.80..0.89).
"$PY" - "$IMG" "$E2E_DIR/tasks.jsonl" <<'PY'
import json, sys
img, out = sys.argv[1], sys.argv[2]
with open(out, 'w') as f:
    for i in range(10):
        labels = {'sentiment': ['positive', 'negative'][i % 2],
                  'tags': ['food'] + (['price'] if i % 3 == 0 else []),
                  'score': 1 + i % 5,
                  'entities': [{'start': 0, 'end': 3, 'label': 'PER'}, {'start': 15, 'end': 19, 'label': 'ORG'}],
                  'objects': [{'x': 10 + i, 'y': 20, 'width': 30, 'height': 40, 'label': 'dog'}],
                  'note': 'model note %d' % i}
        f.write(json.dumps({'data': {'text': 'Zoë met Bob at ACME in Paris, visit %d' % i, 'image': img},
                            'prediction': {'labels': labels, 'score': round(0.80 + i / 100, 2),
                                           'model_version': 'm7'}}) + '\n')
PY
P=$("$CTL" project create --name "reviews, pre-annotated" --schema "$E2E_DIR/schema.json" --annotations-per-task 1 \
    --show-predictions on)
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
# The same tasks in a project that does not show predictions.
R=$("$CTL" project create --name "reviews, no suggestions" --schema "$E2E_DIR/schema.json" --annotations-per-task 1)
"$CTL" import --project "$R" "$E2E_DIR/tasks.jsonl" >/dev/null
# A plain project: two tasks with a prediction, one without.
Q=$("$CTL" project create --name "sentiment, pre-annotated" --labels pos,neg,neutral --annotations-per-task 1 \
    --show-predictions on)
printf '%s\n' '{"data": {"text": "fine"}, "prediction": {"label": "pos", "score": 0.91, "model_version": "m7"}}' \
    '{"data": {"text": "meh"}, "prediction": {"label": "neg", "score": 0.55}}' \
    '{"data": {"text": "bad"}}' | "$CTL" import --project "$Q" - >/dev/null
S=$("$CTL" project create --name "sentiment, no suggestions" --labels pos,neg,neutral --annotations-per-task 1)
echo '{"data": {"text": "fine"}, "prediction": {"label": "pos", "score": 0.91}}' | "$CTL" import --project "$S" - >/dev/null
check "the import kept the ten predictions" 10 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND prediction ? 'labels'")"
sql "SELECT json_build_object('task', id, 'prediction', prediction) FROM tasks WHERE project_id = $P ORDER BY id" \
    >"$E2E_DIR/predictions.jsonl"
T=$(new_annotator ann1)
U=$(sql "SELECT id FROM users WHERE name = 'ann1'")

SHOTS="$QR_SOURCE_DIR/build/ui-screenshots"
mkdir -p "$SHOTS"
if out=$(timeout 180 "$PY" "$QR_SOURCE_DIR/tests/ui/label_predictions.py" --url "$URL" --ca "$CA" --token "$T" \
    --project "$P" --plain "$Q" --without "$R,$S" --predictions "$E2E_DIR/predictions.jsonl" --shots "$SHOTS" \
    --out "$E2E_DIR/given.jsonl" 2>"$E2E_DIR/browser.log"); then :; else
    fail "tests/ui/label_predictions.py exited $?: $(tail -20 "$E2E_DIR/browser.log")"
fi
echo "$out"
PASSES=$((PASSES + $(grep -c '^ok - ' <<<"$out" || true)))
FAILS=$((FAILS + $(grep -c '^not ok - ' <<<"$out" || true)))

# --- the schema project: accepted ones are the predictions, edited ones the edits ----------------
check "ten annotations stored" 10 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P AND annotator_id = $U")"
check "the five accepted are exactly their task's prediction (as JSON values)" \
    "$(jq -r 'select(.accepted) | .task' "$E2E_DIR/given.jsonl" | sort -n | paste -sd,)" \
    "$(sql "SELECT string_agg(an.task_id::text, ',' ORDER BY an.task_id) FROM annotations an JOIN tasks t ON t.id = an.task_id
            WHERE an.project_id = $P AND an.label::jsonb = t.prediction->'labels'")"
sql "SELECT json_build_object('task', task_id, 'labels', label::json) FROM annotations
     WHERE project_id = $P AND annotator_id = $U ORDER BY task_id" >"$E2E_DIR/stored.jsonl"
"$PY" - "$E2E_DIR/given.jsonl" "$E2E_DIR/stored.jsonl" <<'PY' && pass "the five edited are the edits, every field (boxes within 1 %)" || fail "stored labels differ from those given"
import json, sys
given = {j['task']: j for j in map(json.loads, open(sys.argv[1]))}
stored = {j['task']: j['labels'] for j in map(json.loads, open(sys.argv[2]))}
bad = 0
edited = [g for g in given.values() if not g['accepted']]
if len(edited) != 5:
    print('edited: %d, not 5' % len(edited)); bad += 1
for g in edited:
    t, want = g['task'], dict(g['labels'])
    s = stored.get(t)
    if s is None:
        print('task %d: not stored' % t); bad += 1; continue
    s = dict(s)
    gb, sb = want.pop('objects'), s.pop('objects')
    if want != s:
        print('task %d: %s != %s' % (t, want, s)); bad += 1
    if len(gb) != len(sb) or any(a['label'] != b['label'] or any(abs(a[k] - b[k]) > 1.0 for k in ('x', 'y', 'width', 'height'))
                                 for a, b in zip(gb, sb)):
        print('task %d boxes: %s != %s' % (t, gb, sb)); bad += 1
sys.exit(1 if bad else 0)
PY
check "the report's shown predictions agree: 10 compared, 5 accepted" '{"compared":10,"accepted":5,"rate":0.5}' \
    "$(api GET "/v1/projects/$P/report" | cut -d' ' -f2- | jq -c .quality.shown_predictions)"

# --- the plain project: Enter gave the suggestion, a number another label ---------------------------
check "plain: the suggestion accepted, another label given, the task without one labeled" "fine pos|meh pos|bad neg" \
    "$(sql "SELECT string_agg(t.data->>'text' || ' ' || an.label, '|' ORDER BY t.id) FROM annotations an
            JOIN tasks t ON t.id = an.task_id WHERE an.project_id = $Q")"
check "plain: the accepted label was undone once and given again" 1 \
    "$(sql "SELECT count(*) FROM annotation_undos WHERE project_id = $Q")"
check "plain: the report, 2 compared, 1 accepted" '{"compared":2,"accepted":1,"rate":0.5}' \
    "$(api GET "/v1/projects/$Q/report" | cut -d' ' -f2- | jq -c .quality.shown_predictions)"
check "nothing was labeled in the projects without suggestions" 0 \
    "$(sql "SELECT count(*) FROM annotations WHERE project_id IN ($R, $S)")"
check "screenshot label_prediction.png written" true "$([ -s "$SHOTS/label_prediction.png" ] && echo true || echo false)"
finish
