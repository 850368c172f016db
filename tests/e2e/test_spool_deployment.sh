#!/usr/bin/env bash
# Spools reach any broker of the same deployment (docs/LEASES.md, "Spools
# and deployments").
#  - Every broker of one PostgreSQL + Redis reports the same deployment id
#    (Quorum-Deployment header, GET /v1/whoami); another database another.
#  - Results spooled by `exec` against broker A (stopped before it could
#    send them) are delivered through broker B by `spool --send`, each
#    stored exactly once (one had reached B already: a replay); a second
#    --send has nothing left to do.
#  - A spool whose records name another deployment or another user is
#    refused: nothing sent, one line per kind with its count, exit 7.
#  - An older spool (keyed by URL): the records of this URL and token are
#    re-keyed and sent, the others listed and kept (exit 7).
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200
AGENT="$QR_BIN_DIR/quorum-agent"
TOKEN=$(new_annotator dep-ann)
P=$(new_project '{"name":"dep","labels":["x","y"],"annotations_per_task":1,"lease_ttl_ms":300000}')
seq 1 3 | sed 's/.*/{"text":"t&"}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
start_second_broker --reaper-ms 200
URL_A=$URL

# --- the deployment id -------------------------------------------------------
DEP=$(sql "SELECT id FROM deployment")
header() { curl -sS -D - -o /dev/null --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$1/v1/whoami" |
    tr -d '\r' | sed -n 's/^[Qq]uorum-[Dd]eployment: //p'; }
check "broker A reports the deployment in a header" "$DEP" "$(header "$URL_A")"
check "broker B reports the same deployment" "$DEP" "$(header "$URL2")"
r=$(api GET /v1/whoami "$TOKEN")
check "whoami: 200" 200 "${r%% *}"
check "whoami names the deployment and the user" "$DEP dep-ann annotator" \
    "$(echo "${r#* }" | jq -r '"\(.deployment) \(.name) \(.role)"')"
check "whoami's user_id is the token's user" "$(sql "SELECT id FROM users WHERE name = 'dep-ann'")" \
    "$(echo "${r#* }" | jq -r .user_id)"
r=$(api GET /v1/whoami "qr_nope")
check "whoami without a valid token: 401" 401 "${r%% *}"
OTHER_DB="${E2E_DB}_other"
at_exit "psql \"\$QR_PG_CONNINFO\" -qc \"DROP DATABASE IF EXISTS $OTHER_DB\" >/dev/null 2>&1"
psql "$QR_PG_CONNINFO" -qc "CREATE DATABASE $OTHER_DB" >/dev/null
OTHER_PG="host=127.0.0.1 port=$QR_PG_PORT user=quorum dbname=$OTHER_DB"
"$QR_BIN_DIR/quorumd" migrate --pg "$OTHER_PG" --sql-dir "$QR_SOURCE_DIR/sql" 2>/dev/null
OTHER_DEP=$(psql "$OTHER_PG" -Atqc "SELECT id FROM deployment")
[ -n "$OTHER_DEP" ] && [ "$OTHER_DEP" != "$DEP" ] && pass "another database is another deployment" ||
    fail "deployment ids: '$DEP' and '$OTHER_DEP'"
set +e
out=$(psql "$OTHER_PG" -qc "INSERT INTO deployment DEFAULT VALUES" 2>&1); rc=$?
set -e
[ "$rc" != 0 ] && pass "a deployment has one id (a second row is refused)" || fail "second deployment row: $out"

# --- results spooled against A, delivered through B ----------------------------
SPOOL="$E2E_DIR/state/spool"
mkdir -p "$E2E_DIR/state"
QUORUM_TOKEN=$TOKEN "$AGENT" exec --project "$P" --concurrency 3 --spool "$SPOOL" -- \
    sh -c 'touch "$0/started.$$"; until [ -e "$0/go" ]; do sleep 0.1; done; echo "{\"label\":\"y\"}"' \
    "$E2E_DIR" 2>"$E2E_DIR/exec.err" &
EXEC_PID=$!
at_exit "kill $EXEC_PID 2>/dev/null"
started() { find "$E2E_DIR" -maxdepth 1 -name 'started.*' | wc -l; }
for i in $(seq 1 100); do [ "$(started)" = 3 ] && break; sleep 0.1; done # three tasks leased
check "exec leased the three tasks through A (three commands run)" 3 "$(started)"
stop_broker # A goes away before the results are ready
touch "$E2E_DIR/go"
pending() { "$AGENT" spool --spool "$1" 2>/dev/null | head -1 | grep -o '[0-9]* result' | cut -d' ' -f1; }
for i in $(seq 1 150); do [ "$(pending "$SPOOL")" = 3 ] && break; sleep 0.1; done
check "the three results are spooled" 3 "$(pending "$SPOOL")"
kill -TERM "$EXEC_PID"
set +e
wait "$EXEC_PID"
rc=$?
set -e
sed 's/^/    /' "$E2E_DIR/exec.err" | tail -5
check "exec stopped with results spooled: exit 7" 7 "$rc"
check "nothing stored yet" 0 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"
"$AGENT" spool --spool "$SPOOL" | sed 's/^/    /'

# A copy of the spool whose records were made for another deployment (two)
# and for another user of this one (one), written by an encoder of its own.
SPOOL_FILE=(python3 "$(dirname "$0")/spool_file.py")
"${SPOOL_FILE[@]}" read "$SPOOL" |
    jq -c --arg o "$OTHER_DEP" 'if .id <= 2 then .result.deployment = $o else .result.user += 1000 end' |
    "${SPOOL_FILE[@]}" write "$E2E_DIR/state/foreign"
send_spool() { # send_spool FILE: spool --send through B; sets out and rc
    set +e
    out=$(QUORUM_URL=$URL2 QUORUM_TOKEN=$TOKEN "$AGENT" spool --send --spool "$1" 2>&1)
    rc=$?
    set -e
    echo "$out" | sed 's/^/    /'
}
send_spool "$E2E_DIR/state/foreign"
check "another deployment's or user's spool: exit 7" 7 "$rc"
check "... nothing of it sent" 0 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"
check "... one line for the other deployment, with its count" 1 \
    "$(echo "$out" | grep -c "2 spooled record(s) belong to another deployment (not $DEP, the one at $URL2)")"
check "... one line for the other user, with its count" 1 \
    "$(echo "$out" | grep -c "1 spooled record(s) belong to another user of this deployment")"
check "... and they stay in the spool" 3 "$(pending "$E2E_DIR/state/foreign")"

# A spool of the older format (keyed by broker URL and token hash): the
# record made through this URL with this token is re-keyed and sent (its
# lease is made up: refused, kept in .rejected); the one made through
# another URL is listed and stays.
who=$(printf '%s' "$TOKEN" | sha256sum | cut -c1-16)
for u in "$URL2" "https://127.0.0.1:9"; do
    jq -nc --arg u "$u" --arg w "$who" --argjson p "$P" '{url: $u, who: $w, project: $p, lease: "999999",
        task_id: 1, label: "x", idempotency_key: "legacy-\($u)", active_ms: 5, spooled_at_ms: 1700000000000}'
done | jq -c --slurp 'to_entries[] | {id: (.key + 1), result: .value}' | "${SPOOL_FILE[@]}" write "$E2E_DIR/state/old"
send_spool "$E2E_DIR/state/old"
check "older format: exit 7 (one stays)" 7 "$rc"
check "... the one of this URL and token re-keyed" 1 \
    "$(echo "$out" | grep -c "1 spooled record(s) of the older format (for $URL2) now belong to deployment $DEP")"
check "... and sent (refused: its lease is made up)" 1 "$(echo "$out" | grep -c '^sent: 0 stored (0 replayed), 1 rejected; 1 pending$')"
check "... the one of another URL listed, with its count" 1 \
    "$(echo "$out" | grep -c '1 spooled record(s) of the older format were made for another broker URL or token')"
check "... and left in the spool as it was" "https://127.0.0.1:9 (older format)" \
    "$("$AGENT" spool --spool "$E2E_DIR/state/old" | tail -1 | awk '{print $(NF-2), $(NF-1), $NF}')"

# The first result reached the deployment before (through B), its
# acknowledgement lost: the resend is a replay, not a second annotation.
first=$("$AGENT" spool --json --spool "$SPOOL" | head -1 | jq -c .result)
r=$(API_URL=$URL2 api POST "/v1/projects/$P/leases/$(echo "$first" | jq -r .lease)/submit" "$TOKEN" \
    "$(echo "$first" | jq -c '{label: .label, idempotency_key, active_ms}')")
check "the first result stored through B before the resend" 201 "${r%% *}"
send_spool "$SPOOL"
check "spool --send through broker B: exit 0" 0 "$rc"
check "... says three stored, one of them a replay" 1 \
    "$(echo "$out" | grep -c '^sent: 3 stored (1 replayed), 0 rejected; 0 pending$')"
check "every spooled result stored exactly once, through B" "3 3 3" \
    "$(sql "SELECT count(*), count(DISTINCT task_id), count(DISTINCT idempotency_key) FROM annotations WHERE project_id = $P" | tr '|' ' ')"
check "with the label spooled" "y" "$(sql "SELECT string_agg(DISTINCT label, ',') FROM annotations WHERE project_id = $P")"
send_spool "$SPOOL" >/dev/null
check "a second --send has nothing to send" "0 sent: 0 stored (0 replayed), 0 rejected; 0 pending" "$rc $out"
check "still exactly three annotations" 3 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"

finish
