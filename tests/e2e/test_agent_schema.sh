#!/usr/bin/env bash
# quorum-agent on projects with a label schema (issue 15, point 4).
#
# simulate: a project with all six field types (choice, multi_choice,
# rating, spans over the task's text, boxes, text); tasks with text, some
# with their truth in "_true_label" (an object by field name). A crew at
# accuracy 1 stores, per task, the same labels from every annotator, the
# given truths exactly; a crew at 0.5 agrees less on every field; a crew at
# 0.8 through batch submits stores only valid values (checked here against
# the contract, code points for spans). A truth the broker refuses (a span
# past the text) shows its 422, field and reason, in the simulate log.
#
# exec: the command gets the schema and answers {"labels": {...}}; a value
# the broker refuses (422 "score: ...") is a failure of the command with that
# reason, its lease released and the result kept in the .rejected file
# (labels and all); the task comes back and its second answer is stored. A
# spooled "labels" record is listed and sent by `spool --send`.
#
# label (through tmux, as test_agent_label.sh): choice, multi_choice
# (toggle, Enter, the count checked), rating (a digit; a typed decimal),
# text (typed, Enter), Esc back a field, n for an optional field, the
# optional spans field left out and said so; undo brings the task back; a
# project that requires a spans field is refused before anything is leased.
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200
AGENT="$QR_BIN_DIR/quorum-agent"

# --- simulate ---------------------------------------------------------------------------------
SCHEMA='{"fields": [
  {"name": "sentiment", "type": "choice", "choices": ["pos", "neg", "neu"]},
  {"name": "tags", "type": "multi_choice", "choices": ["a", "b", "c", "d"], "min": 0, "max": 2},
  {"name": "score", "type": "rating", "min": 1, "max": 5, "step": 1},
  {"name": "entities", "type": "spans", "over": "text", "labels": ["ORG", "PER"], "overlap": false},
  {"name": "objects", "type": "boxes", "over": "image", "labels": ["car", "tree"]},
  {"name": "note", "type": "text", "max_length": 40}]}'
# tasks.jsonl: 24 tasks; texts with accents and CJK (spans count code
# points); every third one gives some of its truth (in canonical form).
python3 - "$E2E_DIR/tasks.jsonl" <<'EOF'
import json, sys
texts = ["Acme Corp hired Jane Doe in Paris", "Zürich café: naïve Müller met Ærø mayor",
         "東京 の 会社 が 山田 さん を 雇った", "word", "Globex sued Initech over staplers"]
with open(sys.argv[1], "w") as f:
    for i in range(24):
        d = {"text": texts[i % len(texts)], "image": "https://img.example/%d.png" % i}
        if i % 3 == 0:
            d["_true_label"] = {"sentiment": "neg", "tags": ["a", "d"], "score": 2,
                                "entities": [{"start": 0, "end": 4, "label": "ORG"}],
                                "note": "given %d" % i}
        f.write(json.dumps(d, ensure_ascii=False) + "\n")
EOF

# new_schema_project NAME: a project of $SCHEMA, 3 annotations per task, the tasks imported.
new_schema_project() {
    local r p
    r=$(api POST /v1/projects "$ADMIN_TOKEN" "{\"name\": \"$1\", \"annotations_per_task\": 3, \"schema\": $SCHEMA}")
    p=$(echo "${r#* }" | jq .id)
    "$QR_BIN_DIR/quorumctl" import --project "$p" "$E2E_DIR/tasks.jsonl" >/dev/null
    echo "$p"
}
# labels_of P: one JSON line per annotation, {"task", "text", "labels"}.
labels_of() {
    sql "SELECT json_build_object('task', a.task_id, 'text', t.data->>'text', 'labels', a.label::json)
         FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $1 ORDER BY a.id"
}
# simulate P ACCURACY NAME [flags]: a crew of 3, seed 7; output in $E2E_DIR/NAME.*
simulate() {
    local p=$1 acc=$2 name=$3 rc=0
    shift 3
    timeout 200 "$AGENT" simulate --project "$p" --annotators 3 --accuracy "$acc" --seed 7 \
        --think-ms 0 --max-seconds 150 --json-summary "$E2E_DIR/$name.json" "$@" \
        >"$E2E_DIR/$name.out" 2>"$E2E_DIR/$name.err" || rc=$?
    echo "$rc"
}

P1=$(new_schema_project sim-exact)
check "project with a schema: its JSON has the schema" 6 \
    "$(api GET "/v1/projects/$P1" | cut -d' ' -f2- | jq '.schema.fields | length')"
check "simulate at accuracy 1: exit 0" 0 "$(simulate "$P1" 1 exact)"
grepq "a label schema of 6 fields" <"$E2E_DIR/exact.err" && pass "simulate says it labels a schema" ||
    fail "no schema in: $(head -3 "$E2E_DIR/exact.err")"
check "accuracy 1: 72 annotations" 72 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P1")"
check "accuracy 1: every field value counted correct" "1 1 1" \
    "$(jq -r '[.per_annotator[] | .matched_truth / .with_truth] | map(tostring) | join(" ")' "$E2E_DIR/exact.json")"
check "accuracy 1: the crew agrees on every task" 0 \
    "$(sql "SELECT count(*) FROM (SELECT task_id FROM annotations WHERE project_id = $P1
            GROUP BY task_id HAVING count(DISTINCT label) > 1) d")"
check "accuracy 1: the given truths stored as given" 24 \
    "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P1
            AND t.data ? '_true_label' AND (a.label::jsonb - 'objects') = t.data->'_true_label'")"

# validate P: every stored value checked against the contract (tests/e2e, not the broker's code).
cat >"$E2E_DIR/validate.py" <<'EOF'
import json, sys
schema = {f["name"]: f for f in json.loads(sys.argv[1])["fields"]}
bad = n = 0
for line in sys.stdin:
    row = json.loads(line); v = row["labels"]; n += 1
    def no(why):
        global bad; bad += 1; print("invalid: %s in %s" % (why, line.strip()), file=sys.stderr)
    if set(v) != set(schema): no("fields %s" % sorted(v)); continue
    f = schema["sentiment"]
    if v["sentiment"] not in f["choices"]: no("sentiment")
    t = v["tags"]
    if len(set(t)) != len(t) or any(x not in schema["tags"]["choices"] for x in t) or len(t) > 2: no("tags")
    if not isinstance(v["score"], int) or not 1 <= v["score"] <= 5: no("score")
    spans = sorted((s["start"], s["end"]) for s in v["entities"])
    L = len(row["text"])  # code points
    if any(not (0 <= a < b <= L) for a, b in spans) or any(spans[i][1] > spans[i + 1][0] for i in range(len(spans) - 1)):
        no("entities over %d code points" % L)
    if any(s["label"] not in ("ORG", "PER") for s in v["entities"]): no("entity label")
    for b in v["objects"]:
        if not (b["x"] >= 0 and b["y"] >= 0 and b["width"] > 0 and b["height"] > 0 and
                b["x"] + b["width"] <= 100 + 1e-9 and b["y"] + b["height"] <= 100 + 1e-9): no("box")
    if not isinstance(v["note"], str) or len(v["note"]) > 40: no("note")
print("%d %d" % (n, bad))
EOF
P2=$(new_schema_project sim-batch)
check "simulate at accuracy 0.8, batch submits: exit 0" 0 "$(simulate "$P2" 0.8 batch --prefetch 4 --batch)"
check "accuracy 0.8: 72 annotations, none invalid" "72 0" "$(labels_of "$P2" | python3 "$E2E_DIR/validate.py" "$SCHEMA")"
check "accuracy 0.8: no error" "errors: none" "$(grep '^errors:' "$E2E_DIR/batch.out")"
check "accuracy 1: none invalid either" "72 0" "$(labels_of "$P1" | python3 "$E2E_DIR/validate.py" "$SCHEMA")"

# Pairwise exact agreement per field: the crew at 0.5 agrees less than the one at 1 on each.
P3=$(new_schema_project sim-half)
check "simulate at accuracy 0.5: exit 0" 0 "$(simulate "$P3" 0.5 half)"
check "accuracy 0.5: none invalid" "72 0" "$(labels_of "$P3" | python3 "$E2E_DIR/validate.py" "$SCHEMA")"
cat >"$E2E_DIR/agree.py" <<'EOF'
import itertools, json, sys
by = {}
for line in sys.stdin:
    r = json.loads(line); by.setdefault(r["task"], []).append(r["labels"])
out = []
for f in ["sentiment", "tags", "score", "entities", "objects", "note"]:
    pairs = [a[f] == b[f] for ls in by.values() for a, b in itertools.combinations(ls, 2)]
    out.append("%s=%.2f" % (f, sum(pairs) / len(pairs)))
print(" ".join(out))
EOF
exact=$(labels_of "$P1" | python3 "$E2E_DIR/agree.py")
half=$(labels_of "$P3" | python3 "$E2E_DIR/agree.py")
echo "    agreement at 1: $exact"
echo "    agreement at 0.5: $half"
check "accuracy 1: every field agrees on every pair" \
    "sentiment=1.00 tags=1.00 score=1.00 entities=1.00 objects=1.00 note=1.00" "$exact"
# shellcheck disable=SC2086 # one argument per field
lower=$(python3 -c 'import sys; print(sum(float(kv.split("=")[1]) < 0.9 for kv in sys.argv[1:]))' $half)
check "accuracy 0.5: every field agrees less (under 0.9)" 6 "$lower"
"$AGENT" simulate --help | grepq "correct" && pass "simulate --help says what correct counts" || fail "help"

# A truth the broker refuses: its 422 (field and reason) in the simulate log.
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "sim-bad", "schema": {"fields": [
    {"name": "entities", "type": "spans", "over": "text", "labels": ["ORG"]}]}}')
P4=$(echo "${r#* }" | jq .id)
echo '{"text": "short", "_true_label": {"entities": [{"start": 2, "end": 40, "label": "ORG"}]}}' |
    "$QR_BIN_DIR/quorumctl" import --project "$P4" - >/dev/null
check "an invalid truth: simulate with --duration exits 0" 0 "$(simulate "$P4" 1 bad --duration 2)"
grepq "dropping lease .* after submit: 422 invalid_labels: entities: span 0: " <"$E2E_DIR/bad.err" &&
    pass "the broker's 422 names the field in the simulate log" || fail "no 422 in: $(cat "$E2E_DIR/bad.err")"
check "nothing stored for it" 0 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P4")"

# --- exec -------------------------------------------------------------------------------------
TOKEN=$(new_annotator schema-bot)
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "exec-schema", "annotations_per_task": 1, "schema": {"fields": [
    {"name": "sentiment", "type": "choice", "choices": ["pos", "neg"]},
    {"name": "tags", "type": "multi_choice", "choices": ["x", "y", "z"]},
    {"name": "score", "type": "rating", "min": 1, "max": 5},
    {"name": "entities", "type": "spans", "over": "text", "labels": ["W"], "required": false},
    {"name": "note", "type": "text", "max_length": 20}]}}')
P5=$(echo "${r#* }" | jq .id)
for i in 1 2 3 4; do echo "{\"text\": \"task number $i\", \"n\": $i, \"_secret\": 1}"; done |
    "$QR_BIN_DIR/quorumctl" import --project "$P5" - >/dev/null
# The command: records its input; answers a labels object from the data; the
# first time it sees task n=2 it answers a rating off the scale.
cat >"$E2E_DIR/cmd.sh" <<'EOF'
#!/usr/bin/env bash
task=$(cat)
echo "$task" >>"$INPUTS"
n=$(jq -r .data.n <<<"$task")
score=$n
[ "$n" = 2 ] && mkdir "$MARKS/2" 2>/dev/null && score=9
jq -c --argjson s "$score" '{labels: {sentiment: (if .data.n % 2 == 0 then "neg" else "pos" end),
    tags: ["x", "z"], score: $s, entities: [{start: 0, end: 4, label: "W"}], note: ("n" + (.data.n | tostring))}}' <<<"$task"
EOF
chmod +x "$E2E_DIR/cmd.sh"
export INPUTS="$E2E_DIR/inputs.jsonl" MARKS="$E2E_DIR/marks"
mkdir "$MARKS"
set +e
QUORUM_TOKEN=$TOKEN timeout 120 "$AGENT" exec --project "$P5" --idle-exit 3 --max-failures 3 \
    --spool "$E2E_DIR/exec-spool" -- "$E2E_DIR/cmd.sh" 2>"$E2E_DIR/exec.err"
rc=$?
set -e
sed 's/^/    /' "$E2E_DIR/exec.err"
check "exec exits 0" 0 "$rc"
check "the command got the schema's fields" 5 "$(head -1 "$INPUTS" | jq '.schema.fields | length')"
check "and labels [] beside it, the data without _ keys" '[] null' "$(head -1 "$INPUTS" | jq -c '.labels, .data._secret' | paste -sd' ')"
check "four annotations stored" 4 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P5")"
check "labels stored canonical, in schema order" \
    '{"sentiment":"neg","tags":["x","z"],"score":2,"entities":[{"start":0,"end":4,"label":"W"}],"note":"n2"}' \
    "$(sql "SELECT a.label FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P5 AND t.data->>'n' = '2'")"
grepq "the broker refused it: .*score: " <"$E2E_DIR/exec.err" && pass "the 422 is the command's failure, naming the field" ||
    fail "no 422 reason in exec's stderr"
check "the lease was released with that reason" 1 \
    "$(sql "SELECT count(*) FROM leases WHERE project_id = $P5 AND outcome = 'released' AND reason LIKE '%score:%'")"
check "the refused result is in the .rejected file, labels and all" 9 \
    "$(jq '.result.labels.score' "$E2E_DIR/exec-spool.rejected")"
check "exec spool empty" "spool $E2E_DIR/exec-spool: 0 result(s) pending" "$("$AGENT" spool --spool "$E2E_DIR/exec-spool")"
# An answer whose labels are not an object is the command's, not the broker's, failure.
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "exec-bad", "annotations_per_task": 1, "schema": {"fields": [
    {"name": "note", "type": "text"}]}}')
P6=$(echo "${r#* }" | jq .id)
echo '{"text": "t"}' | "$QR_BIN_DIR/quorumctl" import --project "$P6" - >/dev/null
set +e
QUORUM_TOKEN=$TOKEN timeout 60 "$AGENT" exec --project "$P6" --max-failures 1 --spool "$E2E_DIR/exec-spool" \
    -- sh -c 'cat >/dev/null; echo "{\"labels\": \"oops\"}"' 2>"$E2E_DIR/exec2.err"
rc=$?
set -e
check "labels not an object: exec stops (exit 9)" 9 "$rc"
grepq '"labels" is not an object' <"$E2E_DIR/exec2.err" && pass "and says why" || fail "exec2: $(cat "$E2E_DIR/exec2.err")"

# A spooled result of a schema project carries "labels" (spool.h's records are
# JSON): listed as such, and sent by spool --send (batch submit) as such.
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "spool-schema", "schema": {"fields": [
    {"name": "sentiment", "type": "choice", "choices": ["pos", "neg"]}, {"name": "note", "type": "text"}]}}')
P8=$(echo "${r#* }" | jq .id)
echo '{"text": "t"}' | "$QR_BIN_DIR/quorumctl" import --project "$P8" - >/dev/null
L8=$(api POST "/v1/projects/$P8/leases" "$TOKEN" '{"max": 1}' | cut -d' ' -f2- | jq -r '.leases[0].lease')
who=$(api GET /v1/whoami "$TOKEN" | cut -d' ' -f2-)
jq -nc --argjson w "$who" --arg l "$L8" --arg u "$URL" --argjson p "$P8" '{id: 1, result: {deployment: $w.deployment,
    user: $w.user_id, url: $u, project: $p, kind: "submit", task_id: 1, lease: $l,
    labels: {note: "from the spool", sentiment: "neg"}, idempotency_key: "spooled-labels-1", active_ms: 7,
    spooled_at_ms: 1700000000000}}' | python3 "$(dirname "$0")/spool_file.py" write "$E2E_DIR/labels-spool"
"$AGENT" spool --spool "$E2E_DIR/labels-spool" | sed 's/^/    /'
"$AGENT" spool --spool "$E2E_DIR/labels-spool" | grepq '{"note":"from the spool","sentiment":"neg"}' &&
    pass "spool lists a labels record with its labels" || fail "spool listing"
set +e
out=$(QUORUM_TOKEN=$TOKEN "$AGENT" spool --send --spool "$E2E_DIR/labels-spool" 2>/dev/null)
rc=$?
set -e
check "spool --send of a labels record: exit 0" "0 sent: 1 stored (0 replayed), 0 rejected; 0 pending" "$rc $out"
check "... stored canonical" '{"sentiment":"neg","note":"from the spool"}' \
    "$(sql "SELECT label FROM annotations WHERE project_id = $P8")"

# --- label ------------------------------------------------------------------------------------
tmux_server
TERM_TOKEN=$(new_annotator schema-term)
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "term-schema", "annotations_per_task": 1, "schema": {"fields": [
    {"name": "sentiment", "type": "choice", "choices": ["pos", "neg", "neu"]},
    {"name": "tags", "type": "multi_choice", "choices": ["a", "b", "c"], "min": 1, "max": 2},
    {"name": "score", "type": "rating", "min": 1, "max": 5},
    {"name": "conf", "type": "rating", "min": 0, "max": 1, "step": 0.25, "required": false},
    {"name": "note", "type": "text", "max_length": 30},
    {"name": "entities", "type": "spans", "over": "text", "labels": ["ORG"], "required": false}]}}')
P7=$(echo "${r#* }" | jq .id)
for i in 1 2 3; do echo "{\"text\": \"review $i: the soup was cold\"}"; done |
    "$QR_BIN_DIR/quorumctl" import --project "$P7" - >/dev/null
label_in_tmux label "$TERM_TOKEN" "$P7" "$E2E_DIR/label-spool"
screen() { tmux_screen label; }
wait_for() { tmux_wait_for label "$1"; }
keys() { "${TMUX_CMD[@]}" send-keys -t label "$@"; sleep 0.3; }
T1="(SELECT min(id) FROM tasks WHERE project_id = $P7)"
wait_for "review 1: the soup" && pass "label: a task is on screen" || fail "label: no task: $(screen)"
wait_for "Field 1/5  sentiment" && pass "label: the first field, of the five it can label" || fail "label: $(screen)"
screen | grepq "left out, not labelable here: entities (spans)" && pass "label: the spans field is said to be left out" ||
    fail "label: no left-out line: $(screen)"
screen | grepq "\[1\] pos   \[2\] neg   \[3\] neu" && pass "label: the choices" || fail "label: choices: $(screen)"
screen | sed 's/^/    | /'
keys 1
wait_for "Field 2/5  tags" && pass "label: a digit chose, the next field is on screen" || fail "label: $(screen)"
keys Escape
wait_for "Field 1/5  sentiment" && pass "label: Esc goes back a field" || fail "label: Esc: $(screen)"
keys 2
keys Enter
wait_for "tags: choose at least 1" && pass "label: multi_choice below its min is refused" || fail "label: min: $(screen)"
keys 1
keys 3
screen | grepq "\[1\] \[x\] a   \[2\] \[ \] b   \[3\] \[x\] c" && pass "label: digits toggle choices" || fail "label: toggles: $(screen)"
keys Enter
wait_for "Field 3/5  score" && pass "label: Enter confirms the multi_choice" || fail "label: $(screen)"
keys 7
wait_for "score: type a number from 1 to 5" && pass "label: a rating off the scale is refused" || fail "label: 7: $(screen)"
keys 4
wait_for "Field 4/5  conf" && pass "label: a digit rates a 1-5 scale" || fail "label: $(screen)"
keys -l "0.75"
screen | grepq "> 0.75_" && pass "label: a decimal scale is typed" || fail "label: typed: $(screen)"
keys Enter
wait_for "Field 5/5  note" && pass "label: Enter confirms the typed rating" || fail "label: $(screen)"
keys -l "qué tal, s r u q"
keys BSpace
keys Enter
check "label: the labels stored, canonical" \
    '{"sentiment":"neg","tags":["a","c"],"score":4,"conf":0.75,"note":"qué tal, s r u "}' \
    "$(wait_sql '{"sentiment":"neg","tags":["a","c"],"score":4,"conf":0.75,"note":"qué tal, s r u "}' \
        "SELECT label FROM annotations WHERE task_id = $T1")"
wait_for "review 2: the soup" && pass "label: the next task follows" || fail "label: $(screen)"
keys 3
keys 2
keys Enter
keys 5
keys n
wait_for "Field 5/5  note" && pass "label: n leaves out an optional field" || fail "label: n: $(screen)"
keys Enter
T2="(SELECT min(id) + 1 FROM tasks WHERE project_id = $P7)"
check "label: the second task's labels, conf left out, an empty note" \
    '{"sentiment":"neu","tags":["b"],"score":5,"note":""}' \
    "$(wait_sql '{"sentiment":"neu","tags":["b"],"score":5,"note":""}' "SELECT label FROM annotations WHERE task_id = $T2")"
keys u
wait_for "undone; it was labeled" && pass "label: u brings the task back" || fail "label: undo: $(screen)"
check "label: the undone annotation is gone" 0 "$(wait_sql 0 "SELECT count(*) FROM annotations WHERE task_id = $T2")"
wait_for "Field 1/5  sentiment" && pass "label: the undone task starts at its first field" || fail "label: $(screen)"
keys 1
keys 1
keys Enter
keys 1
keys n
keys Enter
check "label: the task labeled again" '{"sentiment":"pos","tags":["a"],"score":1,"note":""}' \
    "$(wait_sql '{"sentiment":"pos","tags":["a"],"score":1,"note":""}' "SELECT label FROM annotations WHERE task_id = $T2")"
keys q
for i in $(seq 1 100); do [ -s "$E2E_DIR/label.rc" ] && break; sleep 0.1; done
check "label: q exits 0" 0 "$(cat "$E2E_DIR/label.rc" 2>/dev/null)"
check "label: two annotations in all" 2 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P7")"
check "label: spool empty" "spool $E2E_DIR/label-spool: 0 result(s) pending" "$("$AGENT" spool --spool "$E2E_DIR/label-spool")"

# A project that requires a spans field: refused before any lease.
leases=$(sql "SELECT count(*) FROM leases WHERE project_id = $P4")
set +e
out=$(script -qec "QUORUM_TOKEN=$TERM_TOKEN $AGENT label --project $P4 --spool $E2E_DIR/label-spool" /dev/null 2>&1)
rc=$?
set -e
check "label: a required spans field: exit 2" 2 "$rc"
case "$out" in *"needs another labeler"*) pass "label: and says it needs another labeler" ;; *) fail "label: $out" ;; esac
check "label: nothing leased for it" "$leases" "$(sql "SELECT count(*) FROM leases WHERE project_id = $P4")"
tmux_cleanup
finish
