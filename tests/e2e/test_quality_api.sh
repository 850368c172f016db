#!/usr/bin/env bash
# The quality view's API (issue 17 point 1): the agreement report's
# ?confusion=1 (per choice field, annotator's label x the task's majority
# consensus over complete tasks) and ?over_time=1 (percent agreement and
# alpha per bucket of completion), checked against figures computed here
# from what the crew was told to answer; GET /v1/projects/{id}/tasks/{task}
# (one task with its annotations, review and, for the owner's admins and
# managers only, gold) against PostgreSQL, for each kind of caller; and
# `quorumctl task`.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
CREW="$QR_SOURCE_DIR/tests/e2e/quality_crew.py"

# --- callers: the owner's manager, reviewer and two annotators; a vendor's manager and annotator
tok() { # ORG ROLE NAME -> token
    local body="{\"user\":\"$3\",\"role\":\"$2\"${1:+,\"organization\":\"$1\"}}"
    api POST /v1/tokens "$ADMIN_TOKEN" "$body" | cut -d' ' -f2- | jq -r .token
}
r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"vendor-v","kind":"vendor"}')
V=$(echo "${r#* }" | jq .id)
MANAGER=$(tok "" manager mia)
REVIEWER=$(tok "" reviewer rex)
A1=$(tok "" annotator ann1)
A2=$(tok "" annotator ann2)
VM=$(tok vendor-v manager vmgr)
V1=$(tok vendor-v annotator ann1) # a second "ann1", of the vendor

# --- a plain project of 3 labels, 3 annotations per task, shared with the vendor
P=$(new_project '{"name":"q","labels":["a","b","c"],"annotations_per_task":3,"max_leases_per_annotator":50,"review_mode":"all"}')
api PUT "/v1/projects/$P/shares/$V" "$ADMIN_TOKEN" '{}' >/dev/null
# Each task says what ann1 (x), ann2 (y) and the vendor's ann1 (z) answer.
python3 - "$E2E_DIR/tasks.jsonl" <<'PY'
import json, random, sys
r = random.Random(17)
with open(sys.argv[1], "w") as f:
    for i in range(40):
        t = r.choice("abc")
        pick = lambda acc: t if r.random() < acc else r.choice([l for l in "abc" if l != t])
        row = {"data": {"n": i, "x": pick(0.9), "y": pick(0.7), "z": pick(0.5)}}
        if i == 0:
            row["gold"] = t
        f.write(json.dumps(row) + "\n")
PY
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
check "ann1 labels 40 tasks" 40 "$(python3 "$CREW" "$URL" "$CA" "$A1" "$P" x)"
check "ann2 labels 40 tasks" 40 "$(python3 "$CREW" "$URL" "$CA" "$A2" "$P" y)"
check "the vendor's ann1 labels 36 (4 tasks stay incomplete)" 36 "$(python3 "$CREW" "$URL" "$CA" "$V1" "$P" z 36)"
check "36 tasks complete" 36 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND state = 'complete'")"

# --- ?confusion=1 against what PostgreSQL holds, computed here -------------------------------
sql "SELECT a.task_id, a.label, to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), t.state
     FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P ORDER BY a.id" >"$E2E_DIR/rows"
expected() { # MODE: confusion | over_time (from $E2E_DIR/rows)
    python3 - "$1" "$E2E_DIR/rows" <<'PY'
import collections, json, sys
mode, rows = sys.argv[1], [l.split("|") for l in open(sys.argv[2]).read().split("\n") if l]
tasks = collections.defaultdict(list)
when = collections.defaultdict(str)
for tid, label, at, state in rows:
    if state == "complete":
        tasks[tid].append(label)
        when[tid] = max(when[tid], at)
labels = ["a", "b", "c"]
if mode == "confusion":
    m = [[0] * 3 for _ in labels]
    agreed = tied = 0
    for vals in tasks.values():
        c = collections.Counter(vals).most_common()
        if len(c) > 1 and c[0][1] == c[1][1]:
            tied += 1
            continue
        agreed += 1
        for v in vals:
            m[labels.index(v)][labels.index(c[0][0])] += 1
    print(json.dumps({"labels": labels, "matrix": m, "annotations": sum(map(sum, m)), "tasks": agreed,
                      "tasks_without_consensus": tied}, sort_keys=True, separators=(",", ":")))
else:
    buckets = collections.defaultdict(list)
    for tid, vals in tasks.items():
        buckets[when[tid]].append(vals)
    out = []
    for b in sorted(buckets):
        units = buckets[b]
        pa = sum(sum(k * (k - 1) for k in collections.Counter(u).values()) / (len(u) * (len(u) - 1)) for u in units) / len(units)
        n = sum(len(u) for u in units)
        occ = sum(sum(k * (k - 1) for k in collections.Counter(u).values()) / (len(u) - 1) for u in units)
        nc = collections.Counter(v for u in units for v in u)
        e = sum(k * (k - 1) for k in nc.values())
        alpha = ((n - 1) * occ - e) / (n * (n - 1) - e) if n * (n - 1) - e > 0 else None
        out.append("%s %d %.9f %s" % (b, len(units), pa, "null" if alpha is None else "%.9f" % alpha))
    print("\n".join(out))
PY
}
r=$(api GET "/v1/projects/$P/agreement?fresh=1&confusion=1")
check "agreement?confusion=1: 200" 200 "${r%% *}"
echo "${r#* }" >"$E2E_DIR/ag.json"
check "confusion has one field, label" '["label"]' "$(jq -c '.confusion | keys' "$E2E_DIR/ag.json")"
check "its counts are the data's (label order, matrix, tasks, ties)" "$(expected confusion)" \
    "$(jq -cS '.confusion.label' "$E2E_DIR/ag.json")"
echo "# confusion: $(jq -c '.confusion.label' "$E2E_DIR/ag.json")"
check "the matrix's diagonal is its agreeing annotations" \
    "$(jq '[.confusion.label.matrix | to_entries[] | .value[.key]] | add' "$E2E_DIR/ag.json")" \
    "$(python3 -c "import json; c=json.load(open('$E2E_DIR/ag.json'))['confusion']['label']; print(sum(c['matrix'][i][i] for i in range(3)))")"
check "no over_time unless asked" null "$(jq -c .over_time "$E2E_DIR/ag.json")"
r=$(api GET "/v1/projects/$P/agreement")
check "without the flags the report has neither key" "null null" "$(echo "${r#* }" | jq -r '"\(.confusion) \(.over_time)"')"
r=$(api GET "/v1/projects/$P/agreement?confusion=0&over_time=0")
check "confusion=0 and over_time=0 neither" "null null" "$(echo "${r#* }" | jq -r '"\(.confusion) \(.over_time)"')"

# --- ?over_time=1: two buckets (a third of the tasks completed an hour ago) -------------------
sql "UPDATE annotations SET created_at = created_at - interval '1 hour' WHERE project_id = $P AND task_id % 3 = 0" >/dev/null
sql "SELECT a.task_id, a.label, to_char(date_trunc('minute', max(a.created_at) OVER (PARTITION BY a.task_id) AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24:MI'), t.state
     FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P ORDER BY a.id" >"$E2E_DIR/rows"
r=$(api GET "/v1/projects/$P/agreement?over_time=1&confusion=1")
check "agreement?over_time=1: 200" 200 "${r%% *}"
echo "${r#* }" >"$E2E_DIR/ag.json"
check "the bucket is the minute (the tasks completed within 3 hours)" minute "$(jq -r .over_time.bucket "$E2E_DIR/ag.json")"
check "completed_tasks counts the complete tasks" 36 "$(jq .over_time.completed_tasks "$E2E_DIR/ag.json")"
check "per bucket: tasks, percent agreement and alpha as computed from the data" "$(expected over_time)" \
    "$(jq -r '.over_time.fields.label[] | "\(.start[0:16] | sub("T"; " ")) \(.tasks) \(.percent_agreement * 1e9 | round / 1e9 | tostring) \(.krippendorff_alpha_nominal // "null")"' "$E2E_DIR/ag.json" |
        python3 -c "
import sys
for l in sys.stdin:
    d, t, n, pa, al = l.split()
    print('%s %s %s %.9f %s' % (d, t, n, float(pa), al if al == 'null' else '%.9f' % float(al)))")"
check "at least two points" true "$(jq '.over_time.fields.label | length >= 2' "$E2E_DIR/ag.json")"
check "start_ms is start" true \
    "$(jq '[.over_time.fields.label[] | (.start | fromdateiso8601) * 1000 == .start_ms] | all' "$E2E_DIR/ag.json")"
check "the confusion does not move with time" "$(expected confusion)" "$(jq -cS '.confusion.label' "$E2E_DIR/ag.json")"

# A project with no complete task: empty figures, not an error.
EP=$(new_project '{"name":"empty","labels":["a","b"]}')
r=$(api GET "/v1/projects/$EP/agreement?confusion=1&over_time=1")
check "no complete task: 200" 200 "${r%% *}"
check "no complete task: a zero matrix, no bucket, no point" \
    '{"labels":["a","b"],"matrix":[[0,0],[0,0]],"annotations":0,"tasks":0,"tasks_without_consensus":0}|{"bucket":null,"completed_tasks":0,"fields":{"label":[]}}' \
    "$(echo "${r#* }" | jq -c '.confusion.label')|$(echo "${r#* }" | jq -c '.over_time')"

# --- who may read them: the route's own rule (no vendor, no annotator) ------------------------
check "a reviewer reads them" 200 "$(api GET "/v1/projects/$P/agreement?confusion=1&over_time=1" "$REVIEWER" | cut -d' ' -f1)"
check "the vendor's manager may not (the agreement report covers every organization)" 403 \
    "$(api GET "/v1/projects/$P/agreement?confusion=1" "$VM" | cut -d' ' -f1)"
check "an annotator may not" 403 "$(api GET "/v1/projects/$P/agreement?confusion=1" "$A1" | cut -d' ' -f1)"

# --- a schema project: one confusion per choice field, none for a rating ----------------------
SP=$(new_project '{"name":"s","schema":{"fields":[{"name":"topic","type":"choice","choices":["x","y"]},{"name":"stars","type":"rating","min":1,"max":5},{"name":"tone","type":"choice","choices":["p","n"],"required":false}]},"annotations_per_task":2}')
printf '%s\n' \
    '{"n":1,"x":{"topic":"x","stars":3,"tone":"p"},"y":{"topic":"x","stars":4,"tone":"n"}}' \
    '{"n":2,"x":{"topic":"y","stars":3},"y":{"topic":"x","stars":3}}' \
    '{"n":3,"x":{"topic":"y","stars":1,"tone":"n"},"y":{"topic":"y","stars":1,"tone":"n"}}' >"$E2E_DIR/s.jsonl"
"$CTL" import --project "$SP" "$E2E_DIR/s.jsonl" >/dev/null
python3 "$CREW" "$URL" "$CA" "$A1" "$SP" x >/dev/null
python3 "$CREW" "$URL" "$CA" "$A2" "$SP" y >/dev/null
r=$(api GET "/v1/projects/$SP/agreement?fresh=1&confusion=1&over_time=1")
check "schema project: 200" 200 "${r%% *}"
check "confusion per choice field, in schema order" '["topic","tone"]' "$(echo "${r#* }" | jq -c '.confusion | keys_unsorted')"
check "topic: x/x agree twice, y/y twice, the x-y task tied" \
    '{"labels":["x","y"],"matrix":[[2,0],[0,2]],"annotations":4,"tasks":2,"tasks_without_consensus":1}' \
    "$(echo "${r#* }" | jq -c '.confusion.topic')"
check "tone: only tasks where two annotations gave it count" \
    '{"labels":["p","n"],"matrix":[[0,0],[0,2]],"annotations":2,"tasks":1,"tasks_without_consensus":1}' \
    "$(echo "${r#* }" | jq -c '.confusion.tone')"
check "over time per choice field" '["topic","tone"]' "$(echo "${r#* }" | jq -c '.over_time.fields | keys_unsorted')"
check "topic over time: 3 tasks, 2 of 3 agreeing" "3 0.6666666666666666" \
    "$(echo "${r#* }" | jq -r '.over_time.fields.topic[0] | "\(.tasks) \(.percent_agreement)"')"

# --- GET /v1/projects/{id}/tasks/{task} -------------------------------------------------------
T=$(sql "SELECT min(id) FROM tasks WHERE project_id = $P") # the task with a gold answer
pg_anns() { # TASK [ORG] -> the task's annotations as PostgreSQL has them, as the route lists them
    sql "SELECT coalesce(json_agg(json_build_object('annotation_id', a.id, 'annotator', u.name,
          'organization_id', u.org_id, 'value', a.label, 'round', a.round) ORDER BY a.id), '[]')
         FROM annotations a JOIN users u ON u.id = a.annotator_id
         WHERE a.task_id = $1 ${2:+AND u.org_id = $2}" | jq -c .
}
route_anns() { jq -c '[.annotations[] | {annotation_id, annotator, organization_id, value, round}]'; }
r=$(api GET "/v1/projects/$P/tasks/$T")
check "the owner's admin reads a task: 200" 200 "${r%% *}"
echo "${r#* }" >"$E2E_DIR/task.json"
check "its annotations are PostgreSQL's" "$(pg_anns "$T")" "$(route_anns <"$E2E_DIR/task.json")"
check "state, round, counts, data as stored" \
    "$(sql "SELECT json_build_object('state', state, 'round', round, 'required', required, 'done_count', done_count, 'data', data) FROM tasks WHERE id = $T" | jq -cS .)" \
    "$(jq -cS '{state, round, required, done_count, data}' "$E2E_DIR/task.json")"
check "the admin sees the gold answer" "$(sql "SELECT gold FROM tasks WHERE id = $T")" "$(jq -r .gold "$E2E_DIR/task.json")"
check "a pending review item, no decision" '{"state":"pending","decision":null}' "$(jq -c '.review | {state, decision}' "$E2E_DIR/task.json")"
r=$(api GET "/v1/projects/$P/tasks/$T" "$MANAGER")
check "the owner's manager sees gold too" "$(sql "SELECT gold FROM tasks WHERE id = $T")" "$(echo "${r#* }" | jq -r .gold)"
r=$(api GET "/v1/projects/$P/tasks/$T" "$REVIEWER")
check "the owner's reviewer: 200" 200 "${r%% *}"
check "a reviewer gets no gold key at all" false "$(echo "${r#* }" | jq 'has("gold")')"
check "but every annotation" "$(pg_anns "$T")" "$(echo "${r#* }" | route_anns)"
r=$(api GET "/v1/projects/$P/tasks/$T" "$VM")
check "the vendor's manager: 200" 200 "${r%% *}"
check "only its crew's annotations" "$(pg_anns "$T" "$V")" "$(echo "${r#* }" | route_anns)"
check "one of them" 1 "$(echo "${r#* }" | jq '.annotations | length')"
check "no gold key, no review for a vendor" "false null" "$(echo "${r#* }" | jq -r '"\(has("gold")) \(.review)"')"
check "an annotator may not read a task" 403 "$(api GET "/v1/projects/$P/tasks/$T" "$A1" | cut -d' ' -f1)"
check "nor the vendor's annotator" 403 "$(api GET "/v1/projects/$P/tasks/$T" "$V1" | cut -d' ' -f1)"
check "no token: 401" 401 "$(api GET "/v1/projects/$P/tasks/$T" "" | cut -d' ' -f1)"
ST=$(sql "SELECT min(id) FROM tasks WHERE project_id = $SP")
r=$(api GET "/v1/projects/$P/tasks/$ST")
check "a task of another project: 404" 404 "${r%% *}"
check "it says so" "project $P has no task $ST" "$(echo "${r#* }" | jq -r .error.message)"
check "the vendor may not reach the unshared project's tasks" 403 "$(api GET "/v1/projects/$SP/tasks/$ST" "$VM" | cut -d' ' -f1)"
check "task 0: 404" 404 "$(api GET "/v1/projects/$P/tasks/0" | cut -d' ' -f1)"
check "a task id that is not a number: 404 (no such route)" 404 "$(api GET "/v1/projects/$P/tasks/x1" | cut -d' ' -f1)"
r=$(api GET "/v1/projects/$SP/tasks/$ST")
check "a schema project's values are labels objects" "$(sql "SELECT label FROM annotations WHERE task_id = $ST ORDER BY id LIMIT 1" | jq -cS .)" \
    "$(echo "${r#* }" | jq -cS '.annotations[0].value')"

# A review decision shows: the reviewer accepts the first task with a consensus.
r=$(api POST "/v1/projects/$P/reviews/leases" "$REVIEWER" '{"max":100}')
LEASE=$(echo "${r#* }" | jq -r '[.leases[] | select(.consensus.value != null)][0].lease')
RT=$(echo "${r#* }" | jq -r '[.leases[] | select(.consensus.value != null)][0].task_id')
check "the reviewer accepts a consensus" 200 "$(api POST "/v1/projects/$P/reviews/leases/$LEASE/submit" "$REVIEWER" '{"decision":"accept"}' | cut -d' ' -f1)"
r=$(api GET "/v1/projects/$P/tasks/$RT")
check "the task shows the decision, its value and reviewer" \
    "$(sql "SELECT json_build_object('state', 'done', 'decision', 'accept', 'value', value, 'reviewer', 'rex') FROM reviews WHERE task_id = $RT" | jq -cS .)" \
    "$(echo "${r#* }" | jq -cS '.review | {state, decision, value, reviewer}')"
check "nothing changed by reading" 36 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND state = 'complete'")"

# --- quorumctl task ---------------------------------------------------------------------------
out=$("$CTL" task "$P" "$T")
check "quorumctl task: the head line" "task $T of project $P: complete, round 1, 3 of 3 annotation(s)" "$(echo "$out" | head -1)"
check "one line per annotation" 3 "$(echo "$out" | grep -cE '^[0-9]+ +ann[12] ')"
check "the gold line for the admin" "gold: $(sql "SELECT gold FROM tasks WHERE id = $T")" "$(echo "$out" | grep '^gold:')"
check "quorumctl task --json is the route's answer" "$(jq -cS 'del(.review)' "$E2E_DIR/task.json")" \
    "$("$CTL" task "$P" "$T" --json | jq -cS 'del(.review)')"
out=$(QUORUM_TOKEN=$VM "$CTL" task "$P" "$T")
check "the vendor's manager sees one annotation and no gold" "1 0" \
    "$(echo "$out" | grep -cE '^[0-9]+ +ann1 +vendor-v') $(echo "$out" | grep -c '^gold:' || true)"
rc=0; "$CTL" task "$P" >/dev/null 2>&1 || rc=$?
check "quorumctl task without TASK: usage (2)" 2 "$rc"
rc=0; "$CTL" task "$P" abc >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl task with a bad TASK: usage (2)" 2 "$rc"
grepq "TASK must be a task id" <"$E2E_DIR/err" && pass "and says why" || fail "stderr: $(cat "$E2E_DIR/err")"
rc=0; "$CTL" task "$P" 999999 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl task of no such task: 1" 1 "$rc"
grepq "has no task 999999" <"$E2E_DIR/err" && pass "and says why" || fail "stderr: $(cat "$E2E_DIR/err")"


# --- gold answers never reach a vendor through an export ----------------------------------------
ngold=$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND gold IS NOT NULL")
r=$(api GET "/v1/projects/$P/export?kind=consensus&format=jsonl" "$MANAGER")
check "the owner's manager's consensus export carries the gold answers" "$ngold" \
    "$(echo "${r#* }" | jq -s '[.[] | select(.gold != null)] | length')"
r=$(api GET "/v1/projects/$P/export?kind=consensus&format=jsonl" "$VM")
check "the vendor's consensus export: 200" 200 "${r%% *}"
check "and not one gold answer in it" "0 true" \
    "$(echo "${r#* }" | jq -s '[.[] | select(.gold != null)] | length') $(echo "${r#* }" | jq -s 'length > 0')"
r=$(api GET "/v1/projects/$P/export?kind=consensus&format=csv" "$VM")
check "nor in its CSV (the gold column empty)" 0 \
    "$(echo "${r#* }" | tail -n +2 | python3 -c 'import csv,sys; print(sum(1 for row in csv.reader(sys.stdin) if row[5]))')"
r=$(api GET "/v1/projects/$P/export?format=ls" "$VM")
check "its Label Studio export marks no annotation as ground truth" 0 \
    "$(echo "${r#* }" | jq '[.. | objects | select(.ground_truth? == true)] | length')"
r=$(api GET "/v1/projects/$P/export?format=ls" "$MANAGER")
check "the owner's does, where a label equals the gold answer" true \
    "$(echo "${r#* }" | jq '[.. | objects | select(.ground_truth? == true)] | length > 0')"

finish
