#!/usr/bin/env bash
# `deploy/dev.sh up` keeps its stack: data, port and admin token outlive
# `down`, Ctrl-C and a crashed quorumd; only `reset` deletes them.
#  - up on a private state folder (QUORUM_DEV_STATE) with the binaries under
#    test (QUORUM_DEV_BIN): .quorum/env appears whole (the sample project in
#    it), mode 0600, in `export` lines that work from any folder;
#  - a project, 36 tasks, 20 labels; down; up: the same token reads the
#    project with exactly its 20 annotations, on the same port;
#  - a second up (and demo, bench) while one runs exits 1 at once with one
#    line and changes nothing: the same quorumd serves the next request;
#  - Ctrl-C (SIGINT to up's process group, or to up alone) and kill -9 of
#    quorumd keep it;
#  - reset refuses without a terminal or --yes; reset --yes deletes it, and
#    the next up starts afresh (a new token, the sample project only).
# The shared test stack is not used: dev.sh starts a PostgreSQL and Redis of
# its own in the state folder.
. "$(dirname "$0")/lib.sh"

DEV="$QR_SOURCE_DIR/deploy/dev.sh"
STATE="$E2E_DIR/state"
# As root, PostgreSQL runs as `postgres`, which must traverse the folders
# down to its cluster (mktemp made E2E_DIR 0700).
chmod 711 "$E2E_DIR"
export QUORUM_DEV_STATE="$STATE" QUORUM_DEV_BIN="$QR_BIN_DIR"
at_exit '"$DEV" down >/dev/null 2>&1; "$DEV" reset --yes >/dev/null 2>&1'

UP_PID=""
UP_N=0
# up_bg: `dev.sh up` in the background, in a process group of its own (set
# -m), as a terminal would run it; waits (90 s) until .quorum/env appears.
# Sets UP_PID, UP_LOG; fails the test if env does not appear.
up_bg() {
    UP_N=$((UP_N + 1))
    UP_LOG="$E2E_DIR/up$UP_N.log"
    set -m
    "$DEV" up >"$UP_LOG" 2>&1 &
    UP_PID=$!
    set +m
    for _ in $(seq 1 900); do
        if [ -f "$STATE/env" ]; then
            ENV_SEEN=$(cat "$STATE/env")
            return 0
        fi
        kill -0 "$UP_PID" 2>/dev/null || break
        sleep 0.1
    done
    sed 's/^/    /' "$UP_LOG"
    fail "up #$UP_N: no $STATE/env"
    finish
}

# up_wait: waits (60 s) for the up in the background to exit; sets UP_RC.
# quorumd's log of that run (the next up empties it) holds no sanitizer
# report (the binaries are the ASan + UBSan build).
up_wait() {
    for _ in $(seq 1 600); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.1; done
    UP_RC=0
    wait "$UP_PID" || UP_RC=$?
    if grep -q 'Sanitizer\|runtime error' "$STATE/quorumd.log" 2>/dev/null; then
        fail "up #$UP_N: a sanitizer report in quorumd's log"
        grep -A30 'Sanitizer\|runtime error' "$STATE/quorumd.log" | head -40
    fi
}

# dev_sql QUERY: on the PostgreSQL of the stack dev.sh runs.
dev_sql() { (. "$STATE/stack/env" && psql "$QR_PG_CONNINFO" -Atqc "$1"); }

env_value() { # NAME: its value in the env file, as `source` reads it
    (cd / && unset QUORUM_URL QUORUM_TOKEN QUORUM_CA QUORUM_PROJECT && . "$STATE/env" && eval "echo \"\$$1\"")
}

# --- a state folder the postgres user cannot reach (as root only) ------------
if [ "$(id -u)" = 0 ]; then
    mkdir -m 700 "$E2E_DIR/private"
    rc=0
    QUORUM_DEV_STATE="$E2E_DIR/private/state" timeout 60 "$DEV" up >"$E2E_DIR/private.out" 2>&1 || rc=$?
    check "up in a folder postgres cannot reach: exit 1" 1 "$rc"
    case "$(cat "$E2E_DIR/private.out")" in
    *"the postgres user cannot reach"*"$E2E_DIR/private is not traversable by it"*) pass "and it names the folder" ;;
    *) fail "no line naming the folder: $(cat "$E2E_DIR/private.out")" ;;
    esac
fi

# --- first up ----------------------------------------------------------------
up_bg
case "$ENV_SEEN" in *"export QUORUM_PROJECT="*) pass "env appears with the sample project in it" ;; *) fail "env without QUORUM_PROJECT when first seen" ;; esac
check "env mode 0600" 600 "$(stat -c %a "$STATE/env")"
check "every line of env is an export or a comment" 0 "$(grep -cv '^export QUORUM_\|^#' "$STATE/env" || true)"
URL=$(env_value QUORUM_URL) TOKEN=$(env_value QUORUM_TOKEN) CA=$(env_value QUORUM_CA)
SAMPLE=$(env_value QUORUM_PROJECT)
PORT=${URL##*:}
export QUORUM_URL=$URL QUORUM_TOKEN=$TOKEN QUORUM_CA=$CA
check "sourced in another folder, env reaches the broker: the sample's 2,000 tasks" 2000 \
    "$(cd / && unset QUORUM_URL QUORUM_TOKEN QUORUM_CA && . "$STATE/env" &&
        "$QR_BIN_DIR/quorumctl" report --project "$QUORUM_PROJECT" --json | jq .tasks)"

r=$(api POST /v1/projects "$TOKEN" '{"name":"kept","labels":["a","b"],"annotations_per_task":1,"lease_ttl_ms":120000,"max_leases_per_annotator":20}')
P=$(echo "${r#* }" | jq .id)
seq 1 36 | sed 's/.*/{"text":"t&"}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
r=$(api POST "/v1/projects/$P/leases" "$TOKEN" '{"max":20}')
BATCH=$(echo "${r#* }" | jq -c '{results: [.leases[] | {lease, label: "a", idempotency_key: ("k" + .lease), active_ms: 5}]}')
r=$(api POST "/v1/projects/$P/submit" "$TOKEN" "$BATCH")
check "20 labels stored" 20 "$(echo "${r#* }" | jq '[.results[] | select(.status == 201)] | length')"

# --- a second up, demo, bench while it runs ----------------------------------
QPID=$(cat "$STATE/quorumd.pid")
ENV_SUM=$(md5sum <"$STATE/env")
for cmd in up demo bench; do
    t0=$(date +%s%N)
    rc=0
    out=$(timeout 30 "$DEV" "$cmd" 2>&1) || rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    check "$cmd while a stack runs: exit 1" 1 "$rc"
    check "$cmd refuses in one line" 1 "$(printf '%s\n' "$out" | wc -l)"
    [ "$ms" -lt 5000 ] && pass "$cmd refused within 5 s ($ms ms)" || fail "$cmd took $ms ms to refuse"
done
echo "    $out"
check "the running quorumd is the same process" "$QPID" "$(cat "$STATE/quorumd.pid" 2>/dev/null)"
check "its env is unchanged" "$ENV_SUM" "$(md5sum <"$STATE/env" 2>/dev/null)"
r=$(api GET "/v1/projects/$P" "$TOKEN")
check "and it still serves: GET the project" 200 "${r%% *}"
check "with its 20 annotations" 20 "$("$QR_BIN_DIR/quorumctl" report --project "$P" --json | jq .annotations)"

# --- down; up: the same token, port and data ---------------------------------
out=$("$DEV" down 2>&1)
check "down says it stopped and kept the data" \
    "dev.sh: stopped (deploy/dev.sh up, pid $UP_PID); data kept in $STATE (deploy/dev.sh reset deletes it)" "$out"
up_wait
check "up exits 0 when stopped by down" 0 "$UP_RC"
grep -q "^dev.sh: stopped; data kept in $STATE" "$UP_LOG" && pass "up says so too" || fail "up printed no stop line"
check "no env while down" no "$([ -e "$STATE/env" ] && echo yes || echo no)"
check "no quorumd left" no "$(kill -0 "$QPID" 2>/dev/null && echo yes || echo no)"
out=$("$DEV" down 2>&1)
check "a second down: nothing to stop" "dev.sh: no stack running; data kept in $STATE (deploy/dev.sh reset deletes it)" "$out"

up_bg
check "the same admin token after down and up" "$TOKEN" "$(env_value QUORUM_TOKEN)"
check "the same port" "$PORT" "$(env_value QUORUM_URL | sed 's/.*://')"
check "the same sample project" "$SAMPLE" "$(env_value QUORUM_PROJECT)"
r=$(api GET "/v1/projects/$P" "$TOKEN")
check "the first token reads the project" "200 kept" "${r%% *} $(echo "${r#* }" | jq -r .name)"
check "with exactly its 20 annotations" "20 36" \
    "$("$QR_BIN_DIR/quorumctl" report --project "$P" --json | jq -r '"\(.annotations) \(.tasks)"')"
check "in PostgreSQL: 20 annotations on 20 tasks, labels as sent" "20 20 a" \
    "$(dev_sql "SELECT count(*), count(DISTINCT task_id), string_agg(DISTINCT label, ',') FROM annotations WHERE project_id = $P" | tr '|' ' ')"
check "the sample project made once" 2000 "$("$QR_BIN_DIR/quorumctl" report --project "$SAMPLE" --json | jq .tasks)"

# --- Ctrl-C: SIGINT to up's process group, as a terminal sends it --------------
kill -INT -- "-$UP_PID"
up_wait
check "Ctrl-C: up exits 0" 0 "$UP_RC"
grep -q "^dev.sh: stopped; data kept in $STATE" "$UP_LOG" && pass "Ctrl-C says the data is kept" || fail "no stop line after Ctrl-C"
check "Ctrl-C leaves no quorumd, postgres or redis" "" \
    "$(QUORUM_DEV_STATE=$STATE "$QR_SOURCE_DIR/deploy/stack.sh" status --keep "$STATE/stack")$(pgrep -f "$STATE/tls/server.crt" || true)"

# --- a crashed quorumd --------------------------------------------------------
up_bg
check "after Ctrl-C: the 20 annotations" 20 "$("$QR_BIN_DIR/quorumctl" report --project "$P" --json | jq .annotations)"
kill -9 "$(cat "$STATE/quorumd.pid")"
up_wait
check "kill -9 of quorumd: up stops the rest and exits 1" 1 "$UP_RC"
grep -q "quorumd exited (status 137" "$UP_LOG" && pass "and says quorumd exited" || fail "no line on quorumd's exit"
up_bg
check "after the crash: the same token" "$TOKEN" "$(env_value QUORUM_TOKEN)"
check "after the crash: the 20 annotations" 20 "$("$QR_BIN_DIR/quorumctl" report --project "$P" --json | jq .annotations)"

# --- SIGINT to the up process alone (not its group) ----------------------------
kill -INT "$UP_PID"
up_wait
check "SIGINT to up alone: exit 0" 0 "$UP_RC"
check "and no quorumd left" "" "$(pgrep -f "$STATE/tls/server.crt" || true)"
up_bg
check "after it: the 20 annotations" 20 "$(dev_sql "SELECT count(*) FROM annotations WHERE project_id = $P")"

# --- reset -------------------------------------------------------------------
rc=0
out=$("$DEV" reset </dev/null 2>&1) || rc=$?
check "reset without a terminal or --yes: exit 1" 1 "$rc"
echo "    $out"
r=$(api GET "/v1/projects/$P" "$TOKEN")
check "and deletes nothing, stops nothing" 200 "${r%% *}"
out=$("$DEV" reset --yes 2>&1)
echo "$out" | sed 's/^/    /'
up_wait
check "reset --yes stops the running up" 0 "$UP_RC"
check "reset --yes deletes the state folder" gone "$([ -e "$STATE" ] && ls -A "$STATE" | tr '\n' ' ' || echo gone)"

up_bg
TOKEN2=$(env_value QUORUM_TOKEN)
[ -n "$TOKEN2" ] && [ "$TOKEN2" != "$TOKEN" ] && pass "after reset: a new admin token" || fail "after reset: token '$TOKEN2'"
URL=$(env_value QUORUM_URL)
export QUORUM_TOKEN=$TOKEN2 QUORUM_URL=$URL
r=$(api GET "/v1/projects/$P" "$TOKEN")
check "the old token is refused" 401 "${r%% *}"
r=$(api GET /v1/projects/1 "$TOKEN2")
check "a fresh sample project" "1 sample 2000" \
    "$(env_value QUORUM_PROJECT) $(echo "${r#* }" | jq -r .name) $("$QR_BIN_DIR/quorumctl" report --project 1 --json | jq .tasks)"
check "in PostgreSQL: one project (the sample), no annotation" "1 0" "$(dev_sql "SELECT (SELECT count(*) FROM projects), (SELECT count(*) FROM annotations)" | tr '|' ' ')"
"$DEV" down >/dev/null 2>&1
up_wait
check "down, then up exits 0" 0 "$UP_RC"
finish
