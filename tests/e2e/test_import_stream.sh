#!/usr/bin/env bash
# A JSON import streams into PostgreSQL as its body arrives (issue 14,
# point 2; broker/api/api_import_stream.c):
#   - 300,000 JSONL tasks import whole, their ids ascending and their
#     sequential priorities their ids, while the broker's peak RSS grows by
#     less than 80 MiB on the sanitizer build (the body is some 30 MB and
#     never held; tests/bench/import_bench.sh quotes the Release build);
#   - a JSON array streams too, element by element;
#   - a rule broken on the body's last line, or a syntax error on its second,
#     is answered (422 naming line and field, 400 naming the line) and
#     nothing is imported, whatever had been copied already; an external id
#     the project holds, on the second line of a large body, is the COPY's
#     refusal at its end: 409 with the count and the earlier import;
#   - a project whose policy needs the whole batch (an overlap fraction)
#     still imports the same body whole, with its exact overlap draw.
. "$(dirname "$0")/lib.sh"

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
unset QUORUM_MAX_IMPORT_PARSE_BYTES QUORUM_MAX_IMPORT_TASKS QUORUM_IMPORT_PARSES
start_broker
CTL="$QR_BIN_DIR/quorumctl"
tasks() { sql "SELECT count(*) FROM tasks WHERE project_id = $1"; }
# import PROJECT FILE CONTENT_TYPE -> "STATUS BODY"
import() {
    local resp; resp=$(mktemp "$E2E_DIR/resp.XXXXXX")
    local st
    st=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: $3" \
        --data-binary "@$2" -o "$resp" -w '%{http_code}' "$URL/v1/projects/$1/tasks")
    printf '%s %s' "$st" "$(cat "$resp")"
    rm -f "$resp"
}
hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$QUORUMD_PID/status"; }

P=$("$CTL" project create --name stream --labels pos,neg)
python3 - "$E2E_DIR" <<'PY'
import sys
d = sys.argv[1]
row = '{"text": "review %d: the product arrived on time and works as described", "stars": %d}\n'
with open(d + "/big.jsonl", "w") as f:
    for i in range(300000):
        f.write(row % (i, i % 5))
with open(d + "/bad_last.jsonl", "w") as f:
    for i in range(200000):
        f.write(row % (i, i % 5))
    f.write('{"data": {"text": "x"}, "gold": "sarcastic"}\n')
with open(d + "/bad_second.jsonl", "w") as f:
    f.write(row % (0, 0))
    f.write("{oops\n")
    for i in range(200000):
        f.write(row % (i, i % 5))
with open(d + "/held.jsonl", "w") as f:
    f.write('{"text": "held", "external_id": "held-1"}\n')
with open(d + "/held_again.jsonl", "w") as f:
    f.write(row % (0, 0))
    f.write('{"text": "again", "external_id": "held-1"}\n')
    for i in range(200000):
        f.write(row % (i, i % 5))
with open(d + "/array.json", "w") as f:
    f.write("[\n" + ",\n".join('{"data": {"n": %d}, "gold": "pos"}' % i for i in range(50000)) + "\n]\n")
PY

echo 5 >"/proc/$QUORUMD_PID/clear_refs"
before=$(hwm)
r=$(import "$P" "$E2E_DIR/big.jsonl" application/x-ndjson)
check "300,000 JSONL tasks: 201, all imported" "201 300000" "${r%% *} $(echo "${r#* }" | jq .imported)"
check "PostgreSQL holds them" 300000 "$(tasks "$P")"
after=$(hwm)
echo "# broker peak RSS: $before MiB before, $after MiB after the import"
[ $((after - before)) -lt 80 ] && pass "peak RSS grew by $((after - before)) MiB (< 80, the sanitizer's share included) for a 30 MB body" ||
    fail "peak RSS grew by $((after - before)) MiB"
check "ids ascending in line order, priority = id (sequential)" "0|0" \
    "$(sql "SELECT count(*) FILTER (WHERE id <= prev), count(*) FILTER (WHERE priority <> id) FROM (SELECT id, priority, lag(id, 1, 0::bigint) OVER (ORDER BY substring(data->>'text' FROM '[0-9]+')::int) AS prev FROM tasks WHERE project_id = $P) x")"
check "the first and last line are the first and last ids" "review 0: the product arrived on time and works as described|review 299999: the product arrived on time and works as described" \
    "$(sql "(SELECT data->>'text' FROM tasks WHERE project_id = $P ORDER BY id LIMIT 1) UNION ALL (SELECT data->>'text' FROM tasks WHERE project_id = $P ORDER BY id DESC LIMIT 1)" | paste -sd'|')"
check "the import's record: rows, first and last id, the body's SHA-256" \
    "300000|t|$(sha256sum "$E2E_DIR/big.jsonl" | cut -d' ' -f1)" \
    "$(sql "SELECT i.task_count, i.first_task_id = min(t.id) AND i.last_task_id = max(t.id), i.sha256 FROM imports i JOIN tasks t ON t.import_id = i.id WHERE i.project_id = $P GROUP BY i.id")"

P2=$("$CTL" project create --name stream-array --labels pos,neg)
r=$(import "$P2" "$E2E_DIR/array.json" application/json)
check "a JSON array of 50,000 tasks streams: 201" "201 50000" "${r%% *} $(echo "${r#* }" | jq .imported)"
check "its gold answers kept" 50000 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P2 AND gold = 'pos'")"

P3=$("$CTL" project create --name stream-bad --labels pos,neg)
r=$(import "$P3" "$E2E_DIR/bad_last.jsonl" application/x-ndjson)
check "a gold answer outside the labels on line 200001: 422 naming line and field" \
    "422 invalid_task 200001 gold" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.error.code) \(.error.line) \(.error.field)"')"
r=$(import "$P3" "$E2E_DIR/bad_second.jsonl" application/x-ndjson)
check "a syntax error on line 2 of a large body: 400 naming the line" "400 invalid_jsonl 2" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.error.code) \(.error.line)"')"
sleep 0.5
check "nothing imported by either" "0 0" "$(tasks "$P3") $(sql "SELECT count(*) FROM imports WHERE project_id = $P3")"
r=$(import "$P3" "$E2E_DIR/held.jsonl" application/x-ndjson)
held_import=$(echo "${r#* }" | jq .import_id)
check "a task with external id held-1: 201" "201 1" "${r%% *} $(echo "${r#* }" | jq .imported)"
r=$(import "$P3" "$E2E_DIR/held_again.jsonl" application/x-ndjson)
check "held-1 again on line 2 of a large body: the COPY refuses it, 409 with the count and import" \
    "409 duplicate_import 1 $held_import" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.error.code) \(.error.duplicates) \(.error.import_id)"')"
check "nothing more imported" "1 1" "$(tasks "$P3") $(sql "SELECT count(*) FROM imports WHERE project_id = $P3")"
check "the broker still serves" 200 "$(api GET "/v1/projects/$P3/imports" | cut -d' ' -f1)"

# A policy that needs the whole batch: the same kind of body, imported whole.
r=$(api POST /v1/projects "$ADMIN_TOKEN" \
    '{"name":"overlap","labels":["pos","neg"],"annotations_per_task":1,"overlap_fraction":0.1,"overlap_annotations":3}')
P4=$(echo "${r#* }" | jq -r .id)
head -n 1000 "$E2E_DIR/big.jsonl" >"$E2E_DIR/small.jsonl"
r=$(import "$P4" "$E2E_DIR/small.jsonl" application/x-ndjson)
check "an overlap fraction: imported whole, 201" "201 1000" "${r%% *} $(echo "${r#* }" | jq .imported)"
check "exactly 10% get the higher overlap" 100 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P4 AND required = 3")"
finish
