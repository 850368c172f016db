#!/usr/bin/env bash
# Issue 15, one check per label type: a project with a choice, multi_choice,
# rating, spans, boxes and text field; the same 60 tasks labeled by an
# accurate crew (0.95) and a sloppy one (0.55) in two projects: each field's
# live agreement is higher for the accurate crew. A third project labeled at
# accuracy 1.0: its consensus export equals the truth, field by field.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"

cat >"$E2E_DIR/schema.json" <<'JSON'
{"fields": [
 {"name": "sentiment", "type": "choice", "choices": ["positive", "negative", "neutral"]},
 {"name": "tags", "type": "multi_choice", "choices": ["sports", "politics", "tech", "food", "travel"], "min": 0, "max": 3},
 {"name": "score", "type": "rating", "min": 1, "max": 5, "step": 1},
 {"name": "entities", "type": "spans", "over": "text", "labels": ["ORG", "PER", "LOC"], "overlap": false},
 {"name": "objects", "type": "boxes", "over": "image", "labels": ["car", "person"]},
 {"name": "note", "type": "text", "max_length": 200}
]}
JSON

# 60 tasks, each with its true labels in data._true_label (what simulate
# labels after, with mistakes at its accuracy).
python3 - "$E2E_DIR/tasks.jsonl" <<'PY'
import json, random, sys
r = random.Random(15)
words = "Acme Corp hired Ada Lovelace in Paris while Globex sold bikes near Rome to Bob".split()
with open(sys.argv[1], "w") as f:
    for i in range(60):
        toks = [r.choice(words) for _ in range(12)]
        text = " ".join(toks)
        starts, pos = [], 0
        for t in toks:
            starts.append((pos, pos + len(t)))
            pos += len(t) + 1
        picks = sorted(r.sample(range(12), 3))
        spans = [{"start": starts[k][0], "end": starts[k][1], "label": r.choice(["ORG", "PER", "LOC"])} for k in picks]
        boxes = []
        for b in range(r.randint(1, 2)):
            x, y = r.randint(0, 9) * 5 + 2.5 * b, r.randint(0, 9) * 5
            boxes.append({"x": x, "y": y, "width": 25.0, "height": 30.0, "label": r.choice(["car", "person"])})
        truth = {
            "sentiment": r.choice(["positive", "negative", "neutral"]),
            "tags": sorted(r.sample(["sports", "politics", "tech", "food", "travel"], r.randint(1, 2)),
                           key=["sports", "politics", "tech", "food", "travel"].index),
            "score": r.randint(1, 5),
            "entities": spans,
            "objects": sorted(boxes, key=lambda b: (b["x"], b["y"], b["width"], b["height"], b["label"])),
            "note": "seen %d" % i,
        }
        f.write(json.dumps({"data": {"id": i, "text": text, "image": "https://img.example/%d.png" % i,
                                     "_true_label": truth}}) + "\n")
PY

project() { # project NAME: a project of the schema above with 3 annotations a task
    local p
    p=$("$CTL" project create --name "$1" --schema "$E2E_DIR/schema.json" --annotations-per-task 3)
    "$CTL" import --project "$p" "$E2E_DIR/tasks.jsonl" >/dev/null
    echo "$p"
}
HI=$(project accurate)
LO=$(project sloppy)
EXACT=$(project exact)
check "60 tasks in each project" "60 60 60" \
    "$(sql "SELECT string_agg(n::text, ' ' ORDER BY p) FROM (SELECT project_id p, count(*) n FROM tasks GROUP BY 1) s")"

# Labels inside an import are checked against the schema as a submission
# is (test_ls_schema.sh maps Label Studio's shapes): what breaks it is
# refused, naming the field, and nothing is imported.
refused() { # refused DESCRIPTION BODY REASON [CONTENT_TYPE]
    local code
    code=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" \
        -H "Content-Type: ${4:-application/json}" --data-binary "$2" -o "$E2E_DIR/refused.json" \
        -w '%{http_code}' "$URL/v1/projects/$EXACT/tasks")
    check "import with $1: 422" 422 "$code"
    grepq "$3" <"$E2E_DIR/refused.json" && pass "import with $1: says why" ||
        fail "import with $1: says why ($(cat "$E2E_DIR/refused.json"))"
}
refused "a bare gold label" '{"data": {"text": "a"}, "gold": "positive"}' "send them as"
refused "a prediction off the schema" '{"data": {"text": "a"}, "prediction": {"labels": {"sentiment": "glad"}, "score": 0.9}}' "is not one of the field's choices"
refused "Label Studio choices off the schema" '{"data": {"text": "a"}, "annotations": [{"result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["glad"]}}]}]}' "is not one of the field's choices"
refused "a CSV gold column that is no labels object" $'text,gold\na,positive\n' "send them as" text/csv
check "and nothing of them was imported" 60 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $EXACT")"

simulate() { # simulate PROJECT ACCURACY SEED
    timeout 300 "$QR_BIN_DIR/quorum-agent" simulate --project "$1" --annotators 4 --accuracy "$2" \
        --think-ms 0-1 --seed "$3" >"$E2E_DIR/sim-$1.log" 2>&1 || { cat "$E2E_DIR/sim-$1.log"; return 1; }
}
simulate "$HI" 0.95 1 && pass "accurate crew done" || fail "accurate crew"
simulate "$LO" 0.55 2 && pass "sloppy crew done" || fail "sloppy crew"
simulate "$EXACT" 1.0 3 && pass "exact crew done" || fail "exact crew"
check "180 annotations in each project" "180 180 180" \
    "$(sql "SELECT string_agg(n::text, ' ' ORDER BY p) FROM (SELECT t.project_id p, count(*) n FROM annotations a JOIN tasks t ON t.id = a.task_id GROUP BY 1) s")"

"$CTL" agreement --project "$HI" --fresh --json >"$E2E_DIR/hi.json"
"$CTL" agreement --project "$LO" --fresh --json >"$E2E_DIR/lo.json"
higher() { # higher FIELD METRIC: the accurate crew's figure is above the sloppy one's
    local h l
    h=$(jq -r ".fields.$1.metrics.$2.value" "$E2E_DIR/hi.json")
    l=$(jq -r ".fields.$1.metrics.$2.value" "$E2E_DIR/lo.json")
    if [ "$(jq -n "$h > $l and $h > 0.5")" = true ] 2>/dev/null; then
        pass "$1 ($(jq -r ".fields.$1.type" "$E2E_DIR/hi.json")): $2 $h (accurate) > $l (sloppy)"
    else
        fail "$1: $2 accurate $h, sloppy $l"
    fi
}
higher sentiment krippendorff_alpha_nominal
higher tags krippendorff_alpha_masi
higher tags krippendorff_alpha_jaccard
higher score krippendorff_alpha_interval
higher entities span_f1_exact
higher entities token_alpha_nominal
higher objects box_mean_iou
higher objects box_f1
higher note text_exact_agreement
"$CTL" agreement --project "$HI" --per-item --json >"$E2E_DIR/hi_items.json"
check "--per-item: 60 entries in every field" "60 60 60 60 60 60" \
    "$(jq -r '[.fields[] | .per_item | length] | map(tostring) | join(" ")' "$E2E_DIR/hi_items.json")"
check "the cached report keeps no per-item list" 0 \
    "$(api GET "/v1/projects/$HI/agreement" | cut -d' ' -f2- | jq '[.fields[] | select(has("per_item"))] | length')"
check "every field reports its type" "choice multi_choice rating spans boxes text" \
    "$(jq -r '[.fields | to_entries[] | .value.type] | join(" ")' "$E2E_DIR/hi.json")"

# quorumctl report: the agreement of each field, its headline figures.
"$CTL" report --project "$HI" --json >"$E2E_DIR/report.json"
check "report JSON: agreement.fields, 13 headline figures of 6 fields, each the live report's" \
    '[13,6,true]' \
    "$(jq -cn --slurpfile h "$E2E_DIR/hi.json" --slurpfile r "$E2E_DIR/report.json" \
        '$r[0].agreement.fields | [to_entries[] | .key as $f | .value | to_entries[]
          | select(.key != "type" and .key != "pairable_tasks")
          | ((.value - $h[0].fields[$f].metrics[.key].value) | fabs) < 1e-6]
        | [length, ($r[0].agreement.fields | length), all]')"
"$CTL" report --project "$HI" >"$E2E_DIR/report.txt"
for f in "sentiment (choice)" "tags (multi_choice)" "score (rating)" "entities (spans)" "objects (boxes)" "note (text)"; do
    grepq "^  $f" <"$E2E_DIR/report.txt" && pass "report text: a line for $f" || fail "report text: $f ($(cat "$E2E_DIR/report.txt"))"
done
check "the MASI alpha as the live report has it, 3 places" \
    "$(jq -r '.fields.tags.metrics.krippendorff_alpha_masi.value * 1000 | round / 1000' "$E2E_DIR/hi.json")" \
    "$(sed -n 's/^  tags (multi_choice) *alpha MASI \([0-9.-]*\),.*/\1/p' "$E2E_DIR/report.txt" | sed 's/0*$//')"

# The exact crew's consensus is the truth, field by field.
"$CTL" export --project "$EXACT" --kind consensus --format jsonl >"$E2E_DIR/consensus.jsonl" 2>/dev/null
check "consensus: one row per task" 60 "$(wc -l <"$E2E_DIR/consensus.jsonl")"
ROUND='walk(if type == "number" then (. * 1000000 | round) else . end)'
for f in sentiment tags score entities objects note; do
    check "consensus at accuracy 1.0 = the truth: $f" 60 \
        "$(jq -c "select(((.consensus.$f) | $ROUND) == ((.data._true_label.$f) | $ROUND))" "$E2E_DIR/consensus.jsonl" | wc -l)"
    check "support 1.0 for every $f consensus" 60 \
        "$(jq -c "select(.support.$f == 1)" "$E2E_DIR/consensus.jsonl" | wc -l)"
done

finish
