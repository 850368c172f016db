#!/usr/bin/env bash
# Review selection by the crew model's doubt (issue 16, point 7): a project
# with review_mode none is labeled, 3 annotations a task, by five
# annotators of known accuracy (0.95, 0.9, 0.7, 0.55, 0.55) and a manager
# who labels a few tasks by the truth; POST .../reviews/select with
# method dawid_skene then records a review item for exactly the complete
# tasks whose Dawid-Skene support, as the consensus export (method=
# dawid_skene) shows it, is below the threshold, least sure first, up to a
# limit. The selected tasks' consensus is wrong far more often than the
# others' (both rates printed). A reviewer already waiting on a long poll
# gets one; a reviewer crew (two reviewers and the manager) leases and
# decides every selected item by the truth: no reviewer on their own work,
# no item twice (SQL); the export's answer is the reviewer's. A second
# selection selects nothing; every refusal records nothing; the majority
# method selects by the majority's share.
. "$(dirname "$0")/lib.sh"

N=${QR_REVIEW_SELECT_TASKS:-300}
BELOW=${QR_REVIEW_SELECT_BELOW:-0.9}
start_broker
CTL="$QR_BIN_DIR/quorumctl"
AGENT="$QR_BIN_DIR/quorum-agent"

P=$("$CTL" project create --name rsel --labels a,b,c,d --annotations-per-task 3)
check "the project reviews nothing by itself" none \
    "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -r .review_mode)"
token_of() { # NAME ROLE -> a token of a new user
    api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"$1\",\"role\":\"$2\"}" | cut -d' ' -f2- | jq -r .token
}
R1=$(token_of rev1 reviewer)
R2=$(token_of rev2 reviewer)
M1=$(token_of man1 manager)
ANN=$(token_of ann1 annotator)

python3 - "$N" "$E2E_DIR/tasks.jsonl" <<'PY'
import json, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
r = random.Random(23)
with open(out, "w") as f:
    for i in range(n):
        f.write(json.dumps({"n": i, "_true_label": r.choice("abcd")}) + "\n")
PY
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null

# --- the crew ----------------------------------------------------------------------------------
# The manager labels 10 tasks by the truth, so a reviewer of the crew below
# has work of their own that must never come back to them.
r=$(api POST "/v1/projects/$P/leases" "$M1" '{"max": 10}')
echo "${r#* }" | jq -c '.leases[] | {lease, t: .data._true_label}' | while read -r l; do
    api POST "/v1/projects/$P/leases/$(echo "$l" | jq -r .lease)/submit" "$M1" \
        "{\"label\": \"$(echo "$l" | jq -r .t)\"}" >/dev/null
done
check "the manager labeled 10 tasks" 10 \
    "$(sql "SELECT count(*) FROM annotations a JOIN users u ON u.id = a.annotator_id WHERE u.name = 'man1'")"
# Five crews of one side by side, each at its accuracy; the project
# completes when every task holds 3 annotations.
seed=1
pids=()
for acc in 0.95 0.9 0.7 0.55 0.55; do
    timeout 300 "$AGENT" simulate --project "$P" --annotators 1 --accuracy "$acc" \
        --think-ms 0-1 --seed "$seed" --duration 200 >"$E2E_DIR/sim$seed.log" 2>&1 &
    pids+=($!)
    seed=$((seed + 1))
done
for _ in $(seq 1 2000); do
    [ "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND state = 'complete'")" = "$N" ] && break
    sleep 0.1
done
kill "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
check "every task complete with 3 annotations, from 6 annotators" "$N $((3 * N)) 6" \
    "$(sql "SELECT (SELECT count(*) FROM tasks WHERE project_id = $P AND state = 'complete') || ' ' || count(*) || ' ' || count(DISTINCT annotator_id) FROM annotations WHERE project_id = $P")"
check "nothing selected for review yet" 0 "$(sql "SELECT count(*) FROM reviews")"

# --- refusals: each changes nothing ------------------------------------------------------------
rows() { sql "SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, ',' ORDER BY id), '')) FROM reviews r"; }
refused() { # STATUS BODY [TOKEN] [PROJECT]
    local r
    r=$(api POST "/v1/projects/${4:-$P}/reviews/select" "${3-$ADMIN_TOKEN}" "$2")
    check "select $2: $1" "$1" "${r%% *}"
    [ "$1" != 422 ] || [ "$(echo "${r#* }" | jq -r '.error.message | length > 20')" = true ] ||
        fail "no clear message: $r"
}
before=$(rows)
refused 400 'not json'
refused 400 '[1]'
refused 422 '{}'
refused 422 '{"support_below": 0.8}'
refused 422 '{"method": "em", "support_below": 0.8}'
refused 422 '{"method": "dawid_skene"}'
refused 422 '{"method": "dawid_skene", "support_below": 1.5}'
refused 422 '{"method": "dawid_skene", "support_below": -0.1}'
refused 422 '{"method": "dawid_skene", "support_below": "0.8"}'
refused 422 '{"method": "dawid_skene", "support_below": 0.8, "limit": 0}'
refused 422 '{"method": "dawid_skene", "support_below": 0.8, "limit": 2.5}'
refused 422 '{"method": "dawid_skene", "support_below": 0.8, "extra": 1}'
refused 403 '{"method": "dawid_skene", "support_below": 0.8}' "$R1"
refused 403 '{"method": "dawid_skene", "support_below": 0.8}' "$ANN"
refused 401 '{"method": "dawid_skene", "support_below": 0.8}' ""
S=$(new_project '{"name": "s", "schema": {"fields": [{"name": "x", "type": "text"}]}}')
refused 422 '{"method": "dawid_skene", "support_below": 0.8}' "$ADMIN_TOKEN" "$S"
A=$(new_project '{"name": "arch", "labels": ["a", "b"]}')
api POST "/v1/projects/$A/archive" >/dev/null
refused 409 '{"method": "majority", "support_below": 0.8}' "$ADMIN_TOKEN" "$A"
check "no refusal recorded anything" "$before" "$(rows)"
r=$(api POST "/v1/projects/$P/reviews/select" "$ADMIN_TOKEN" '{"method": "em", "support_below": 0.8}')
grepq "majority" <<<"$r" && grepq "dawid_skene" <<<"$r" && pass "an unknown method's error names both" ||
    fail "message: $r"
rc=0
"$CTL" review-select "$P" --method em --below 0.8 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl review-select --method em: usage error" 2 "$rc"
rc=0
"$CTL" review-select "$P" --below 2 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl review-select --below 2: usage error" 2 "$rc"
check "still nothing recorded" "$before" "$(rows)"

# --- what the export says the model is unsure of -----------------------------------------------
curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$URL/v1/projects/$P/export?kind=consensus&format=jsonl&method=dawid_skene" >"$E2E_DIR/ds.jsonl"
check "the export has every task" "$N" "$(wc -l <"$E2E_DIR/ds.jsonl")"
jq -r --argjson b "$BELOW" 'select(.support < $b) | "\(.support) \(.task_id)"' "$E2E_DIR/ds.jsonl" |
    sort -k1,1g -k2,2n >"$E2E_DIR/low.txt"
NLOW=$(wc -l <"$E2E_DIR/low.txt")
echo "# $NLOW of $N tasks have a Dawid-Skene support below $BELOW in the export"
[ "$NLOW" -ge 15 ] && [ "$NLOW" -lt "$N" ] && pass "some tasks, not all, are unsure" || fail "$NLOW unsure tasks"

# A reviewer already waiting on a long poll is handed an item as soon as
# one is selected (review items are rows of PostgreSQL; the grant polls it).
api POST "/v1/projects/$P/reviews/leases" "$R2" '{"max": 1, "wait_ms": 20000}' >"$E2E_DIR/waiter" &
WAITER=$!
sleep 0.5

# The 5 least sure first (a limit), then the rest.
r=$(api POST "/v1/projects/$P/reviews/select" "$M1" "{\"method\": \"dawid_skene\", \"support_below\": $BELOW, \"limit\": 5}")
check "a manager selects the 5 least sure" "200 dawid_skene $BELOW $N 5 0" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.method) \(.support_below) \(.considered) \(.selected) \(.already_selected)"')"
check "they are the 5 of lowest support in the export" "$(head -5 "$E2E_DIR/low.txt" | awk '{print $2}' | sort -n | tr '\n' ' ')" \
    "$(sql "SELECT string_agg(task_id::text, ' ' ORDER BY task_id) || ' ' FROM reviews WHERE project_id = $P")"
wait "$WAITER"
check "the waiting reviewer got one of them" "200 1" \
    "$(cut -d' ' -f1 "$E2E_DIR/waiter") $(cut -d' ' -f2- "$E2E_DIR/waiter" | jq '.leases | length')"
WL=$(cut -d' ' -f2- "$E2E_DIR/waiter" | jq -r '.leases[0].lease')
api POST "/v1/projects/$P/reviews/leases/$WL/release" "$R2" '{}' >/dev/null

QUORUM_TOKEN=$M1 "$CTL" review-select "$P" --method dawid_skene --below "$BELOW" --json >"$E2E_DIR/sel.json"
check "quorumctl review-select: the rest, 5 selected before" "$N $((NLOW - 5)) 5" \
    "$(jq -r '"\(.considered) \(.selected) \(.already_selected)"' "$E2E_DIR/sel.json")"
check "the items are exactly the tasks the export shows below $BELOW" "$(awk '{print $2}' "$E2E_DIR/low.txt" | sort -n)" \
    "$(sql "SELECT task_id FROM reviews WHERE project_id = $P ORDER BY task_id")"
check "pending, by dawid_skene, with the export's support" "$NLOW $NLOW $NLOW" \
    "$(sql "SELECT count(*) FILTER (WHERE state = 'pending') || ' ' || count(*) FILTER (WHERE selected_by = 'dawid_skene') || ' ' || count(*) FILTER (WHERE support < $BELOW) FROM reviews WHERE project_id = $P")"
check "with the support the export shows, task by task" "$(sort -k2,2n "$E2E_DIR/low.txt" | awk '{printf "%d %.4f\n", $2, $1}')" \
    "$(sql "SELECT task_id || ' ' || to_char(support, 'FM0.0000') FROM reviews WHERE project_id = $P ORDER BY task_id")"
out=$("$CTL" review-select "$P" --method dawid_skene --below "$BELOW")
check "run again: nothing new (its text)" "selected 0 of $N complete task(s) with dawid_skene support below $BELOW ($NLOW selected before)" "$out"

# The model's doubt finds its mistakes: the selected tasks' consensus is
# wrong against the truth far more often than the others'.
jq -r '"\(.task_id) \(if .consensus == .data._true_label then 1 else 0 end)"' "$E2E_DIR/ds.jsonl" |
    sort -n >"$E2E_DIR/right.txt"
read -r SEL_WRONG SEL_N UNSEL_WRONG UNSEL_N < <(awk 'NR == FNR { low[$2] = 1; next }
    { if ($1 in low) { sn++; sw += 1 - $2 } else { un++; uw += 1 - $2 } }
    END { print sw + 0, sn + 0, uw + 0, un + 0 }' "$E2E_DIR/low.txt" "$E2E_DIR/right.txt")
SEL_RATE=$(python3 -c "print(round($SEL_WRONG / $SEL_N, 4))")
UNSEL_RATE=$(python3 -c "print(round($UNSEL_WRONG / $UNSEL_N, 4))")
echo "# Dawid-Skene consensus wrong: selected $SEL_WRONG of $SEL_N ($SEL_RATE), unselected $UNSEL_WRONG of $UNSEL_N ($UNSEL_RATE)"
check "the selected tasks are wrong at 3 times the rate of the others, and by 0.1 more" true \
    "$(python3 -c "print(str($SEL_RATE >= 3 * $UNSEL_RATE and $SEL_RATE >= $UNSEL_RATE + 0.1).lower())")"

# --- the reviewer crew -------------------------------------------------------------------------
# It decides by the truth (tests/e2e/review_crew.py).
timeout 300 python3 "$QR_SOURCE_DIR/tests/e2e/review_crew.py" "$URL" "$CA" "$P" "$E2E_DIR/decisions.log" \
    "rev1=$R1" "rev2=$R2" "man1=$M1" && pass "the reviewer crew ran without a refusal" ||
    fail "the reviewer crew"
check "every selected item decided, once, by the crew's log" "$NLOW $NLOW" \
    "$(wc -l <"$E2E_DIR/decisions.log") $(cut -d' ' -f1 "$E2E_DIR/decisions.log" | sort -u | wc -l)"
check "in PostgreSQL: every item done" "$NLOW $NLOW" \
    "$(sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'done') FROM reviews WHERE project_id = $P")"
check "no reviewer decided a task they annotated" 0 \
    "$(sql "SELECT count(*) FROM reviews r JOIN annotations a ON a.task_id = r.task_id AND a.annotator_id = r.reviewer_id")"
check "no task reviewed twice (one row per task, nobody in past_reviewers)" "$NLOW 0" \
    "$(sql "SELECT count(DISTINCT task_id) || ' ' || count(*) FILTER (WHERE cardinality(past_reviewers) > 0) FROM reviews WHERE project_id = $P")"
echo "# decisions: $(cut -d' ' -f3 "$E2E_DIR/decisions.log" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
grepq "man1" <"$E2E_DIR/decisions.log" && pass "the manager reviewed too (on others' work)" ||
    echo "# the manager reviewed nothing this run"
curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$URL/v1/projects/$P/export?kind=consensus&format=jsonl&method=dawid_skene" >"$E2E_DIR/after.jsonl"
check "the export's answer is the reviewer's for every reviewed task" \
    "$(awk '{print $1 " " $4}' "$E2E_DIR/decisions.log" | sort -n)" \
    "$(jq -r 'select(.reviewed) | "\(.task_id) \(.consensus)"' "$E2E_DIR/after.jsonl" | sort -n)"
check "and the truth" 0 "$(jq -r 'select(.reviewed and .consensus != .data._true_label)' "$E2E_DIR/after.jsonl" | wc -l)"
check "every annotation still there" "$((3 * N))" "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"

r=$(api POST "/v1/projects/$P/reviews/select" "$ADMIN_TOKEN" "{\"method\": \"dawid_skene\", \"support_below\": $BELOW}")
check "a second selection after the review selects nothing" "200 0 $NLOW" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.selected) \(.already_selected)"')"

# --- by the majority -----------------------------------------------------------------------------
# The majority's share of each task's annotations, from the annotations alone.
MAJ="SELECT task_id FROM (SELECT task_id, max(n)::float8 / sum(n) AS s
       FROM (SELECT task_id, label, count(*) AS n FROM annotations WHERE project_id = $P GROUP BY 1, 2) v
      GROUP BY task_id) x WHERE s < 0.67"
NMAJ=$(sql "SELECT count(*) FROM ($MAJ) m")
OLD=$(sql "SELECT count(*) FROM reviews WHERE task_id IN ($MAJ)")
echo "# $NMAJ tasks have a majority share below 0.67, $OLD of them reviewed already"
r=$(api POST "/v1/projects/$P/reviews/select" "$ADMIN_TOKEN" '{"method": "majority", "support_below": 0.67}')
check "majority below 0.67: the others are selected" "200 $N $((NMAJ - OLD)) $OLD" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.considered) \(.selected) \(.already_selected)"')"
check "exactly those, by majority, pending" "$((NMAJ - OLD)) $((NMAJ - OLD))" \
    "$(sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE task_id IN ($MAJ) AND state = 'pending') FROM reviews WHERE selected_by = 'majority'")"

finish
