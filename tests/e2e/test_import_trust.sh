#!/usr/bin/env bash
# Imports a user can trust (issue 13, point 6):
#   - every import is recorded (id, file name, rows, time, who) and listed by
#     `quorumctl import list`, to the project's organization only;
#   - the same file twice, or tasks whose external_id the project holds, is
#     409 duplicate_import with a count and changes nothing, unless
#     --allow-duplicates; an external_id twice in one file is 400;
#   - Ctrl-C during `quorumctl import` prints one line saying whether the
#     import was committed, and PostgreSQL agrees: before the whole body was
#     sent (a FIFO the test holds open) nothing is, and the broker keeps no
#     task and no import row of the cut upload; after it was sent (the
#     broker held on a lock the test takes on the imports table) the answer
#     is awaited and the import is there.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
code() { echo "${1%% *} $(echo "${1#* }" | jq -r '.error.code // empty')"; }
tasks() { sql "SELECT count(*) FROM tasks WHERE project_id = $1"; }
imports() { sql "SELECT count(*) FROM imports WHERE project_id = $1"; }
# import_raw PROJECT FILE [QUERY] -> "STATUS BODY" of a raw POST of FILE
import_raw() {
    local resp; resp=$(mktemp "$E2E_DIR/resp.XXXXXX")
    local status
    status=$(curl -sS --cacert "$CA" -o "$resp" -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" \
        -H 'Content-Type: application/x-ndjson' --data-binary @"$2" "$URL/v1/projects/$1/tasks${3-}")
    printf '%s %s' "$status" "$(cat "$resp")"
    rm -f "$resp"
}

P=$("$CTL" project create --name trust --labels a,b)

# --- duplicates ---------------------------------------------------------------------------
seq 1 5 | sed 's/.*/{"text":"t&"}/' >"$E2E_DIR/tasks.jsonl"
out=$("$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl")
I1=$(echo "$out" | sed -n 's/.* as import \([0-9]*\)$/\1/p')
check "the first import is imported and named" "imported 5 tasks as import $I1" "${out%% (*} as import $I1"
[ -n "$I1" ] && pass "the answer names the import id ($out)" || fail "the answer names the import id ($out)"

rc=0
err=$("$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" 2>&1 >/dev/null) || rc=$?
check "the same file again: quorumctl exits 1" 1 "$rc"
case "$err" in
*duplicate*"imported into project $P already (import $I1)"*) pass "its one line says so: $err" ;;
*) fail "its one line says so: $err" ;;
esac
check "nothing imported" 5 "$(tasks "$P")"
check "no import recorded" 1 "$(imports "$P")"
cp "$E2E_DIR/tasks.jsonl" "$E2E_DIR/renamed.jsonl"
r=$(import_raw "$P" "$E2E_DIR/renamed.jsonl")
check "under another name, the same bytes: 409 duplicate_import" "409 duplicate_import" "$(code "$r")"
check "with the count of duplicate tasks and the earlier import" "5 $I1" \
    "$(echo "${r#* }" | jq -r '"\(.error.duplicates) \(.error.import_id)"')"

out=$("$CTL" import --project "$P" --allow-duplicates "$E2E_DIR/tasks.jsonl")
check "--allow-duplicates imports it again" "imported 5 tasks" "${out%% (*}"
check "10 tasks now" 10 "$(tasks "$P")"

printf '%s\n' '{"data":{"text":"x1"},"external_id":"a1"}' '{"text":"x2","external_id":"a2"}' \
    '{"text":"x3","external_id":3}' >"$E2E_DIR/ext1.jsonl"
out=$("$CTL" import --project "$P" "$E2E_DIR/ext1.jsonl")
I3=$(echo "$out" | sed -n 's/.* as import \([0-9]*\)$/\1/p')
check "tasks with external ids are imported" "imported 3 tasks" "${out%% (*}"
check "the external ids are stored; the data keeps the rest of the row" \
    'a1 {"text": "x1"}|a2 {"text": "x2"}|3 {"text": "x3"}' \
    "$(sql "SELECT string_agg(external_id || ' ' || data::text, '|' ORDER BY id) FROM tasks WHERE project_id = $P AND external_id IS NOT NULL")"
printf '%s\n' '{"text":"y1","external_id":"a2"}' '{"text":"y2","external_id":"a4"}' \
    '{"text":"y3","external_id":"3"}' >"$E2E_DIR/ext2.jsonl"
before=$(tasks "$P")
r=$(import_raw "$P" "$E2E_DIR/ext2.jsonl")
check "external ids the project holds: 409 duplicate_import, 2 duplicates of import $I3" \
    "409 duplicate_import 2 $I3" \
    "$(code "$r") $(echo "${r#* }" | jq -r '"\(.error.duplicates) \(.error.import_id)"')"
check "nothing imported" "$before" "$(tasks "$P")"
out=$("$CTL" import --project "$P" --allow-duplicates "$E2E_DIR/ext2.jsonl")
check "--allow-duplicates imports them, without the taken ids" \
    "imported 3 tasks; 2 external ids the project held already were left out" \
    "$(echo "$out" | sed 's/ (ids [0-9.]*) as import [0-9]*//')"
check "a4 is new; a2 and 3 still name one task each" "3:1 a2:1 a4:1" \
    "$(sql "SELECT string_agg(external_id || ':' || n, ' ' ORDER BY external_id COLLATE \"C\") FROM (SELECT external_id, count(*) AS n FROM tasks WHERE project_id = $P AND external_id IN ('a2', 'a4', '3') GROUP BY 1) x")"

printf '%s\n' '{"text":"z1","external_id":"a9"}' '{"text":"z2"}' '{"text":"z3","external_id":"a9"}' >"$E2E_DIR/twice.jsonl"
before=$(tasks "$P")
r=$(import_raw "$P" "$E2E_DIR/twice.jsonl")
check "one external id twice in a file: 400 naming both lines" \
    '400 invalid_jsonl line 3: external_id "a9" is also on line 1; each task'"'"'s external_id must be unique' \
    "$(code "$r") $(echo "${r#* }" | jq -r .error.message)"
check "nothing imported" "$before" "$(tasks "$P")"
printf 'external_id,text\nc1,hello\nc2,world\n' >"$E2E_DIR/ext.csv"
"$CTL" import --project "$P" "$E2E_DIR/ext.csv" >/dev/null
check "CSV: the external_id column is the task's, not data" '{"text": "hello"}' \
    "$(sql "SELECT data::text FROM tasks WHERE project_id = $P AND external_id = 'c1'")"
r=$(import_raw "$P" "$E2E_DIR/tasks.jsonl" '?import_key=bad%20key')
check "a bad import key: 400" "400 bad_request" "$(code "$r")"

# --- the list, and who may see it -----------------------------------------------------------
list=$("$CTL" import list --project "$P")
echo "$list"
check "the list: a header and one line per import" 6 "$(echo "$list" | wc -l)"
check "its newest line: id, file, rows, who" "ext.csv 2 admin" \
    "$(echo "$list" | sed -n 2p | awk '{print $2, $3, $6}')"
check "the first import is listed with its file name and rows" "$I1 tasks.jsonl 5" \
    "$(echo "$list" | awk -v id="$I1" '$1 == id {print $1, $2, $3}')"
json=$("$CTL" import list --project "$P" --json)
check "--json: the fields of each import" "created_at,file_name,first_task_id,id,import_key,last_task_id,rows,sha256,user,user_id" \
    "$(echo "$json" | jq -r '.imports[0] | keys | join(",")')"
check "--json: the SHA-256 of the file's bytes" "$(sha256sum "$E2E_DIR/tasks.jsonl" | cut -d' ' -f1)" \
    "$(echo "$json" | jq -r ".imports[] | select(.id == $I1) | .sha256")"
r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"other","kind":"vendor"}')
OTHER=$(echo "${r#* }" | jq .id)
r=$(api POST /v1/tokens "$ADMIN_TOKEN" "{\"user\":\"boss\",\"role\":\"admin\",\"organization\":\"other\"}")
OTHER_ADMIN=$(echo "${r#* }" | jq -r .token)
r=$(api GET "/v1/projects/$P/imports" "$OTHER_ADMIN")
check "another organization's admin may not list them (as for every project route)" \
    "403 forbidden no access to project $P" "$(code "$r") $(echo "${r#* }" | jq -r .error.message)"
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"ann","role":"annotator"}')
r=$(api GET "/v1/projects/$P/imports" "$(echo "${r#* }" | jq -r .token)")
check "an annotator may not list them" "403 forbidden" "$(code "$r")"
[ -n "$OTHER" ] || fail "the other organization was made"

# --- Ctrl-C before the whole body was sent ----------------------------------------------------
P2=$("$CTL" project create --name cut --labels a,b)
mkfifo "$E2E_DIR/cut.jsonl"
"$CTL" import --project "$P2" "$E2E_DIR/cut.jsonl" >"$E2E_DIR/cut.out" 2>"$E2E_DIR/cut.err" &
pid=$!
exec 3>"$E2E_DIR/cut.jsonl"
seq 1 20000 | sed 's/.*/{"text":"cut &"}/' >&3
sleep 1 # quorumctl has sent what it read, and waits for more
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
exec 3>&-
check "interrupted mid-body: exit 130" 130 "$rc"
check "one line: NOT committed" "quorumctl: interrupted: the import was NOT committed (nothing imported)" \
    "$(cat "$E2E_DIR/cut.err")"
check "nothing on stdout" "" "$(cat "$E2E_DIR/cut.out")"
sleep 0.5
check "PostgreSQL: no task" 0 "$(tasks "$P2")"
check "PostgreSQL: no import row" 0 "$(imports "$P2")"
check "the broker still serves" 200 "$(api GET "/v1/projects/$P2/imports" | cut -d' ' -f1)"

# --- Ctrl-C after the whole body was sent ------------------------------------------------------
# A session of the test's holds the imports table: the broker's import
# transaction waits on it with the body received. Ctrl-C then; the lock is
# let go; quorumctl, waiting for the answer, reports the commit.
seq 1 3 | sed 's/.*/{"text":"held &"}/' >"$E2E_DIR/held.jsonl"
PGAPPNAME=import-lock psql "$E2E_PG" -qc "BEGIN; LOCK TABLE imports IN EXCLUSIVE MODE; SELECT pg_sleep(120)" \
    >/dev/null 2>&1 &
lock_pid=$!
HELPER_PIDS+=("$lock_pid")
for _ in $(seq 1 100); do
    [ "$(sql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = 'import-lock' AND l.granted AND l.relation = 'imports'::regclass")" = 1 ] && break
    sleep 0.1
done
"$CTL" import --project "$P2" "$E2E_DIR/held.jsonl" >"$E2E_DIR/held.out" 2>"$E2E_DIR/held.err" &
pid=$!
waiting=0
for _ in $(seq 1 100); do
    waiting=$(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%quorum_import_begin%'")
    [ "$waiting" = 1 ] && break
    sleep 0.1
done
check "the broker's import waits on the lock, body received" 1 "$waiting"
kill -INT "$pid"
sleep 1
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'import-lock'" >/dev/null
rc=0
wait "$pid" || rc=$?
I=$(sql "SELECT id FROM imports WHERE project_id = $P2")
check "interrupted after the body: exit 130" 130 "$rc"
check "one line, after the waiting notice: WAS committed, as the import PostgreSQL holds" \
    "quorumctl: interrupted: the import WAS committed as import $I (3 tasks)" \
    "$(tail -n 1 "$E2E_DIR/held.err")"
check "PostgreSQL: the 3 tasks" 3 "$(tasks "$P2")"

# --- a large file, Ctrl-C early: whatever the timing, the line agrees with PostgreSQL ----------
# (300,000 tasks: under the broker's default parse budget of 64 MiB, which a
# whole-body import of 400,000 of them passes now that a task keeps more.)
P3=$("$CTL" project create --name large --labels a,b)
seq 1 300000 | sed 's/.*/{"text":"large &"}/' >"$E2E_DIR/large.jsonl"
"$CTL" import --project "$P3" "$E2E_DIR/large.jsonl" >/dev/null 2>"$E2E_DIR/large.err" &
pid=$!
for _ in $(seq 1 100); do # until quorumctl holds its connection to the broker
    ls -l "/proc/$pid/fd" 2>/dev/null | grepq 'socket:' && break
    sleep 0.02
done
sleep 0.05
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
line=$(tail -n 1 "$E2E_DIR/large.err")
echo "# large file, Ctrl-C 0.05 s after connecting: exit $rc, $line"
case "$line" in
*"NOT committed (nothing imported)") check "not committed: PostgreSQL holds nothing" "0 0" "$(tasks "$P3") $(imports "$P3")" ;;
*"WAS committed as import "*" (300000 tasks)") check "committed: PostgreSQL holds it all" "300000 1" "$(tasks "$P3") $(imports "$P3")" ;;
"") check "Ctrl-C came after the answer: imported" "300000 1" "$(tasks "$P3") $(imports "$P3")" ;;
*) fail "an unexpected line: $line" ;;
esac

# --- the broker lost while the body streams -----------------------------------------------------
# Nothing is imported, and quorumctl says so; after the kill the body goes
# on for 2 MB, so a send fails, not only the read of an answer.
P4=$("$CTL" project create --name lost --labels a,b)
start_second_broker || fail "a second broker did not start"
rc=0
( seq 1 100 | sed 's/.*/{"text":"lost &"}/'; sleep 3; yes '{"text":"lost"}' | head -130000 ) |
    QUORUM_URL=$URL2 "$CTL" import --project "$P4" --format jsonl - >/dev/null 2>"$E2E_DIR/lost.err" & CP=$!
sleep 1.5
kill -9 "$QUORUMD2_PID"
wait "$QUORUMD2_PID" 2>/dev/null || true
QUORUMD2_PID="" # gone: the cleanup has none to stop
wait "$CP" || rc=$?
check "a broker killed mid-body: quorumctl exits 1" 1 "$rc"
grepq "(nothing imported: the file was not all sent)" <"$E2E_DIR/lost.err" && pass "and says nothing was imported" ||
    fail "stderr: $(cat "$E2E_DIR/lost.err")"
check "and PostgreSQL holds nothing of it" "0 0" "$(tasks "$P4") $(imports "$P4")"

finish
