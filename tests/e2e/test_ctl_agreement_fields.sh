#!/usr/bin/env bash
# test_ctl_agreement_fields.sh - `quorumctl agreement` on JSONL judgements of
# label-schema fields (issue 15), as a user runs it: a file per field type
# gives the hand-computed (or NLTK-computed) figures under "fields"; --schema
# types a text field; --format overrides the first-byte detection;
# --iou-threshold changes what boxes match; a CSV keeps today's keys and gains
# "fields": {"label": ...}; every bad input prints nothing on stdout and one
# line on stderr naming the line, and exits 2.
#
# Offline: no broker and no database, only QR_BIN_DIR (set by ctest; it runs
# under the e2e label because it drives the built binary).
set -euo pipefail
: "${QR_BIN_DIR:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/hermetic.sh"
Q="$QR_BIN_DIR/quorumctl"
DATA="$HERE/../data/agreement"
DIR=$(mktemp -d /tmp/quorum-ctl-agreement-fields.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi
}
# close DESCRIPTION EXPECTED ACTUAL: equal within 1e-9.
close() {
    if awk -v a="$2" -v b="$3" 'BEGIN { d = a - b; exit !(d < 1e-9 && d > -1e-9) }'; then
        pass "$1 ($3)"
    else
        fail "$1 (expected $2, got $3)"
    fi
}
command -v jq >/dev/null || { echo "not ok - jq is needed"; exit 1; }

# run ARGS... (stdin passed through): sets RC, OUT (stdout) and ERR (stderr).
run() {
    RC=0
    "$Q" agreement "$@" >"$DIR/out" 2>"$DIR/err" || RC=$?
    OUT=$(cat "$DIR/out")
    ERR=$(cat "$DIR/err")
}
# metric FIELD KEY: the value of fields.FIELD.metrics.KEY in $DIR/out.
metric() { jq -r ".fields[\"$1\"].metrics[\"$2\"].value" "$DIR/out"; }

# --- multi_choice against NLTK ------------------------------------------------
for name in passonneau random5 wide70 crowd12; do
    run "$DATA/masi_$name.jsonl" --json
    check "$name: exit code 0" 0 "$RC"
    check "$name: the field is a multi_choice" multi_choice "$(jq -r .fields.tags.type "$DIR/out")"
    close "$name: alpha MASI as NLTK" "$(jq ".$name.masi" "$DATA/nltk_expected.json")" \
        "$(metric tags krippendorff_alpha_masi)"
    close "$name: alpha Jaccard as NLTK" "$(jq ".$name.jaccard" "$DATA/nltk_expected.json")" \
        "$(metric tags krippendorff_alpha_jaccard)"
done
run "$DATA/masi_passonneau.jsonl" --json
check "passonneau: per-choice alpha of every choice, as NLTK" \
    "$(jq -c '.passonneau.per_choice | map_values(. * 1e9 | round)' "$DATA/nltk_expected.json")" \
    "$(jq -c '.fields.tags.metrics.per_choice_alpha | map_values(.value * 1e9 | round)' "$DIR/out")"
check "passonneau: counts" '{"items":6,"annotators":3,"judgements":16,"pairable_items":6}' \
    "$(jq -c .fields.tags.counts "$DIR/out")"
check "no choice or rating field: counts only at the top" '["counts","fields"]' \
    "$(jq -c keys "$DIR/out")"

# --- one file with every inferred type ------------------------------------------
cat >"$DIR/all.jsonl" <<'EOF'
{"item": 1, "annotator": "a", "field": "sentiment", "value": "pos"}
{"item": 1, "annotator": "b", "field": "sentiment", "value": "pos"}
{"item": 2, "annotator": "a", "field": "sentiment", "value": "neg"}
{"item": 2, "annotator": "b", "field": "sentiment", "value": "pos"}
{"item": 1, "annotator": "a", "field": "score", "value": 2}
{"item": 1, "annotator": "b", "field": "score", "value": 4}
{"item": 1, "annotator": "c", "field": "score", "value": 5}
{"item": 1, "annotator": "a", "field": "entities", "value": [{"start": 0, "end": 5, "label": "ORG"}], "text": "Acme bought Foo Inc today"}
{"item": 1, "annotator": "b", "field": "entities", "value": [{"start": 0, "end": 4, "label": "ORG"}, {"start": 12, "end": 19, "label": "ORG"}]}
{"item": 1, "annotator": "a", "field": "objects", "value": [{"x": 0, "y": 0, "width": 10, "height": 10, "label": "car"}]}
{"item": 1, "annotator": "b", "field": "objects", "value": [{"x": 5, "y": 0, "width": 10, "height": 10, "label": "car"}]}
{"item": 1, "annotator": "a", "field": "note", "value": "Red  car"}
{"item": 1, "annotator": "b", "field": "note", "value": "red car"}
EOF
run "$DIR/all.jsonl" --json --per-item
check "all types: exit code 0" 0 "$RC"
check "all types: inferred types, in order of appearance" \
    '{"sentiment":"choice","score":"rating","entities":"spans","objects":"boxes","note":"choice"}' \
    "$(jq -c '.fields | map_values(.type)' "$DIR/out")"
check "the first choice field fills today's top-level keys" \
    "$(jq -c .fields.sentiment.metrics "$DIR/out")" "$(jq -c .metrics "$DIR/out")"
check "choice: percent agreement 1/2" 0.5 "$(metric sentiment percent_agreement)"
check "choice: per item consensus and support" '[["pos",1],[null,null]]' \
    "$(jq -c '[.fields.sentiment.per_item[] | [.consensus, .support]]' "$DIR/out")"
check "rating: interval alpha is computed" defined \
    "$(jq -r '.fields.score.metrics.krippendorff_alpha_interval.status' "$DIR/out")"
check "rating: the median is the consensus" '4' "$(jq -c '.fields.score.per_item[0].consensus' "$DIR/out")"
# Spans: exact F1 0 ([0,5) vs [0,4)), overlap 2 * 1 / 3; token alpha 0.25 (see
# tests/unit/test_agreement_fields.c for the hand computation).
close "spans: exact F1" 0 "$(metric entities span_f1_exact)"
close "spans: overlap F1" 0.666666666667 "$(metric entities span_f1_overlap)"
close "spans: token alpha over the item's text" 0.25 "$(metric entities token_alpha_nominal)"
# Boxes shifted by 5 of 10: IoU 50 / 150 = 1/3, below 0.5.
close "boxes: no match at IoU 0.5" 0 "$(metric objects box_f1)"
check "boxes: mean IoU undefined without a match" undefined \
    "$(jq -r .fields.objects.metrics.box_mean_iou.status "$DIR/out")"
run "$DIR/all.jsonl" --json --iou-threshold 0.3
close "boxes: a match at --iou-threshold 0.3" 1 "$(metric objects box_f1)"
close "boxes: mean IoU 1/3" 0.333333333333 "$(metric objects box_mean_iou)"

# A string field without a schema is a choice; with one, a text field.
cat >"$DIR/schema.json" <<'EOF'
{"schema": {"fields": [{"name": "note", "type": "text", "max_length": 100},
                       {"name": "tags", "type": "multi_choice", "choices": ["z", "a"]}]}}
EOF
run "$DIR/all.jsonl" --json --schema "$DIR/schema.json" --per-item
check "--schema: exit code 0" 0 "$RC"
check "--schema: note is a text field" text "$(jq -r .fields.note.type "$DIR/out")"
check "--schema: a declared field without judgements is listed, empty" 0 \
    "$(jq .fields.tags.counts.judgements "$DIR/out")"
check "text: equal after normalization" 1 "$(metric note text_exact_agreement)"
check "text: similarity 1" 1 "$(metric note text_mean_similarity)"
check "text: the consensus is the first raw value" '"Red  car"' \
    "$(jq -c '.fields.note.per_item[0].consensus' "$DIR/out")"
printf '{"fields": [{"name": "tags", "type": "multi_choice", "choices": ["z", "a", "m"]}]}\n' >"$DIR/schema2.json"
printf '{"item": 1, "annotator": "x", "field": "tags", "value": ["a", "z"]}\n{"item": 1, "annotator": "y", "field": "tags", "value": ["z", "a", "m"]}\n' >"$DIR/tags.jsonl"
run "$DIR/tags.jsonl" --json --per-item --schema "$DIR/schema2.json"
check "--schema {\"fields\"}: per-choice alpha in schema order" '["z","a","m"]' \
    "$(jq -c '.fields.tags.metrics.per_choice_alpha | keys_unsorted' "$DIR/out")"
check "--schema: consensus in schema order, support 1" '[["z","a"],1]' \
    "$(jq -c '.fields.tags.per_item[0] | [.consensus, .support]' "$DIR/out")"

# Text output: a section per field.
run "$DIR/all.jsonl" --per-item
check "text: exit code 0" 0 "$RC"
check "text: one section per field" 5 "$(grep -c '^Field ' "$DIR/out")"
check "text: the spans section" 1 "$(grep -c '^Field entities (spans)$' "$DIR/out")"
check "text: token alpha line" 1 "$(grep -c '^  token_alpha_nominal  *0.2500$' "$DIR/out")"

# stdin, a byte-order mark and leading blank lines still read as JSONL.
{ printf '\xef\xbb\xbf\n\n'; cat "$DIR/all.jsonl"; } >"$DIR/bom.jsonl"
run - --json <"$DIR/bom.jsonl"
check "stdin with a BOM and blank lines: exit code 0" 0 "$RC"
check "stdin with a BOM and blank lines: 13 judgements in 5 fields" 13 \
    "$(jq '[.fields[].counts.judgements] | add' "$DIR/out")"

# --- CSV: today's keys and one field "label" ------------------------------------
printf 'item,annotator,label\n1,a,x\n1,b,x\n2,a,x\n2,b,y\n3,a,y\n3,b,y\n' >"$DIR/plain.csv"
run "$DIR/plain.csv" --json
check "csv: exit code 0" 0 "$RC"
check "csv: today's keys, then fields" \
    '["counts","metrics","pairwise","per_annotator","labels","labels_numeric","fields"]' \
    "$(jq -c keys_unsorted "$DIR/out")"
check "csv: the field label is a choice" choice "$(jq -r .fields.label.type "$DIR/out")"
check "csv: the field's metrics are today's" "$(jq -c .metrics "$DIR/out")" \
    "$(jq -c .fields.label.metrics "$DIR/out")"
run "$DIR/plain.csv" --json --per-item
check "csv --per-item: per-item consensus with support" '[["x",1],[null,null],["y",1]]' \
    "$(jq -c '[.fields.label.per_item[] | [.consensus, .support]]' "$DIR/out")"
check "csv --per-item: today's per_item stays" 3 "$(jq '.per_item | length' "$DIR/out")"

# --format overrides the first byte.
run "$DIR/plain.csv" --format jsonl
check "--format jsonl on a CSV: exit code 2" 2 "$RC"
check "--format jsonl on a CSV: line 1 is not JSON" 1 "$(grep -c "plain.csv: line 1: not JSON" "$DIR/err")"
run "$DIR/all.jsonl" --format csv
check "--format csv on JSONL: exit code 2" 2 "$RC"
check "--format csv on JSONL: nothing on stdout" "" "$OUT"
run "$DIR/all.jsonl" --format xml
check "--format xml: usage error" 2 "$RC"
run "$DIR/plain.csv" --schema "$DIR/schema.json"
check "--schema with a CSV: usage error" 2 "$RC"
run "$DIR/all.jsonl" --iou-threshold 0
check "--iou-threshold 0: usage error" 2 "$RC"
run "$DIR/all.jsonl" --iou-threshold
check "--iou-threshold without a value: usage error" 2 "$RC"

# --- bad JSONL: nothing on stdout, one line on stderr naming the line -------------
# bad NAME LINE PATTERN [ARGS...]: $DIR/NAME.jsonl is refused.
bad() {
    local name=$1 line=$2 pattern=$3
    shift 3
    run "$DIR/$name.jsonl" --json "$@"
    check "$name: exit code 2" 2 "$RC"
    check "$name: nothing on stdout" 0 "$(wc -c <"$DIR/out")"
    check "$name: one line on stderr" 1 "$(wc -l <"$DIR/err")"
    if [[ "$ERR" == "quorumctl agreement: $DIR/$name.jsonl: line $line: "* && "$ERR" == *"$pattern"* ]]; then
        pass "$name: the error names line $line ($ERR)"
    else
        fail "$name: expected 'line $line: ...$pattern...', got '$ERR'"
    fi
}
printf '{"item": 1, "annotator": "a", "field": "s", "value": "x"}\n{"item": 1, "annotator": "a", "field": "s", "value": "y"}\n' >"$DIR/duplicate.jsonl"
bad duplicate 2 'duplicate judgement: annotator "a" already gave field "s" on item "1" on line 1'
printf '{"item": 1, "annotator": "a", "field": "s", "value": "x"}\n{"item": 2,\n' >"$DIR/not_json.jsonl"
bad not_json 2 'not JSON'
printf '{"item": 1, "annotator": "a", "field": "s", "value": "x"}\n{"item": 2, "annotator": "a", "field": "s", "value": ["x"]}\n' >"$DIR/wrong_type.jsonl"
bad wrong_type 2 'field "s" (choice): a choice value must be a non-empty string'
printf '{"item": 1, "annotator": "a", "field": "e", "value": [{"start": 5, "end": 5, "label": "ORG"}]}\n' >"$DIR/empty_span.jsonl"
bad empty_span 1 'span 0: needs 0 <= start < end'
printf '{"item": 1, "annotator": "a", "field": "o", "value": [{"x": 0, "y": 0, "width": 10, "label": "car"}]}\n' >"$DIR/box_key.jsonl"
bad box_key 1 'box 0: needs numbers'
printf '{"item": 1, "annotator": "a", "field": "note", "value": 3}\n' >"$DIR/text_number.jsonl"
bad text_number 1 'field "note" (text): a text value must be a string' --schema "$DIR/schema.json"
printf '{"item": 1, "annotator": "a", "field": "s", "value": {"a": 1}}\n' >"$DIR/untyped.jsonl"
bad untyped 1 'cannot tell its type'
printf '{"item": 1, "annotator": "a", "value": "x"}\n' >"$DIR/no_field.jsonl"
bad no_field 1 '"field" must be a non-empty string'
printf '{"item": 1.5, "annotator": "a", "field": "s", "value": "x"}\n' >"$DIR/bad_item.jsonl"
bad bad_item 1 '"item" must be a non-empty string or an integer'

printf '{"fields": [{"name": "x", "type": "polygon"}]}\n' >"$DIR/bad_schema.json"
run "$DIR/all.jsonl" --schema "$DIR/bad_schema.json"
check "a schema with an unknown type: exit code 2" 2 "$RC"
check "a schema with an unknown type: the error says so" 1 \
    "$(grep -c 'field x: unknown type "polygon"' "$DIR/err")"
printf '{"fields": [' >"$DIR/broken_schema.json"
run "$DIR/all.jsonl" --schema "$DIR/broken_schema.json"
check "a schema that is not JSON: exit code 2" 2 "$RC"
run "$DIR/all.jsonl" --schema "$DIR/no-such-schema.json"
check "a missing schema file: exit code 2" 2 "$RC"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
