#!/usr/bin/env bash
# GET /v1/projects/{id}/export and `quorumctl export`: formats jsonl, csv
# and ls, kinds annotations and consensus, streamed (chunked) with the next
# cursor in X-Quorum-Cursor (and on quorumctl's stderr); increments after a
# cursor, interleaved with labeling, return every annotation exactly once and
# each undo as an event; a cursor-less export misses nothing committed
# late; the consensus equals `quorumctl agreement --per-item` on the same
# annotations; bad parameters get a 422 and change nothing.
. "$(dirname "$0")/lib.sh"

# The sanitizer's quarantine would otherwise hold 256 MiB of freed pages,
# hiding whether the export streams.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
start_broker
CTL="$QR_BIN_DIR/quorumctl"
P=$(new_project '{"name":"export","labels":["pos","neg","neu"],"annotations_per_task":3}')
# 12 tasks, each with an external id; two with a gold answer.
for i in $(seq 1 12); do
    g=""
    [ "$i" = 1 ] && g=',"gold":"pos"'
    [ "$i" = 2 ] && g=',"gold":"neg"'
    printf '{"external_id":"src-%d","data":{"text":"t%d","n":%d}%s}\n' "$i" "$i" "$i" "$g"
done >"$E2E_DIR/tasks.jsonl"
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
A=$(new_annotator ann_a)
B=$(new_annotator ann_b)
C=$(new_annotator ann_c)
new_annotator ann_late >/dev/null # writes the late row by hand below

# label TOKEN N LABEL...: leases N tasks and submits them with the labels
# given in turn; prints the annotation ids.
label() {
    local tok=$1 n=$2
    shift 2
    local labels=("$@") r k=0 lease
    r=$(api POST "/v1/projects/$P/leases" "$tok" "{\"max\":$n}")
    for lease in $(echo "${r#* }" | jq -r '.leases[].lease'); do
        local l=${labels[$((k % ${#labels[@]}))]}
        k=$((k + 1))
        r=$(api POST "/v1/projects/$P/leases/$lease/submit" "$tok" "{\"label\":\"$l\",\"active_ms\":1500}")
        echo "${r#* }" | jq -r .annotation_id
    done
}

# export ARGS... -> body in $E2E_DIR/body, cursor in $CUR, status in $ST
export_api() {
    local q=$1
    ST=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -D "$E2E_DIR/head" \
        -o "$E2E_DIR/body" -w '%{http_code}' "$URL/v1/projects/$P/export?$q")
    CUR=$(tr -d '\r' <"$E2E_DIR/head" | sed -n 's/^[Xx]-[Qq]uorum-[Cc]ursor: //p')
}

# --- an empty project: a cursor, and an empty body of each shape ---------------
export_api "format=jsonl"
check "an export of no annotations: 200" 200 "$ST"
check "and its body is empty" 0 "$(wc -c <"$E2E_DIR/body")"
case "$CUR" in [0-9]*:[0-9]*:*) pass "the cursor is in X-Quorum-Cursor ($CUR)" ;; *) fail "no cursor: '$CUR'" ;; esac
grep -qi '^transfer-encoding: chunked' "$E2E_DIR/head" && pass "the answer is chunked" || fail "not chunked: $(cat "$E2E_DIR/head")"
CUR0=$CUR
export_api "format=ls"
check "Label Studio format of no tasks with annotations: an array of 12 tasks" 12 "$(jq length "$E2E_DIR/body")"

# --- round 1 of labeling, export 1 --------------------------------------------------
label "$A" 5 pos neg >"$E2E_DIR/ids1"
label "$B" 5 pos >>"$E2E_DIR/ids1"
export_api "format=jsonl&since=$CUR0"
check "export 1 (since the empty one): 10 annotations" 10 "$(wc -l <"$E2E_DIR/body")"
check "task_id is an integer, external_id the source's" "number src-" \
    "$(head -1 "$E2E_DIR/body" | jq -r '(.task_id|type) + " " + (.external_id|.[0:4])')"
check "each row carries annotator, label, lead_time (s), created_at, event" \
    "annotation ann_a 1.5 true" \
    "$(head -1 "$E2E_DIR/body" | jq -r '[.event, .annotator, .lead_time, (.created_at|test("Z$"))]|join(" ")')"
cat "$E2E_DIR/body" >"$E2E_DIR/all.jsonl"
CUR1=$CUR

# --- round 2, with an undo of an annotation export 1 returned ----------------
label "$C" 6 neu pos >"$E2E_DIR/ids2"
label "$A" 3 neg >>"$E2E_DIR/ids2"
UNDONE=$(head -1 "$E2E_DIR/ids1")
r=$(api POST "/v1/projects/$P/annotations/$UNDONE/undo" "$B")
check "an undo of another annotator's annotation: 409, no undo event" 409 "${r%% *}"
r=$(api POST "/v1/projects/$P/annotations/$UNDONE/undo" "$A")
check "an undo of an exported annotation" 200 "${r%% *}"
NEWLEASE=$(echo "${r#* }" | jq -r .lease.lease)
r=$(api POST "/v1/projects/$P/leases/$NEWLEASE/submit" "$A" '{"label":"neu"}')
echo "${r#* }" | jq -r .annotation_id >>"$E2E_DIR/ids2"
# and an annotation made and undone within this window: in no export at all
X=$(label "$B" 1 neg)
r=$(api POST "/v1/projects/$P/annotations/$X/undo" "$B")
check "an undo within one window" 200 "${r%% *}"
api POST "/v1/projects/$P/leases/$(echo "${r#* }" | jq -r .lease.lease)/release" "$B" >/dev/null

out=$("$CTL" export --project "$P" --format jsonl --since "$CUR1" 2>"$E2E_DIR/err2")
CUR2=$(sed -n 's/^X-Quorum-Cursor: //p' "$E2E_DIR/err2")
[ -n "$CUR2" ] && pass "quorumctl export prints the cursor on stderr ($CUR2)" || fail "no cursor on stderr: $(cat "$E2E_DIR/err2")"
printf '%s\n' "$out" | grep '"event":"annotation"' >>"$E2E_DIR/all.jsonl"
check "export 2 (quorumctl --since): the undo of export 1's annotation, once" "$UNDONE" \
    "$(printf '%s\n' "$out" | jq -r 'select(.event == "undo") | .annotation_id' | paste -sd,)"
check "export 2: the 10 new annotations (not the one undone within the window)" 10 \
    "$(printf '%s\n' "$out" | jq -r 'select(.event == "annotation") | .annotation_id' | wc -l)"

# --- round 3: the rest; a transaction that takes an id before an export and
# commits after it is not missed by the next one -------------------------------
label "$B" 7 neg neu >"$E2E_DIR/ids3"
# A late commit: a row inserted (id taken) in a transaction left open while
# an export takes its snapshot, committed after it.
TASK=$(sql "SELECT id FROM tasks WHERE project_id = $P AND state <> 'complete' ORDER BY id LIMIT 1")
CUSER=$(sql "SELECT id FROM users WHERE name = 'ann_late'")
mkfifo "$E2E_DIR/late"
psql "$E2E_PG" -Atq <"$E2E_DIR/late" >"$E2E_DIR/late.out" 2>&1 &
LATE_PID=$!
exec 7>"$E2E_DIR/late"
echo "BEGIN; INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token) VALUES ($TASK, $P, $CUSER, 'pos', 999999) RETURNING id;" >&7
LATE=$(wait_sql 1 "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' AND datname = '$E2E_DB'")
check "a transaction holds an uncommitted annotation" 1 "$LATE"
label "$C" 2 pos >>"$E2E_DIR/ids3" # committed after the late row took its id
export_api "format=jsonl&since=$CUR2"
CUR3=$CUR
grep '"event":"annotation"' "$E2E_DIR/body" >>"$E2E_DIR/all.jsonl"
check "export 3: no undo" 0 "$(grep -c '"event":"undo"' "$E2E_DIR/body" || true)"
echo "COMMIT;" >&7
exec 7>&-
wait "$LATE_PID"
LATE_ID=$(head -1 "$E2E_DIR/late.out")
echo "$LATE_ID" >>"$E2E_DIR/ids3"
export_api "format=jsonl&since=$CUR3"
check "export 4: the annotation committed after export 3 began, though its id is older" "$LATE_ID" \
    "$(jq -r .annotation_id "$E2E_DIR/body" | paste -sd,)"
cat "$E2E_DIR/body" >>"$E2E_DIR/all.jsonl"
CUR4=$CUR

# every annotation now stored, exactly once across the exports
jq -r .annotation_id "$E2E_DIR/all.jsonl" | sort -n >"$E2E_DIR/got"
sql "SELECT id FROM annotations WHERE project_id = $P ORDER BY id" >"$E2E_DIR/want"
check "exports 1-4 returned every annotation ($(wc -l <"$E2E_DIR/want") stored + 1 undone) exactly once" \
    "$( (cat "$E2E_DIR/want"; echo "$UNDONE") | sort -n | paste -sd,)" "$(paste -sd, "$E2E_DIR/got")"
check "no annotation twice" "" "$(uniq -d "$E2E_DIR/got")"
export_api "format=jsonl&since=$CUR4"
check "an export with nothing new: empty" 0 "$(wc -c <"$E2E_DIR/body")"
check "and its cursor is usable again" 200 "$ST"

# --- a full export: the current annotations, no undo ---------------------------
export_api "format=jsonl"
check "a full export: every stored annotation, in id order" "$(paste -sd, "$E2E_DIR/want")" \
    "$(jq -r .annotation_id "$E2E_DIR/body" | paste -sd,)"
export_api "format=csv"
check "CSV header" "task_id,annotator,label,created_at,annotator_id,organization,external_id,lead_time,annotation_id,event" \
    "$(head -1 "$E2E_DIR/body" | tr -d '\r')"
check "CSV rows: one per annotation" "$(wc -l <"$E2E_DIR/want")" "$(($(wc -l <"$E2E_DIR/body") - 1))"
cp "$E2E_DIR/body" "$E2E_DIR/full.csv"

# --- consensus against quorumctl agreement --per-item ---------------------------
"$CTL" export --project "$P" --format csv >"$E2E_DIR/full.csv" 2>/dev/null
"$CTL" export --project "$P" --kind consensus --format jsonl >"$E2E_DIR/cons.jsonl" 2>/dev/null
check "consensus: one row per task" 12 "$(wc -l <"$E2E_DIR/cons.jsonl")"
"$CTL" agreement "$E2E_DIR/full.csv" --json --per-item >"$E2E_DIR/agr.json"
want=$(jq -r '.per_item[] | select(.judgements >= 2) | "\(.item) \(.majority_label)"' "$E2E_DIR/agr.json" | sort)
got=$(jq -r 'select(.annotators >= 2) | "\(.task_id) \(.consensus)"' "$E2E_DIR/cons.jsonl" | sort)
check "consensus = agreement --per-item's majority for every task with 2+ annotations ($(echo "$want" | wc -l) tasks)" "$want" "$got"
ties=$(echo "$got" | grep -c ' null$' || true)
[ "$ties" -ge 1 ] && pass "ties among them give null ($ties)" || echo "# no tie in this run"
one=$(jq -r 'select(.annotators == 1) | .consensus' "$E2E_DIR/cons.jsonl" | sort -u | paste -sd,)
[ -z "$one" ] || check "a task with 1 of 3 annotations: consensus null (too few)" "null" "$one"
row=$(jq -c 'select(.external_id == "src-1")' "$E2E_DIR/cons.jsonl")
check "a consensus row: task_id (integer), external_id, support, annotators, gold, data" \
    "number src-1 pos t1 true" \
    "$(echo "$row" | jq -r '[(.task_id|type), .external_id, .gold, .data.text, (.support == null or (.support > 0 and .support <= 1))]|join(" ")')"
"$CTL" export --project "$P" --kind consensus --format csv >"$E2E_DIR/cons.csv" 2>/dev/null
check "consensus CSV header" "task_id,external_id,consensus,support,annotators,gold,data" \
    "$(head -1 "$E2E_DIR/cons.csv" | tr -d '\r')"
out=$("$CTL" export --project "$P" --kind consensus --format jsonl --since "$CUR3" 2>/dev/null)
check "an increment of consensus: the tasks changed since (the late row's task)" "$TASK" \
    "$(printf '%s\n' "$out" | jq -r .task_id | paste -sd,)"

# --- consensus rules on hand-made annotations: a tie, too few, one of one ----------
P3=$(new_project '{"name":"rules","labels":["x","y"],"annotations_per_task":2}')
sql "INSERT INTO tasks (project_id, data, required, external_id)
     SELECT $P3, jsonb_build_object('k', i), CASE WHEN i = 4 THEN 1 ELSE 2 END, 'r' || i FROM generate_series(1, 5) i" >/dev/null
U1=$(sql "SELECT id FROM users WHERE name = 'ann_a'")
U2=$(sql "SELECT id FROM users WHERE name = 'ann_b'")
# r1: x,y (a tie); r2: x,x; r3: y alone of 2 (too few); r4: y alone of 1; r5: none
sql "INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token)
     SELECT t.id, $P3, v.u, v.l, 1000 + row_number() OVER () FROM tasks t JOIN (VALUES
       ('r1', $U1, 'x'), ('r1', $U2, 'y'), ('r2', $U1, 'x'), ('r2', $U2, 'x'),
       ('r3', $U1, 'y'), ('r4', $U2, 'y')) v(e, u, l) ON v.e = t.external_id
     WHERE t.project_id = $P3" >/dev/null
got=$("$CTL" export --project "$P3" --kind consensus --format jsonl 2>/dev/null |
    jq -r '"\(.external_id):\(.consensus):\(.support):\(.annotators)"' | paste -sd' ')
check "consensus: a tie null, 2 of 2 with support 1, too few null, 1 of 1, none" \
    "r1:null:null:2 r2:x:1:2 r3:null:null:1 r4:y:1:1 r5:null:null:0" "$got"
"$CTL" export --project "$P3" --format csv 2>/dev/null | "$CTL" agreement - --json --per-item >"$E2E_DIR/agr3.json"
check "agreement --per-item agrees on the tie and the majority" "null x" \
    "$(jq -r '[.per_item[] | select(.judgements == 2) | .majority_label] | map(tostring) | join(" ")' "$E2E_DIR/agr3.json")"

# --- Label Studio format -------------------------------------------------------
export_api "format=ls"
check "ls: a JSON array of the 12 tasks" 12 "$(jq length "$E2E_DIR/body")"
t1=$(jq -c '.[] | select(.meta.external_id == "src-1")' "$E2E_DIR/body")
check "ls task: id, data, meta.external_id, predictions" "number t1 src-1 array" \
    "$(echo "$t1" | jq -r '[(.id|type), .data.text, .meta.external_id, (.predictions|type)]|join(" ")')"
a1=$(echo "$t1" | jq -c '.annotations[0]')
check "ls annotation: result in Label Studio's choices shape" '"choices"' \
    "$(echo "$a1" | jq -c '.result[0].type')"
check "ls annotation: from_name, to_name, value.choices" "label text 1" \
    "$(echo "$a1" | jq -r '[.result[0].from_name, .result[0].to_name, (.result[0].value.choices|length)]|join(" ")')"
check "ls annotation: completed_by, lead_time (s), was_cancelled, ground_truth" "number 1.5 false true" \
    "$(echo "$a1" | jq -r '[(.completed_by|type), .lead_time, .was_cancelled, (.ground_truth == (.result[0].value.choices[0] == "pos"))]|join(" ")')"
check "ls annotations total = stored annotations" "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")" \
    "$(jq '[.[].annotations[]] | length' "$E2E_DIR/body")"

# predictions and imported annotations (sql/0018_data_io.sql) come back whole;
# an imported annotation mirrored into annotations (counted toward overlap)
# is listed once, and the project's from_name/to_name are the imported ones
T2=$(sql "SELECT id FROM tasks WHERE project_id = $P AND external_id = 'src-2'")
IMPU=$(sql "SELECT annotator_id FROM annotations WHERE task_id = $T2 ORDER BY id LIMIT 1")
sql "UPDATE tasks SET predictions = '[{\"model_version\": \"m1\", \"score\": 0.8, \"result\": [{\"from_name\": \"sentiment\", \"to_name\": \"text\", \"type\": \"choices\", \"value\": {\"choices\": [\"neg\"]}}]}]' WHERE id = $T2;
     INSERT INTO imported_annotations (project_id, task_id, annotator_id, label, result, lead_time, ground_truth, source_id)
     VALUES ($P, $T2, $IMPU, 'neg', '[{\"from_name\": \"sentiment\", \"to_name\": \"text\", \"type\": \"choices\", \"value\": {\"choices\": [\"neg\"]}}]', 4.5, true, '77')" >/dev/null
export_api "format=ls"
t2=$(jq -c '.[] | select(.meta.external_id == "src-2")' "$E2E_DIR/body")
check "ls: the task's predictions whole" "m1 0.8 neg" \
    "$(echo "$t2" | jq -r '.predictions[0] | [.model_version, .score, .result[0].value.choices[0]] | join(" ")')"
check "ls: the imported annotation first, as imported (id 77, lead_time, ground_truth)" "77 4.5 true sentiment" \
    "$(echo "$t2" | jq -r '.annotations[0] | [.id, .lead_time, .ground_truth, .result[0].from_name] | join(" ")')"
check "ls: its mirror in annotations is not listed again" \
    "$(($(sql "SELECT count(*) FROM annotations WHERE task_id = $T2") - 1 + 1))" "$(echo "$t2" | jq '.annotations | length')"
check "ls: the broker's annotations take the imported from_name/to_name" "sentiment text" \
    "$(echo "$t2" | jq -r '.annotations[1].result[0] | [.from_name, .to_name] | join(" ")')"

# --- bad parameters: 422, nothing changes -------------------------------------
before=$(sql "SELECT count(*) FROM annotations")
for q in "format=xml" "kind=votes" "format=ls&kind=consensus" "since=abc" "since=1:2" "since=1:2:3,,4" \
    "since=99999999:99999999:" "since=5:3:" "since=99999999999999999999999:99999999999999999999999:"; do
    export_api "$q"
    check "?$q: 422 invalid" "422 invalid" "$ST $(jq -r .error.code "$E2E_DIR/body")"
done
check "  (message names the parameter)" "since must be a cursor an earlier export printed (its X-Quorum-Cursor, e.g. 1042:1050:1044)" \
    "$(export_api "since=abc"; jq -r .error.message "$E2E_DIR/body")"
check "nothing changed" "$before" "$(sql "SELECT count(*) FROM annotations")"
rc=0
"$CTL" export --project "$P" --kind votes >/dev/null 2>&1 || rc=$?
check "quorumctl export --kind votes: usage error" 2 "$rc"
rc=0
"$CTL" export --project "$P" --since abc >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl export --since abc: error, exit 1" 1 "$rc"
grep -q "422 invalid: since must be a cursor" "$E2E_DIR/err" && pass "and says why" || fail "no reason: $(cat "$E2E_DIR/err")"

# --- streamed: a large export, read slowly, in bounded memory -----------------
P2=$(new_project '{"name":"big","labels":["a","b"]}')
sql "INSERT INTO tasks (project_id, data, required)
     SELECT $P2, jsonb_build_object('text', repeat('x', 400) || ' ' || i), 1 FROM generate_series(1, 30000) i" >/dev/null
# annotations by SQL: fast, and the export does not care who wrote them
sql "INSERT INTO leases (project_id, fencing_token, task_id, annotator_id, granted_at, expires_at, outcome)
     SELECT $P2, t.id, t.id, $CUSER, now() - interval '3 seconds', now(), 'submitted' FROM tasks t WHERE t.project_id = $P2;
     INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token)
     SELECT t.id, $P2, $CUSER, 'a', t.id FROM tasks t WHERE t.project_id = $P2;" >/dev/null
rss() { awk '/VmRSS/ {print $2}' "/proc/$QUORUMD_PID/status"; }
r0=$(rss)
curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" --limit-rate 2M \
    "$URL/v1/projects/$P2/export?format=ls" -o "$E2E_DIR/big.json" &
CURL_PID=$!
peak=$r0
while kill -0 "$CURL_PID" 2>/dev/null; do v=$(rss); [ "$v" -gt "$peak" ] && peak=$v; sleep 0.1; done
wait "$CURL_PID"
size=$(($(wc -c <"$E2E_DIR/big.json") / 1024))
check "a 30,000-task ls export streamed whole" 30000 "$(jq length "$E2E_DIR/big.json")"
grow=$((peak - r0))
echo "# export of ${size} KiB read at 2 MB/s: broker RSS $r0 KiB before, peak $peak KiB (+$grow KiB)"
[ "$grow" -lt $((size / 2)) ] && pass "broker memory grew by less than half the export ($grow < $((size / 2)) KiB)" \
    || fail "broker memory grew by $grow KiB for a $size KiB export"
for q in "format=jsonl" "format=csv&kind=consensus"; do
    t0=$(date +%s%N)
    n=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/v1/projects/$P2/export?$q" | wc -l)
    ms=$((($(date +%s%N) - t0) / 1000000))
    echo "# $q of 30,000 tasks: $n lines in $ms ms ($((n * 1000 / (ms + 1))) lines/s, ASan build)"
    [ "$n" -ge 30000 ] && pass "$q: every row ($n lines)" || fail "$q: $n lines"
done
# a client that goes away mid-export: the broker stays well
curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" --limit-rate 100K --max-time 1 \
    "$URL/v1/projects/$P2/export?format=jsonl" -o /dev/null 2>/dev/null || true
check "after a client left mid-export the broker answers" 200 "$(api GET "/v1/projects/$P" | cut -d' ' -f1)"

finish
