#!/usr/bin/env bash
# The reports' replica (quorumd --pg-read, issue 19 point 4). The test makes
# a streaming replica of the stack's PostgreSQL (pg_basebackup -R, on a port
# of its own in the test's folder) and runs two brokers: one reads
# everything from the primary, the other (--pg-read) sends the reports to
# the replica. After a small simulated crew and once the replica has
# replayed the primary's WAL, each report (progress, report, agreement with
# its extras, throughput, export) must give the same figures from both, the
# second saying "read_from": "replica" and how stale it may be, and /metrics
# must carry the lag. Replay is then paused: the replica's reports keep the
# old figures (and say so) until the lag passes --pg-read-max-lag, then read
# the primary. Then the replica's connections drop under a report, which
# is read on the primary instead; last, the replica is stopped: the reports
# still answer, from the primary. The stack's cluster needs nothing more for replication than
# PostgreSQL 15's defaults (wal_level replica, max_wal_senders 10, and
# initdb's pg_hba.conf, which trusts replication connections on loopback).
. "$(dirname "$0")/lib.sh"

# --- the replica, made while the rest starts -----------------------------------------------------
# As stack.sh runs PostgreSQL: as the postgres user when root (from /: the
# test's own folder is not that user's). The replica copies the whole
# cluster, so the database start_broker makes below reaches it by
# replication like any later write.
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
RDIR=$(mktemp -d /tmp/quorum-replica.XXXXXX)
chmod 700 "$RDIR"
[ "$(id -u)" = 0 ] && chown postgres: "$RDIR"
stop_replica() { as_pg "$QR_PG_BINDIR/pg_ctl" -D "$RDIR/db" -m immediate stop >/dev/null 2>&1 || true; }
at_exit 'wait "$RSETUP_PID" 2>/dev/null; stop_replica; rm -rf "$RDIR"'
RPORT=$(free_port)
(
    as_pg "$QR_PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$QR_PG_PORT" -U quorum -D "$RDIR/db" -R \
        -X stream -c fast || exit 1
    # max_connections as the primary's (stack.sh): a standby needs at least as many.
    as_pg "$QR_PG_BINDIR/pg_ctl" -D "$RDIR/db" -l "$RDIR/postgres.log" -w -t 60 \
        -o "-p $RPORT -k '$RDIR' -c listen_addresses=127.0.0.1 -c max_connections=200 -c hot_standby=on" \
        start
) >"$RDIR/setup.log" 2>&1 &
RSETUP_PID=$!

# --- bad flags: a clear error, nothing started -----------------------------------------------
bad() { # bad DESCRIPTION EXPECTED-TEXT FLAGS...
    local what=$1 text=$2 out st=0
    shift 2
    out=$("$QR_BIN_DIR/quorumd" serve --pg "host=127.0.0.1 port=1 dbname=none" "$@" 2>&1) || st=$?
    if [ "$st" = 2 ] && grepq -- "$text" <<<"$out"; then pass "$what"; else fail "$what (status $st: $out)"; fi
}
bad "--pg-read-pool 0 is refused" "bad value '0' for --pg-read-pool" --pg-read "port=1" --pg-read-pool 0
bad "--pg-read-max-lag abc is refused" "bad value 'abc' for --pg-read-max-lag" --pg-read "port=1" --pg-read-max-lag abc
bad "an empty --pg-read is refused" "bad value '' for --pg-read" --pg-read ""
bad "--pg-read-pool without --pg-read is refused" "tune --pg-read, which is not given" --pg-read-pool 2
st=0
out=$(QUORUM_PG_READ=port=1 QUORUM_PG_READ_MAX_LAG=-1 "$QR_BIN_DIR/quorumd" serve 2>&1) || st=$?
check "QUORUM_PG_READ_MAX_LAG=-1 is refused (2)" 2 "$st"
grepq "QUORUM_PG_READ_MAX_LAG must be" <<<"$out" && pass "and named" || fail "message: $out"

start_broker
wait "$RSETUP_PID" || { cat "$RDIR/setup.log" "$RDIR/postgres.log"; exit 1; }
REPLICA="host=127.0.0.1 port=$RPORT user=quorum dbname=$E2E_DB"
# The test's database reaches the replica once it has replayed its creation.
for i in $(seq 1 100); do
    r=$(psql "$REPLICA" -Atqc 'SELECT pg_is_in_recovery()' 2>/dev/null) && break
    sleep 0.1
done
check "the replica is a standby, and has the test's database" t "$r"

start_second_broker --pg-read "$REPLICA" --pg-read-pool 2 --pg-read-max-lag 4
: "${URL2:?}"

# --- a small crew labels a project through the first broker ------------------------------------
P=$("$QR_BIN_DIR/quorumctl" project create --name replica --labels sports,technology,cooking,weather \
    --annotations-per-task 2)
head -n 40 "$QR_SOURCE_DIR/deploy/sample/news.jsonl" | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
timeout 60 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 3 --accuracy 0.8 \
    --think-ms 0-1 --seed 4 >"$E2E_DIR/sim.log" 2>&1 || { tail -5 "$E2E_DIR/sim.log"; fail "simulate"; }
check "80 annotations on the primary" 80 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"

# caught_up: the replica has replayed all the primary had written when asked.
caught_up() {
    local lsn i
    lsn=$(sql "SELECT pg_current_wal_insert_lsn()")
    for i in $(seq 1 100); do
        [ "$(psql "$REPLICA" -Atqc "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return 0
        sleep 0.1
    done
    return 1
}
caught_up && pass "the replica caught up" || fail "the replica did not catch up in 10 s"
check "the replica holds the 80 annotations" 80 \
    "$(psql "$REPLICA" -Atqc "SELECT count(*) FROM annotations WHERE project_id = $P")"

# lag: the second broker's quorum_pg_read_lag_seconds (empty: none).
lag() {
    API_URL=$URL2 api GET /metrics | sed -n 's/^quorum_pg_read_lag_seconds \(.*\)$/\1/p'
}
# promcheck DESCRIPTION: promtool parses and lints the second broker's /metrics.
promcheck() {
    local m out
    m=$(API_URL=$URL2 api GET /metrics)
    if ! command -v promtool >/dev/null; then
        fail "$1: promtool not found (deploy/dev.sh deps installs prometheus)"
    elif out=$(promtool check metrics <<<"${m#* }" 2>&1); then
        pass "$1: promtool check metrics finds nothing wrong"
    else
        fail "$1: promtool check metrics: $out"
    fi
}
for i in $(seq 1 50); do
    l=$(lag)
    [ -n "$l" ] && [ "$l" != "+Inf" ] && awk -v l="$l" 'BEGIN { exit !(l < 4) }' && break
    sleep 0.1
done
awk -v l="$l" 'BEGIN { exit !(l >= 0 && l < 4) }' && pass "/metrics: quorum_pg_read_lag_seconds $l (< 4)" ||
    fail "/metrics lag: '$l'"
API_URL=$URL2 api GET /metrics | grepq 'quorum_pg_read_connections{state="size"} 2' &&
    pass "/metrics: the replica's pool" || fail "no quorum_pg_read_connections"
promcheck "caught up"
api GET /metrics | grepq quorum_pg_read_ && fail "a broker without --pg-read has no pg_read metric" ||
    pass "a broker without --pg-read has no pg_read metric"

# --- the same figures from the replica -----------------------------------------------------------
FROM=$(date -u -d '-10 min' +%Y-%m-%dT%H:%M:00Z)
TO=$(date -u -d '+5 min' +%Y-%m-%dT%H:%M:00Z)
REPORTS=("progress" "report" "agreement?fresh=1&confusion=1&over_time=1"
    "throughput?window=$FROM..$TO")
# Keys that differ between two reads of the same data: when each was
# computed, and what is counted from then.
TIMES='del(.as_of_ms, .now_ms, .eta.at, .eta.pace.at, .seconds_since_last_annotation, .read_from, .stale_seconds_max)'
# compare NAME EXPECTED-READ-FROM: each report from both brokers.
compare() {
    local what=$1 from=$2 r a b
    for r in "${REPORTS[@]}"; do
        a=$(api GET "/v1/projects/$P/$r")
        # The broker judges "caught up" by its probe, once a second: on a
        # loaded machine a late probe can leave the replica past the 4 s
        # bound for a moment, and that answer comes from the primary. Ask
        # again then (for 5 s at most); the figures must still be equal.
        for _ in $(seq 1 20); do
            b=$(API_URL=$URL2 api GET "/v1/projects/$P/$r")
            [ "$from" != replica ] || [ "$(echo "${b#* }" | jq -r .read_from)" = replica ] && break
            sleep 0.25
        done
        check "$what: $r: 200 from both" "200 200" "${a%% *} ${b%% *}"
        check "$what: $r: read_from" "$from" "$(echo "${b#* }" | jq -r .read_from)"
        check "$what: $r: the same figures" "$(echo "${a#* }" | jq -cS "$TIMES")" \
            "$(echo "${b#* }" | jq -cS "$TIMES")"
        echo "${a#* }" | jq -e 'has("read_from") | not' >/dev/null &&
            pass "$what: $r: no read_from without --pg-read" || fail "$what: $r: read_from without --pg-read"
    done
}
compare "caught up" replica
b=$(API_URL=$URL2 api GET "/v1/projects/$P/progress")
echo "${b#* }" | jq -e '.stale_seconds_max | numbers | . >= 0 and . < 4' >/dev/null &&
    pass "progress says how stale it may be: $(echo "${b#* }" | jq .stale_seconds_max) s" ||
    fail "stale_seconds_max: ${b#* }"

# export: the same rows; where they were read is said in headers.
export_from() { # URL FILE -> the headers in FILE.h
    curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -D "$2.h" -o "$2" \
        "$1/v1/projects/$P/export?format=jsonl"
}
export_from "$URL" "$E2E_DIR/primary.jsonl"
export_from "$URL2" "$E2E_DIR/replica.jsonl"
check "export: 80 rows from the replica" 80 "$(wc -l <"$E2E_DIR/replica.jsonl")"
cmp -s "$E2E_DIR/primary.jsonl" "$E2E_DIR/replica.jsonl" && pass "export: the same rows" ||
    fail "export: the rows differ"
grepq -i '^X-Quorum-Read-From: replica' <"$E2E_DIR/replica.jsonl.h" && pass "export: X-Quorum-Read-From: replica" ||
    fail "export headers: $(cat "$E2E_DIR/replica.jsonl.h")"
grepq -i '^X-Quorum-Stale-Seconds-Max: [0-9]' <"$E2E_DIR/replica.jsonl.h" && pass "export: X-Quorum-Stale-Seconds-Max" ||
    fail "export: no staleness header"
# An increment from the primary's cursor reads the same on the replica broker.
CUR=$(tr -d '\r' <"$E2E_DIR/primary.jsonl.h" | sed -n 's/^[Xx]-[Qq]uorum-[Cc]ursor: //p')
r=$(API_URL=$URL2 api GET "/v1/projects/$P/export?format=jsonl&since=$CUR")
check "export since the primary's cursor: 200, empty" "200 " "$r"

# --- replay paused: stale figures, said so, then the primary ---------------------------------
psql "$REPLICA" -Atqc 'SELECT pg_wal_replay_pause()' >/dev/null
# One more task, imported: the report counts it at once on the primary.
echo '{"data": {"text": "one more"}}' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
b=$(API_URL=$URL2 api GET "/v1/projects/$P/progress")
check "paused: progress still from the replica, the old count" "replica 40" \
    "$(echo "${b#* }" | jq -r '.read_from + " " + (.tasks | tostring)')"
for i in $(seq 1 100); do
    b=$(API_URL=$URL2 api GET "/v1/projects/$P/progress")
    [ "$(echo "${b#* }" | jq -r .read_from)" = primary ] && break
    sleep 0.1
done
check "past --pg-read-max-lag 4: progress from the primary, the new count" "primary 41" \
    "$(echo "${b#* }" | jq -r '.read_from + " " + (.tasks | tostring)')"
echo "${b#* }" | jq -e 'has("stale_seconds_max") | not' >/dev/null && pass "no staleness from the primary" ||
    fail "stale_seconds_max from the primary"
l=$(lag)
awk -v l="$l" 'BEGIN { exit !(l >= 4) }' && pass "/metrics lag past 4 s: $l" || fail "lag while paused: $l"
psql "$REPLICA" -Atqc 'SELECT pg_wal_replay_resume()' >/dev/null
caught_up || fail "the replica did not catch up after the pause"
for i in $(seq 1 30); do
    b=$(API_URL=$URL2 api GET "/v1/projects/$P/progress")
    [ "$(echo "${b#* }" | jq -r .read_from)" = replica ] && break
    sleep 0.1
done
check "replay resumed: progress from the replica again, the new count" "replica 41" \
    "$(echo "${b#* }" | jq -r '.read_from + " " + (.tasks | tostring)')"

# --- the replica fails under a report: the report is read on the primary -----------------------
# The replica's client backends are stopped (SIGSTOP), so a report sent
# there waits; then they are killed: its connection drops, and the broker
# sends the statement to the primary instead of answering 503.
PM=$(head -1 "$RDIR/db/postmaster.pid")
BACKENDS=$(ps -o pid=,args= --ppid "$PM" | awk '/postgres: quorum / { print $1 }')
check "the replica serves the broker's connections (pool of 2, and the probe's)" 3 "$(echo $BACKENDS | wc -w)"
# shellcheck disable=SC2086 # one pid a word
kill -STOP $BACKENDS
(API_URL=$URL2 api GET "/v1/projects/$P/progress" >"$E2E_DIR/inflight") &
INFLIGHT=$!
sleep 1.5
# shellcheck disable=SC2086
kill -KILL $BACKENDS
wait "$INFLIGHT"
b=$(cat "$E2E_DIR/inflight")
check "a report whose replica connection dropped under it: 200, read from the primary" "200 primary 41" \
    "${b%% *} $(echo "${b#* }" | jq -r '.read_from + " " + (.tasks | tostring)')"
grepq "pg-read: a report's statement failed on the replica" <"$E2E_DIR/quorumd2.log" &&
    pass "the broker logged the second try" || fail "no second try in the log"

# --- the replica stopped: the reports still answer, from the primary ---------------------------
as_pg "$QR_PG_BINDIR/pg_ctl" -D "$RDIR/db" -m immediate -w stop >/dev/null
compare "replica stopped" primary
b=$(API_URL=$URL2 api GET "/v1/projects/$P/export?format=jsonl")
check "replica stopped: export 200" 200 "${b%% *}"
l=$(lag)
check "replica stopped: the lag is not known (+Inf)" "+Inf" "$l"
promcheck "replica stopped"
grepq "pg-read: the replica does not answer" <"$E2E_DIR/quorumd2.log" && pass "the broker logged the fallback" ||
    fail "no fallback in the log"

# stop_second WHAT: SIGTERM to the second broker; it must stop cleanly, with
# no sanitizer report in its log.
stop_second() {
    local st=0
    kill -TERM "$QUORUMD2_PID"
    wait "$QUORUMD2_PID" || st=$?
    QUORUMD2_PID=""
    check "$1 stops cleanly" 0 "$st"
    grepq 'Sanitizer\|runtime error' <"$E2E_DIR/quorumd2.log" &&
        fail "$1: sanitizer report: $(grep -A20 'Sanitizer\|runtime error' "$E2E_DIR/quorumd2.log" | head -40)" ||
        pass "$1: no sanitizer report"
}
stop_second "the --pg-read broker"

# --- a --pg-read server that is no standby (here the primary itself) is never read ------------
start_second_broker --pg-read "$E2E_PG"
for i in $(seq 1 50); do
    grepq "not a standby" <"$E2E_DIR/quorumd2.log" && break
    sleep 0.1
done
grepq "pg-read: the --pg-read server is not a standby" <"$E2E_DIR/quorumd2.log" &&
    pass "a --pg-read server in no recovery: the broker says it is not a standby" || fail "log: $(cat "$E2E_DIR/quorumd2.log")"
b=$(API_URL=$URL2 api GET "/v1/projects/$P/progress")
check "and reads the reports from the primary" "200 primary" "${b%% *} $(echo "${b#* }" | jq -r .read_from)"
stop_second "the broker reading no standby"

finish
