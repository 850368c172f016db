#!/usr/bin/env bash
# The quality loop's settings together on one project (issue 16): gold
# served at a rate, dynamic overlap, predictions shown, auto-accept and
# review of every completed task, with a predictions update on the way. Each keeps its own guarantee with the
# others on: gold (control) tasks are never auto-accepted and never bound
# by overlap_max, overlap_max can still be lowered, a crew finishes the
# normal tasks within overlap_max, and no control task completes.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"

P=$(new_project '{"name": "all", "labels": ["a", "b"], "overlap_min": 2, "overlap_max": 4,
    "overlap_agreement_threshold": 0.75, "gold_rate": 0.2, "gold_onboarding": 2,
    "show_predictions": true, "auto_accept_confidence": 0.95, "review_mode": "all"}')
check "the project holds every setting" "2 4 0.2 true 0.95 all" \
    "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -r '"\(.overlap_min) \(.overlap_max) \(.gold_rate) \(.show_predictions) \(.auto_accept_confidence) \(.review_mode)"')"
# 60 normal tasks with an unsure prediction, 10 gold tasks.
python3 - "$E2E_DIR/tasks.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(70):
        t = {"data": {"n": i}, "external_id": "t%d" % i,
             "prediction": {"label": "ab"[i % 2], "score": 0.5}}
        if i >= 60:
            t["gold"] = "ab"[i % 2]
        f.write(json.dumps(t) + "\n")
PY
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
check "the gold tasks are control tasks" 10 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND control")"

# Confident predictions for two normal tasks and two gold tasks.
printf '%s\n' '{"external_id": "t0", "value": "a", "score": 0.99}' '{"external_id": "t1", "value": "b", "score": 0.99}' \
    '{"external_id": "t60", "value": "a", "score": 0.99}' '{"external_id": "t61", "value": "b", "score": 0.99}' |
    "$CTL" predictions --project "$P" - >"$E2E_DIR/pred.out"
check "the update auto-accepts the normal tasks, not the gold ones" "updated 4 predictions (2 auto-accepted, 0 reopened)" \
    "$(cat "$E2E_DIR/pred.out")"
check "no control task auto-accepted" 0 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND control AND auto_accept IS NOT NULL")"

r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"overlap_max": 3}')
check "overlap_max can be lowered while gold tasks need 1,000,000" "200 3" "${r%% *} $(echo "${r#* }" | jq .overlap_max)"

timeout 600 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 5 --accuracy 0.8 \
    --think-ms 0-1 --seed 7 >"$E2E_DIR/sim.log" 2>&1 || { tail -5 "$E2E_DIR/sim.log"; fail "simulate"; }
check "every normal task complete" 60 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND NOT control AND state = 'complete'")"
check "none above overlap_max" 0 "$(sql "SELECT count(*) FROM tasks t WHERE project_id = $P AND NOT control AND
    (required > 3 OR (SELECT count(*) FROM annotations a WHERE a.task_id = t.id) > 3)")"
check "no control task complete" 0 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND control AND state = 'complete'")"
check "gold answers were given" t "$(sql "SELECT count(*) > 0 FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P AND t.control")"
check "no annotator answered a gold task twice" 0 \
    "$(sql "SELECT count(*) FROM (SELECT a.task_id, a.annotator_id FROM annotations a JOIN tasks t ON t.id = a.task_id
        WHERE t.project_id = $P GROUP BY 1, 2 HAVING count(*) > 1) x")"
check "every task humans completed is up for review, no other" "58 0" \
    "$(sql "SELECT count(*) FILTER (WHERE NOT t.control AND t.auto_accept IS NULL) || ' ' || count(*) FILTER (WHERE t.control OR t.auto_accept = 'accepted')
        FROM reviews r JOIN tasks t ON t.id = r.task_id WHERE r.project_id = $P")"
# A requeue past overlap_max is refused, and changes nothing.
r=$(api POST "/v1/projects/$P/reviews/leases" "$ADMIN_TOKEN" '{"max": 100}' | cut -d' ' -f2-)
L=$(echo "$r" | jq -r '[.leases[] | select((.annotations | length) == 3)][0].lease')
T=$(echo "$r" | jq -r '[.leases[] | select((.annotations | length) == 3)][0].task_id')
if [ "$L" != null ]; then
    r=$(api POST "/v1/projects/$P/reviews/leases/$L/submit" "$ADMIN_TOKEN" '{"decision": "accept", "requeue": true}')
    check "a requeue past overlap_max: 409" 409 "${r%% *}"
    grepq "cannot be requeued" <<<"$r" && pass "it says why" || fail "answer: $r"
    check "nothing changed" "3 complete 0" \
        "$(sql "SELECT required || ' ' || state || ' ' || (SELECT count(*) FROM reviews WHERE task_id = $T AND state <> 'pending') FROM tasks WHERE id = $T")"
else
    fail "no review item of a task with 3 annotations: $(echo "$r" | jq -c '[.leases[].annotations | length]')"
fi
q=$(api GET "/v1/projects/$P/report" | cut -d' ' -f2- | jq -c '.quality | {auto_accepted, shown: (.shown_predictions.compared > 0), dyn: (.dynamic_overlap.tasks_complete)}')
check "the report's quality has each part" '{"auto_accepted":2,"shown":true,"dyn":58}' "$q"

finish
