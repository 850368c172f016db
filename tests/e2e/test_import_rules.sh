#!/usr/bin/env bash
# Import rules: every violation is a 422 invalid_task naming the line and the
# field (gold or a prediction's label outside the project's labels, a score
# outside [0, 1], in JSONL, a Label Studio JSON array and CSV), and nothing is
# imported; labels are compared trimmed and exactly. CSV delimiters come from
# the header line (comma, semicolon, tab, pipe), --delimiter overrides, TSV by
# extension and Content-Type; a .txt file is sniffed, and JSON that meets CSV
# says so; --external-id-key takes the external id from a chosen column/key.
. "$(dirname "$0")/lib.sh"

start_broker
P=$(new_project '{"name":"rules","labels":["positive","negative","neutral"]}')
count() { sql "SELECT count(*) FROM tasks WHERE project_id = $P"; }
resp=$(mktemp "$E2E_DIR/resp.XXXXXX")
# post CONTENT_TYPE BODY [QUERY] -> "STATUS CODE LINE FIELD | MESSAGE"
post() {
    local status
    status=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: $1" \
        --data-binary "$2" -o "$resp" -w '%{http_code}' "$URL/v1/projects/$P/tasks${3:-}")
    echo "$status $(jq -r '[.error.code, (.error.line|tostring), .error.field] | join(" ")' "$resp") | $(jq -r .error.message "$resp")"
}
before=$(count)

check "JSONL: a gold answer in another case" \
    "422 invalid_task 2 gold | line 2: field \"gold\": \"POSITIVE\" is not one of the project's labels (positive, negative, neutral)" \
    "$(post application/x-ndjson $'{"data":{"t":1},"gold":"positive"}\n{"data":{"t":2},"gold":"POSITIVE"}\n')"
check "JSONL: a prediction outside the choices" \
    "422 invalid_task 3 prediction.label | line 3: field \"prediction.label\": \"sarcastic\" is not one of the project's labels (positive, negative, neutral)" \
    "$(post application/x-ndjson $'{"t":1}\n\n{"data":{"t":2},"prediction":{"label":"sarcastic","score":0.5}}\n')"
check "JSONL: a prediction score of 7" \
    "422 invalid_task 1 prediction.score | line 1: field \"prediction.score\": score 7 is outside [0, 1]" \
    "$(post application/x-ndjson '{"data":{"t":1},"prediction":{"label":"positive","score":7}}')"
check "JSONL: a negative score" \
    "422 invalid_task 1 prediction.score | line 1: field \"prediction.score\": score -0.1 is outside [0, 1]" \
    "$(post application/x-ndjson '{"data":{"t":1},"prediction":{"score":-0.1}}')"
check "JSONL: a gold answer that is not a string" \
    "422 invalid_task 1 gold | line 1: field \"gold\": must be a non-empty string" \
    "$(post application/x-ndjson '{"data":{"t":1},"gold":3}')"
check "Label Studio: a prediction's score over 1, naming the task's line" \
    "422 invalid_task 3 predictions[0].score | task 2 (line 3): field \"predictions[0].score\": score 1.5 is outside [0, 1]" \
    "$(post application/json $'[{"id":1,"data":{"t":1}},\n\n {"id":2,"data":{"t":2},"predictions":[{"score":1.5,"result":[]}]}]')"
check "Label Studio: a prediction's choice outside the labels" \
    "422 invalid_task 1 predictions[1].result[0].value.choices | task 1 (line 1): field \"predictions[1].result[0].value.choices\": \"sarcastic\" is not one of the project's labels (positive, negative, neutral)" \
    "$(post application/json '[{"id":1,"data":{"t":1},"predictions":[{"score":0.2,"result":[]},{"score":0.3,"result":[{"type":"choices","value":{"choices":["sarcastic"]}}]}]}]')"
check "Label Studio: an annotation's choice outside the labels" \
    "422 invalid_task 1 annotations[0].result[0].value.choices | task 1 (line 1): field \"annotations[0].result[0].value.choices\": \"Positive\" is not one of the project's labels (positive, negative, neutral)" \
    "$(post application/json '[{"id":1,"data":{"t":1},"annotations":[{"result":[{"type":"choices","value":{"choices":["Positive"]}}]}]}]')"
check "Label Studio: an annotation's lead_time below 0" \
    "422 invalid_task 1 annotations[0].lead_time | task 1 (line 1): field \"annotations[0].lead_time\": must be a number of seconds, 0 or more" \
    "$(post application/json '[{"id":1,"data":{"t":1},"annotations":[{"result":[],"lead_time":-3}]}]')"
check "Label Studio: an id that is neither integer nor string" \
    "422 invalid_task 1 id | task 1 (line 1): field \"id\": an external id must be an integer or a string of 1 to 1000 bytes" \
    "$(post application/json '[{"id":[1],"data":{"t":1}}]')"
check "CSV: a gold cell outside the labels" \
    "422 invalid_task 3 gold | line 3: field \"gold\": \"POSITIVE\" is not one of the project's labels (positive, negative, neutral)" \
    "$(post text/csv $'text,gold\nok,positive\nbad,POSITIVE\n')"
check "CSV: a prediction outside the labels" \
    "422 invalid_task 2 prediction | line 2: field \"prediction\": \"sarcastic\" is not one of the project's labels (positive, negative, neutral)" \
    "$(post text/csv $'text,prediction\nx,sarcastic\n')"
check "CSV: a prediction_score of 7" \
    "422 invalid_task 2 prediction_score | line 2: field \"prediction_score\": score 7 is outside [0, 1]" \
    "$(post text/csv $'text,prediction,prediction_score\nx,positive,7\n')"
check "CSV: a prediction_score that is not a number" \
    "422 invalid_task 2 prediction_score | line 2: field \"prediction_score\": \"high\" is not a number in [0, 1]" \
    "$(post text/csv $'text,prediction_score\nx,high\n')"
check "--external-id-key naming a missing key" \
    "422 invalid_task 2 doc | line 2: field \"doc\": is missing (the external id key)" \
    "$(post application/x-ndjson $'{"doc":"a","t":1}\n{"t":2}\n' '?external_id_key=doc')"
check "a bad delimiter parameter: 400" "400 bad_request null  " \
    "$(post text/csv $'a\n1\n' '?delimiter=x' | cut -d'|' -f1)"
check "nothing imported by any violation" "$before" "$(count)"

out=$("$QR_BIN_DIR/quorumctl" import --project "$P" --format csv - 2>&1 <<<$'text,gold\nx, Negative\n') && rc=0 || rc=$?
check "quorumctl: a violation exits 1" 1 "$rc"
case "$out" in *'line 2: field "gold": "Negative" is not one of'*) pass "and prints the line and field" ;; *) fail "got: $out" ;; esac
check "labels are compared trimmed: ' negative ' is negative" "201" \
    "$(post text/csv $'text,gold\nx, negative \n' | cut -d' ' -f1)"
check "stored trimmed" "negative" "$(sql "SELECT gold FROM tasks WHERE project_id = $P AND data->>'text' = 'x'")"

# --- delimiters -------------------------------------------------------------------------------
Q=$(new_project '{"name":"delims","labels":["positive","negative"]}')
cols() { sql "SELECT string_agg(k, ',' ORDER BY k) FROM (SELECT DISTINCT jsonb_object_keys(data) k FROM tasks WHERE project_id = $Q AND import_id = (SELECT max(id) FROM imports WHERE project_id = $Q)) s"; }
printf 'text;source;gold\n"a; b";web;positive\nc;app;negative\n' >"$E2E_DIR/semi.csv"
out=$("$QR_BIN_DIR/quorumctl" import --project "$Q" "$E2E_DIR/semi.csv")
check "a ;-separated CSV: 2 tasks" "imported 2 tasks" "${out%% (*}"
check "its columns are text and source (gold is not data)" "source,text" "$(cols)"
check "a quoted ; stays in the cell" "a; b" "$(sql "SELECT data->>'text' FROM tasks WHERE project_id = $Q AND gold = 'positive'")"
printf 'text\tsource\nt1\tweb\n' >"$E2E_DIR/t.tsv"
out=$("$QR_BIN_DIR/quorumctl" import --project "$Q" "$E2E_DIR/t.tsv")
check "a .tsv file: by extension" "imported 1 tasks" "${out%% (*}"
check "its columns" "source,text" "$(cols)"
printf 'text|source\nt2|web\n' | "$QR_BIN_DIR/quorumctl" import --project "$Q" --format csv - >/dev/null
check "a |-separated CSV from stdin" "source,text" "$(cols)"
printf 'text,source\nt3,web\n' | "$QR_BIN_DIR/quorumctl" import --project "$Q" --format csv - >/dev/null
check "a ,-separated CSV" "source,text" "$(cols)"
printf 'a;b,c\n1;2,3\n' | "$QR_BIN_DIR/quorumctl" import --project "$Q" --format csv --delimiter , - >/dev/null
check "--delimiter , overrides the detected ;" "a;b,c" "$(cols)"
check "text/tab-separated-values over the API" "201" \
    "$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: text/tab-separated-values' \
        --data-binary $'x,y\tz\n1,2\t3\n' -o /dev/null -w '%{http_code}' "$URL/v1/projects/$Q/tasks")"
check "its columns split on tabs only" "x,y,z" "$(cols)"

# --- .txt sniffing and the hint ------------------------------------------------------------------
printf 'text,source\nfrom txt,web\n' >"$E2E_DIR/data.txt"
out=$("$QR_BIN_DIR/quorumctl" import --project "$Q" "$E2E_DIR/data.txt" 2>"$E2E_DIR/err")
check "a .txt file of CSV is sniffed as CSV" "imported 1 tasks" "${out%% (*}"
case "$(cat "$E2E_DIR/err")" in *"reading data.txt as CSV"*) pass "and quorumctl says so" ;; *) fail "no note: $(cat "$E2E_DIR/err")" ;; esac
printf '{"text":"from txt jsonl"}\n' >"$E2E_DIR/lines.txt"
out=$("$QR_BIN_DIR/quorumctl" import --project "$Q" "$E2E_DIR/lines.txt" 2>/dev/null)
check "a .txt file of JSON lines is sniffed as JSONL" "imported 1 tasks" "${out%% (*}"
r=$(post application/x-ndjson $'text,source\nx,web\n')
case "$r" in "400 invalid_jsonl 1"*"looks like a CSV/TSV header"*) pass "CSV sent as JSON lines: 400 with a hint" ;; *) fail "no hint: $r" ;; esac

# --- progress ------------------------------------------------------------------------------------
# An upload that lasts over 5 s: plain progress lines on stderr when it is not
# a terminal; redrawn in place (carriage return) on a terminal.
{ printf 'text\nslow 1\n'; sleep 6; printf 'slow 2\n'; } |
    "$QR_BIN_DIR/quorumctl" import --project "$Q" --format csv - >"$E2E_DIR/out" 2>"$E2E_DIR/err"
check "a slow upload imports" "imported 2 tasks" "$(cut -d' ' -f1-3 "$E2E_DIR/out")"
case "$(cat "$E2E_DIR/err")" in *" B / ?  "*" rows/s  ETA ?"*) pass "not a tty: a plain progress line (bytes, rows/s, ETA)" ;;
    *) fail "no progress line: $(cat "$E2E_DIR/err")" ;; esac
if command -v script >/dev/null; then
    printf 'text\n' >"$E2E_DIR/slow.csv"
    for i in $(seq 1 2000); do echo "tty row $i"; done >>"$E2E_DIR/slow.csv"
    script -qec "{ head -c 100 '$E2E_DIR/slow.csv'; sleep 2; tail -c +101 '$E2E_DIR/slow.csv'; } | '$QR_BIN_DIR/quorumctl' import --project $Q --format csv -" /dev/null >"$E2E_DIR/tty" 2>&1 || true
    if grep -q $'\r\033\[K.*rows/s' "$E2E_DIR/tty"; then pass "on a terminal: progress redrawn in place"; else fail "no tty progress: $(od -c "$E2E_DIR/tty" | head -5)"; fi
else
    pass "SKIP: no script(1) for a terminal"
fi

# --- external ids from a chosen column/key ---------------------------------------------------------
printf 'doc_id,text\nD-1,one\nD-2,two\n' >"$E2E_DIR/ids.csv"
"$QR_BIN_DIR/quorumctl" import --project "$Q" --external-id-key doc_id "$E2E_DIR/ids.csv" >/dev/null
check "--external-id-key doc_id (CSV): the column is the external id, and stays data" "D-1 one D-1|D-2 two D-2" \
    "$(sql "SELECT string_agg(concat_ws(' ', external_id, data->>'text', data->>'doc_id'), '|' ORDER BY id) FROM tasks WHERE project_id = $Q AND external_id LIKE 'D-%'")"
printf '{"data":{"text":"j"},"uid":77}\n' >"$E2E_DIR/ids.jsonl"
"$QR_BIN_DIR/quorumctl" import --project "$Q" --external-id-key uid "$E2E_DIR/ids.jsonl" >/dev/null
check "--external-id-key uid (JSONL, a top-level key)" "77" \
    "$(sql "SELECT external_id FROM tasks WHERE project_id = $Q AND data->>'text' = 'j'")"
out=$("$QR_BIN_DIR/quorumctl" import --project "$Q" --external-id-key doc_id "$E2E_DIR/ids.csv" 2>&1) && rc=0 || rc=$?
check "the same external ids again: refused (409), exit 1" 1 "$rc"

finish
