#!/usr/bin/env bash
# The consensus export with method=dawid_skene (issue 16, point 7): three
# annotators of known accuracy (0.95, 0.6, 0.55) label 400 tasks; the
# Dawid-Skene consensus the broker exports is closer to the truth than the
# majority, and is, task by task, what `quorumctl agreement --method
# dawid_skene` computes offline from the same annotations.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
P=$(new_project '{"name": "ds", "labels": ["a", "b", "c", "d"], "annotations_per_task": 3}')
python3 -c '
import json, random
r = random.Random(7)
for i in range(400):
    print(json.dumps({"data": {"n": i, "_true_label": r.choice("abcd")}}))' >"$E2E_DIR/tasks.jsonl"
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
# Three crews of one, side by side: each annotator labels every task once,
# at a known accuracy (a crew of one never completes the project: it runs
# until every task holds its label, then its --duration ends it).
seed=1
pids=()
for acc in 0.95 0.6 0.55; do
    timeout 300 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 1 --accuracy "$acc" \
        --think-ms 0-0 --seed "$seed" --duration 120 >"$E2E_DIR/sim$seed.log" 2>&1 &
    pids+=($!)
    seed=$((seed + 1))
done
for _ in $(seq 1 1500); do
    [ "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")" = 1200 ] && break
    sleep 0.1
done
kill "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
check "three annotators, 1200 annotations" "3 1200" \
    "$(sql "SELECT count(DISTINCT annotator_id) || ' ' || count(*) FROM annotations WHERE project_id = $P")"

export_consensus() { # export_consensus [METHOD] -> JSON lines on stdout
    curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" \
        "$URL/v1/projects/$P/export?kind=consensus&format=jsonl${1:+&method=$1}"
}
export_consensus >"$E2E_DIR/majority.jsonl"
export_consensus dawid_skene >"$E2E_DIR/ds.jsonl"
check "one row per task, either way" "400 400" "$(wc -l <"$E2E_DIR/majority.jsonl") $(wc -l <"$E2E_DIR/ds.jsonl")"
right() { jq -s '[.[] | select(.consensus == .data._true_label)] | length' "$1"; }
MAJ=$(right "$E2E_DIR/majority.jsonl")
DS=$(right "$E2E_DIR/ds.jsonl")
echo "# consensus right on: majority $MAJ of 400, Dawid-Skene $DS of 400"
check "Dawid-Skene is right more often than the majority" true "$([ "$DS" -gt "$MAJ" ] && echo true || echo false)"
check "every task has a Dawid-Skene answer, its support a posterior in (0, 1]" 400 \
    "$(jq -c 'select(.consensus != null and .support > 0 and .support <= 1)' "$E2E_DIR/ds.jsonl" | wc -l)"

# The same annotations offline: the same consensus, task by task.
"$CTL" export --project "$P" --format csv >"$E2E_DIR/annotations.csv" 2>/dev/null
"$CTL" agreement "$E2E_DIR/annotations.csv" --method dawid_skene --per-item --json >"$E2E_DIR/offline.json"
check "the export's consensus = quorumctl agreement --method dawid_skene's, per task" \
    "$(jq -r '.per_item[] | "\(.item) \(.consensus) \(.support * 10000 | round)"' "$E2E_DIR/offline.json" | sort)" \
    "$(jq -r '"\(.task_id) \(.consensus) \(.support * 10000 | round)"' "$E2E_DIR/ds.jsonl" | sort)"
curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$URL/v1/projects/$P/export?kind=consensus&format=csv&method=dawid_skene" >"$E2E_DIR/ds.csv"
check "CSV: the same answers" "$(jq -r '"\(.task_id),\(.consensus)"' "$E2E_DIR/ds.jsonl" | sort)" \
    "$(tail -n +2 "$E2E_DIR/ds.csv" | cut -d, -f1,3 | sort)"

"$CTL" export --project "$P" --kind consensus --format jsonl --method dawid_skene >"$E2E_DIR/ctl.jsonl" 2>/dev/null
check "quorumctl export --method dawid_skene: the same rows" "$(md5sum <"$E2E_DIR/ds.jsonl")" "$(md5sum <"$E2E_DIR/ctl.jsonl")"
rc=0
"$CTL" export --project "$P" --method dawid_skene >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl export --method without --kind consensus: usage error" 2 "$rc"

# The live report: each annotator's estimated accuracy, as the offline fit
# gives it, near the accuracy each was simulated at; and in the report.
"$CTL" agreement --project "$P" --fresh --json >"$E2E_DIR/plain.json"
check "the live report leaves the fit out unless asked (it costs several refreshes)" null \
    "$(jq -c .dawid_skene "$E2E_DIR/plain.json")"
"$CTL" agreement --project "$P" --method dawid_skene --json >"$E2E_DIR/live.json"
"$CTL" agreement --project "$P" --method dawid_skene >"$E2E_DIR/live.txt"
check "text: a line per annotator under Dawid-Skene" 3 \
    "$(sed -n '/^Dawid-Skene/,$p' "$E2E_DIR/live.txt" | grep -c '^sim-')"
check "and the cached report still leaves it out" null \
    "$(api GET "/v1/projects/$P/agreement" | cut -d' ' -f2- | jq -c .dawid_skene)"
"$CTL" agreement "$E2E_DIR/annotations.csv" --method dawid_skene --json >"$E2E_DIR/offline_ds.json"
check "live dawid_skene: each annotator's estimate = the offline fit's" \
    "$(jq -c '[.dawid_skene.per_annotator[] | {annotator, e: (.estimated_accuracy * 1e9 | round)}] | sort_by(.annotator)' "$E2E_DIR/offline_ds.json")" \
    "$(jq -c '[.dawid_skene.per_annotator[] | {annotator, e: (.estimated_accuracy * 1e9 | round)}] | sort_by(.annotator)' "$E2E_DIR/live.json")"
echo "# estimated accuracies (simulated at 0.95, 0.6, 0.55): $(jq -c '[.dawid_skene.per_annotator[].estimated_accuracy * 1000 | round / 1000] | sort | reverse' "$E2E_DIR/live.json")"
# Three annotators on 400 tasks is the least the model needs: the best one's
# estimate is low here (about 0.84; on 20,000 tasks the same crew's come
# within 0.01); the issue's crew of five is held within 0.05 by
# tests/unit/test_agreement_ds.c.
check "the estimates rank the annotators as simulated, each within 0.15" true \
    "$(jq --slurpfile a <(sql "SELECT json_agg(x) FROM (SELECT a.annotator_id AS id, avg((a.label = t.data->>'_true_label')::int)::float8 AS acc FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P GROUP BY 1) x") \
        '[.dawid_skene.per_annotator[] | .annotator_id as $id | {e: .estimated_accuracy, s: ($a[0][] | select(.id == $id) | .acc)}]
         | (sort_by(.e) | map(.s)) == (sort_by(.s) | map(.s)) and all(.[]; (.e - .s | fabs) < 0.15)' "$E2E_DIR/live.json")"
check "the report's per_annotator carries the same estimates" \
    "$(jq -c '[.dawid_skene.per_annotator[] | {id: .annotator_id, e: (.estimated_accuracy * 1e6 | round)}] | sort_by(.id)' "$E2E_DIR/live.json")" \
    "$("$CTL" report --project "$P" --json | jq -c '[.per_annotator[] | {id: .annotator_id, e: (.estimated_accuracy * 1e6 | round)}] | sort_by(.id)')"

# Refusals.
r=$(api GET "/v1/projects/$P/export?kind=annotations&method=dawid_skene")
check "method=dawid_skene with kind=annotations: 422" 422 "${r%% *}"
r=$(api GET "/v1/projects/$P/export?kind=consensus&method=vote")
check "an unknown method: 422 naming the choices" "422 true" \
    "${r%% *} $(echo "${r#* }" | jq '.error.message | test("majority or dawid_skene")')"
S=$(new_project '{"name": "s", "schema": {"fields": [{"name": "x", "type": "text"}]}}')
r=$(api GET "/v1/projects/$S/export?kind=consensus&method=dawid_skene")
check "a schema project: 422" 422 "${r%% *}"

finish
