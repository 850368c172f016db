#!/usr/bin/env bash
# Predictions updated in bulk (issue 16, point 5): PUT
# /v1/projects/{id}/predictions and `quorumctl predictions`. A project
# sampled by uncertainty serves its least confident tasks first; new scores
# change the next leased tasks at once, also for tasks outside the Redis
# window (a window of 40 tasks here, of 300); confident new predictions
# auto-accept open tasks, unsure ones reopen auto-accepted tasks; a lease
# held on a task auto-accepted meanwhile ends without the task coming back;
# every bad line fails the whole body, naming its line, and changes nothing.
. "$(dirname "$0")/lib.sh"

start_broker --window-tasks 40 --window-low 10 --max-leases-per-annotator 1000
CTL="$QR_BIN_DIR/quorumctl"

P=$(new_project '{"name": "model-loop", "labels": ["pos", "neg"], "sampling": "uncertainty"}')
# 300 tasks; task k (1-based) scored k/1000: task 1 is the least confident.
python3 - "$E2E_DIR/tasks.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for k in range(1, 301):
        f.write(json.dumps({"data": {"text": "review %d" % k}, "external_id": "r%d" % k,
                            "prediction": {"label": "pos", "score": k / 1000}}) + "\n")
PY
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
FIRST=$(sql "SELECT min(id) FROM tasks WHERE project_id = $P")
id_of() { echo $((FIRST + $1 - 1)); } # task k's id

ANN=$(new_annotator ann)
lease_ids() { # N -> the task ids of N new leases of ann, in grant order
    api POST "/v1/projects/$P/leases" "$ANN" "{\"max\": $1}" | cut -d' ' -f2- | jq -r '[.leases[].task_id] | join(" ")'
}
check "before: the least confident first" "$(id_of 1) $(id_of 2) $(id_of 3)" "$(lease_ids 3)"
check "the window holds 40 tasks, the least confident" "40 $(id_of 40)" \
    "$(redis-cli -p "$QR_REDIS_PORT" hlen "{p:$P}:free") $(redis-cli -p "$QR_REDIS_PORT" zrevrange "{p:$P}:ready" 0 0)"

# --- the update: scores reversed, tasks named by id and by external id -------------------------
python3 - "$E2E_DIR/pred.jsonl" "$FIRST" <<'PY'
import json, sys
first = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    for k in range(1, 301):
        line = {"value": "neg", "score": 1 - k / 1000, "model_version": "m2"}
        if k % 2:
            line["task_id"] = first + k - 1
        else:
            line["external_id"] = "r%d" % k
        f.write(json.dumps(line) + "\n")
PY
out=$("$CTL" predictions --project "$P" "$E2E_DIR/pred.jsonl")
check "quorumctl predictions says what it did" "updated 300 predictions (0 auto-accepted, 0 reopened)" "$out"
check "each task holds its new prediction" '{"label": "neg", "score": 0.75, "model_version": "m2"}' \
    "$(sql "SELECT prediction FROM tasks_scored WHERE id = $(id_of 250)")"
check "and its score as its priority" "0.701 0.701" \
    "$(sql "SELECT round(prediction_score::numeric, 3) || ' ' || round(priority::numeric, 3) FROM tasks_scored WHERE id = $(id_of 299)")"
check "appended, not rewritten: the task rows keep their import's prediction" "0.299" \
    "$(sql "SELECT prediction_score FROM tasks WHERE id = $(id_of 299)")"
check "after: the next leases follow the new scores, from outside the window too" \
    "$(id_of 300) $(id_of 299) $(id_of 298)" "$(lease_ids 3)"
check "the window's earlier tasks moved back: task 4 is now scored 0.996" "0.996" \
    "$(redis-cli -p "$QR_REDIS_PORT" zscore "{p:$P}:ready" "$(id_of 4)")"
out=$("$CTL" predictions --project "$P" "$E2E_DIR/pred.jsonl")
check "the same file twice: the same values" "updated 300 predictions (0 auto-accepted, 0 reopened) 300" \
    "$out $(sql "SELECT count(*) FROM tasks_scored WHERE project_id = $P AND prediction->>'model_version' = 'm2' AND priority = prediction_score")"

# --- refusals: nothing changes ------------------------------------------------------------------
state_of_p() { sql "SELECT md5(string_agg(s.id || ' ' || s.prediction::text || ' ' || s.priority || ' ' || t.state, ',' ORDER BY s.id)) || ' ' || (SELECT count(*) FROM task_scores WHERE project_id = $P) FROM tasks_scored s JOIN tasks t ON t.id = s.id WHERE s.project_id = $P"; }
# The prune of the superseded rows runs after the answer: wait for it.
pruned() { # PROJECT -> the rows of project PROJECT in task_scores once no row is superseded (10 s at most)
    local k
    for k in $(seq 100); do
        [ "$(sql "SELECT count(*) FROM task_scores s WHERE s.project_id = $1 AND EXISTS (SELECT 1 FROM task_scores n WHERE n.task_id = s.task_id AND n.update_id > s.update_id)")" = 0 ] && break
        sleep 0.1
    done
    sql "SELECT count(*) FROM task_scores WHERE project_id = $1"
}
check "the superseded rows are deleted after the answer: one row per task" 300 "$(pruned "$P")"
BEFORE=$(state_of_p)
refuse() { # DESCRIPTION STATUS CODE LINE BODY
    local r
    r=$(curl -sS --cacert "$CA" -X PUT -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/x-ndjson' \
        --data-binary "$5" -w ' %{http_code}' "$URL/v1/projects/$P/predictions")
    local status=${r##* } body=${r% *}
    check "$1: $2 $3 line $4" "$2 $3 $4" "$status $(echo "$body" | jq -r '"\(.error.code) \(.error.line // 0)"')"
    echo "#   $(echo "$body" | jq -r .error.message)"
}
OK1="{\"task_id\": $(id_of 1), \"value\": \"pos\", \"score\": 0.5}"
refuse "a task the project does not hold" 422 invalid_prediction 2 "$OK1
{\"task_id\": 999999999, \"value\": \"pos\"}"
refuse "an external id the project does not hold" 422 invalid_prediction 2 "$OK1
{\"external_id\": \"nope\", \"value\": \"pos\"}"
refuse "a task named twice" 422 invalid_prediction 3 "$OK1
{\"task_id\": $(id_of 2)}
{\"external_id\": \"r1\", \"score\": 0.2}"
refuse "a label the project does not have" 422 invalid_prediction 2 "$OK1
{\"task_id\": $(id_of 2), \"value\": \"maybe\"}"
refuse "a score outside [0, 1]" 422 invalid_prediction 1 "{\"task_id\": $(id_of 2), \"score\": 1.5}"
refuse "not JSON" 400 invalid_jsonl 2 "$OK1
{\"task_id\": 1,"
refuse "an unknown key" 400 invalid_jsonl 1 "{\"task_id\": $(id_of 2), \"scroe\": 0.5}"
refuse "no task named" 400 invalid_jsonl 1 '{"value": "pos"}'
refuse "both task_id and external_id" 400 invalid_jsonl 1 "{\"task_id\": $(id_of 2), \"external_id\": \"r2\"}"
refuse "an empty body" 400 bad_request 0 ""
check "after every refusal nothing changed" "$BEFORE" "$(state_of_p)"
rc=0
printf '%s\n{"task_id": 999999999}\n' "$OK1" | "$CTL" predictions --project "$P" - >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl: a refused line exits 1" 1 "$rc"
grepq "line 2: task 999999999 is not a task of project $P; nothing updated" <"$E2E_DIR/err" && pass "and names the line" ||
    fail "stderr: $(cat "$E2E_DIR/err")"
# A broker lost while the body streams: nothing changed, and quorumctl says so.
start_second_broker || fail "a second broker did not start"
rc=0
# After the kill the body goes on for 2 MB: a send fails, not only the read
# of an answer.
( head -100 "$E2E_DIR/pred.jsonl"; sleep 3; yes "$(head -1 "$E2E_DIR/pred.jsonl")" | head -25000 ) |
    QUORUM_URL=$URL2 "$CTL" predictions --project "$P" - >/dev/null 2>"$E2E_DIR/err" & CP=$!
sleep 1.5
kill -9 "$QUORUMD2_PID"
wait "$QUORUMD2_PID" 2>/dev/null || true
QUORUMD2_PID="" # gone: the cleanup has none to stop
wait "$CP" || rc=$?
check "quorumctl: a broker killed mid-body exits 1" 1 "$rc"
grepq "(nothing changed: the file was not all sent)" <"$E2E_DIR/err" && pass "and says nothing changed" ||
    fail "stderr: $(cat "$E2E_DIR/err")"
check "and nothing did" "$BEFORE" "$(state_of_p)"
rc=0
"$CTL" predictions "$E2E_DIR/pred.jsonl" >/dev/null 2>&1 || rc=$?
check "quorumctl: no --project is a usage error" 2 "$rc"
rc=0
"$CTL" predictions --project "$P" --scroe "$E2E_DIR/pred.jsonl" >/dev/null 2>&1 || rc=$?
check "quorumctl: an unknown flag is a usage error" 2 "$rc"
"$CTL" predictions --help | grepq "Usage: quorumctl predictions" && pass "quorumctl predictions --help" || fail "--help"
r=$(curl -sS --cacert "$CA" -X PUT -H "Authorization: Bearer $ANN" --data-binary "$OK1" -w ' %{http_code}' "$URL/v1/projects/$P/predictions")
check "an annotator may not" 403 "${r##* }"

# --- auto-accept follows the new scores -----------------------------------------------------------
r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"auto_accept_confidence": 0.9}')
check "auto-accept on" 200 "${r%% *}"
# ann holds leases on tasks 300, 299, 298 (leased above): task 300 is
# confident now while ann holds it.
HELD=$(api POST "/v1/projects/$P/leases" "$ANN" '{"max": 10}' | cut -d' ' -f2-)
python3 - "$E2E_DIR/conf.jsonl" "$FIRST" <<'PY'
import json, sys
first = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    for k in list(range(10, 20)) + [297]:
        f.write(json.dumps({"task_id": first + k - 1, "value": "pos", "score": 0.95}) + "\n")
PY
check "confident predictions auto-accept open tasks" "updated 11 predictions (11 auto-accepted, 0 reopened)" \
    "$("$CTL" predictions --project "$P" "$E2E_DIR/conf.jsonl")"
check "they are complete without a human" "11" \
    "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P AND auto_accept = 'accepted' AND state = 'complete' AND required = 0 AND auto_accept_saved = 1")"
TOKEN297=$(echo "$HELD" | jq -r --argjson t "$(id_of 297)" '.leases[] | select(.task_id == $t) | .lease')
if [ -n "$TOKEN297" ]; then
    r=$(api POST "/v1/projects/$P/leases/$TOKEN297/submit" "$ANN" '{"label": "neg"}')
    check "a lease held on a task auto-accepted meanwhile: its submit is refused" 409 "${r%% *}"
    check "and the task left the window" "" "$(redis-cli -p "$QR_REDIS_PORT" hget "{p:$P}:free" "$(id_of 297)")"
else
    fail "ann held no lease on task 297: $HELD"
fi
GOT=$(lease_ids 100)
for k in $(seq 10 19) 297; do
    case " $GOT " in *" $(id_of "$k") "*) fail "auto-accepted task $k leased" ;; esac
done
pass "no auto-accepted task is leased again ($(echo "$GOT" | wc -w) leases)"
printf '{"task_id": %s, "value": "pos", "score": 0.4}\n' "$(id_of 10)" >"$E2E_DIR/unsure.jsonl"
check "an unsure prediction reopens an auto-accepted task" "updated 1 predictions (0 auto-accepted, 1 reopened)" \
    "$("$CTL" predictions --project "$P" "$E2E_DIR/unsure.jsonl")"
check "it is open again, needing its annotation" "waiting 1 0" \
    "$(sql "SELECT state || ' ' || required || ' ' || done_count FROM tasks WHERE id = $(id_of 10) AND auto_accept IS NULL")"
ANN2=$(new_annotator ann2)
check "and the next lease is it (score 0.4 is the least confident left)" "$(id_of 10)" \
    "$(api POST "/v1/projects/$P/leases" "$ANN2" '{"max": 1}' | cut -d' ' -f2- | jq -r '.leases[0].task_id')"

# --- appended, never rewritten (sql/0040_task_scores.sql) ----------------------------------------
# A project not sampled by uncertainty: its first update names 40 of its 60
# tasks; no task row gets a new version (same place, same writing
# transaction), the 20 others keep their import priority in task_scores.
Q=$(new_project '{"name": "appended", "labels": ["pos", "neg"]}')
python3 -c '
for k in range(1, 61):
    print("{\"data\": {\"text\": \"row %d\"}, \"prediction\": {\"label\": \"pos\", \"score\": 0.1}}" % k)' |
    "$CTL" import --project "$Q" - >/dev/null
rows() { sql "SELECT md5(string_agg(ctid::text || xmin::text, ',' ORDER BY id)) FROM tasks WHERE project_id = $Q"; }
before=$(rows)
sql "SELECT id FROM tasks WHERE project_id = $Q ORDER BY id LIMIT 40" | jq -c '{task_id: ., value: "neg", score: 0.9}' >"$E2E_DIR/q.jsonl"
out=$("$CTL" predictions --project "$Q" "$E2E_DIR/q.jsonl")
check "a sequential project's 40 tasks updated" "updated 40 predictions (0 auto-accepted, 0 reopened)" "$out"
check "no task row was rewritten" "$before" "$(rows)"
check "40 new predictions, 20 import ones, the import order kept" "40 20 60" \
    "$(sql "SELECT concat_ws(' ', count(*) FILTER (WHERE prediction->>'label' = 'neg'), count(*) FILTER (WHERE prediction->>'label' = 'pos'), count(*) FILTER (WHERE priority = id)) FROM tasks_scored WHERE project_id = $Q")"
check "the project is served from task_scores now, a row for each task" "t 60" \
    "$(sql "SELECT (SELECT CASE WHEN scores_from IS NOT NULL THEN 't' END FROM projects WHERE id = $Q) || ' ' || count(*) FROM task_scores WHERE project_id = $Q")"
# The update's join must not be a hash join in batches (sql/0035): a
# replacement of the function must keep this setting.
check "the update joins its rows in task id order, never by a hash join" "{enable_hashjoin=off,work_mem=256MB}" \
    "$(sql "SELECT proconfig FROM pg_proc WHERE proname = 'quorum_predictions_apply'")"

# --- uncertainty: a first update naming a few tasks, then an import -------------------------------
# 60 tasks scored k/100 (more than the window's 40); the first update names
# 5 of them: the next leases merge their new scores with the import scores
# of the 55 others, which the window's refill reads from task_scores now.
U=$(new_project '{"name": "partial", "labels": ["pos", "neg"], "sampling": "uncertainty"}')
python3 -c '
for k in range(1, 61):
    print("{\"data\": {\"text\": \"u%d\"}, \"external_id\": \"u%d\", \"prediction\": {\"label\": \"pos\", \"score\": %s}}" % (k, k, k / 100))' |
    "$CTL" import --project "$U" - >/dev/null
UF=$(sql "SELECT min(id) FROM tasks WHERE project_id = $U")
uid() { echo $((UF + $1 - 1)); }
# u1..u5 now scored 0.5, 0.035, 0.9, 0.015, 0.055
printf '%s\n' '{"external_id": "u1", "score": 0.5}' '{"external_id": "u2", "score": 0.035}' \
    '{"external_id": "u3", "score": 0.9}' '{"external_id": "u4", "score": 0.015}' '{"external_id": "u5", "score": 0.055}' |
    "$CTL" predictions --project "$U" - >/dev/null
UA=$(new_annotator uann)
ulease() { api POST "/v1/projects/$U/leases" "$UA" "{\"max\": $1}" | cut -d' ' -f2- | jq -r '[.leases[].task_id] | join(" ")'; }
check "the first leases merge the new scores (u4 .015, u2 .035) with the import's (u6 .06)" \
    "$(uid 4) $(uid 2) $(uid 5) $(uid 6) $(uid 7)" "$(ulease 5)"
# An import after the first update: its tasks get their rows too, and its
# least confident task is next.
printf '%s\n' '{"data": {"text": "late"}, "prediction": {"label": "pos", "score": 0.001}}' |
    "$CTL" import --project "$U" - >/dev/null
LATE=$(sql "SELECT id FROM tasks WHERE project_id = $U AND data->>'text' = 'late'")
check "a task imported after the update has its row" 1 "$(sql "SELECT count(*) FROM task_scores WHERE task_id = $LATE")"
# A row the prune has not deleted yet (the broker stopped first): u60's
# import row again, as an older update that put it first of all. The walk
# must step over it, u60's newest row (0.6) being the one that counts.
sql "INSERT INTO task_scores (project_id, task_id, update_id, priority) VALUES ($U, $(uid 60), 0, -5)" >/dev/null
# The import reopens the window; its next refill (below 10 of 40) walks
# task_scores from the start again and takes the late task in.
ulease 30 >/dev/null
for k in $(seq 50); do
    [ -n "$(redis-cli -p "$QR_REDIS_PORT" zscore "{p:$U}:ready" "$LATE")" ] && break
    sleep 0.1
done
check "the window's next refill takes it in, and it is leased next" "$LATE" "$(ulease 1)"
check "a superseded row is stepped over: u60 came in at 0.60, its newest row, not at -5" "0.60" \
    "$(printf '%.2f' "$(redis-cli -p "$QR_REDIS_PORT" zscore "{p:$U}:ready" "$(uid 60)")")"
check "deleting the project deletes its task_scores rows" "0" \
    "$(sql "DELETE FROM projects WHERE id = $U"; sql "SELECT count(*) FROM task_scores WHERE project_id = $U")"

# --- a schema project: a labels object ------------------------------------------------------------
S=$(new_project '{"name": "schema", "schema": {"fields": [{"name": "sentiment", "type": "choice", "choices": ["pos", "neg"]}, {"name": "topics", "type": "multi_choice", "choices": ["price", "delivery"]}]}}')
echo '{"text": "a"}' | "$CTL" import --project "$S" - >/dev/null
ST=$(sql "SELECT id FROM tasks WHERE project_id = $S")
r=$(curl -sS --cacert "$CA" -X PUT -H "Authorization: Bearer $ADMIN_TOKEN" \
    --data-binary "{\"task_id\": $ST, \"value\": {\"topics\": [\"delivery\", \"price\"], \"sentiment\": \"neg\"}, \"score\": 0.8}" \
    -w ' %{http_code}' "$URL/v1/projects/$S/predictions")
check "schema project: 200" 200 "${r##* }"
check "the labels object stored canonical (choices in the schema's order)" '{"score": 0.8, "labels": {"topics": ["price", "delivery"], "sentiment": "neg"}}' \
    "$(sql "SELECT prediction FROM tasks_scored WHERE id = $ST")"
r=$(curl -sS --cacert "$CA" -X PUT -H "Authorization: Bearer $ADMIN_TOKEN" \
    --data-binary "{\"task_id\": $ST, \"value\": {\"sentiment\": \"meh\"}}" -w ' %{http_code}' "$URL/v1/projects/$S/predictions")
check "schema project: a value against the schema is 422" 422 "${r##* }"

finish
