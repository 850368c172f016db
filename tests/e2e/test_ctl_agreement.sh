#!/usr/bin/env bash
# test_ctl_agreement.sh - `quorumctl agreement FILE.csv` as a user runs it
# (issue 4): each bad CSV prints nothing on stdout, one line on stderr naming
# the line, and exits 2; a good file (byte-order mark, CRLF, quoted commas)
# gives the hand-computed figures in text and JSON; `-` reads stdin.
#
# Offline: no broker and no database, only QR_BIN_DIR (set by ctest; it runs
# under the e2e label because it drives the built binary).
set -euo pipefail
: "${QR_BIN_DIR:?}"
Q="$QR_BIN_DIR/quorumctl"
DIR=$(mktemp -d /tmp/quorum-ctl-agreement.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi
}
command -v jq >/dev/null || { echo "not ok - jq is needed"; exit 1; }

# run ARGS... (stdin passed through): sets RC, OUT (stdout) and ERR (stderr).
run() {
    RC=0
    "$Q" agreement "$@" >"$DIR/out" 2>"$DIR/err" || RC=$?
    OUT=$(cat "$DIR/out")
    ERR=$(cat "$DIR/err")
}

# bad NAME LINE PATTERN: FILE $DIR/NAME.csv is refused: exit 2, empty stdout,
# exactly one stderr line that names the file, "line LINE:" and PATTERN.
bad() {
    local name=$1 line=$2 pattern=$3
    run "$DIR/$name.csv"
    check "$name: exit code 2" 2 "$RC"
    check "$name: nothing on stdout" 0 "$(wc -c <"$DIR/out")"
    check "$name: one line on stderr" 1 "$(wc -l <"$DIR/err")"
    if [[ "$ERR" == "quorumctl agreement: $DIR/$name.csv: line $line: "* && "$ERR" == *"$pattern"* ]]; then
        pass "$name: the error names line $line ($ERR)"
    else
        fail "$name: expected 'line $line: ...$pattern...', got '$ERR'"
    fi
}

printf 'item,annotator,label\n1,a,x\n1,b,y\n2,a,x\n1,a,y\n' >"$DIR/duplicate.csv"
bad duplicate 5 'duplicate judgement: annotator "a" already labeled item "1" on line 2'

printf 'item,label,comment\n1,x,fine\n' >"$DIR/missing_column.csv"
bad missing_column 1 'missing column "annotator"'

printf 'item,annotator,label\n1,a,x\n2,a,"y\n3,a,z\n' >"$DIR/ragged_quote.csv"
bad ragged_quote 3 'unterminated quoted field'

printf 'item,annotator,label\n1,a,x\n2,a,caf\xe9\n' >"$DIR/invalid_utf8.csv"
bad invalid_utf8 3 'not valid UTF-8'

: >"$DIR/empty.csv"
bad empty 1 'empty file'

printf 'item,annotator,label\r\n1,a,x\r\n1,b,\r\n' >"$DIR/empty_label.csv"
bad empty_label 3 'empty label'

# The same refusal through stdin names "stdin" instead of a path.
run - <"$DIR/duplicate.csv"
check "stdin, duplicate: exit code 2" 2 "$RC"
check "stdin, duplicate: nothing on stdout" "" "$OUT"
check "stdin, duplicate: the error names stdin and line 5" \
    'quorumctl agreement: stdin: line 5: duplicate' "${ERR:0:45}"

run "$DIR/no-such-file.csv"
check "a missing file: exit code 2" 2 "$RC"
check "a missing file: nothing on stdout" "" "$OUT"

run "$DIR/empty.csv" --no-such-flag
check "an unknown flag: exit code 2" 2 "$RC"

# A good file: byte-order mark, CRLF, a label with a comma in quotes.
# Two annotators, four items; a and b differ on item 2 only.
#   percent agreement 3/4 = 0.75
#   Cohen: a gives x,y 2:2, b gives 1:3; pe = .5*.25 + .5*.75 = .5 -> (0.75-.5)/.5 = 0.5
#   Scott / Fleiss: pooled x 3/8, y 5/8; pe = 34/64 -> (0.75-34/64)/(30/64) = 7/15
#   Krippendorff nominal: 1 - (2/8)/(2*3*5/(8*7)) = 8/15
#   Gwet AC1: pe = 2*(3/8)(5/8) = 30/64 -> (0.75-30/64)/(34/64) = 9/17
printf '\xef\xbb\xbfitem,annotator,label\r\n1,a,x\r\n1,b,x\r\n2,a,x\r\n2,b,"y,z"\r\n3,a,"y,z"\r\n3,b,"y,z"\r\n4,b,"y,z"\r\n4,a,"y,z"\r\n' >"$DIR/good.csv"
run "$DIR/good.csv"
check "good file: exit code 0" 0 "$RC"
check "good file: nothing on stderr" "" "$ERR"
check "good file: text counts" \
    "  8 judgements, 4 items (4 with two or more judgements), 2 annotators, 2 labels" \
    "$(sed -n 2p "$DIR/out")"
check "good file: text percent agreement" "0.7500" \
    "$(awk '$1 == "percent_agreement" {print $2}' "$DIR/out")"
check "good file: text Cohen's kappa" "0.5000" "$(awk '$1 == "cohen_kappa" {print $2}' "$DIR/out")"
check "good file: text weighted kappa not applicable" "n/a (needs numeric labels; 2 of 2 are not numbers)" \
    "$(awk '$1 == "cohen_kappa_linear" {$1 = ""; sub(/^ +/, ""); print}' "$DIR/out")"

run --json - <"$DIR/good.csv"
check "good file, --json from stdin: exit code 0" 0 "$RC"
if jq -e . "$DIR/out" >/dev/null 2>&1; then pass "--json output parses"; else fail "--json output does not parse: $OUT"; fi
check "--json counts" '{"items":4,"annotators":2,"judgements":8,"pairable_items":4}' \
    "$(jq -c .counts "$DIR/out")"
check "--json percent_agreement" '{"value":0.75,"status":"defined"}' \
    "$(jq -c .metrics.percent_agreement "$DIR/out")"
check "--json cohen_kappa" '{"value":0.5,"status":"defined"}' "$(jq -c .metrics.cohen_kappa "$DIR/out")"
# Computed values are compared to 12 decimal places: 7/15, 8/15, 9/17.
close() { # close DESCRIPTION EXPECTED JQ-PATH
    check "$1" "$2" "$(jq -r "$3 | .value * 1e12 | round" "$DIR/out")"
}
close "--json scott_pi = 7/15" 466666666667 .metrics.scott_pi
close "--json fleiss_kappa = 7/15" 466666666667 .metrics.fleiss_kappa
close "--json krippendorff_alpha_nominal = 8/15" 533333333333 .metrics.krippendorff_alpha_nominal
close "--json gwet_ac1 = 9/17" 529411764706 .metrics.gwet_ac1
check "--json: every metric has a status" 0 \
    "$(jq '[.metrics[] | select(.status != "defined" and .status != "undefined" and .status != "not_applicable")] | length' "$DIR/out")"
check "--json: a not-applicable metric has a null value and a reason" \
    '{"value":null,"status":"not_applicable","reason":"needs numeric labels; 2 of 2 are not numbers"}' \
    "$(jq -c .metrics.krippendorff_alpha_interval "$DIR/out")"
check "--json labels" '{"x":3,"y,z":5}' "$(jq -c .labels "$DIR/out")"
check "--json pairwise" '[{"a":"a","b":"b","items":4,"percent_agreement":0.75,"kappa":0.5}]' \
    "$(jq -c '[.pairwise[] | {a, b, items, percent_agreement, kappa: .cohen_kappa.value}]' "$DIR/out")"

# Undefined, not a crash: one label everywhere makes kappa 0/0.
printf 'item,annotator,label\n1,a,x\n1,b,x\n2,a,x\n2,b,x\n' >"$DIR/one_label.csv"
run --json "$DIR/one_label.csv"
check "one label everywhere: exit code 0" 0 "$RC"
check "one label everywhere: percent agreement 1" 1 "$(jq .metrics.percent_agreement.value "$DIR/out")"
check "one label everywhere: cohen_kappa undefined with a null value" "undefined null" \
    "$(jq -r '.metrics.cohen_kappa | "\(.status) \(.value)"' "$DIR/out")"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
