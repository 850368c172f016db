#!/usr/bin/env bash
# test_config.sh - issue 19 point 5: quorumd --config FILE. Every long option
# is a key; a flag and a set QUORUM_* variable win over the file (the flag
# over the variable); an unknown key, a key without a value and a bad value
# each stop quorumd with exit 2 and one line naming the file and the line;
# --check-config reads the files the options name (certificate and key,
# client CA) and prints "config ok". Then a broker started from a config
# file alone listens where the file says and logs one key=value line per
# event.
#
# Offline: no database (the broker is started against closed ports: it
# listens and answers /healthz while it retries PostgreSQL and Redis).
set -euo pipefail
: "${QR_BIN_DIR:?}" "${QR_SOURCE_DIR:?}"
. "$(dirname "$0")/hermetic.sh"
. "$QR_SOURCE_DIR/deploy/common.sh"
Q="$QR_BIN_DIR/quorumd"
DIR=$(mktemp -d /tmp/quorum-config.XXXXXX)
QPID=""
trap '[ -z "$QPID" ] || kill "$QPID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
hermetic_home "$DIR"
FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi
}
grepq() { # grep -q on stdin read whole (no SIGPIPE for the writer)
    local in
    in=$(cat)
    grep -q "$@" <<<"$in"
}
# run ARGS...: quorumd's exit status and its stdout and stderr, on one line.
run() {
    local rc=0 out
    out=$("$Q" "$@" 2>&1) || rc=$?
    echo "$rc $(echo "$out" | tr '\n' '|' | sed 's/|$//')"
}
make_certs "$DIR/tls" 2

C="$DIR/q.conf"
cat >"$C" <<CONF
# a comment, then a blank line

listen = 127.0.0.1:0
pg   host=127.0.0.1 port=1 dbname=nothing connect_timeout=1
pg-pool = 2
   metrics-public = yes
cert = $DIR/tls/server.crt
key = "$DIR/tls/server.key"
window-tasks 3000
window-low = 2000
CONF
check "a good file: config ok" "0 config ok" "$(run --config "$C" --check-config)"
check "--config=FILE too" "0 config ok" "$(run --config="$C" --check-config)"

# Precedence, seen through the window-low < window-tasks check: the file's
# window-low is 2000.
check "a flag wins over the file" \
    "2 quorumd: --window-low (2000) must be below --window-tasks (1000)" \
    "$(run --config "$C" --window-tasks 1000 --check-config)"
check "... both ways" "0 config ok" \
    "$(run --config "$C" --window-tasks 1000 --window-low 10 --check-config)"
check "a set variable wins over the file" "0 config ok" \
    "$(QUORUM_WINDOW_LOW=10 run --config "$C" --window-tasks 1000 --check-config)"
check "a flag wins over the variable" \
    "2 quorumd: --window-low (1500) must be below --window-tasks (1000)" \
    "$(QUORUM_WINDOW_LOW=10 run --config "$C" --window-tasks 1000 --window-low 1500 --check-config)"
check "cert and key come from the file (a flag replaces one: a mismatch)" \
    "2" "$(run --config "$C" --key "$DIR/tls/ca.key" --check-config | cut -d' ' -f1)"

# Each refusal: exit 2, one line naming the file and the line, nothing else.
bad() { # bad DESCRIPTION LINE-TEXT EXPECTED-MESSAGE (the line is line 4)
    printf '# broken\nlisten = 127.0.0.1:0\n\n%s\npg-pool = 3\n' "$2" >"$DIR/bad.conf"
    check "$1" "2 quorumd: $DIR/bad.conf:4: $3" "$(run --config "$DIR/bad.conf" --check-config)"
}
bad "unknown key" "lissen = 1.2.3.4:5" "unknown key 'lissen' (the keys are the long options of quorumd --help without their --, but config, check-config and help)"
bad "a key without a value" "pg-pool" "pg-pool has no value"
bad "a bad number" "max-connections = lots" "bad value 'lots' for max-connections"
bad "a number out of range" "reaper-ms = 5" "bad value '5' for reaper-ms"
bad "a bad address" "redis = nowhere" "bad value 'nowhere' for redis"
bad "a flag's value" "metrics-public = maybe" "metrics-public wants yes or no, not 'maybe'"
bad "config is not a key" "config = /etc/other.conf" "unknown key 'config' (the keys are the long options of quorumd --help without their --, but config, check-config and help)"
bad "a key twice" "listen = 127.0.0.1:1" "listen is already set on line 2"
bad "not a key" "= 5" "expected \`key = value\`, not a line starting with '='"
check "a bad file stops serve too, before anything starts" \
    "2 quorumd: $DIR/bad.conf:4: \`key = value\`" \
    "$(run --config "$DIR/bad.conf" | sed 's/expected //; s/, not a line.*//')"
check "a missing file" "2 quorumd: $DIR/none.conf: No such file or directory" \
    "$(run --config "$DIR/none.conf" --check-config)"
printf 'pg-pool = 300\ncert = %s\nkey = %s\n' "$DIR/tls/server.crt" "$DIR/tls/server.key" >"$DIR/pool.conf"
check "a bad value under a set variable: not read, not checked" "0 config ok" \
    "$(QUORUM_PG_POOL=4 run --config "$DIR/pool.conf" --check-config)"
check "... and read without it" "2 quorumd: $DIR/pool.conf:1: bad value '300' for pg-pool" \
    "$(run --config "$DIR/pool.conf" --check-config)"
check "--config spelled short is refused" "2 quorumd: spell --config out in full" \
    "$(run --conf "$C" --check-config)"
check "--config twice is refused" "2 quorumd: --config is given twice" \
    "$(run --config "$C" --config "$C" --check-config)"

# --check-config reads the files the options name.
printf 'cert = %s\nkey = %s\n' "$DIR/tls/server.crt" "$DIR/none.key" >"$DIR/nokey.conf"
r=$(run --config "$DIR/nokey.conf" --check-config)
case "$r" in "2 quorumd: "*none.key*) pass "an unreadable key: exit 2 naming it" ;; *) fail "an unreadable key: $r" ;; esac
printf 'cert = %s\n' "$DIR/tls/server.crt" >"$DIR/half.conf"
check "a cert without a key" "2 quorumd: --cert and --key go together: only --cert is set" \
    "$(run --config "$DIR/half.conf" --check-config)"
printf 'cert = %s\nkey = %s\nclient-ca = %s\n' "$DIR/tls/server.crt" "$DIR/tls/server.key" \
    "$DIR/tls/server.key" >"$DIR/ca.conf"
check "a client CA that is no certificate" "2" "$(run --config "$DIR/ca.conf" --check-config | cut -d' ' -f1)"
check "a missing sql dir" "2 quorumd: --sql-dir $DIR/nosql: No such file or directory" \
    "$(run --config "$C" --sql-dir "$DIR/nosql" --check-config)"
"$Q" --help | grepq -- "--sql-dir DIR .*($QR_SOURCE_DIR/sql:" &&
    pass "--help gives the default sql dir of a build: its source tree's" ||
    fail "--help: $("$Q" --help | grep -A1 -- --sql-dir)"

# A broker from the file alone: the port file and the log's form.
printf 'port-file = %s\nredis = 127.0.0.1:1\n' "$DIR/port" >>"$C"
"$Q" --config "$C" 2>"$DIR/quorumd.log" &
QPID=$!
PORT=""
if PORT=$(wait_port_file "$DIR/port" "$QPID"); then
    check "it listens where the file says and answers /healthz" 200 \
        "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$DIR/tls/ca.crt" "https://127.0.0.1:$PORT/healthz")"
    check "metrics-public = yes: /metrics without a token" 200 \
        "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$DIR/tls/ca.crt" "https://127.0.0.1:$PORT/metrics")"
else
    fail "no port file: $(cat "$DIR/quorumd.log")"
fi
kill -TERM "$QPID"
rc=0
wait "$QPID" || rc=$?
QPID=""
check "it stops cleanly on SIGTERM" 0 "$rc"
grep -q 'Sanitizer\|runtime error' "$DIR/quorumd.log" && fail "sanitizer: $(grep -A5 Sanitizer "$DIR/quorumd.log")"
grepq -E "^ts=[0-9-]{10}T[0-9:.]{12}Z level=info prog=quorumd msg=\"listening on https://127\.0\.0\.1:$PORT\"$" \
    <"$DIR/quorumd.log" && pass "the log: one key=value line per event" ||
    fail "the log: $(head -3 "$DIR/quorumd.log")"
bad_lines=$(grep -cvE '^ts=[^ ]+Z level=(debug|info|warn|error) prog=quorumd msg="([^"\\]|\\.)*"$' "$DIR/quorumd.log" || true)
check "every line of the log has that form ($(wc -l <"$DIR/quorumd.log") lines)" 0 "$bad_lines"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
