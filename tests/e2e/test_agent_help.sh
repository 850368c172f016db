#!/usr/bin/env bash
# test_agent_help.sh - issue 5 item 6 for quorum-agent: every command's
# --help has examples and the documented exit codes; label's help describes
# the undo it has; an unknown command and an unreachable broker each give one
# clear line and their documented exit code (2 usage, 1 network).
#
# Offline: no broker and no database, only QR_BIN_DIR (set by ctest).
set -euo pipefail
: "${QR_BIN_DIR:?}"
. "$(dirname "$0")/hermetic.sh"
AGENT="$QR_BIN_DIR/quorum-agent"
DIR=$(mktemp -d /tmp/quorum-agent-help.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
hermetic_home "$DIR"
FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi
}

for cmd in "" login label exec spool simulate; do
    name=${cmd:-main}
    rc=0
    # shellcheck disable=SC2086
    "$AGENT" $cmd --help >"$DIR/help" 2>&1 || rc=$?
    check "$name --help: exit 0" 0 "$rc"
    grep -q '^Examples\?:$' "$DIR/help" && pass "$name --help: has examples" ||
        fail "$name --help: no Example(s): section"
    grep -q '^  quorum-agent ' "$DIR/help" && pass "$name --help: an example command line" ||
        fail "$name --help: no example command line"
    grep -q '^Exit codes:' "$DIR/help" && pass "$name --help: documents exit codes" ||
        fail "$name --help: no Exit codes"
done

"$AGENT" label --help >"$DIR/help"
if grep -q 'not supported' "$DIR/help"; then fail "label --help still says undo is not supported"; else pass "label --help: no 'not supported'"; fi
tr '\n' ' ' <"$DIR/help" | grep -q 'u undo the last submit while the lease it was submitted on lasts' &&
    pass "label --help: u undoes while the lease lasts" || fail "label --help: undo not described"

rc=0
"$AGENT" frobnicate >"$DIR/out" 2>"$DIR/err" || rc=$?
check "unknown command: exit 2" 2 "$rc"
check "unknown command: nothing on stdout" 0 "$(wc -c <"$DIR/out")"
check "unknown command: names it" "quorum-agent: unknown command 'frobnicate'" "$(head -1 "$DIR/err")"

# A port bound but not listening, held to the end (connections refused; no
# other process can start listening on it meanwhile); the CA file only has
# to exist (no TLS is reached).
. "$(dirname "$0")/../../deploy/common.sh"
hold_dead_port
trap 'kill "$DEAD_PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
PORT=$DEAD_PORT
: >"$DIR/ca.pem"
rc=0
"$AGENT" login --url "https://127.0.0.1:$PORT" --token qr_x --ca "$DIR/ca.pem" >"$DIR/out" 2>"$DIR/err" || rc=$?
check "login to an unreachable broker: exit 1" 1 "$rc"
check "login to an unreachable broker: one line" 1 "$(wc -l <"$DIR/err")"
case "$(cat "$DIR/err")" in
"quorum-agent: login: cannot reach the broker at https://127.0.0.1:$PORT: "*) pass "login to an unreachable broker: says so ($(cat "$DIR/err"))" ;;
*) fail "login to an unreachable broker: $(cat "$DIR/err")" ;;
esac
[ -e "$XDG_CONFIG_HOME/quorum/profile" ] && fail "login stored a profile it could not check" ||
    pass "login stored no profile"

# Stopped (SIGTERM) while retrying an unreachable broker with nothing spooled:
# exit 0, as the exit codes say (not 7, "results still spooled").
"$AGENT" exec --url "https://127.0.0.1:$PORT" --token qr_x --ca "$DIR/ca.pem" --project 1 \
    -- cat >"$DIR/out" 2>"$DIR/err" &
pid=$!
sleep 1
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
check "exec stopped while the broker is unreachable, nothing spooled: exit 0" 0 "$rc"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
