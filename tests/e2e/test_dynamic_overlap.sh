#!/usr/bin/env bash
# Dynamic overlap (issue 16, point 3), its acceptance: a crew of 8
# simulated annotators at accuracy 0.8 labels N binary tasks with a known
# truth (QR_DYNAMIC_TASKS, default 2000) in a project with overlap_min 2,
# overlap_max 5, overlap_measure confidence and overlap_agreement_threshold
# 0.95, through two brokers sharing one PostgreSQL and Redis; the same crew
# settings label the same N tasks in a project of fixed overlap 5. Printed:
# annotations per task and majority-consensus accuracy against the truth of
# both, with 95 % intervals. Checked: never a task with more than 5
# annotations (SQL), fewer than 5 a task on average, every task stopped
# before 5 at a confidence >= 0.95 and with a lead the annotations left up
# to 5 could not overturn (so its consensus is the one fixed overlap 5
# reaches on the same labels: the two are equal analytically), and the
# dynamic accuracy at least fixed 5's less a statistical margin. A smaller
# run (QR_DYNAMIC_SUPPORT_TASKS, default 500) checks the support measure
# (the default, overlap_agreement_threshold 0.7) as sql/0027 built it. Then
# the report's figures and every refusal of bad settings (POST and PATCH:
# status, error, nothing changed).
. "$(dirname "$0")/lib.sh"

# Why the numbers. Without gold answers each annotator is taken to be right
# with overlap_prior_accuracy (0.75); with K = 2 values a lead of d votes
# has posterior 3^d / (3^d + 1): 0.9 at d = 2, 0.964 at d = 3. So at
# threshold 0.95 a task stops at 3-0 (probability 0.8^3 + 0.2^3 = 0.52),
# by curtailment at 3-1 (a lead of 2 with one annotation left: 0.3264) or
# at 5: expected 3 * 0.52 + 4 * 0.3264 + 5 * 0.1536 = 3.63 per task at a
# crew accuracy of 0.8 (3.96 without curtailment). Every stop before 5
# holds a lead the rest cannot overturn, so the consensus is the one fixed
# overlap 5 reaches on the same labels (accuracy 0.942). The two runs are separate random
# runs of N tasks each: the difference of their accuracies has a standard
# deviation of sqrt(2 * 0.942 * 0.058 / N) = 0.0074 at N = 2000; the margin
# is 3.5 of them (computed from the measured accuracies), so a correct
# broker fails it about once in 4000 runs, while the pathwise check above
# is exact. A simulated annotator's correctness is a hash of (seed, task
# id, annotator), so each crew's realized accuracy differs a little from
# 0.8: it is printed too.
N=${QR_DYNAMIC_TASKS:-2000}
NS=${QR_DYNAMIC_SUPPORT_TASKS:-500}
THR=0.7
CTHR=0.95
start_broker
start_second_broker
CTL="$QR_BIN_DIR/quorumctl"

# --- the projects -----------------------------------------------------------------------------
DYN=$("$CTL" project create --name dynamic --labels yes,no --overlap-min 2 --overlap-max 5 \
    --overlap-agreement-threshold "$THR")
CONF=$("$CTL" project create --name confident --labels yes,no --overlap-min 2 --overlap-max 5 \
    --overlap-agreement-threshold "$CTHR" --overlap-measure confidence)
F5=$(new_project '{"name": "fixed5", "labels": ["yes", "no"], "annotations_per_task": 5}')
F3=$(new_project '{"name": "fixed3", "labels": ["yes", "no"], "annotations_per_task": 3}')
check "the dynamic project shows its settings; annotations_per_task is overlap_min" "2 2 5 0.7 support 0.75" \
    "$(api GET "/v1/projects/$DYN" | cut -d' ' -f2- |
        jq -r '"\(.annotations_per_task) \(.overlap_min) \(.overlap_max) \(.overlap_agreement_threshold) \(.overlap_measure) \(.overlap_prior_accuracy)"')"
check "the confidence project shows its measure" "2 5 0.95 confidence 0.75" \
    "$(api GET "/v1/projects/$CONF" | cut -d' ' -f2- |
        jq -r '"\(.overlap_min) \(.overlap_max) \(.overlap_agreement_threshold) \(.overlap_measure) \(.overlap_prior_accuracy)"')"
check "the other broker reads the same" "confidence 0.75" \
    "$(API_URL=$URL2 api GET "/v1/projects/$CONF" | cut -d' ' -f2- | jq -r '"\(.overlap_measure) \(.overlap_prior_accuracy)"')"
check "a fixed project shows none (and the default measure)" "null null null support" \
    "$(api GET "/v1/projects/$F5" | cut -d' ' -f2- |
        jq -r '"\(.overlap_min) \(.overlap_max) \(.overlap_agreement_threshold) \(.overlap_measure)"')"
check "project show says it" "dynamic_overlap: 2 to 5 annotations, one more while support < 0.7" \
    "$("$CTL" project show "$DYN" | grep '^dynamic_overlap')"
check "project show: the confidence measure" \
    "dynamic_overlap: 2 to 5 annotations, one more while confidence < 0.95 (prior accuracy 0.75)" \
    "$("$CTL" project show "$CONF" | grep '^dynamic_overlap')"
check "and off for a fixed one" "dynamic_overlap: off" "$("$CTL" project show "$F5" | grep '^dynamic_overlap')"

python3 - "$N" >"$E2E_DIR/tasks.jsonl" <<'PY'
import json, random, sys
r = random.Random(16)
for i in range(int(sys.argv[1])):
    print(json.dumps({"data": {"n": i, "_true_label": r.choice(["yes", "no"])}}))
PY
head -n "$NS" "$E2E_DIR/tasks.jsonl" >"$E2E_DIR/tasks_s.jsonl"
for p in "$CONF" "$F5"; do "$CTL" import --project "$p" "$E2E_DIR/tasks.jsonl" >/dev/null; done
"$CTL" import --project "$DYN" "$E2E_DIR/tasks_s.jsonl" >/dev/null
check "dynamic: every task imported needing overlap_min" "$NS 2 $N 2" \
    "$(sql "SELECT count(*) || ' ' || max(required) FROM tasks WHERE project_id = $DYN") $(sql "SELECT count(*) || ' ' || max(required) FROM tasks WHERE project_id = $CONF")"

# --- the crews --------------------------------------------------------------------------------
# Each project gets a crew of 8 at accuracy 0.8, all at once, spread over
# both brokers and submitting in batches of up to 4, so that one group
# commit may carry several rows of a task.
simulate() { # simulate PROJECT SEED URLS [FLAGS...]
    local p=$1 seed=$2 urls=$3
    shift 3
    timeout 480 "$QR_BIN_DIR/quorum-agent" simulate --project "$p" --annotators 8 --accuracy 0.8 \
        --think-ms 0-2 --seed "$seed" --urls "$urls" --token "$ADMIN_TOKEN" --ca "$CA" "$@" >"$E2E_DIR/sim$p.log" 2>&1
}
simulate "$CONF" 11 "$URL,$URL2" --prefetch 4 --batch &
S1=$!
simulate "$F5" 12 "$URL2,$URL" --prefetch 4 --batch &
S2=$!
simulate "$DYN" 13 "$URL,$URL2" --prefetch 4 --batch &
S3=$!
for s in $S1 $S2 $S3; do
    wait "$s" || { tail -n 5 "$E2E_DIR"/sim*.log; fail "a crew did not finish (simulate $s)"; }
done
for p in "$DYN" "$CONF" "$F5"; do
    check "project $p: every task complete" "$(sql "SELECT count(*) FROM tasks WHERE project_id = $p")" \
        "$(sql "SELECT count(*) FROM tasks WHERE project_id = $p AND state = 'complete'")"
done

# --- what PostgreSQL holds --------------------------------------------------------------------
for p in "$DYN" "$CONF"; do
    check "project $p: never a task with more than 5 annotations (nor required above 5)" "0 0" \
        "$(sql "SELECT (SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $p GROUP BY task_id HAVING count(*) > 5) x) || ' ' ||
                   (SELECT count(*) FROM tasks WHERE project_id = $p AND required > 5)")"
    check "project $p: each task's done_count is its annotations" 0 \
        "$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $p AND t.done_count <> (SELECT count(*) FROM annotations a WHERE a.task_id = t.id)")"
    check "project $p: one extension recorded per annotator added" \
        "$(sql "SELECT sum(required - 2) FROM tasks WHERE project_id = $p")" \
        "$(sql "SELECT count(*) FROM overlap_extensions WHERE project_id = $p")"
    check "project $p: no annotator on a task twice, no lease submitted twice" "0 0" \
        "$(sql "SELECT (SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $p GROUP BY task_id, annotator_id HAVING count(*) > 1) x) || ' ' ||
                   (SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $p GROUP BY fencing_token HAVING count(*) > 1) y)")"
done
check "support: every complete task reached 5 or has support >= $THR" 0 \
    "$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $DYN AND t.state = 'complete'
              AND t.done_count < 5 AND quorum_task_support(t.id) < $THR")"
check "support: no annotator was added to a task whose support had reached $THR" "0 0" \
    "$(sql "SELECT count(*) FILTER (WHERE support >= $THR) || ' ' || count(confidence) FROM overlap_extensions WHERE project_id = $DYN")"
check "confidence: every complete task reached 5, has confidence >= $CTHR or a lead above the annotations left" 0 \
    "$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $CONF AND t.state = 'complete'
              AND t.done_count < 5 AND quorum_task_confidence(t.id) < $CTHR
              AND quorum_task_lead(t.id) <= 5 - t.done_count")"
check "confidence: curtailment stopped some tasks at 4 (3-1) below the threshold" true \
    "$(sql "SELECT (count(*) > 0)::text FROM tasks t WHERE t.project_id = $CONF AND t.done_count = 4
              AND quorum_task_confidence(t.id) < $CTHR")"
check "confidence: no annotator was added to a task whose confidence had reached $CTHR" "0 0" \
    "$(sql "SELECT count(*) FILTER (WHERE confidence >= $CTHR) || ' ' || count(*) FILTER (WHERE confidence IS NULL) FROM overlap_extensions WHERE project_id = $CONF")"
# The leading value's margin over the next (a lone value: over nothing).
check "confidence: every task stopped before 5 has a lead the annotations left up to 5 cannot overturn" 0 \
    "$(sql "WITH v AS (SELECT task_id, label, count(*) AS n FROM annotations WHERE project_id = $CONF GROUP BY 1, 2),
              r AS (SELECT task_id, n, row_number() OVER (PARTITION BY task_id ORDER BY n DESC) AS rk FROM v),
              l AS (SELECT task_id, max(n) FILTER (WHERE rk = 1) - coalesce(max(n) FILTER (WHERE rk = 2), 0) AS lead
                      FROM r GROUP BY 1)
             SELECT count(*) FROM tasks t JOIN l ON l.task_id = t.id
              WHERE t.project_id = $CONF AND t.done_count < 5 AND l.lead <= 5 - t.done_count")"

# Majority consensus (a tie counts as wrong) against the truth, per project:
# accuracy, its 95 % interval (normal approximation), and n.
accuracy() {
    sql "WITH v AS (SELECT task_id, label, count(*) AS n FROM annotations WHERE project_id = $1 GROUP BY 1, 2),
          r AS (SELECT task_id, label, rank() OVER (PARTITION BY task_id ORDER BY n DESC) AS rk,
                       count(*) OVER (PARTITION BY task_id, n) AS same FROM v),
          c AS (SELECT task_id, label FROM r WHERE rk = 1 AND same = 1),
          x AS (SELECT avg((c.label IS NOT DISTINCT FROM t.data->>'_true_label')::int)::float8 AS a, count(*) AS n
                  FROM tasks t LEFT JOIN c ON c.task_id = t.id WHERE t.project_id = $1)
         SELECT round(a::numeric, 4) || ' ' || round((1.96 * sqrt(a * (1 - a) / n))::numeric, 4) || ' ' || n FROM x"
}
per_task() { # mean annotations per task and the half-width of its 95 % interval
    sql "SELECT round(avg(done_count)::numeric, 3) || ' ' || round((1.96 * coalesce(stddev_samp(done_count), 0) / sqrt(count(*)))::numeric, 3)
           FROM tasks WHERE project_id = $1"
}
crew() { # the share of single annotations that are right
    sql "SELECT round(avg((a.label = t.data->>'_true_label')::int)::numeric, 3) FROM annotations a
         JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $1"
}
read -r A_CONF H_CONF N_CONF <<<"$(accuracy "$CONF")"
read -r A_F5 H_F5 N_F5 <<<"$(accuracy "$F5")"
read -r A_DYN H_DYN _ <<<"$(accuracy "$DYN")"
read -r PT_CONF PH_CONF <<<"$(per_task "$CONF")"
read -r PT_F5 PH_F5 <<<"$(per_task "$F5")"
read -r PT_DYN PH_DYN <<<"$(per_task "$DYN")"
echo "# binary tasks, crews of 8 at accuracy 0.8, majority consensus against the truth (95 % intervals):"
echo "#   dynamic 2-5, confidence < $CTHR: $N_CONF tasks, $PT_CONF ± $PH_CONF annotations per task, accuracy $A_CONF ± $H_CONF (single annotations right: $(crew "$CONF"))"
echo "#   fixed overlap 5:               $N_F5 tasks, $PT_F5 ± $PH_F5 annotations per task, accuracy $A_F5 ± $H_F5 (single annotations right: $(crew "$F5"))"
echo "#   dynamic 2-5, support < $THR:    $NS tasks, $PT_DYN ± $PH_DYN annotations per task, accuracy $A_DYN ± $H_DYN (single annotations right: $(crew "$DYN"))"
echo "#   confidence, tasks by annotations: $(sql "SELECT string_agg(done_count || ': ' || n, ', ' ORDER BY done_count) FROM (SELECT done_count, count(*) AS n FROM tasks WHERE project_id = $CONF GROUP BY 1) x")"
check "confidence: fewer than 5 annotations a task on average ($PT_CONF)" true \
    "$(python3 -c "print(str($PT_CONF < 5).lower())")"
check "support: fewer than 5 annotations a task on average ($PT_DYN)" true \
    "$(python3 -c "print(str($PT_DYN < 5).lower())")"
MARGIN=$(python3 -c "print(round(3.5 * ((($A_CONF * (1 - $A_CONF)) / $N_CONF + ($A_F5 * (1 - $A_F5)) / $N_F5) ** 0.5), 4))")
check "confidence: consensus accuracy >= fixed overlap 5's less 3.5 sd of the difference ($A_CONF >= $A_F5 - $MARGIN)" true \
    "$(python3 -c "print(str($A_CONF >= $A_F5 - $MARGIN).lower())")"

# --- the report -------------------------------------------------------------------------------
R=$(api GET "/v1/projects/$CONF/report" | cut -d' ' -f2-)
TOTAL=$(sql "SELECT count(*) FROM annotations WHERE project_id = $CONF")
check "report: quality.dynamic_overlap" \
    "{\"tasks_complete\":$N,\"annotations\":$TOTAL,\"saved_vs_max\":$((5 * N - TOTAL)),\"extensions\":$(sql "SELECT count(*) FROM overlap_extensions WHERE project_id = $CONF"),\"measure\":\"confidence\",\"threshold\":$CTHR}" \
    "$(echo "$R" | jq -c '.quality.dynamic_overlap | {tasks_complete, annotations, saved_vs_max, extensions, measure, threshold}')"
check "report: per_task ($PT_CONF)" true \
    "$(python3 -c "print(str(abs($(echo "$R" | jq -r '.quality.dynamic_overlap.per_task') - $PT_CONF) < 0.0006).lower())")"
echo "# report: $(echo "$R" | jq -c .quality.dynamic_overlap)"
check "the support project's report names its measure" "support 0.7" \
    "$(api GET "/v1/projects/$DYN/report" | cut -d' ' -f2- | jq -r '"\(.quality.dynamic_overlap.measure) \(.quality.dynamic_overlap.threshold)"')"
check "a fixed project's report: dynamic_overlap null" null \
    "$(api GET "/v1/projects/$F5/report" | cut -d' ' -f2- | jq -c .quality.dynamic_overlap)"
"$CTL" report --project "$CONF" >"$E2E_DIR/report.txt"
grep '^dynamic overlap' "$E2E_DIR/report.txt" | sed 's/^/# /'
grepq "^dynamic overlap  *$N complete tasks, $TOTAL annotations (" <"$E2E_DIR/report.txt" && pass "quorumctl report prints the line" || fail "report: $(cat "$E2E_DIR/report.txt")"
grepq "$((5 * N - TOTAL)) annotations saved against a fixed maximum (one more while confidence < $CTHR)" <"$E2E_DIR/report.txt" &&
    pass "with the annotations saved and the measure" || fail "report: $(grep dynamic "$E2E_DIR/report.txt")"

# --- the measure itself, on known inputs ----------------------------------------------------------
# Two labels, no gold: q = 0.75 for everyone, so a 3-0 task's confidence
# is 27 / 28 and a 2-0 task's 9 / 10.
check "confidence of the tasks stopped at 3 (3-0, q 0.75): 27/28" "$(python3 -c 'print(round(27 / 28, 6))')" \
    "$(sql "SELECT DISTINCT round(quorum_task_confidence(id)::numeric, 6) FROM tasks WHERE project_id = $CONF AND done_count = 3")"
# Gold: an annotator who answered 2 gold tasks right has q = (2 + 4 * 0.75)
# / (2 + 4) = 5/6; with one without gold (0.75) agreeing on a task:
# 5/6 * 3/4 / (5/6 * 3/4 + 1/6 * 1/4) = 0.9375 (0.9 without the gold).
G=$(new_project '{"name": "gold", "labels": ["yes", "no"], "overlap_min": 2, "overlap_max": 5, "overlap_agreement_threshold": 0.95, "overlap_measure": "confidence", "gold_rate": 0.5}')
printf '%s\n' '{"data": {"n": 1}}' '{"data": {"n": 2}, "gold": "yes"}' '{"data": {"n": 3}, "gold": "no"}' >"$E2E_DIR/gold.jsonl"
"$CTL" import --project "$G" "$E2E_DIR/gold.jsonl" >/dev/null
read -r U1 U2 <<<"$(sql "SELECT string_agg(annotator_id::text, ' ') FROM (SELECT DISTINCT annotator_id FROM annotations WHERE project_id = $CONF ORDER BY 1 LIMIT 2) x")"
GT=$(sql "SELECT id FROM tasks WHERE project_id = $G AND NOT control")
check "the gold project: two control tasks" 2 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $G AND control")"
sql "INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token)
     SELECT id, $G, $U1, gold, 900 + id FROM tasks WHERE project_id = $G AND control;
     INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token)
     VALUES ($GT, $G, $U1, 'yes', 990), ($GT, $G, $U2, 'yes', 991)" >/dev/null
check "confidence with an annotator's gold accuracy smoothed toward the prior" 0.9375 \
    "$(sql "SELECT round(quorum_task_confidence($GT)::numeric, 6)::float8")"
check "K of a schema: choice 2 x rating 1-5 x optional text (1000 + absent)" 10010 \
    "$(sql "SELECT quorum_value_count('{\"fields\": [{\"name\": \"s\", \"type\": \"choice\", \"choices\": [\"a\", \"b\"], \"required\": true},
              {\"name\": \"r\", \"type\": \"rating\", \"min\": 1, \"max\": 5, \"step\": 1, \"required\": true},
              {\"name\": \"n\", \"type\": \"text\", \"required\": false}]}', '[]')")"
check "K is never below 2 (a plain project of one label)" 2 "$(sql "SELECT quorum_value_count(NULL, '[\"a\"]')")"

# --- the database's own guards ------------------------------------------------------------------
T=$(sql "SELECT id FROM tasks WHERE project_id = $DYN AND required = 5 LIMIT 1")
if [ -n "$T" ]; then
    r=$(psql "$E2E_PG" -Atqc "UPDATE tasks SET required = 6, state = 'waiting' WHERE id = $T" 2>&1 || true)
    case "$r" in *"above its project's overlap_max"*) pass "PostgreSQL refuses a required above overlap_max" ;;
    *) fail "UPDATE required = 6: $r" ;; esac
else
    fail "no task reached overlap_max (expected some at accuracy 0.8)"
fi

# --- refusals: POST ---------------------------------------------------------------------------
NPROJ=$(sql "SELECT count(*) FROM projects")
post_refused() { # post_refused DESCRIPTION BODY MESSAGE-PART
    local r
    r=$(api POST /v1/projects "$ADMIN_TOKEN" "$2")
    check "POST $1: 422 invalid" "422 invalid" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"
    case "$(echo "${r#* }" | jq -r .error.message)" in
    *"$3"*) pass "  and says why ($3)" ;; *) fail "  message: $r" ;; esac
}
B='"name": "x", "labels": ["a", "b"]'
post_refused "overlap_min above overlap_max" "{$B, \"overlap_min\": 4, \"overlap_max\": 3, \"overlap_agreement_threshold\": 0.7}" \
    "overlap_min (4) may not exceed overlap_max (3)"
post_refused "overlap_max 101" "{$B, \"overlap_min\": 2, \"overlap_max\": 101, \"overlap_agreement_threshold\": 0.7}" \
    "overlap_max must be an integer from 1 to 100"
post_refused "a threshold of 0" "{$B, \"overlap_min\": 2, \"overlap_max\": 5, \"overlap_agreement_threshold\": 0}" \
    "overlap_agreement_threshold must be a number above 0 and at most 1"
post_refused "a threshold of 1.5" "{$B, \"overlap_min\": 2, \"overlap_max\": 5, \"overlap_agreement_threshold\": 1.5}" \
    "overlap_agreement_threshold must be a number above 0 and at most 1"
post_refused "overlap_min alone" "{$B, \"overlap_min\": 2}" \
    "missing: overlap_max, overlap_agreement_threshold"
post_refused "no threshold" "{$B, \"overlap_min\": 2, \"overlap_max\": 5, \"overlap_agreement_threshold\": null}" \
    "missing: overlap_agreement_threshold"
post_refused "overlap_min 2.5" "{$B, \"overlap_min\": 2.5, \"overlap_max\": 5, \"overlap_agreement_threshold\": 0.7}" \
    "overlap_min must be an integer from 1 to 100"
post_refused "annotations_per_task other than overlap_min" \
    "{$B, \"annotations_per_task\": 3, \"overlap_min\": 2, \"overlap_max\": 5, \"overlap_agreement_threshold\": 0.7}" \
    "annotations_per_task is overlap_min with dynamic overlap"
post_refused "an overlap fraction needing more than overlap_max" \
    "{$B, \"overlap_fraction\": 0.1, \"overlap_annotations\": 6, \"overlap_min\": 2, \"overlap_max\": 5, \"overlap_agreement_threshold\": 0.7}" \
    "overlap_annotations (6) may not pass overlap_max (5)"
post_refused "an unknown measure" "{$B, \"overlap_measure\": \"majority\"}" \
    "overlap_measure must be support (the share"
post_refused "a null measure" "{$B, \"overlap_measure\": null}" "overlap_measure must be support"
post_refused "a prior accuracy of 1" "{$B, \"overlap_prior_accuracy\": 1}" \
    "overlap_prior_accuracy must be a number above 0 and below 1"
post_refused "a prior accuracy of 0" "{$B, \"overlap_prior_accuracy\": 0}" \
    "overlap_prior_accuracy must be a number above 0 and below 1"
post_refused "a prior accuracy as text" "{$B, \"overlap_prior_accuracy\": \"0.8\"}" \
    "overlap_prior_accuracy must be a number above 0 and below 1"
check "POST: nothing made" "$NPROJ" "$(sql "SELECT count(*) FROM projects")"
rc=0
"$CTL" project create --name y --labels a,b --overlap-min 0 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl: --overlap-min 0 is a usage error" 2 "$rc"
grepq "must be an integer from 1 to 100" <"$E2E_DIR/err" && pass "and says why" || fail "stderr: $(cat "$E2E_DIR/err")"
rc=0
"$CTL" project create --name y --labels a,b --overlap-measure votes >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl: --overlap-measure votes is a usage error" 2 "$rc"
grepq "must be support or confidence, not 'votes'" <"$E2E_DIR/err" && pass "and says why" || fail "stderr: $(cat "$E2E_DIR/err")"
rc=0
"$CTL" project create --name y --labels a,b --overlap-prior-accuracy 1 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl: --overlap-prior-accuracy 1 is a usage error" 2 "$rc"
check "quorumctl: nothing made" "$NPROJ" "$(sql "SELECT count(*) FROM projects")"

# --- refusals: PATCH --------------------------------------------------------------------------
snapshot() { sql "SELECT row_to_json(p)::text FROM (SELECT annotations_per_task, overlap_annotations, overlap_min, overlap_max, overlap_agreement_threshold, overlap_measure, overlap_prior_accuracy FROM projects WHERE id = $1) p"; }
patch_refused() { # patch_refused PROJECT DESCRIPTION BODY MESSAGE-PART
    local before r
    before=$(snapshot "$1")
    r=$(api PATCH "/v1/projects/$1" "$ADMIN_TOKEN" "$3")
    check "PATCH $2: 422 invalid" "422 invalid" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"
    case "$(echo "${r#* }" | jq -r .error.message)" in
    *"$4"*) pass "  and says why ($4)" ;; *) fail "  message: $r" ;; esac
    check "  nothing changed" "$before" "$(snapshot "$1")"
}
patch_refused "$DYN" "overlap_max below what a task needs" '{"overlap_max": 4}' \
    "overlap_max 4 is below the 5 annotations a task of project $DYN already needs"
patch_refused "$DYN" "overlap_max 101" '{"overlap_max": 101}' "overlap_max must be an integer from 1 to 100"
patch_refused "$DYN" "overlap_min above overlap_max" '{"overlap_min": 6}' "overlap_min (6) may not exceed overlap_max (5)"
patch_refused "$DYN" "a threshold of 0" '{"overlap_agreement_threshold": 0}' "above 0 and at most 1"
patch_refused "$DYN" "one key cleared, not the others" '{"overlap_min": null}' "missing: overlap_min"
patch_refused "$DYN" "annotations_per_task away from overlap_min" '{"annotations_per_task": 3}' \
    "annotations_per_task is overlap_min (2) with dynamic overlap"
patch_refused "$F3" "one key on a fixed project" '{"overlap_max": 5}' "missing: overlap_min, overlap_agreement_threshold"
patch_refused "$F3" "overlap_min below annotations_per_task" \
    '{"overlap_min": 2, "overlap_max": 5, "overlap_agreement_threshold": 0.7}' \
    "which can only rise: it is 3, so overlap_min 2 is refused"
patch_refused "$F5" "dynamic overlap whose max is below the project's 5" \
    '{"overlap_min": 5, "overlap_max": 4, "overlap_agreement_threshold": 0.7}' "overlap_min (5) may not exceed overlap_max (4)"
patch_refused "$DYN" "an unknown measure" '{"overlap_measure": "votes"}' "overlap_measure must be support"
patch_refused "$DYN" "a prior accuracy of 1" '{"overlap_prior_accuracy": 1}' "above 0 and below 1"
patch_refused "$DYN" "a prior accuracy of null" '{"overlap_prior_accuracy": null}' "above 0 and below 1"
rc=0
"$CTL" project update "$DYN" --overlap-agreement-threshold 2 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl project update --overlap-agreement-threshold 2: usage error" 2 "$rc"

# --- accepted changes ---------------------------------------------------------------------------
r=$(api PATCH "/v1/projects/$F3" "$ADMIN_TOKEN" '{"overlap_min": 3, "overlap_max": 6, "overlap_agreement_threshold": 0.8}')
check "PATCH turns dynamic overlap on (min = annotations_per_task)" "200 3 3 6 0.8" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.annotations_per_task) \(.overlap_min) \(.overlap_max) \(.overlap_agreement_threshold)"')"
"$CTL" project update "$F3" --overlap-max 7 >/dev/null
check "quorumctl project update --overlap-max raises it" 7 "$(sql "SELECT overlap_max FROM projects WHERE id = $F3")"
"$CTL" project update "$F3" --overlap-min off --overlap-max off --overlap-agreement-threshold off >/dev/null
check "off on all three: fixed overlap again, annotations_per_task kept" "3 null" \
    "$(api GET "/v1/projects/$F3" | cut -d' ' -f2- | jq -r '"\(.annotations_per_task) \(.overlap_max)"')"
r=$(api PATCH "/v1/projects/$DYN" "$ADMIN_TOKEN" '{"overlap_measure": "confidence", "overlap_prior_accuracy": 0.8}')
check "PATCH overlap_measure and overlap_prior_accuracy" "200 confidence 0.8" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.overlap_measure) \(.overlap_prior_accuracy)"')"
"$CTL" project update "$DYN" --overlap-measure support --overlap-prior-accuracy 0.7 >/dev/null
check "quorumctl project update --overlap-measure --overlap-prior-accuracy" "support 0.7" \
    "$(sql "SELECT overlap_measure || ' ' || overlap_prior_accuracy FROM projects WHERE id = $DYN")"
r=$(api PATCH "/v1/projects/$DYN" "$ADMIN_TOKEN" '{"overlap_min": 3}')
check "PATCH overlap_min 3: annotations_per_task follows" "200 3 3" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.annotations_per_task) \(.overlap_min)"')"
check "the other broker sees the change" "3 5" \
    "$(API_URL=$URL2 api GET "/v1/projects/$DYN" | cut -d' ' -f2- | jq -r '"\(.overlap_min) \(.overlap_max)"')"

finish
