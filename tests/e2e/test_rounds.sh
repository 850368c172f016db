#!/usr/bin/env bash
# Relabel rounds (issue 16, point 6): a project is labeled to completion by
# a sloppy crew (accuracy 0.6); a manager then opens rounds over each kind
# of selector (low agreement, task ids, a data field value, an import, a
# completion time range), each asking N more annotations; a fresh, accurate
# crew (0.95) labels them. Checked in SQL: each round's tasks got exactly N
# more annotations carrying its number, the first round's annotations are
# untouched, no annotator labeled a task twice; the exports carry the round
# (annotations) and give one consensus row per task and round; agreement is
# per round (round 2 higher than round 1, both printed, and the live
# agreement counts (task, round) as its unit); every refusal changes nothing.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
AGENT="$QR_BIN_DIR/quorum-agent"

P=$("$CTL" project create --name rounds --labels a,b,c,d --annotations-per-task 3)
OTHER=$("$CTL" project create --name other --labels a,b --annotations-per-task 1)
# Two imports: A (300 tasks, half from "web", half from "app"), B (100).
python3 - "$E2E_DIR" <<'PY'
import json, random, sys
d = sys.argv[1]
r = random.Random(6)
with open(d + "/a.jsonl", "w") as f:
    for i in range(300):
        f.write(json.dumps({"data": {"n": i, "src": {"kind": "web" if i % 2 else "app"},
                                     "_true_label": r.choice("abcd")}}) + "\n")
with open(d + "/b.jsonl", "w") as f:
    for i in range(100):
        f.write(json.dumps({"data": {"n": 1000 + i, "src": {"kind": "mail"},
                                     "_true_label": r.choice("abcd")}}) + "\n")
PY
"$CTL" import --project "$P" "$E2E_DIR/a.jsonl" >/dev/null
"$CTL" import --project "$P" "$E2E_DIR/b.jsonl" >/dev/null
IMPORT_B=$(sql "SELECT max(id) FROM imports WHERE project_id = $P")
echo '{"data": {"n": 1}}' | "$CTL" import --project "$OTHER" - >/dev/null
OTHER_TASK=$(sql "SELECT id FROM tasks WHERE project_id = $OTHER")

r=$(api POST "/v1/projects/$P/rounds" "$ADMIN_TOKEN" '{"annotations": 2, "agreement_below": 1}')
check "a round while nothing is complete: 422 (empty selection)" 422 "${r%% *}"

# --- round 1: a sloppy crew ---------------------------------------------------------------
timeout 600 "$AGENT" simulate --project "$P" --annotators 5 --accuracy 0.6 --think-ms 0-1 \
    --seed 1 >"$E2E_DIR/sim1.log" 2>&1 || { tail -5 "$E2E_DIR/sim1.log"; fail "crew 1"; }
check "round 1: every task complete with 3 annotations of round 1" "400 1200 1200" \
    "$(sql "SELECT count(*) FILTER (WHERE state = 'complete') || ' ' || sum(done_count) || ' ' || (SELECT count(*) FROM annotations WHERE project_id = $P AND round = 1) FROM tasks WHERE project_id = $P")"
ROUND1_MD5=$(sql "SELECT md5(string_agg(id || ' ' || task_id || ' ' || annotator_id || ' ' || label || ' ' || created_at || ' ' || round, ',' ORDER BY id)) FROM annotations WHERE project_id = $P")
T_MID=$(sql "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")

# --- refusals change nothing --------------------------------------------------------------
state_md5() {
    sql "SELECT md5((SELECT string_agg(id || state || required || done_count || round, ',' ORDER BY id) FROM tasks)
                 || (SELECT count(*) FROM annotations) || (SELECT count(*) FROM rounds))"
}
BEFORE=$(state_md5)
refuse() { # refuse DESCRIPTION STATUS BODY [TOKEN] [PROJECT]
    local r
    r=$(api POST "/v1/projects/${5:-$P}/rounds" "${4:-$ADMIN_TOKEN}" "$3")
    check "$1: $2" "$2" "${r%% *}"
    case "$2" in 4*) [ -n "$(echo "${r#* }" | jq -r '.error.message // empty')" ] &&
        pass "$1: says why ($(echo "${r#* }" | jq -r .error.message | cut -c1-90))" ||
        fail "$1: no message: $r" ;;
    esac
}
refuse "not JSON" 400 '{"annotations":'
refuse "no selector" 422 '{"annotations": 2}'
refuse "two selectors" 422 '{"task_ids": [1], "import_id": 1}'
refuse "an unknown key" 422 '{"agreement_below": 0.5, "tasks": [1]}'
refuse "annotations 0" 422 '{"annotations": 0, "agreement_below": 0.5}'
refuse "annotations 100" 422 '{"annotations": 100, "agreement_below": 0.5}'
refuse "annotations a string" 422 '{"annotations": "2", "agreement_below": 0.5}'
refuse "task_ids empty" 422 '{"task_ids": []}'
refuse "task_ids not ids" 422 '{"task_ids": [1, "x"]}'
refuse "a task of another project" 404 "{\"task_ids\": [$OTHER_TASK]}"
refuse "a task that does not exist" 404 '{"task_ids": [999999999]}'
refuse "an import of nobody" 404 '{"import_id": 999999}'
refuse "import_id not an id" 422 '{"import_id": "x"}'
refuse "field without a value" 422 '{"field": {"path": "src.kind"}}'
refuse "field with an empty path" 422 '{"field": {"path": "", "value": 1}}'
refuse "field matching nothing" 422 '{"field": {"path": "src.kind", "value": "fax"}}'
refuse "completed_after not RFC 3339" 422 '{"completed_after": "yesterday"}'
refuse "completed_before a number" 422 '{"completed_before": 5}'
refuse "completed_after of the right shape, no date" 422 '{"completed_after": "2026-13-45T00:00:00Z"}'
refuse "a time range selecting nothing" 422 '{"completed_before": "2001-01-01T00:00:00Z"}'
refuse "agreement_below 0" 422 '{"agreement_below": 0}'
refuse "agreement_below 1.5" 422 '{"agreement_below": 1.5}'
ANN_TOKEN=$(new_annotator rounds-ann)
refuse "an annotator" 403 '{"agreement_below": 0.5}' "$ANN_TOKEN"
REV_TOKEN=$(api POST /v1/users "$ADMIN_TOKEN" '{"name":"rounds-rev","role":"reviewer"}' | cut -d' ' -f2- | jq -r .token)
refuse "a reviewer" 403 '{"agreement_below": 0.5}' "$REV_TOKEN"
check "no refusal changed a task, an annotation or a round" "$BEFORE" "$(state_md5)"
rc=0
"$CTL" round --project "$P" --tasks 1 --import 2 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl round with two selectors: usage error" 2 "$rc"
rc=0
"$CTL" round --project "$P" --agreement-below 2 >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl round --agreement-below 2: usage error" 2 "$rc"
rc=0
"$CTL" round --project "$P" --field src.kind=fax >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl round selecting nothing: exit 1" 1 "$rc"
grepq "matches the selection" <"$E2E_DIR/err" && pass "and says why" || fail "stderr: $(cat "$E2E_DIR/err")"
check "still nothing changed" "$BEFORE" "$(state_md5)"

# --- the rounds, one per selector ----------------------------------------------------------
# round 2: low agreement (support below 0.7: fewer than 3 of 3 agreeing), 3 more each
LOW=$(sql "SELECT count(*) FROM tasks t WHERE project_id = $P AND quorum_task_support(t.id) < 0.7")
R=$("$CTL" round --project "$P" --annotations 3 --agreement-below 0.7 2>"$E2E_DIR/err")
check "round 2 (agreement_below): number" 2 "$R"
grepq "^round 2 of project $P: $LOW task(s), 3 more annotation(s) each$" <"$E2E_DIR/err" &&
    pass "quorumctl round says what it did" || fail "stderr: $(cat "$E2E_DIR/err")"
check "round 2's tasks: open, needing 3 more, in round 2" "$LOW $LOW" \
    "$(sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'waiting' AND required = done_count + 3 AND done_count = 3) FROM tasks WHERE project_id = $P AND round = 2")"
# round 3: three task ids still complete, 2 more each (JSON answer)
IDS=$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM tasks WHERE project_id = $P AND state = 'complete' ORDER BY id LIMIT 3) x")
r=$(api POST "/v1/projects/$P/rounds" "$ADMIN_TOKEN" "{\"annotations\": 2, \"task_ids\": [$IDS]}")
check "round 3 (task_ids): 201, number, tasks, annotations" "201 3 3 2" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.number) \(.tasks) \(.annotations)"')"
r=$(api POST "/v1/projects/$P/rounds" "$ADMIN_TOKEN" "{\"task_ids\": [${IDS%%,*}]}")
check "a task already in a new round is open: 422" 422 "${r%% *}"
# round 4: a data field equal to a value (nested path), the project's 3 by default
WEB=$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND state = 'complete' AND data->'src'->>'kind' = 'web'")
R=$("$CTL" round --project "$P" --field src.kind=web 2>/dev/null)
check "round 4 (field): number, tasks, annotations (the project's 3)" "4 $WEB 3" \
    "$R $(api GET "/v1/projects/$P/rounds" | cut -d' ' -f2- | jq -r '.rounds[] | select(.number == 4) | "\(.tasks) \(.annotations)"')"
# round 5: an import, 1 more each
FROM_B=$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND state = 'complete' AND import_id = $IMPORT_B")
R=$("$CTL" round --project "$P" --import "$IMPORT_B" --annotations 1 2>/dev/null)
check "round 5 (import_id): number and tasks" "5 $FROM_B" \
    "$R $(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND round = 5 AND import_id = $IMPORT_B")"
# round 6: a completion time range: everything complete before T_MID (all that is left)
LEFT=$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND state = 'complete'")
R=$("$CTL" round --project "$P" --completed-after 2020-01-01T00:00:00Z --completed-before "$T_MID" \
    --annotations 1 2>/dev/null)
check "round 6 (completed_after/before): number and tasks" "6 $LEFT" \
    "$R $(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND round = 6")"
check "the rounds table: 5 rounds with their counts" "2:$LOW:3 3:3:2 4:$WEB:3 5:$FROM_B:1 6:$LEFT:1" \
    "$(sql "SELECT string_agg(number || ':' || task_count || ':' || annotations, ' ' ORDER BY number) FROM rounds WHERE project_id = $P")"
"$CTL" rounds --project "$P" >"$E2E_DIR/rounds.txt"
check "quorumctl rounds: a header and 5 lines" 6 "$(wc -l <"$E2E_DIR/rounds.txt")"
grepq '"agreement_below":0.7' <"$E2E_DIR/rounds.txt" && pass "quorumctl rounds shows the selection" ||
    fail "rounds: $(cat "$E2E_DIR/rounds.txt")"

# --- round 2 and later: an accurate crew ----------------------------------------------------
timeout 600 "$AGENT" simulate --project "$P" --annotators 6 --accuracy 0.95 --think-ms 0-1 \
    --seed 2 >"$E2E_DIR/sim2.log" 2>&1 || { tail -5 "$E2E_DIR/sim2.log"; fail "crew 2"; }
check "every task complete again" 400 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND state = 'complete'")"
check "each round's tasks got exactly its N more annotations, of its number" 0 \
    "$(sql "SELECT count(*) FROM tasks t JOIN rounds r ON r.project_id = t.project_id AND r.number = t.round
            WHERE t.project_id = $P AND (SELECT count(*) FROM annotations a WHERE a.task_id = t.id AND a.round = t.round) <> r.annotations")"
check "and no annotation of a round on a task outside it" 0 \
    "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P AND a.round NOT IN (1, t.round)")"
check "round 1's annotations untouched" "$ROUND1_MD5" \
    "$(sql "SELECT md5(string_agg(id || ' ' || task_id || ' ' || annotator_id || ' ' || label || ' ' || created_at || ' ' || round, ',' ORDER BY id)) FROM annotations WHERE project_id = $P AND round = 1")"
check "no annotator labeled a task twice across rounds" 0 \
    "$(sql "SELECT count(*) FROM (SELECT task_id, annotator_id FROM annotations WHERE project_id = $P GROUP BY 1, 2 HAVING count(*) > 1) x")"
check "later rounds went to the second crew only" 0 \
    "$(sql "SELECT count(*) FROM annotations a WHERE a.project_id = $P AND a.round > 1 AND a.annotator_id IN (SELECT annotator_id FROM annotations WHERE project_id = $P AND round = 1)")"

# --- exports -------------------------------------------------------------------------------
"$CTL" export --project "$P" --format jsonl >"$E2E_DIR/ann.jsonl" 2>/dev/null
check "annotations export: every line carries its round, as stored" \
    "$(sql "SELECT string_agg(round || ':' || n, ' ' ORDER BY round) FROM (SELECT round, count(*) AS n FROM annotations WHERE project_id = $P GROUP BY 1) x")" \
    "$(jq -r .round "$E2E_DIR/ann.jsonl" | sort -n | uniq -c | awk '{printf "%s%s:%s", (NR>1?" ":""), $2, $1}')"
"$CTL" export --project "$P" --kind consensus --format jsonl >"$E2E_DIR/cons.jsonl" 2>/dev/null
check "consensus export: one row per task and round" \
    "$(sql "SELECT count(*) FROM (SELECT DISTINCT task_id, round FROM annotations WHERE project_id = $P) x")" \
    "$(jq -r '"\(.task_id) \(.round)"' "$E2E_DIR/cons.jsonl" | sort -u | wc -l)"
# (One query for every row: a psql per row cost two minutes.)
check "each row's annotators are its round's" "" \
    "$(diff <(jq -r '"\(.task_id) \(.round) \(.annotators)"' "$E2E_DIR/cons.jsonl" | sort) \
        <(sql "SELECT task_id || ' ' || round || ' ' || count(*) FROM annotations WHERE project_id = $P
               GROUP BY task_id, round" | sort))"
# Consensus accuracy against the truth, per round (round 1 over the tasks relabeled in round 2).
read -r C1 C2 <<<"$(jq -rs '
    [.[] | select(.round == 1 or .round == 2)] as $rows
    | ($rows | map(select(.round == 2)) | map(.task_id)) as $t2
    | [1, 2] | map(. as $r | $rows | map(select(.round == $r and (.task_id as $i | $t2 | index($i))))
        | (map(select(.consensus == .data._true_label)) | length) / length) | "\(.[0]) \(.[1])"' "$E2E_DIR/cons.jsonl")"
echo "# consensus accuracy on round 2's tasks: round 1 (crew at 0.6) $C1, round 2 (crew at 0.95) $C2"
check "round 2's consensus is more accurate than round 1's on the same tasks" true "$(jq -n "$C2 > $C1")"

# Agreement per round: percent agreement of pairs within one (task, round).
python3 - "$E2E_DIR/ann.jsonl" >"$E2E_DIR/agree.txt" <<'PY'
import json, sys, itertools, collections
by = collections.defaultdict(list)
for line in open(sys.argv[1]):
    a = json.loads(line)
    by[(a["task_id"], a["round"])].append(a["label"])
agree = collections.Counter(); pairs = collections.Counter()
for (t, r), labels in by.items():
    for x, y in itertools.combinations(labels, 2):
        pairs[min(r, 2)] += 1; agree[min(r, 2)] += x == y
print("%.4f %.4f %d" % (agree[1] / pairs[1], agree[2] / pairs[2], len(by)))
PY
read -r A1 A2 UNITS <"$E2E_DIR/agree.txt"
echo "# pairwise agreement: round 1 $A1, later rounds $A2 ($UNITS task-rounds)"
check "agreement of the accurate rounds is higher" true "$(jq -n "$A2 > $A1")"
api GET "/v1/projects/$P/agreement?fresh=1&per_item=1" | cut -d' ' -f2- >"$E2E_DIR/live.json"
check "live agreement: its items are the (task, round) units" "$UNITS" "$(jq '.counts.items' "$E2E_DIR/live.json")"
check "live agreement: round 2 items named task/2" "$LOW" \
    "$(jq -r '[.per_item[]? | .item | select(endswith("/2"))] | length' "$E2E_DIR/live.json")"

# --- a schema project: the consensus per field, per round ----------------------------------
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "rounds-schema", "annotations_per_task": 2, "schema": {"fields": [
    {"name": "sentiment", "type": "choice", "choices": ["pos", "neg", "neu"]}]}}')
PS=$(echo "${r#* }" | jq .id)
for i in 1 2 3 4 5 6; do echo "{\"n\": $i, \"_true_label\": {\"sentiment\": \"pos\"}}"; done |
    "$CTL" import --project "$PS" - >/dev/null
timeout 300 "$AGENT" simulate --project "$PS" --annotators 3 --accuracy 0.3 --think-ms 0-1 \
    --seed 3 >"$E2E_DIR/sim3.log" 2>&1 || { tail -5 "$E2E_DIR/sim3.log"; fail "schema crew 1"; }
TS=$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM tasks WHERE project_id = $PS")
"$CTL" round --project "$PS" --tasks "$TS" >/dev/null 2>&1
timeout 300 "$AGENT" simulate --project "$PS" --annotators 3 --accuracy 1.0 --think-ms 0-1 \
    --seed 4 >"$E2E_DIR/sim4.log" 2>&1 || { tail -5 "$E2E_DIR/sim4.log"; fail "schema crew 2"; }
"$CTL" export --project "$PS" --kind consensus --format jsonl >"$E2E_DIR/cons_s.jsonl" 2>/dev/null
check "schema consensus: a row per task and round, 2 annotators each" "6:2 6:2" \
    "$(jq -rs 'group_by(.round) | map("\(length):\(map(.annotators) | unique | join(","))") | join(" ")' "$E2E_DIR/cons_s.jsonl")"
check "schema consensus: round 2 (an exact crew) says pos on every task" 6 \
    "$(jq -c 'select(.round == 2 and .consensus.sentiment == "pos")' "$E2E_DIR/cons_s.jsonl" | wc -l)"

finish
