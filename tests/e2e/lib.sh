# lib.sh - sourced by the end-to-end tests: a fresh database on the shared
# test stack, TLS certificates, and a quorumd of their own on a port the
# kernel picks. Expects QR_TEST_STACK, QR_SOURCE_DIR and QR_BIN_DIR (set by
# ctest) and nothing else: no QUORUM_* variable reaches the test (hermetic.sh),
# which runs in its own folder, E2E_DIR, with its own profile and spool
# folders. Each test has a redis-server of its own (the stack's PostgreSQL
# is shared, one database per test): project ids restart at 1 in every
# database, so two tests on one Redis would share keys, and with their own
# Redis the tests run side by side. With E2E_KEEP=1 E2E_DIR (logs, spools) stays in /tmp for a
# post-mortem.
set -euo pipefail

: "${QR_TEST_STACK:?}" "${QR_SOURCE_DIR:?}" "${QR_BIN_DIR:?}"
. "$QR_SOURCE_DIR/tests/e2e/hermetic.sh"
# shellcheck disable=SC1091
. "$QR_TEST_STACK/env"
# psql and the other clients straight from the stack's PostgreSQL: Debian's
# /usr/bin/psql is a Perl wrapper that picks a version first, some 40 ms of
# CPU a call, and the tests call psql thousands of times.
PATH="$QR_PG_BINDIR:$PATH"
. "$QR_SOURCE_DIR/deploy/common.sh"

E2E_DIR=$(mktemp -d /tmp/quorum-e2e.XXXXXX)
hermetic_home "$E2E_DIR"
E2E_DB="e2e_$$_$RANDOM"
QUORUMD_PID=""
HELPER_PIDS=() # background helpers (servers, proxies) killed at exit
FAILS=0
PASSES=0
E2E_REDIS_PORT=""

AT_EXIT=() # commands a test adds with at_exit, run first by cleanup

# at_exit COMMAND: run COMMAND (eval'd) at exit, before quorumd is stopped;
# the script's exit status is kept (a trap of its own would replace it).
at_exit() { AT_EXIT+=("$1"); }

cleanup() {
    local rc=$? c
    for c in ${AT_EXIT[@]+"${AT_EXIT[@]}"}; do eval "$c" || true; done
    stop_broker || rc=1
    if [ -n "${QUORUMD2_PID:-}" ]; then kill -TERM "$QUORUMD2_PID" 2>/dev/null || true; wait "$QUORUMD2_PID" 2>/dev/null || true; fi
    if [ -n "${S_SERVER_PID:-}" ]; then kill "$S_SERVER_PID" 2>/dev/null || true; fi
    local p
    for p in ${HELPER_PIDS[@]+"${HELPER_PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
    psql "$QR_PG_CONNINFO" -qc "DROP DATABASE IF EXISTS $E2E_DB" >/dev/null 2>&1 || true
    if [ -n "$E2E_REDIS_PORT" ]; then
        stop_redis "$E2E_REDIS_PORT" "$E2E_REDIS_DIR" nosave
        rm -rf "$E2E_REDIS_DIR"
    fi
    [ -n "${E2E_KEEP:-}" ] || rm -rf "$E2E_DIR"
    exit $rc
}
trap cleanup EXIT

# This test's Redis: every use of QR_REDIS_PORT below and in the tests
# (brokers, redis-cli) means it, never the stack's.
# Its files sit in the stack's folder, so that stopping the stack stops a
# Redis whose test was killed before its cleanup ran (a ctest timeout).
E2E_REDIS_DIR="$QR_TEST_STACK/e2e-redis/${E2E_DIR##*/}"
start_redis "$E2E_REDIS_DIR" "" --save '' --appendonly no || exit 1
E2E_REDIS_PORT=$RPORT_UP
QR_REDIS_PORT=$RPORT_UP
# How the brokers reach Redis: this Redis, unless a test (behind Sentinel,
# say) sets other flags before start_broker.
E2E_REDIS_FLAGS=(--redis "127.0.0.1:$QR_REDIS_PORT")

# Stops quorumd with SIGTERM; fails if it does not stop cleanly or its log
# holds a sanitizer report (the tests run the ASan + UBSan build).
stop_broker() {
    [ -n "$QUORUMD_PID" ] || return 0
    local st=0
    kill -TERM "$QUORUMD_PID" 2>/dev/null || true
    wait "$QUORUMD_PID" 2>/dev/null || st=$?
    QUORUMD_PID=""
    if [ "$st" != 0 ] || grep -q 'Sanitizer\|runtime error' "$E2E_DIR/quorumd.log"; then
        echo "not ok - quorumd stopped with status $st:"
        grep -A30 'Sanitizer\|runtime error' "$E2E_DIR/quorumd.log" | head -60
        return 1
    fi
    echo "ok - quorumd stopped cleanly on SIGTERM"
}

# grepq ARGS...: grep -q ARGS on stdin, read to its end first. Behind a pipe
# (cmd | grepq PATTERN), grep -q would exit at the first match and the
# writer, still writing, would fail with SIGPIPE: under pipefail the
# pipeline then fails although the pattern matched (it did, for quorumctl
# --help once its text passed 4 KiB).
grepq() {
    local in
    in=$(cat)
    grep -q "$@" <<<"$in"
}

pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi
}
finish() {
    stop_broker || FAILS=$((FAILS + 1))
    echo "$PASSES passed, $FAILS failed"
    [ "$FAILS" = 0 ] && exit 0
    exit 1
}



# start_broker [extra quorumd flags...]: fresh database, migrations, admin token, quorumd.
start_broker() {
    psql "$QR_PG_CONNINFO" -qc "CREATE DATABASE $E2E_DB" >/dev/null
    E2E_PG="host=127.0.0.1 port=$QR_PG_PORT user=quorum dbname=$E2E_DB"
    redis-cli -p "$QR_REDIS_PORT" flushall >/dev/null
    make_certs "$E2E_DIR/tls" 2
    "$QR_BIN_DIR/quorumd" migrate --pg "$E2E_PG" --sql-dir "$QR_SOURCE_DIR/sql" 2>"$E2E_DIR/migrate.log"
    ADMIN_TOKEN=$("$QR_BIN_DIR/quorumd" bootstrap-admin --pg "$E2E_PG")
    start_quorumd "$QR_BIN_DIR/quorumd" "$E2E_DIR/quorumd.log" --pg "$E2E_PG" \
        "${E2E_REDIS_FLAGS[@]}" --cert "$E2E_DIR/tls/server.crt" \
        --key "$E2E_DIR/tls/server.key" "$@" || exit 1
    QUORUMD_PID=$QD_PID
    PORT=$QD_PORT
    URL="https://127.0.0.1:$PORT"
    CA="$E2E_DIR/tls/ca.crt"
    local i
    for i in $(seq 1 100); do
        curl -fsS --cacert "$CA" "$URL/healthz" >/dev/null 2>&1 && break
        kill -0 "$QUORUMD_PID" 2>/dev/null || { cat "$E2E_DIR/quorumd.log"; exit 1; }
        sleep 0.1
    done
    export QUORUM_URL=$URL QUORUM_TOKEN=$ADMIN_TOKEN QUORUM_CA=$CA
}

# start_second_broker: another quorumd on the same PostgreSQL and Redis;
# sets URL2 and QUORUMD2_PID.
start_second_broker() {
    : >"$E2E_DIR/quorumd2.log"
    start_quorumd "$QR_BIN_DIR/quorumd" "$E2E_DIR/quorumd2.log" --pg "$E2E_PG" \
        "${E2E_REDIS_FLAGS[@]}" --cert "$E2E_DIR/tls/server.crt" \
        --key "$E2E_DIR/tls/server.key" "$@" || return 1
    QUORUMD2_PID=$QD_PID
    URL2="https://127.0.0.1:$QD_PORT"
    local i
    for i in $(seq 1 100); do
        curl -fsS --cacert "$CA" "$URL2/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$E2E_DIR/quorumd2.log"
    return 1
}

# api METHOD PATH [TOKEN] [BODY] -> prints "STATUS BODY" (the body without
# its trailing newlines). One process a call, curl: the body and then the
# status on a line of its own come on its stdout (a temporary file with its
# mktemp, cat and rm cost three more, some 50 ms on a loaded machine).
api() {
    local method=$1 path=$2 token=${3-$ADMIN_TOKEN} body=${4-}
    local args=(-sS --cacert "$CA" -X "$method" -w '\n%{http_code}')
    [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
    [ -n "$body" ] && args+=(--data-binary "$body" -H 'Content-Type: application/json')
    local out resp
    out=$(curl "${args[@]}" "${API_URL:-$URL}$path")
    resp=${out%$'\n'*}
    printf '%s %s' "${out##*$'\n'}" "${resp%"${resp##*[!$'\n']}"}"
}

sql() { psql "$E2E_PG" -Atqc "$1"; }

# acks_missing ACK_LOG...: how many of the annotations simulate's ack logs
# acknowledged (--ack-log: task, annotator, annotation id and time,
# tab-separated) are not stored with their task in PostgreSQL; leaves the
# (task, annotation) pairs in $E2E_DIR/acks.csv.
acks_missing() {
    cat "$@" | cut -f1,3 | sort -u | awk -F'\t' '{print $1 "," $2}' >"$E2E_DIR/acks.csv"
    psql "$E2E_PG" -Atq <<SQL
CREATE TEMP TABLE acks (task_id bigint, annotation_id bigint);
\copy acks FROM '$E2E_DIR/acks.csv' WITH (FORMAT csv)
SELECT count(*) FROM acks k LEFT JOIN annotations a ON a.id = k.annotation_id AND a.task_id = k.task_id
 WHERE a.id IS NULL;
SQL
}

# wait_sql EXPECTED QUERY: until the query gives EXPECTED (10 s); prints the last answer.
wait_sql() {
    local i v=""
    for i in $(seq 1 100); do v=$(sql "$2"); [ "$v" = "$1" ] && break; sleep 0.1; done
    printf '%s' "$v"
}

# free_port: a TCP port of 127.0.0.1 nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# webhook_receiver PORT LOG: tests/e2e/webhook_receiver.py on PORT, each
# request it gets a line of LOG; sets RECEIVER_PID (killed at exit) and
# returns once it answers.
webhook_receiver() {
    python3 "$QR_SOURCE_DIR/tests/e2e/webhook_receiver.py" serve "$1" "$2" &
    RECEIVER_PID=$!
    HELPER_PIDS+=("$RECEIVER_PID")
    local i
    for i in $(seq 1 50); do
        curl -s -o /dev/null -X POST --data '' "http://127.0.0.1:$1/ping" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "the webhook receiver on port $1 does not answer"
}

# new_annotator NAME: an annotator in the admin's organization; prints its token.
new_annotator() {
    api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"$1\",\"role\":\"annotator\"}" | cut -d' ' -f2- | jq -r .token
}

# new_project BODY: creates the project BODY describes; prints its id.
new_project() {
    local r
    r=$(api POST /v1/projects "$ADMIN_TOKEN" "$1")
    echo "${r#* }" | jq .id
}

# tmux_server: a private tmux server (run it as "${TMUX_CMD[@]}" ...), killed
# at exit; without tmux the test passes as skipped and ends here.
tmux_server() {
    command -v tmux >/dev/null || { echo "ok - SKIP: tmux not installed"; finish; }
    TMUX_CMD=(tmux -L "qr-e2e-$$" -f /dev/null)
    at_exit tmux_cleanup
}
tmux_cleanup() { "${TMUX_CMD[@]}" kill-server 2>/dev/null || true; }

# label_in_tmux SESSION TOKEN PROJECT SPOOL: `quorum-agent label --project
# PROJECT --prefetch 1` with TOKEN in a new 100x30 tmux session (after
# tmux_server); its stderr goes to $E2E_DIR/SESSION.err, its exit status to
# $E2E_DIR/SESSION.rc. tmux_screen SESSION prints the screen; tmux_wait_for
# SESSION PATTERN waits (10 s) until the screen shows PATTERN.
label_in_tmux() {
    cat >"$E2E_DIR/run-$1.sh" <<SCRIPT
#!/usr/bin/env bash
export QUORUM_URL='$URL' QUORUM_TOKEN='$2' QUORUM_CA='$CA' TERM=xterm
'$QR_BIN_DIR/quorum-agent' label --project $3 --prefetch 1 --spool '$4' 2>'$E2E_DIR/$1.err'
echo \$? >'$E2E_DIR/$1.rc'
sleep 60
SCRIPT
    chmod +x "$E2E_DIR/run-$1.sh"
    "${TMUX_CMD[@]}" new-session -d -s "$1" -x 100 -y 30 "$E2E_DIR/run-$1.sh"
}
tmux_screen() { "${TMUX_CMD[@]}" capture-pane -p -t "$1"; }
tmux_wait_for() {
    local i
    for i in $(seq 1 100); do tmux_screen "$1" | grepq -- "$2" && return 0; sleep 0.1; done
    return 1
}
