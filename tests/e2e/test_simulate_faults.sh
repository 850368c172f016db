#!/usr/bin/env bash
# quorum-agent simulate under its fault options: 40 annotators spread over two
# brokers (--urls), skipping, releasing and abandoning 5% of their leases
# each, batch submits of prefetched leases, a short lease TTL so abandoned
# leases expire while the crew works, and the second broker SIGKILLed mid-run
# (its annotators move to the first). Checked in PostgreSQL: exact overlap, no
# (task, annotator) twice, every acknowledged submit in the ack log stored
# with its task, every outcome in the leases table; and the summary's fields.
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200
start_second_broker --reaper-ms 200

r=$(api POST /v1/projects "$ADMIN_TOKEN" \
    '{"name": "faults", "labels": ["sports", "technology", "cooking", "weather"],
      "annotations_per_task": 2, "lease_ttl_ms": 2000}')
check "project with a 2 s lease TTL: 201" 201 "${r%% *}"
P=$(echo "${r#* }" | jq .id)
head -n 500 "$QR_SOURCE_DIR/deploy/sample/news.jsonl" >"$E2E_DIR/tasks.jsonl"
"$QR_BIN_DIR/quorumctl" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
check "500 tasks imported" 500 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P")"

ACKS=$E2E_DIR/acks.tsv
SUMMARY=$E2E_DIR/sim.json
timeout 300 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 40 \
    --accuracy 0.7-0.95 --think-ms 5-40 --seed 5 --prefetch 4 --batch \
    --skip-rate 0.05 --release-rate 0.05 --abandon-rate 0.05 --wait-ms 1000 \
    --urls "$URL,$URL2" --token "$ADMIN_TOKEN" --ca "$CA" --ack-log "$ACKS" --json-summary "$SUMMARY" --max-seconds 240 \
    >"$E2E_DIR/sim.out" 2>"$E2E_DIR/sim.err" &
SIM=$!

# SIGKILL the second broker once a third of the work is done.
for _ in $(seq 1 600); do
    n=$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")
    [ "$n" -ge 330 ] && break
    kill -0 "$SIM" 2>/dev/null || break
    sleep 0.05
done
kill -KILL "$QUORUMD2_PID" 2>/dev/null || true
wait "$QUORUMD2_PID" 2>/dev/null || true
QUORUMD2_PID=""
echo "# killed broker 2 at $n annotations"

SIM_RC=0
wait "$SIM" || SIM_RC=$?
check "simulate exits 0 (every annotator saw the project complete)" 0 "$SIM_RC"
if [ "$SIM_RC" != 0 ] || grep -q 'Sanitizer\|runtime error' "$E2E_DIR/sim.err"; then
    tail -n 30 "$E2E_DIR/sim.err"
    tail -n 15 "$E2E_DIR/sim.out"
fi
check "no sanitizer report from the agent" 0 "$(grep -c 'Sanitizer\|runtime error' "$E2E_DIR/sim.err" || true)"
tail -n 7 "$E2E_DIR/sim.out" | sed 's/^/# /'

check "every task holds exactly its required annotations" 0 \
    "$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $P AND
        t.required <> (SELECT count(*) FROM annotations a WHERE a.task_id = t.id)")"
check "1000 annotations" 1000 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"
check "no (task, annotator) pair twice" 0 \
    "$(sql "SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $P
        GROUP BY task_id, annotator_id HAVING count(*) > 1) d")"

# The ack log: four tab-separated fields a line; every annotation_id stored, with its task.
check "ack log: 4 fields on every line" 0 "$(awk -F'\t' 'NF != 4' "$ACKS" | wc -l)"
missing=$(acks_missing "$ACKS")
check "every acknowledged annotation is stored with its task" 0 "$missing"
check "every stored annotation was acknowledged to the crew" 1000 \
    "$(cut -f3 "$ACKS" | sort -u | wc -l)"
check "ack log names the crew's annotators" 0 \
    "$(cut -f2 "$ACKS" | grep -vc '^sim-' || true)"

outcomes=$(sql "SELECT string_agg(outcome || '=' || n, ' ' ORDER BY outcome) FROM
    (SELECT outcome, count(*) n FROM leases WHERE project_id = $P GROUP BY outcome) o")
echo "# lease outcomes: $outcomes"
for o in submitted released skipped expired; do
    check "leases table has $o leases" t \
        "$(sql "SELECT count(*) > 0 FROM leases WHERE project_id = $P AND outcome = '$o'")"
done

S=$(cat "$SUMMARY")
echo "# $(echo "$S" | jq -c '{completions, completions_per_second, skipped, released, abandoned,
    lease_latency_ms, submit_latency_ms, requests, errors}')"
check "summary: lease latency p50/p99/p999/n" true \
    "$(echo "$S" | jq '.lease_latency_ms | (.p50 > 0) and (.p99 >= .p50) and (.p999 >= .p99) and (.n > 0)')"
check "summary: submit latency p50/p99/p999/n" true \
    "$(echo "$S" | jq '.submit_latency_ms | (.p50 > 0) and (.p99 >= .p50) and (.p999 >= .p99) and (.n > 0)')"
check "summary: completions = acknowledged submits" "$(wc -l <"$ACKS")" "$(echo "$S" | jq .completions)"
check "summary: completions_per_second, requests, errors" true \
    "$(echo "$S" | jq '(.completions_per_second > 0) and (.requests.total > 0) and (.requests.batch_submit > 0) and (.errors | type == "object")')"
check "summary: skipped, released and abandoned leases" true \
    "$(echo "$S" | jq '(.skipped > 0) and (.released > 0) and (.abandoned > 0)')"
check "summary: batches carried several results" true \
    "$(echo "$S" | jq '.requests.batch_submit < .completions')"
check "summary: annotators moved to broker 1 after the kill" true \
    "$(echo "$S" | jq '[.per_annotator[].failovers] | add > 0')"
check "summary: per-annotator accuracy drawn in 0.7-0.95" true \
    "$(echo "$S" | jq '[.per_annotator[].accuracy] | (min >= 0.7) and (max <= 0.95) and (min < max)')"
check "skips recorded in PostgreSQL match the crew's" true \
    "$(echo "$S" | jq --argjson db "$(sql "SELECT count(*) FROM leases WHERE project_id = $P AND outcome = 'skipped'")" '.skipped <= $db')"

finish
