#!/usr/bin/env bash
# Review and adjudication (issue 16, point 2): a project with review_mode
# low_agreement; two managers label some tasks by hand (so they are
# annotators of the project too), a simulated crew of known truth labels
# the rest; every task whose majority holds less than the threshold, or is
# a tie, is selected for review. Then the refusals of a review lease, its
# expiry and return, a requeue for one more annotator; then a reviewer crew
# (two reviewers and the two managers) leases and resolves every selected
# task, deciding by the truth. Asserted from PostgreSQL: every selected
# task has exactly one decided review, none was reviewed by one of its
# annotators or twice; the consensus export's answer is the reviewer's for
# each; every original annotation is still exported; the report counts them.
. "$(dirname "$0")/lib.sh"

N=${QR_REVIEW_TASKS:-150}
start_broker
CTL="$QR_BIN_DIR/quorumctl"

# --- the settings: refusals, then a project -----------------------------------------------
for bad in '"review_mode": "some"' '"review_share": 1.5' '"review_agreement_threshold": "x"'; do
    r=$(api POST /v1/projects "$ADMIN_TOKEN" "{\"name\": \"x\", \"labels\": [\"a\"], $bad}")
    check "a project with $bad: 422" 422 "${r%% *}"
done
check "nothing made" 0 "$(sql "SELECT count(*) FROM projects")"
rc=0
"$CTL" project create --name y --labels a --review-mode most >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl: --review-mode most is a usage error" 2 "$rc"
grepq "none, all, share or low_agreement" <"$E2E_DIR/err" && pass "and says why" || fail "stderr: $(cat "$E2E_DIR/err")"

P=$("$CTL" project create --name rv --labels a,b,c,d --annotations-per-task 3 \
    --review-mode share --review-share 0.2)
check "the project shows its settings" "share 0.2 0.5" \
    "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -r '"\(.review_mode) \(.review_share) \(.review_agreement_threshold)"')"
r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"review_mode": "low"}')
check "PATCH review_mode low: 422" 422 "${r%% *}"
"$CTL" project update "$P" --review-mode low_agreement --review-agreement-threshold 0.7 >/dev/null
check "project show says it" "review_mode: low_agreement review_agreement_threshold: 0.7" \
    "$("$CTL" project show "$P" | grep '^review_' | tr '\n' ' ' | sed 's/ $//')"

token_of() { # NAME ROLE -> a token of a new user
    api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"$1\",\"role\":\"$2\"}" | cut -d' ' -f2- | jq -r .token
}
R1=$(token_of rev1 reviewer)
R2=$(token_of rev2 reviewer)
M1=$(token_of man1 manager)
M2=$(token_of man2 manager)
ANN=$(token_of ann1 annotator)
id_of() { sql "SELECT id FROM users WHERE name = '$1'"; }

python3 - "$N" "$E2E_DIR/tasks.jsonl" <<'PY'
import json, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
r = random.Random(16)
with open(out, "w") as f:
    for i in range(n):
        f.write(json.dumps({"n": i, "_true_label": r.choice("abcd")}) + "\n")
PY
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null

# --- the managers label some tasks, the crew the rest ----------------------------------------
for M in "$M1" "$M2"; do
    r=$(api POST "/v1/projects/$P/leases" "$M" '{"max": 10}')
    for L in $(echo "${r#* }" | jq -r '.leases[].lease'); do
        api POST "/v1/projects/$P/leases/$L/submit" "$M" '{"label": "d"}' >/dev/null
    done
done
check "the managers labeled 20 tasks" 20 \
    "$(sql "SELECT count(*) FROM annotations WHERE annotator_id IN ($(id_of man1), $(id_of man2))")"
timeout 600 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 4 --accuracy 0.55-0.8 \
    --think-ms 0-1 --seed 7 >"$E2E_DIR/sim.log" 2>&1 || { tail -5 "$E2E_DIR/sim.log"; fail "simulate"; }
check "every task complete" "$N" "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND state = 'complete'")"

# What low agreement selects, computed here from the annotations alone.
LOW="SELECT task_id FROM (SELECT task_id, max(n) AS top, sum(n) AS total,
       count(*) FILTER (WHERE n = mx) AS tops
     FROM (SELECT task_id, label, count(*) AS n, max(count(*)) OVER (PARTITION BY task_id) AS mx
           FROM annotations WHERE project_id = $P GROUP BY 1, 2) v GROUP BY task_id) s
   WHERE top::float / total < 0.7 OR tops > 1"
NLOW=$(sql "SELECT count(*) FROM ($LOW) l")
echo "# $NLOW of $N tasks have low agreement or a tie"
[ "$NLOW" -gt 10 ] && pass "a good number of tasks to review" || fail "only $NLOW to review"
check "exactly those are selected for review" "$NLOW $NLOW" \
    "$(sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE task_id IN ($LOW)) FROM reviews WHERE project_id = $P AND state = 'pending'")"

# --- refusals --------------------------------------------------------------------------------
r=$(api POST "/v1/projects/$P/reviews/leases" "$ANN" '{"max": 1}')
check "an annotator cannot lease review items" 403 "${r%% *}"
r=$(api POST "/v1/projects/$P/reviews/leases" "$R1" '{"max": 0}')
check "max 0: 422" 422 "${r%% *}"
r=$(api POST "/v1/projects/$P/reviews/leases" "$R1" '{"max": 1}')
check "a reviewer leases one item" "200 1" "${r%% *} $(echo "${r#* }" | jq '.leases | length')"
L1=$(echo "${r#* }" | jq -r '.leases[0].lease')
T1=$(echo "${r#* }" | jq -r '.leases[0].task_id')
check "with the task's data, its annotations and the consensus" "3 true" \
    "$(echo "${r#* }" | jq -r '.leases[0] | "\(.annotations | length) \(.consensus | has("tie"))"')"
OTHER_ANN=$(sql "SELECT min(id) FROM annotations WHERE project_id = $P AND task_id <> $T1")
state() { sql "SELECT state || ' ' || coalesce(decision, '-') || ' ' || coalesce(value, '-') || ' ' || fencing_token FROM reviews WHERE task_id = $T1"; }
before=$(state)
for body in '{"decision": "reject"}' '{}' "{\"decision\": \"pick\", \"annotation_id\": $OTHER_ANN}" \
    '{"decision": "pick"}' '{"decision": "correct", "value": "zzz"}' '{"decision": "correct"}' \
    '{"decision": "accept", "value": "a"}' '{"decision": "accept", "requeue": 1}' \
    '{"decision": "accept", "extra": 1}'; do
    r=$(api POST "/v1/projects/$P/reviews/leases/$L1/submit" "$R1" "$body")
    check "submit $body: 422" 422 "${r%% *}"
done
r=$(api POST "/v1/projects/$P/reviews/leases/$L1/submit" "$R2" '{"decision": "correct", "value": "a"}')
check "another reviewer cannot decide it: 409" 409 "${r%% *}"
r=$(api POST "/v1/projects/$P/reviews/leases/987654/submit" "$R1" '{"decision": "correct", "value": "a"}')
check "a lease that never was: 404" 404 "${r%% *}"
r=$(api POST "/v1/projects/$P/reviews/leases/$L1/submit" "$ANN" '{"decision": "correct", "value": "a"}')
check "an annotator cannot decide it: 403" 403 "${r%% *}"
r=$(api POST "/v1/projects/$P/reviews/leases/$L1/heartbeat" "$R2" '{}')
check "nor heartbeat another's: 409" 409 "${r%% *}"
check "nothing changed" "$before" "$(state)"
r=$(api POST "/v1/projects/$P/reviews/leases/$L1/heartbeat" "$R1" '{}')
check "its holder's heartbeat" 200 "${r%% *}"
r=$(api POST "/v1/projects/$P/reviews/leases/$L1/release" "$R1" '{}')
check "and release" 200 "${r%% *}"
r=$(api POST "/v1/projects/$P/reviews/leases/$L1/submit" "$R1" '{"decision": "correct", "value": "a"}')
check "a released lease cannot be decided: 404" 404 "${r%% *}"

# --- expiry: a lease not decided in its TTL returns to the pool ------------------------------
# 4 s: the steps up to the release take well under 1 s on an idle machine,
# over 1 s on two cores shared with other tests.
api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"lease_ttl_ms": 4000}' >/dev/null
r=$(api POST "/v1/projects/$P/reviews/leases" "$R1" '{"max": 1}')
L2=$(echo "${r#* }" | jq -r '.leases[0].lease')
T2=$(echo "${r#* }" | jq -r '.leases[0].task_id')
r=$(api POST "/v1/projects/$P/reviews/leases" "$R2" '{"max": 1}')
check "while it is live another reviewer gets another item" true \
    "$(echo "${r#* }" | jq --arg t "$T2" '.leases[0].task_id != ($t | tonumber)')"
api POST "/v1/projects/$P/reviews/leases/$(echo "${r#* }" | jq -r '.leases[0].lease')/release" "$R2" '{}' >/dev/null
sleep 4.3
r=$(api POST "/v1/projects/$P/reviews/leases/$L2/heartbeat" "$R1" '{}')
check "an expired review lease cannot be extended" 409 "${r%% *}"
r=$(api POST "/v1/projects/$P/reviews/leases" "$R2" '{"max": 1}')
check "the expired item goes to the next reviewer, with a new token" "$T2 true" \
    "$(echo "${r#* }" | jq -r --arg l "$L2" '.leases[0] | "\(.task_id) \(.lease != $l)"')"
L3=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$P/reviews/leases/$L2/submit" "$R1" '{"decision": "correct", "value": "a"}')
check "the first holder's late decision: 404 (its item was granted again)" 404 "${r%% *}"
api POST "/v1/projects/$P/reviews/leases/$L3/release" "$R2" '{}' >/dev/null
api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"lease_ttl_ms": 60000}' >/dev/null

# --- requeue: one more annotator, then another reviewer ---------------------------------------
r=$(api POST "/v1/projects/$P/reviews/leases" "$R1" '{"max": 1}')
L4=$(echo "${r#* }" | jq -r '.leases[0].lease')
T4=$(echo "${r#* }" | jq -r '.leases[0].task_id')
r=$(api POST "/v1/projects/$P/reviews/leases/$L4/submit" "$R1" '{"decision": "correct", "value": "a", "requeue": true}')
check "a decision with requeue" "200 true" "${r%% *} $(echo "${r#* }" | jq .requeued)"
check "the task is open for one more annotator" "waiting 4 3" \
    "$(sql "SELECT state || ' ' || required || ' ' || done_count FROM tasks WHERE id = $T4")"
check "its review waits for it" "requeued" "$(sql "SELECT state FROM reviews WHERE task_id = $T4")"
timeout 120 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 1 --accuracy 1.0 \
    --think-ms 0-1 --seed 8 >"$E2E_DIR/sim2.log" 2>&1 || { tail -5 "$E2E_DIR/sim2.log"; fail "simulate 2"; }
check "the fourth annotation came, and the review is pending again" "complete 4 pending" \
    "$(sql "SELECT t.state || ' ' || t.done_count || ' ' || r.state FROM tasks t JOIN reviews r ON r.task_id = t.id WHERE t.id = $T4")"

# --- the reviewer crew resolves every selected task -------------------------------------------
# Two brokers, every reviewer at once on both: SKIP LOCKED keeps one
# reviewer per item whatever broker grants it.
start_second_broker || fail "a second broker"
python3 "$QR_SOURCE_DIR/tests/e2e/review_crew.py" "$URL,$URL2" "$CA" "$P" "$E2E_DIR/decisions" rev1="$R1" rev2="$R2" \
    man1="$M1" man2="$M2" || fail "the reviewer crew"
NREV=$(sql "SELECT count(*) FROM reviews WHERE project_id = $P")
check "every selected task has exactly one decided review" "$NLOW $NLOW $NLOW" \
    "$(sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'done') || ' ' || count(DISTINCT task_id) FROM reviews WHERE project_id = $P")"
check "the crew decided each once" "$NREV" "$(wc -l <"$E2E_DIR/decisions" | tr -d ' ')"
check "no reviewer reviewed a task they annotated" 0 \
    "$(sql "SELECT count(*) FROM reviews r JOIN annotations a ON a.task_id = r.task_id AND a.annotator_id = r.reviewer_id WHERE r.project_id = $P")"
check "no item reviewed twice" 0 \
    "$(sql "SELECT count(*) FROM (SELECT task_id FROM reviews WHERE project_id = $P GROUP BY 1 HAVING count(*) > 1) d")"
check "the requeued task went to another reviewer" 1 \
    "$(sql "SELECT count(*) FROM reviews WHERE task_id = $T4 AND reviewer_id <> $(id_of rev1) AND $(id_of rev1) = ANY (past_reviewers)")"
check "the managers reviewed some, among tasks they did not label" t \
    "$(sql "SELECT count(*) > 0 FROM reviews WHERE reviewer_id IN ($(id_of man1), $(id_of man2))")"
check "and tasks they labeled were reviewed, by someone else" t \
    "$(sql "SELECT count(*) > 0 FROM reviews r JOIN annotations a ON a.task_id = r.task_id WHERE a.annotator_id IN ($(id_of man1), $(id_of man2))")"
check "PostgreSQL holds the decisions the crew made" "" \
    "$(diff <(sort "$E2E_DIR/decisions") <(sql "SELECT r.task_id || ' ' || u.name || ' ' || r.decision || ' ' || r.value FROM reviews r JOIN users u ON u.id = r.reviewer_id WHERE r.project_id = $P" | sort))"
echo "# decisions: $(cut -d' ' -f3 "$E2E_DIR/decisions" | sort | uniq -c | tr -s ' ' | tr '\n' ',')"

# --- the export's final answer is the reviewer's ---------------------------------------------
export() { curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/v1/projects/$P/export?$1"; }
export "kind=consensus&format=jsonl" >"$E2E_DIR/consensus.jsonl"
check "the consensus export has every task" "$N" "$(wc -l <"$E2E_DIR/consensus.jsonl" | tr -d ' ')"
jq -r 'select(.reviewed == true) | "\(.task_id) \(.reviewer) \(.review_decision) \(.consensus)"' \
    "$E2E_DIR/consensus.jsonl" | sort >"$E2E_DIR/exported"
check "its answer is the reviewer's for each reviewed task (and only those)" "" \
    "$(diff "$E2E_DIR/exported" <(sort "$E2E_DIR/decisions"))"
check "a reviewed task has no vote's support" 0 \
    "$(jq -r 'select(.reviewed == true and .support != null)' "$E2E_DIR/consensus.jsonl" | wc -l | tr -d ' ')"
check "every original annotation is still exported" \
    "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")" \
    "$(export "kind=annotations&format=jsonl" | wc -l | tr -d ' ')"
export "kind=consensus&format=csv" >"$E2E_DIR/consensus.csv"
check "the CSV's consensus is the reviewer's too" "$NREV" \
    "$(python3 - "$E2E_DIR/consensus.csv" "$E2E_DIR/decisions" <<'PY'
import csv, sys
rows = {r["task_id"]: r["consensus"] for r in csv.DictReader(open(sys.argv[1], newline=""))}
print(sum(rows[t] == v for t, _, _, v in (l.split() for l in open(sys.argv[2]))))
PY
)"

# --- the report ------------------------------------------------------------------------------
R=$(api GET "/v1/projects/$P/report" | cut -d' ' -f2-)
check "the report's quality.reviewed" "$NREV" "$(echo "$R" | jq .quality.reviewed)"
check "per annotator, the acceptance compared over their reviewed annotations" \
    "$(sql "SELECT count(*) FROM annotations a JOIN reviews r ON r.task_id = a.task_id AND r.state = 'done' WHERE a.project_id = $P")" \
    "$(echo "$R" | jq '[.per_annotator[].review_acceptance.compared] | add')"
check "man1's acceptance is the share of their labels the review kept" \
    "$(sql "SELECT round(avg((a.label = r.value)::int), 4)::float8 FROM annotations a JOIN reviews r ON r.task_id = a.task_id AND r.state = 'done' WHERE a.annotator_id = $(id_of man1)")" \
    "$(echo "$R" | jq '.per_annotator[] | select(.annotator == "man1") | .review_acceptance.value')"
"$CTL" report --project "$P" >"$E2E_DIR/report.txt"
grepq "^reviewed  *$NREV tasks" <"$E2E_DIR/report.txt" && pass "quorumctl report prints it" ||
    fail "report: $(cat "$E2E_DIR/report.txt")"
check "and each annotator's acceptance" \
    "$(echo "$R" | jq -r '.per_annotator[] | select(.annotator == "man1") | .review_acceptance | "\(.value) of \(.compared)"')" \
    "$(grep -m1 '^man1 ' "$E2E_DIR/report.txt" | awk '{print ($3 + 0) " of " $5}')"
curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/metrics" >"$E2E_DIR/metrics.txt"
check "metrics: quorum_tasks{state=reviewed}, apart from complete" "$NREV $((N - NREV))" \
    "$(for s in reviewed complete; do grep "^quorum_tasks{project=\"$P\",state=\"$s\"}" "$E2E_DIR/metrics.txt" | awk '{print $2}'; done | tr '\n' ' ' | sed 's/ $//')"
check "throughput: the queue's reviewed apart from complete, tasks_completed both" "$NREV $((N - NREV)) $N" \
    "$(api GET "/v1/projects/$P/throughput" | cut -d' ' -f2- | jq -r '"\(.queue.reviewed) \(.queue.complete) \(.totals.tasks_completed)"')"
r=$(api POST "/v1/projects/$P/reviews/leases" "$R1" '{"max": 5}')
check "nothing left to review" "200 0" "${r%% *} $(echo "${r#* }" | jq '.leases | length')"

# --- review_mode share: a stable draw of the completed tasks -------------------------------------
SH=$(new_project '{"name": "rv-share", "labels": ["a", "b"], "review_mode": "share", "review_share": 0.3}')
seq 1 300 | sed 's/.*/{"n":&,"_true_label":"a"}/' | "$CTL" import --project "$SH" - >/dev/null
timeout 300 "$QR_BIN_DIR/quorum-agent" simulate --project "$SH" --annotators 2 --accuracy 1.0 \
    --think-ms 0-1 --seed 9 >"$E2E_DIR/sim3.log" 2>&1 || { tail -5 "$E2E_DIR/sim3.log"; fail "simulate 3"; }
NSH=$(sql "SELECT count(*) FROM reviews WHERE project_id = $SH")
check "share 0.3: the tasks the hash draws, every one of them" "$NSH" \
    "$(sql "SELECT count(*) FROM tasks WHERE project_id = $SH AND (hashint8(id # 6148914691236517205) & 65535) < 0.3 * 65536")"
check "about 30 % of 300 (within 4 standard deviations)" true \
    "$(python3 -c "import math; print(str(abs($NSH - 90) <= 4 * math.sqrt(300 * 0.3 * 0.7)).lower())")"
check "every review names its task's project" 0 \
    "$(sql "SELECT count(*) FROM reviews r JOIN tasks t ON t.id = r.task_id WHERE r.project_id <> t.project_id")"

# --- a tie has no consensus to accept ----------------------------------------------------------
TP=$(new_project '{"name": "rv-tie", "labels": ["a", "b"], "annotations_per_task": 2, "review_mode": "low_agreement"}')
echo '{"n": 1}' | "$CTL" import --project "$TP" - >/dev/null
label_one() { # TOKEN LABEL: one lease of project TP, submitted
    local r; r=$(api POST "/v1/projects/$TP/leases" "$1" '{"max": 1}')
    api POST "/v1/projects/$TP/leases/$(echo "${r#* }" | jq -r '.leases[0].lease')/submit" "$1" "{\"label\": \"$2\"}" >/dev/null
}
label_one "$M1" a
# A reviewer's long poll waits for the item the next submit makes.
t0=$(date +%s%N)
api POST "/v1/projects/$TP/reviews/leases" "$R1" '{"max": 1, "wait_ms": 20000}' >"$E2E_DIR/poll" &
POLL=$!
sleep 1
label_one "$M2" b
wait $POLL
r=$(cat "$E2E_DIR/poll")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "a waiting review grant gets the item once the task completes (in ${ms} ms)" "200 1 true" \
    "${r%% *} $(echo "${r#* }" | jq '.leases | length') $([ "$ms" -lt 10000 ] && echo true)"
for M in "$M1" "$M2"; do
    q=$(api POST "/v1/projects/$TP/reviews/leases" "$M" '{"max": 1}')
    check "a manager who labeled the task is never given its review" "200 0" "${q%% *} $(echo "${q#* }" | jq '.leases | length')"
done
t0=$(date +%s%N)
q=$(api POST "/v1/projects/$TP/reviews/leases" "$R2" '{"max": 1, "wait_ms": 600}')
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "with nothing to review, a long poll answers empty at its deadline" "200 0 true" \
    "${q%% *} $(echo "${q#* }" | jq '.leases | length') $([ "$ms" -ge 550 ] && [ "$ms" -lt 3000 ] && echo true)"
check "a tie is selected, its consensus null" "true null" \
    "$(echo "${r#* }" | jq -r '.leases[0].consensus | "\(.tie) \(.value)"')"
LT=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$TP/reviews/leases/$LT/submit" "$R1" '{"decision": "accept"}')
check "accept on a tie: 409" 409 "${r%% *}"
B=$(sql "SELECT id FROM annotations WHERE project_id = $TP AND label = 'b'")
r=$(api POST "/v1/projects/$TP/reviews/leases/$LT/submit" "$R1" "{\"decision\": \"pick\", \"annotation_id\": $B}")
check "pick settles it" "200 b" "${r%% *} $(echo "${r#* }" | jq -r .value)"

# --- a schema project: values are labels objects, spans checked against the task's text -------
S=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "rv-schema", "annotations_per_task": 2, "review_mode": "all",
  "schema": {"fields": [{"name": "sentiment", "type": "choice", "choices": ["positive", "negative"]},
  {"name": "entities", "type": "spans", "over": "text", "labels": ["PER", "ORG"]}]}}' | cut -d' ' -f2- | jq .id)
printf '{"text": "Ada met Bob"}\n' | "$CTL" import --project "$S" - >/dev/null
for M in "$M1" "$M2"; do
    r=$(api POST "/v1/projects/$S/leases" "$M" '{"max": 1}')
    api POST "/v1/projects/$S/leases/$(echo "${r#* }" | jq -r '.leases[0].lease')/submit" "$M" \
        '{"labels": {"sentiment": "positive", "entities": [{"start": 0, "end": 3, "label": "PER"}]}}' >/dev/null
done
r=$(api POST "/v1/projects/$S/reviews/leases" "$R1" '{"max": 1}')
check "the schema task is up for review, its values objects" "2 positive" \
    "$(echo "${r#* }" | jq -r '.leases[0] | "\(.annotations | length) \(.consensus.value.sentiment)"')"
LS=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$S/reviews/leases/$LS/submit" "$R1" \
    '{"decision": "correct", "value": {"sentiment": "positive", "entities": [{"start": 8, "end": 40, "label": "PER"}]}}')
check "a span beyond the task's text: 422 invalid_labels" "422 invalid_labels" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"
r=$(api POST "/v1/projects/$S/reviews/leases/$LS/submit" "$R1" '{"decision": "correct", "value": {"sentiment": "meh"}}')
check "a choice not in the schema: 422" 422 "${r%% *}"
check "nothing decided" pending "$(sql "SELECT state FROM reviews WHERE project_id = $S")"
r=$(api POST "/v1/projects/$S/reviews/leases/$LS/submit" "$R1" \
    '{"decision": "correct", "value": {"sentiment": "positive", "entities": [{"start": 0, "end": 3, "label": "PER"}, {"start": 8, "end": 11, "label": "PER"}]}}')
check "a corrected value with two spans" 200 "${r%% *}"
r=$(api POST "/v1/projects/$S/reviews/leases/$LS/submit" "$R1" '{"decision": "accept"}')
check "a lease decided already: 409" 409 "${r%% *}"
check "the export's answer is the corrected labels object" "8 rev1 correct" \
    "$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/v1/projects/$S/export?kind=consensus&format=jsonl" |
        jq -r '"\(.consensus.entities[1].start) \(.reviewer) \(.review_decision)"')"

finish
