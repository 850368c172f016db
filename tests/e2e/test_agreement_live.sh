#!/usr/bin/env bash
# The live agreement report equals the offline `quorumctl agreement` on the
# project's exported annotations; gold answers are scored; the report's
# agreement figures are the live report's.
. "$(dirname "$0")/lib.sh"

start_broker

P=$("$QR_BIN_DIR/quorumctl" project create --name agr --labels sports,technology,cooking,weather \
    --annotations-per-task 3)
# 150 tasks; the first 30 carry a gold answer (their true label).
head -n 150 "$QR_SOURCE_DIR/deploy/sample/news.jsonl" |
    jq -c 'if .data.id <= 30 then . + {gold: .data._true_label} else . end' >"$E2E_DIR/t.jsonl"
"$QR_BIN_DIR/quorumctl" import --project "$P" "$E2E_DIR/t.jsonl" >/dev/null
check "30 gold tasks" 30 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND gold IS NOT NULL")"

r=$(api GET "/v1/projects/$P/agreement")
check "agreement with no annotations: 200" 200 "${r%% *}"
check "no annotations: percent agreement undefined or n/a, not NaN" true \
    "$(echo "${r#* }" | jq '.metrics.percent_agreement.value == null and (.metrics.percent_agreement.status != "defined")')"

timeout 300 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 4 --accuracy 0.8 \
    --think-ms 0-1 --seed 3 >/dev/null

"$QR_BIN_DIR/quorumctl" export --project "$P" >"$E2E_DIR/export.csv"
check "export: header + 450 rows" 451 "$(wc -l <"$E2E_DIR/export.csv")"
"$QR_BIN_DIR/quorumctl" agreement "$E2E_DIR/export.csv" --json >"$E2E_DIR/offline.json"
"$QR_BIN_DIR/quorumctl" agreement --project "$P" --fresh --json >"$E2E_DIR/live.json"
check "live counts = offline counts" "$(jq -cS .counts "$E2E_DIR/offline.json")" "$(jq -cS .counts "$E2E_DIR/live.json")"
check "live metrics = offline metrics" "$(jq -cS .metrics "$E2E_DIR/offline.json")" "$(jq -cS .metrics "$E2E_DIR/live.json")"
# The live report adds each annotator's id and organization to the offline keys.
PAIR_IDS='del(.[] | .a_id, .a_organization_id, .a_organization, .b_id, .b_organization_id, .b_organization)'
ANN_IDS='del(.[] | .annotator_id, .organization_id, .organization)'
check "live pairwise = offline pairwise" "$(jq -cS .pairwise "$E2E_DIR/offline.json")" "$(jq -cS ".pairwise | $PAIR_IDS" "$E2E_DIR/live.json")"
check "live per_annotator = offline" "$(jq -cS .per_annotator "$E2E_DIR/offline.json")" "$(jq -cS ".per_annotator | $ANN_IDS" "$E2E_DIR/live.json")"
check "live rows carry the annotators' ids" 4 "$(jq '[.per_annotator[].annotator_id | numbers] | unique | length' "$E2E_DIR/live.json")"
check "gold: 90 judgements on gold tasks" 90 "$(jq .gold.accuracy.compared "$E2E_DIR/live.json")"
check "gold accuracy matches SQL" \
    "$(sql "SELECT count(*) FILTER (WHERE a.label = t.gold) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P AND t.gold IS NOT NULL")" \
    "$(jq .gold.accuracy.agree "$E2E_DIR/live.json")"
check "gold accuracy near the crew's 0.8" true "$(jq '.gold.accuracy.value > 0.6 and .gold.accuracy.value < 0.95' "$E2E_DIR/live.json")"
# Each gold accuracy carries its 95 % Wilson interval, computed here again.
WILSON='def w($k; $n): 1.959963984540054 as $z | ($k / $n) as $p | (($p + $z*$z/(2*$n)) / (1 + $z*$z/$n)) as $c
  | ($z / (1 + $z*$z/$n) * ($p*(1-$p)/$n + $z*$z/(4*$n*$n) | sqrt)) as $h | [$c - $h, $c + $h];'
check "gold: the overall and every annotator's 95% interval, as Wilson's formula gives" "true 5" \
    "$(jq -r "$WILSON"' [.gold.accuracy, .gold.per_annotator[] | {agree: (.agree), compared, low, high}
        | w(.agree; .compared) as $i | (.low - $i[0] | fabs) < 1e-9 and (.high - $i[1] | fabs) < 1e-9]
        | "\(all) \(length)"' "$E2E_DIR/live.json")"
REPORT=$("$QR_BIN_DIR/quorumctl" report --project "$P" --json)
R9='map(map_values(. * 1e9 | round))'
check "report: each annotator's gold_accuracy, the live report's, with its interval (to 9 digits)" \
    "$(jq -cS "[.gold.per_annotator[] | {id: .annotator_id, value: .accuracy, low, high, compared}] | sort_by(.id) | $R9" "$E2E_DIR/live.json")" \
    "$(echo "$REPORT" | jq -cS "[.per_annotator[] | {id: .annotator_id} + (.gold_accuracy | {value, low, high, compared})] | sort_by(.id) | $R9")"
check "report's alpha = live alpha (to the report's 12 digits)" \
    "$(jq '.metrics.krippendorff_alpha_nominal.value * 1e9 | round' "$E2E_DIR/live.json")" \
    "$(echo "$REPORT" | jq '.agreement.krippendorff_alpha_nominal * 1e9 | round')"
"$QR_BIN_DIR/quorumctl" agreement --project "$P" | grepq '^krippendorff_alpha_nominal' && pass "plain-text live report" || fail "plain-text live report"
check "a plain project is one field, label, of type choice" "choice" "$(jq -r '.fields | keys == ["label"] and .label.type == "choice" | if . then "choice" else "no" end' "$E2E_DIR/live.json")"
check "fields.label.metrics = the top-level metrics" "$(jq -cS .metrics "$E2E_DIR/live.json")" "$(jq -cS .fields.label.metrics "$E2E_DIR/live.json")"

# The live view has the offline view's breakdowns (issue 15).
"$QR_BIN_DIR/quorumctl" agreement "$E2E_DIR/export.csv" --json --per-item >"$E2E_DIR/offline_items.json"
"$QR_BIN_DIR/quorumctl" agreement --project "$P" --per-item --json >"$E2E_DIR/live_items.json"
check "live per_item: one entry per task" 150 "$(jq '.per_item | length' "$E2E_DIR/live_items.json")"
check "live per_item = offline per_item" "$(jq -cS .per_item "$E2E_DIR/offline_items.json")" "$(jq -cS .per_item "$E2E_DIR/live_items.json")"
check "the cached report keeps no per-item list" null "$(api GET "/v1/projects/$P/agreement" | cut -d' ' -f2- | jq -c .per_item)"
"$QR_BIN_DIR/quorumctl" agreement --project "$P" --per-item >"$E2E_DIR/live_items.txt"
"$QR_BIN_DIR/quorumctl" agreement "$E2E_DIR/export.csv" --per-item >"$E2E_DIR/offline_items.txt"
for section in "Labels (judgements)" "Pairwise (annotator pairs with shared items)" \
    "Per annotator (agreement with the unique majority of the others)" "Per item (share of agreeing pairs; unique most common label)"; do
    grepq -F "$section" "$E2E_DIR/live_items.txt" && pass "--per-item text: $section" || fail "--per-item text: $section"
done
check "--per-item text: the offline sections, line for line" \
    "$(sed -n '/^Labels/,$p' "$E2E_DIR/offline_items.txt" | md5sum)" \
    "$(sed -n '/^Labels/,/^Gold answers/p' "$E2E_DIR/live_items.txt" | sed '$d' | sed '$d' | md5sum)"
check "gold accuracy printed with its count" 1 \
    "$(grep -cE "^gold accuracy +0\.[0-9]{4}  \($(jq .gold.accuracy.agree "$E2E_DIR/live.json") of 90 judgements on gold tasks\)  95% interval 0\.[0-9]{4}-[01]\.[0-9]{4}$" "$E2E_DIR/live_items.txt")"
check "gold: one line per annotator" 4 "$(sed -n '/^Gold answers/,$p' "$E2E_DIR/live_items.txt" | grep -c '^  sim-')"
"$QR_BIN_DIR/quorumctl" agreement --project "$P" | grepq "judgements on gold tasks)  95% interval" && pass "plain live report: gold count" || fail "plain live report: gold count"
r=$(api GET "/v1/projects/$P/export?format=xml")
check "export in an unknown format: 422" 422 "${r%% *}"

finish
