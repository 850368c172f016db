#!/usr/bin/env bash
# test_ctl_agreement_ds.sh - `quorumctl agreement FILE.csv --method
# dawid_skene` (issue 16 point 7), as a user runs it, on a generated CSV of a
# simulated crew (3,000 items, labels cat/dog/fox/owl, 3 of 5 annotators an
# item at accuracies 0.95, 0.9, 0.7, 0.55 and 0.55, errors uniform over the
# other labels; the truth in a column of its own, which the reader ignores):
# the "dawid_skene" key and its per-annotator estimates within 0.05 of the
# simulated accuracies; "consensus" and "support" in every per-item entry,
# beside the keys that were there; a consensus right more often than the
# majority vote; the same bits from the rows in another order; the text
# section; --method majority (and no --method) byte for byte as before; a bad
# --method or JSONL input exits 2 and prints nothing on stdout.
#
# Offline: no broker and no database, only QR_BIN_DIR (set by ctest; it runs
# under the e2e label because it drives the built binary).
set -euo pipefail
: "${QR_BIN_DIR:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/hermetic.sh"
Q="$QR_BIN_DIR/quorumctl"
DIR=$(mktemp -d /tmp/quorum-ctl-agreement-ds.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi
}
command -v jq >/dev/null || { echo "not ok - jq is needed"; exit 1; }
command -v python3 >/dev/null || { echo "not ok - python3 is needed"; exit 1; }

# run ARGS... : sets RC and OUT (stdout); stdout in $DIR/out, stderr in
# $DIR/err.
run() {
    RC=0
    "$Q" agreement "$@" >"$DIR/out" 2>"$DIR/err" || RC=$?
    OUT=$(cat "$DIR/out")
}

# The crew, from Python's Mersenne Twister with a fixed seed (the same rows
# on every machine); crew_shuffled.csv holds the same rows in another order.
python3 - "$DIR" <<'EOF'
import random, sys
d = sys.argv[1]
rng = random.Random(16)
labels = ["cat", "dog", "fox", "owl"]
acc = {"ann1": 0.95, "ann2": 0.9, "ann3": 0.7, "ann4": 0.55, "ann5": 0.55}
rows = []
for i in range(3000):
    truth = labels[int(rng.random() * 4)]
    crew = list(acc)
    for k in range(3):
        j = k + int(rng.random() * (5 - k))
        crew[k], crew[j] = crew[j], crew[k]
        label = truth
        if rng.random() >= acc[crew[k]]:
            others = [l for l in labels if l != truth]
            label = others[int(rng.random() * 3)]
        rows.append("item-%04d,%s,%s,%s\n" % (i, crew[k], label, truth))
with open(d + "/crew.csv", "w") as f:
    f.write("item,annotator,label,truth\n" + "".join(rows))
rng.shuffle(rows)
with open(d + "/crew_shuffled.csv", "w") as f:
    f.write("truth,label,annotator,item\n")
    for r in rows:
        f.write(",".join(reversed(r.strip().split(","))) + "\n")
EOF

# --- the JSON report -------------------------------------------------------------
run "$DIR/crew.csv" --method dawid_skene --json --per-item
check "exit code 0" 0 "$RC"
cp "$DIR/out" "$DIR/ds.json"
check "dawid_skene's keys" \
    '["converged","iterations","log_likelihood","max_iterations","per_annotator","priors","smoothing","tolerance"]' \
    "$(jq -c '.dawid_skene | keys' "$DIR/ds.json")"
check "converged, within the default cap of 100" "true 100" \
    "$(jq -r '.dawid_skene | "\(.converged) \(.max_iterations)"' "$DIR/ds.json")"
check "the default tolerance and smoothing" "1e-06 0.01" \
    "$(jq -r '.dawid_skene | "\(.tolerance) \(.smoothing)"' "$DIR/ds.json")"
check "annotators named and ordered as the report's per_annotator" \
    "$(jq -c '[.per_annotator[] | [.annotator, .judgements]]' "$DIR/ds.json")" \
    "$(jq -c '[.dawid_skene.per_annotator[] | [.annotator, .judgements]]' "$DIR/ds.json")"
check "a prior per label, in the report's order, summing to 1" '["cat","dog","fox","owl"] 1000000000' \
    "$(jq -r '.dawid_skene.priors | "\(keys_unsorted | tojson) \([.[]] | add * 1e9 | round)"' "$DIR/ds.json")"
for a in ann1:0.95 ann2:0.9 ann3:0.7 ann4:0.55 ann5:0.55; do
    name=${a%%:*} sim=${a#*:}
    est=$(jq -r --arg n "$name" '.dawid_skene.per_annotator[] | select(.annotator == $n) | .estimated_accuracy' "$DIR/ds.json")
    if awk -v e="$est" -v s="$sim" 'BEGIN { d = e - s; exit !(d < 0.05 && d > -0.05) }'; then
        pass "$name: estimated accuracy $est within 0.05 of $sim"
    else
        fail "$name: estimated accuracy $est, simulated $sim"
    fi
done
check "every item listed once" 3000 "$(jq '.per_item | length' "$DIR/ds.json")"
check "per-item keys: the old ones, then consensus and support" \
    '["item","judgements","agreement","majority_label","consensus","support"]' \
    "$(jq -c '[.per_item[] | keys_unsorted] | unique | .[]' "$DIR/ds.json")"
check "every support in (0.25, 1]" 0 \
    "$(jq '[.per_item[] | select(.support <= 0.25 or .support > 1)] | length' "$DIR/ds.json")"
check "unanimous items: the consensus is the majority" 0 \
    "$(jq '[.per_item[] | select(.agreement == 1 and .consensus != .majority_label)] | length' "$DIR/ds.json")"
check "the per-field majority consensus is still under fields" \
    "$(jq -c '[.per_item[] | .majority_label]' "$DIR/ds.json")" \
    "$(jq -c '[.fields.label.per_item[] | .consensus]' "$DIR/ds.json")"

# Against the truth: Dawid-Skene's consensus, and the majority vote with its
# ties broken at random (its expected accuracy: a tie scores 1/tied when the
# truth is among the tied labels).
read -r ds_acc maj_acc < <(python3 - "$DIR/crew.csv" "$DIR/ds.json" <<'EOF'
import collections, json, sys
truth, votes = {}, collections.defaultdict(collections.Counter)
for line in open(sys.argv[1]).read().splitlines()[1:]:
    item, ann, label, t = line.split(",")
    truth[item] = t
    votes[item][label] += 1
maj = 0.0
for item, c in votes.items():
    top = max(c.values())
    tied = [l for l, n in c.items() if n == top]
    maj += (truth[item] in tied) / len(tied)
report = json.load(open(sys.argv[2]))
ds = sum(e["consensus"] == truth[e["item"]] for e in report["per_item"])
print("%.4f %.4f" % (ds / len(truth), maj / len(truth)))
EOF
)
echo "# consensus accuracy against the truth: Dawid-Skene $ds_acc, majority $maj_acc"
if awk -v d="$ds_acc" -v m="$maj_acc" 'BEGIN { exit !(d > m) }'; then
    pass "Dawid-Skene ($ds_acc) right more often than the majority ($maj_acc)"
else
    fail "Dawid-Skene $ds_acc, majority $maj_acc"
fi

# --- deterministic ----------------------------------------------------------------
run "$DIR/crew_shuffled.csv" --method dawid_skene --json --per-item
check "shuffled rows: exit code 0" 0 "$RC"
if cmp -s <(jq -c '.dawid_skene, .per_item' "$DIR/ds.json") <(jq -c '.dawid_skene, .per_item' "$DIR/out"); then
    pass "the same rows in another order (and other columns): the same figures, to the bit"
else
    fail "shuffled rows give other figures"
fi

# --- text ----------------------------------------------------------------------------
run "$DIR/crew.csv" --method dawid_skene --per-item
check "text: exit code 0" 0 "$RC"
check "text: the section" 1 "$(grep -c '^Dawid-Skene (EM over per-annotator confusion matrices' "$DIR/out")"
check "text: the iterations and convergence, as in the JSON" \
    "$(jq -r .dawid_skene.iterations "$DIR/ds.json") iterations; converged:" \
    "$(grep -o '^  [0-9]* iterations; converged:' "$DIR/out" | sed 's/^  //')"
check "text: ann1's estimated accuracy, as in the JSON" \
    "$(jq -r '.dawid_skene.per_annotator[0].estimated_accuracy * 10000 | round / 10000' "$DIR/ds.json")" \
    "$(awk '$1 == "ann1" && NF == 3 { print $3 + 0 }' "$DIR/out")"
check "text: a row per item after the per-item heading" 3001 \
    "$(sed -n '/^Dawid-Skene per item/,$p' "$DIR/out" | tail -n +2 | grep -c .)"
check "text: item-0000's consensus and support, as in the JSON" \
    "$(jq -r '.per_item[0] | "\(.support * 10000 | round / 10000) \(.consensus)"' "$DIR/ds.json")" \
    "$(sed -n '/^Dawid-Skene per item/,$p' "$DIR/out" | awk '$1 == "item-0000" { print $2 + 0, $3 }')"
run "$DIR/crew.csv" --method dawid_skene --json
check "no --per-item: dawid_skene, no per_item" "true false" \
    "$(jq -r '"\(has("dawid_skene")) \(has("per_item"))"' "$DIR/out")"

# --- majority: as before ---------------------------------------------------------------
for args in "" "--json" "--per-item" "--json --per-item"; do
    # shellcheck disable=SC2086
    "$Q" agreement "$DIR/crew.csv" $args >"$DIR/plain"
    # shellcheck disable=SC2086
    "$Q" agreement "$DIR/crew.csv" $args --method majority >"$DIR/majority"
    if cmp -s "$DIR/plain" "$DIR/majority" && ! grep -q 'dawid_skene\|Dawid-Skene' "$DIR/plain"; then
        pass "--method majority ${args:-(text)}: byte for byte what no --method prints"
    else
        fail "--method majority ${args:-(text)} differs from no --method, or names Dawid-Skene"
    fi
done

# --- usage errors ----------------------------------------------------------------------
run "$DIR/crew.csv" --method foo
check "--method foo: exit code 2" 2 "$RC"
check "--method foo: the error names the choices" 1 "$(grep -c 'majority or dawid_skene; got foo' "$DIR/err")"
check "--method foo: nothing on stdout" "" "$OUT"
run "$DIR/crew.csv" --method
check "--method without a value: exit code 2" 2 "$RC"
printf '{"item": 1, "annotator": "a", "field": "s", "value": "x"}\n' >"$DIR/one.jsonl"
run "$DIR/one.jsonl" --method dawid_skene
check "JSONL with dawid_skene: exit code 2" 2 "$RC"
check "JSONL with dawid_skene: the error says CSV" 1 "$(grep -c 'dawid_skene goes with CSV input' "$DIR/err")"
check "JSONL with dawid_skene: nothing on stdout" "" "$OUT"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
