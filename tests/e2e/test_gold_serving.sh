#!/usr/bin/env bash
# Gold (control) tasks served at a rate, and annotators paused below a gold
# accuracy (issue 16, point 1). A project with 40 gold tasks and 400 normal
# ones (overlap 2) serves gold to each annotator's first 5 leases, then to a
# share 0.3 of them, and pauses an annotator whose gold accuracy is below
# 0.7 after at least 30 gold answers. Four crews of one, at accuracies 0.95,
# 0.9, 0.8 and 0.6, work through two brokers sharing one PostgreSQL and
# Redis. Checked: each annotator's gold accuracy interval (the report's)
# contains the accuracy it was simulated at; the 0.6 annotator is paused
# (and only it) and gets 403 annotator_paused from both brokers; gold
# tasks never complete, never fill a normal task's overlap, are never seen
# twice by one annotator, and stay out of the throughput and progress
# figures; reinstating works, and is refused to an annotator, a reviewer
# and another organization.
#
# The simulated annotators' choices are a hash of (seed, task id, annotator)
# (quorum-agent simulate --seed), and every annotator who is not paused sees
# all 40 gold tasks, so who is paused does not depend on timing: with these
# seeds the 0.8 annotator errs on few enough gold tasks that no order of
# them takes its running accuracy below 0.7 after 30, and the 0.6 one on
# enough that it is below 0.7 over all 40 at the latest.
. "$(dirname "$0")/lib.sh"

start_broker
start_second_broker || exit 1
CTL="$QR_BIN_DIR/quorumctl"

# --- bad settings: refused, nothing changes --------------------------------------------------
for body in '"gold_rate": 1.5' '"gold_rate": "a"' '"gold_onboarding": -1' '"gold_onboarding": 0.5' \
    '"gold_rate": 0.1, "gold_min_accuracy": 2' '"gold_rate": 0.1, "gold_min_count": 0' \
    '"gold_min_accuracy": 0.7'; do
    r=$(api POST /v1/projects "$ADMIN_TOKEN" "{\"name\": \"x\", \"labels\": [\"a\"], $body}")
    check "create with $body: 422 invalid" "422 invalid" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"
done
case "$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "x", "labels": ["a"], "gold_min_accuracy": 0.7}')" in
*"needs gold tasks served"*) pass "a minimum accuracy without gold served: it says why" ;; *) fail "message" ;; esac
check "nothing made" 0 "$(sql "SELECT count(*) FROM projects")"
rc=0
"$CTL" project create --name y --labels a --gold-rate 2 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl: --gold-rate 2 is a usage error" 2 "$rc"
grepq "must be a share from 0 to 1" <"$E2E_DIR/err" && pass "and says why" || fail "stderr: $(cat "$E2E_DIR/err")"
rc=0
"$CTL" project create --name y --labels a --gold-min-accuracy 0.5 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl: a minimum accuracy without gold served is refused by the broker" 1 "$rc"
Q=$("$CTL" project create --name ctl --labels a,b --gold-rate 0.1 --gold-onboarding 3 --gold-min-accuracy 0.8 --gold-min-count 12)
check "quorumctl project show: the gold settings" "gold_rate: 0.1 gold_onboarding: 3 gold_min_accuracy: 0.8 gold_min_count: 12" \
    "$("$CTL" project show "$Q" | grep '^gold_' | tr '\n' ' ' | sed 's/ $//')"
"$CTL" project update "$Q" --gold-min-accuracy off --gold-rate 0 --gold-onboarding 0 >/dev/null
check "quorumctl project update: gold off" "gold served: off gold_min_accuracy: off" \
    "$("$CTL" project show "$Q" | grep '^gold' | tr '\n' ' ' | sed 's/ $//')"

P=$(new_project '{"name": "gold", "labels": ["a", "b", "c", "d"], "annotations_per_task": 2,
    "gold_rate": 0.3, "gold_onboarding": 5, "gold_min_accuracy": 0.7, "gold_min_count": 30}')
check "the project shows its gold settings" "0.3 5 0.7 30" \
    "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -r '"\(.gold_rate) \(.gold_onboarding) \(.gold_min_accuracy) \(.gold_min_count)"')"
for body in '{"gold_rate": 0, "gold_onboarding": 0}' '{"gold_min_count": 100001}' '{"gold_rate": -0.1}'; do
    r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" "$body")
    check "update $body: 422" 422 "${r%% *}"
done
check "unchanged" "0.3 5 0.7 30" \
    "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -r '"\(.gold_rate) \(.gold_onboarding) \(.gold_min_accuracy) \(.gold_min_count)"')"

# --- tasks: 40 with a gold answer, 400 without ------------------------------------------------
python3 - "$E2E_DIR/tasks.jsonl" <<'PY'
import json, random, sys
r = random.Random(16)
with open(sys.argv[1], "w") as f:
    for i in range(40):
        t = r.choice("abcd")
        f.write(json.dumps({"data": {"n": i, "_true_label": t}, "gold": t}) + "\n")
    for i in range(400):
        f.write(json.dumps({"data": {"n": 100 + i, "_true_label": r.choice("abcd")}}) + "\n")
PY
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
check "the 40 gold tasks are control tasks, never to complete" "40 40" \
    "$(sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE required = 1000000 AND state = 'waiting') FROM tasks WHERE project_id = $P AND control")"
check "progress counts the 400 others only" "400 800" \
    "$(api GET "/v1/projects/$P/progress" | cut -d' ' -f2- | jq -r '"\(.tasks) \(.annotations_remaining)"')"

# --- four crews of one through two brokers -------------------------------------------------------
# Seeds: quorum-agent simulate answers task T right when a hash of (seed, T,
# annotator 1) falls below its accuracy (worker-agent/sim_crew.c, decide and
# choose_label); computed here over the gold tasks' ids, the first seed for
# each accuracy (each from its own range, so no two crews share a seed and
# their errors) whose answers on the 40 gold tasks are a typical sample
# (its 95 % interval contains the accuracy) and settle the pause whatever
# the order they are served in: at most 9 wrong (never below 0.7 after 30)
# for 0.95, 0.9 and 0.8; for 0.6, 13 wrong or more (below 0.7 over all 40
# at the latest), and 20 to 27 right.
SEEDS=$(python3 - "$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM tasks WHERE project_id = $P AND control")" <<'PY'
import math, sys
ids = [int(x) for x in sys.argv[1].split(",")]
M = (1 << 64) - 1
def mix(x):
    x = (x + 0x9e3779b97f4a7c15) & M
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M
    return x ^ (x >> 31)
def right(seed, acc):
    return sum(((mix(seed ^ mix(t) ^ mix((1 << 8) | 1)) >> 11) / 9007199254740992.0) < acc for t in ids)
def wilson(k, n, z=1.959963984540054):
    p = k / n; d = 1 + z * z / n; c = p + z * z / (2 * n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (c - h) / d, (c + h) / d
out = []
for n, acc in enumerate((0.95, 0.9, 0.8, 0.6)):
    for seed in range(1000 * (n + 1), 1000 * (n + 1) + 100000):
        k = right(seed, acc)
        lo, hi = wilson(k, len(ids))
        if not lo <= acc <= hi:
            continue
        if acc > 0.7 and len(ids) - k <= 9 or acc < 0.7 and len(ids) - k >= 13 and 20 <= k <= 27:
            out.append("%s:%d" % (acc, seed))
            break
print(" ".join(out))
PY
)
echo "# seeds: $SEEDS"
pids=()
i=0
for spec in $SEEDS; do
    acc=${spec%%:*} seed=${spec##*:}
    timeout 300 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 1 --accuracy "$acc" \
        --think-ms 0-2 --seed "$seed" --urls "$URL,$URL2" --token "$ADMIN_TOKEN" --ca "$CA" --max-seconds 240 \
        --json-summary "$E2E_DIR/sim$i.json" >"$E2E_DIR/sim$i.log" 2>&1 &
    pids+=($!)
    i=$((i + 1))
done
for pid in "${pids[@]}"; do wait "$pid" || true; done
name_of() { jq -r '.per_annotator[0].annotator' "$E2E_DIR/sim$1.json"; }
id_of() { sql "SELECT id FROM users WHERE name = '$(name_of "$1")'"; }
for i in 0 1 2 3; do
    [ -s "$E2E_DIR/sim$i.json" ] || { tail -5 "$E2E_DIR/sim$i.log"; fail "crew $i: no summary"; finish; }
done
LOW=$(id_of 3)
check "every normal task complete, none over-filled" "400 0" \
    "$(sql "SELECT count(*) FILTER (WHERE state = 'complete') || ' ' || count(*) FILTER (WHERE done_count > required) FROM tasks WHERE project_id = $P AND NOT control")"
check "no normal task got more than its 2 annotations" 0 \
    "$(sql "SELECT count(*) FROM (SELECT a.task_id FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P AND NOT t.control GROUP BY a.task_id HAVING count(*) > 2) x")"
check "no annotator saw a gold task twice (no annotation twice, no lease granted twice)" "0 0" \
    "$(sql "SELECT (SELECT count(*) FROM (SELECT 1 FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.control AND t.project_id = $P GROUP BY a.task_id, a.annotator_id HAVING count(*) > 1) x) || ' ' || (SELECT count(*) FROM (SELECT 1 FROM lease_events e JOIN tasks t ON t.id = e.task_id WHERE t.control AND t.project_id = $P AND e.kind = 'grant' GROUP BY e.task_id, e.annotator_id HAVING count(*) > 1) y)")"
check "the gold tasks are still control tasks, open" 40 \
    "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND control AND state = 'waiting'")"
for i in 0 1 2; do
    check "annotator $(name_of $i) answered every gold task" 40 \
        "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.control AND a.annotator_id = $(id_of $i)")"
done
echo "# gold answers per annotator (all, normal): $(sql "SELECT string_agg(u.name || ' ' || x.g || '/' || x.n, ', ' ORDER BY u.name) FROM (SELECT a.annotator_id, count(*) FILTER (WHERE t.control) AS g, count(*) AS n FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P GROUP BY 1) x JOIN users u ON u.id = x.annotator_id")"
SHARE=$(sql "SELECT round(avg(s)::numeric, 3) FROM (SELECT (count(*) FILTER (WHERE t.control) - 5)::float / greatest(count(*) - 5, 1) AS s FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P AND a.annotator_id <> $LOW GROUP BY a.annotator_id) x")
echo "# share of gold among each annotator's leases after onboarding: $SHARE (set 0.3; it falls once an annotator saw every gold task)"

# --- the pause ------------------------------------------------------------------------------
echo "# pauses: $(sql "SELECT string_agg(u.name || ' ' || p.reason, '; ') FROM annotator_pauses p JOIN users u ON u.id = p.annotator_id")"
check "the 0.6 annotator is paused, and nobody else" "$LOW" \
    "$(sql "SELECT string_agg(annotator_id::text, ',') FROM annotator_pauses WHERE project_id = $P AND reinstated_at IS NULL")"
check "after the minimum count, below the minimum accuracy" "true true" \
    "$(sql "SELECT (compared >= 30)::text || ' ' || (accuracy < 0.7)::text FROM annotator_pauses WHERE annotator_id = $LOW")"
check "the pause is logged once" 1 "$(cat "$E2E_DIR/quorumd.log" "$E2E_DIR/quorumd2.log" | grep -c "annotator $LOW paused: gold accuracy")"
check "its simulated annotator stopped on 403 annotator_paused" paused_by_gold "$(jq -r '.per_annotator[0].state' "$E2E_DIR/sim3.json")"
LOW_TOKEN=$(api POST /v1/tokens "$ADMIN_TOKEN" "{\"user\": \"$(name_of 3)\", \"role\": \"annotator\"}" | cut -d' ' -f2- | jq -r .token)
for u in "$URL" "$URL2"; do
    r=$(API_URL=$u api POST "/v1/projects/$P/leases" "$LOW_TOKEN" '{"max": 1}')
    check "broker $u: 403 annotator_paused" "403 annotator_paused" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"
    case "$r" in *"below the project's minimum 0.7"*) pass "with the reason" ;; *) fail "reason: $r" ;; esac
done
rc=0
QUORUM_TOKEN=$LOW_TOKEN timeout 60 "$QR_BIN_DIR/quorum-agent" exec --project "$P" --idle-exit 1 \
    --spool "$E2E_DIR/spool" -- cat >"$E2E_DIR/exec.out" 2>"$E2E_DIR/exec.err" || rc=$?
check "quorum-agent exec of the paused annotator: exit 8" 8 "$rc"
grepq "you are paused in project $P (gold accuracy below its minimum)" <"$E2E_DIR/exec.err" &&
    pass "it says why" || fail "exec stderr: $(cat "$E2E_DIR/exec.err")"
# After Redis lost its state, the pause holds (rebuilt from PostgreSQL).
redis-cli -p "$QR_REDIS_PORT" flushall >/dev/null
r=$(api POST "/v1/projects/$P/leases" "$LOW_TOKEN" '{"max": 1}')
check "after a FLUSHALL: still 403 annotator_paused" "403 annotator_paused" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"

# --- the report, the live agreement -------------------------------------------------------
"$CTL" report --project "$P" --json >"$E2E_DIR/report.json"
check "report quality.paused_annotators: the one pause" "$LOW null" \
    "$(jq -r '.quality.paused_annotators[] | "\(.annotator_id) \(.reinstated_at)"' "$E2E_DIR/report.json")"
for i in 0 1 2 3; do
    acc=$(jq -r '.per_annotator[0].accuracy' "$E2E_DIR/sim$i.json")
    read -r v lo hi n <<<"$(jq -r --arg n "$(name_of $i)" '.per_annotator[] | select(.annotator == $n) | .gold_accuracy | "\(.value) \(.low) \(.high) \(.compared)"' "$E2E_DIR/report.json")"
    echo "# $(name_of $i): simulated at $acc, gold accuracy $v [$lo, $hi] over $n gold answers"
    check "annotator at $acc: its gold accuracy interval contains it" true "$(jq -n "$lo <= $acc and $acc <= $hi")"
done
check "the report's annotations leave gold out (throughput)" \
    "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P AND NOT t.control")" \
    "$(jq .annotations "$E2E_DIR/report.json")"
check "and its task counts" "400 400 0" "$(jq -r '"\(.tasks) \(.tasks_complete) \(.annotations_remaining)"' "$E2E_DIR/report.json")"
"$CTL" report --project "$P" >"$E2E_DIR/report.txt"
grepq "^paused  *$(name_of 3): gold accuracy" <"$E2E_DIR/report.txt" && pass "quorumctl report prints the pause" ||
    fail "report text: $(grep -i paused "$E2E_DIR/report.txt")"
THR=$(api GET "/v1/projects/$P/throughput" | cut -d' ' -f2-)
check "throughput: annotations without gold" "$(jq .annotations "$E2E_DIR/report.json")" "$(echo "$THR" | jq .totals.annotations)"
# Over a long window the throughput reads the lease log's rollups: they
# leave gold leases out too, so both sources count the same leases.
NG=$(sql "SELECT count(*) FROM lease_events e JOIN tasks t ON t.id = e.task_id WHERE e.project_id = $P AND e.kind = 'grant' AND NOT t.control")
for q in "window=3h&exact=1" "window=3h" "window=3h&idle_gap_ms=120000"; do
    T=$(api GET "/v1/projects/$P/throughput?$q" | cut -d' ' -f2-)
    check "throughput ($q, source $(echo "$T" | jq -r .window.source)): normal leases and annotations only" \
        "$NG $(jq .annotations "$E2E_DIR/report.json")" "$(echo "$T" | jq -r '"\(.totals.leases_granted) \(.totals.annotations)"')"
done

# A vendor's manager sees its own crew's pauses only (none here).
V=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name": "vend", "kind": "vendor"}' | cut -d' ' -f2- | jq -r .id)
api PUT "/v1/projects/$P/shares/$V" "$ADMIN_TOKEN" '{}' >/dev/null
VM=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user": "vm", "role": "manager", "organization": "vend"}' | cut -d' ' -f2- | jq -r .token)
check "a vendor's manager: quality holds its crew's pauses only" '{"paused_annotators":[]}' \
    "$(api GET "/v1/projects/$P/report" "$VM" | cut -d' ' -f2- | jq -c .quality)"

# --- reinstate: refused to the wrong callers, then done ----------------------------------
ANN_TOKEN=$(new_annotator ann1)
REV_TOKEN=$(api POST /v1/users "$ADMIN_TOKEN" '{"name": "rev", "role": "reviewer"}' | cut -d' ' -f2- | jq -r .token)
api POST /v1/organizations "$ADMIN_TOKEN" '{"name": "other", "kind": "owner"}' >/dev/null
OTHER_TOKEN=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user": "om", "role": "manager", "organization": "other"}' | cut -d' ' -f2- | jq -r .token)
for who in ANN_TOKEN REV_TOKEN OTHER_TOKEN LOW_TOKEN; do
    r=$(api POST "/v1/projects/$P/annotators/$LOW/reinstate" "${!who}")
    check "reinstate by $who: 403" 403 "${r%% *}"
done
check "still paused" 1 "$(sql "SELECT count(*) FROM annotator_pauses WHERE reinstated_at IS NULL")"
r=$(api POST "/v1/projects/$P/annotators/$(id_of 0)/reinstate")
check "reinstating someone not paused: 404" 404 "${r%% *}"
"$CTL" reinstate --project "$P" --user "$(name_of 3)" >"$E2E_DIR/reinstate.txt" 2>&1
check "quorumctl reinstate: done" 1 "$(sql "SELECT count(*) FROM annotator_pauses WHERE reinstated_at IS NOT NULL AND reinstated_by IS NOT NULL")"
grepq "reinstated" <"$E2E_DIR/reinstate.txt" && pass "it says so" || fail "output: $(cat "$E2E_DIR/reinstate.txt")"
for u in "$URL" "$URL2"; do
    r=$(API_URL=$u api POST "/v1/projects/$P/leases" "$LOW_TOKEN" '{"max": 1}')
    check "broker $u: leases again after reinstatement" 200 "${r%% *}"
done
check "the reinstated annotator starts again from nothing" "0 0" "$(sql "SELECT compared || ' ' || agree FROM quorum_gold_tally($P, $LOW)")"
"$CTL" report --project "$P" --json >"$E2E_DIR/report2.json"
check "the report keeps the past pause, reinstated" "$LOW true" \
    "$(jq -r '.quality.paused_annotators[] | "\(.annotator_id) \(.reinstated_at != null)"' "$E2E_DIR/report2.json")"

# --- switching serving off returns the gold tasks to the queue --------------------------------
r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"gold_rate": 0, "gold_onboarding": 0, "gold_min_accuracy": null}')
check "serving off: 200" 200 "${r%% *}"
check "the gold tasks are normal tasks again, complete (they hold their annotations)" "0 40" \
    "$(sql "SELECT count(*) FILTER (WHERE control) || ' ' || count(*) FILTER (WHERE gold IS NOT NULL AND state = 'complete') FROM tasks WHERE project_id = $P")"

# --- the long-run share: one annotator, more gold than it can see -------------------------------
# 300 normal tasks and 300 gold ones at rate 0.25 without onboarding: the
# annotator's leases are gold about a quarter of the time (within 4 standard
# deviations), never the same one twice.
R=$(new_project '{"name": "share", "labels": ["a", "b"], "gold_rate": 0.25}')
python3 -c 'import json
for i in range(300): print(json.dumps({"data": {"n": i, "_true_label": "a"}, "gold": "a"}))
for i in range(300): print(json.dumps({"data": {"n": 1000 + i, "_true_label": "b"}}))' >"$E2E_DIR/share.jsonl"
"$CTL" import --project "$R" "$E2E_DIR/share.jsonl" >/dev/null
timeout 300 "$QR_BIN_DIR/quorum-agent" simulate --project "$R" --annotators 1 --accuracy 1 \
    --think-ms 0-0 --seed 3 --max-seconds 240 >"$E2E_DIR/share.log" 2>&1 || { tail -3 "$E2E_DIR/share.log"; fail "simulate"; }
read -r G N <<<"$(sql "SELECT count(*) FILTER (WHERE t.control) || ' ' || count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $R")"
echo "# rate 0.25: $G gold of $N annotations ($(python3 -c "print(round($G / $N, 3))"))"
check "the gold share is the rate" true \
    "$(python3 -c "import math; n=$N; g=$G; print(str(abs(g - 0.25*n) <= 4*math.sqrt(n*0.25*0.75)).lower())")"
check "all 300 normal tasks done once, no gold task twice" "300 0" \
    "$(sql "SELECT count(*) FILTER (WHERE state = 'complete' AND NOT control) || ' ' || count(*) FILTER (WHERE control AND done_count > 1) FROM tasks WHERE project_id = $R")"
finish
