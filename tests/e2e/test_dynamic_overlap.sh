#!/usr/bin/env bash
# Dynamic overlap (issue 16, point 3): a project with overlap_min 2,
# overlap_max 5 and overlap_agreement_threshold 0.7 gives each task two
# annotators, then one more at a time while the share of its annotations
# that agree on its most common label is below 0.7, never more than five.
# A crew of 8 simulated annotators at accuracy 0.8 labels N binary tasks
# with a known truth (QR_DYNAMIC_TASKS, default 3000) through two brokers
# sharing one PostgreSQL and Redis; the same crew settings label the same
# tasks in a project of fixed overlap 3, and the first N/2 of them in one
# of fixed overlap 5 (its figures are printed, not compared).
# Checked in PostgreSQL: no task over five annotations, each complete task
# at five or agreed at the threshold, fewer than five annotations a task
# on average, and a majority consensus at least as accurate as fixed
# overlap 3's. Then the report's figures and every refusal of bad settings
# (POST and PATCH: status, error, nothing changed).
. "$(dirname "$0")/lib.sh"

# 3000 tasks: the expected accuracies (0.927 dynamic, 0.896 fixed 3) are
# then 4.2 standard deviations of their difference apart, so the comparison
# does not fail by chance (1000 tasks: once in 130 runs). A simulated
# annotator's correctness is a hash of (seed, task id, annotator), so each
# crew's realized accuracy differs a little from 0.8: it is printed too.
N=${QR_DYNAMIC_TASKS:-3000}
N5=$((N / 2))
THR=0.7
start_broker
start_second_broker
CTL="$QR_BIN_DIR/quorumctl"

# --- three projects, the same tasks -------------------------------------------------------
DYN=$("$CTL" project create --name dynamic --labels yes,no --overlap-min 2 --overlap-max 5 \
    --overlap-agreement-threshold "$THR")
F5=$(new_project '{"name": "fixed5", "labels": ["yes", "no"], "annotations_per_task": 5}')
F3=$(new_project '{"name": "fixed3", "labels": ["yes", "no"], "annotations_per_task": 3}')
check "the dynamic project shows its settings; annotations_per_task is overlap_min" "2 2 5 0.7" \
    "$(api GET "/v1/projects/$DYN" | cut -d' ' -f2- |
        jq -r '"\(.annotations_per_task) \(.overlap_min) \(.overlap_max) \(.overlap_agreement_threshold)"')"
check "a fixed project shows none" "null null null" \
    "$(api GET "/v1/projects/$F5" | cut -d' ' -f2- |
        jq -r '"\(.overlap_min) \(.overlap_max) \(.overlap_agreement_threshold)"')"
check "project show says it" "dynamic_overlap: 2 to 5 annotations, one more while support < 0.7" \
    "$("$CTL" project show "$DYN" | grep '^dynamic_overlap')"
check "and off for a fixed one" "dynamic_overlap: off" "$("$CTL" project show "$F5" | grep '^dynamic_overlap')"

python3 - "$N" >"$E2E_DIR/tasks.jsonl" <<'PY'
import json, random, sys
r = random.Random(16)
for i in range(int(sys.argv[1])):
    print(json.dumps({"data": {"n": i, "_true_label": r.choice(["yes", "no"])}}))
PY
head -n "$N5" "$E2E_DIR/tasks.jsonl" >"$E2E_DIR/tasks5.jsonl"
for p in "$DYN" "$F3"; do "$CTL" import --project "$p" "$E2E_DIR/tasks.jsonl" >/dev/null; done
"$CTL" import --project "$F5" "$E2E_DIR/tasks5.jsonl" >/dev/null
check "dynamic: every task imported needing overlap_min" "$N 2" \
    "$(sql "SELECT count(*) || ' ' || max(required) FROM tasks WHERE project_id = $DYN")"

# --- the crews --------------------------------------------------------------------------------
# Each project gets a crew of 8 at accuracy 0.8, all at once; the dynamic
# one's annotators are spread over both brokers, submitting in batches of
# up to 4 so that one group commit may carry several rows of a task.
simulate() { # simulate PROJECT SEED URLS [FLAGS...]
    local p=$1 seed=$2 urls=$3
    shift 3
    timeout 480 "$QR_BIN_DIR/quorum-agent" simulate --project "$p" --annotators 8 --accuracy 0.8 \
        --think-ms 0-2 --seed "$seed" --urls "$urls" --token "$ADMIN_TOKEN" --ca "$CA" "$@" >"$E2E_DIR/sim$p.log" 2>&1
}
simulate "$DYN" 11 "$URL,$URL2" --prefetch 4 --batch &
S1=$!
simulate "$F5" 12 "$URL" &
S2=$!
simulate "$F3" 13 "$URL2" &
S3=$!
for s in $S1 $S2 $S3; do
    wait "$s" || { tail -n 5 "$E2E_DIR"/sim*.log; fail "a crew did not finish (simulate $s)"; }
done
for p in "$DYN" "$F5" "$F3"; do
    check "project $p: every task complete" "$(sql "SELECT count(*) FROM tasks WHERE project_id = $p")" \
        "$(sql "SELECT count(*) FROM tasks WHERE project_id = $p AND state = 'complete'")"
done

# --- what PostgreSQL holds --------------------------------------------------------------------
check "never a task with more than 5 annotations (nor required above 5)" "0 0" \
    "$(sql "SELECT (SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $DYN GROUP BY task_id HAVING count(*) > 5) x) || ' ' ||
               (SELECT count(*) FROM tasks WHERE project_id = $DYN AND required > 5)")"
check "each task's done_count is its annotations" 0 \
    "$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $DYN AND t.done_count <> (SELECT count(*) FROM annotations a WHERE a.task_id = t.id)")"
check "every complete task reached 5 or has support >= $THR" 0 \
    "$(sql "SELECT count(*) FROM tasks t WHERE t.project_id = $DYN AND t.state = 'complete'
              AND t.done_count < 5 AND quorum_task_support(t.id) < $THR")"
check "no annotator was added to a task whose support had reached $THR" 0 \
    "$(sql "SELECT count(*) FROM overlap_extensions WHERE project_id = $DYN AND support >= $THR")"
check "one extension recorded per annotator added" \
    "$(sql "SELECT sum(required - 2) FROM tasks WHERE project_id = $DYN")" \
    "$(sql "SELECT count(*) FROM overlap_extensions WHERE project_id = $DYN")"
check "no annotator on a task twice, no lease submitted twice" "0 0" \
    "$(sql "SELECT (SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $DYN GROUP BY task_id, annotator_id HAVING count(*) > 1) x) || ' ' ||
               (SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $DYN GROUP BY fencing_token HAVING count(*) > 1) y)")"

# Majority consensus (a tie counts as wrong) against the truth, per project.
accuracy() {
    sql "WITH v AS (SELECT task_id, label, count(*) AS n FROM annotations WHERE project_id = $1 GROUP BY 1, 2),
          r AS (SELECT task_id, label, rank() OVER (PARTITION BY task_id ORDER BY n DESC) AS rk,
                       count(*) OVER (PARTITION BY task_id, n) AS same FROM v),
          c AS (SELECT task_id, label FROM r WHERE rk = 1 AND same = 1)
         SELECT round(avg((c.label IS NOT DISTINCT FROM t.data->>'_true_label')::int)::numeric, 4)
           FROM tasks t LEFT JOIN c ON c.task_id = t.id WHERE t.project_id = $1"
}
per_task() { sql "SELECT round(avg(done_count)::numeric, 3) FROM tasks WHERE project_id = $1"; }
crew() { # the share of single annotations that are right
    sql "SELECT round(avg((a.label = t.data->>'_true_label')::int)::numeric, 3) FROM annotations a
         JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $1"
}
A_DYN=$(accuracy "$DYN")
A_F5=$(accuracy "$F5")
A_F3=$(accuracy "$F3")
PT_DYN=$(per_task "$DYN")
echo "# binary tasks, crews of 8 at accuracy 0.8, majority consensus against the truth:"
echo "#   dynamic overlap 2-5 (threshold $THR): $N tasks, $PT_DYN annotations per task, accuracy $A_DYN (single annotations right: $(crew "$DYN"))"
echo "#   fixed overlap 5:                      $N5 tasks, $(per_task "$F5") annotations per task, accuracy $A_F5 (single annotations right: $(crew "$F5"))"
echo "#   fixed overlap 3:                      $N tasks, $(per_task "$F3") annotations per task, accuracy $A_F3 (single annotations right: $(crew "$F3"))"
check "dynamic overlap: fewer than 5 annotations a task on average" true \
    "$(python3 -c "print(str($PT_DYN < 5).lower())")"
check "dynamic overlap: consensus accuracy >= fixed overlap 3's ($A_DYN >= $A_F3)" true \
    "$(python3 -c "print(str($A_DYN >= $A_F3).lower())")"

# --- the report -------------------------------------------------------------------------------
R=$(api GET "/v1/projects/$DYN/report" | cut -d' ' -f2-)
TOTAL=$(sql "SELECT count(*) FROM annotations WHERE project_id = $DYN")
check "report: quality.dynamic_overlap" \
    "{\"tasks_complete\":$N,\"annotations\":$TOTAL,\"saved_vs_max\":$((5 * N - TOTAL)),\"extensions\":$(sql "SELECT count(*) FROM overlap_extensions WHERE project_id = $DYN")}" \
    "$(echo "$R" | jq -c '.quality.dynamic_overlap | {tasks_complete, annotations, saved_vs_max, extensions}')"
check "report: per_task ($PT_DYN)" true \
    "$(python3 -c "print(str(abs($(echo "$R" | jq -r '.quality.dynamic_overlap.per_task') - $PT_DYN) < 0.0006).lower())")"
echo "# report: $(echo "$R" | jq -c .quality.dynamic_overlap)"
check "a fixed project's report: dynamic_overlap null" null \
    "$(api GET "/v1/projects/$F5/report" | cut -d' ' -f2- | jq -c .quality.dynamic_overlap)"
"$CTL" report --project "$DYN" >"$E2E_DIR/report.txt"
grep '^dynamic overlap' "$E2E_DIR/report.txt" | sed 's/^/# /'
grepq "^dynamic overlap  *$N complete tasks, $TOTAL annotations (" <"$E2E_DIR/report.txt" && pass "quorumctl report prints the line" || fail "report: $(cat "$E2E_DIR/report.txt")"
grepq "$((5 * N - TOTAL)) annotations saved against a fixed maximum" <"$E2E_DIR/report.txt" &&
    pass "with the annotations saved" || fail "report: $(grep dynamic "$E2E_DIR/report.txt")"

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
check "POST: nothing made" "$NPROJ" "$(sql "SELECT count(*) FROM projects")"
rc=0
"$CTL" project create --name y --labels a,b --overlap-min 0 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl: --overlap-min 0 is a usage error" 2 "$rc"
grepq "must be an integer from 1 to 100" <"$E2E_DIR/err" && pass "and says why" || fail "stderr: $(cat "$E2E_DIR/err")"

# --- refusals: PATCH --------------------------------------------------------------------------
snapshot() { sql "SELECT row_to_json(p)::text FROM (SELECT annotations_per_task, overlap_annotations, overlap_min, overlap_max, overlap_agreement_threshold FROM projects WHERE id = $1) p"; }
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
r=$(api PATCH "/v1/projects/$DYN" "$ADMIN_TOKEN" '{"overlap_min": 3}')
check "PATCH overlap_min 3: annotations_per_task follows" "200 3 3" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.annotations_per_task) \(.overlap_min)"')"
check "the other broker sees the change" "3 5" \
    "$(API_URL=$URL2 api GET "/v1/projects/$DYN" | cut -d' ' -f2- | jq -r '"\(.overlap_min) \(.overlap_max)"')"

finish
