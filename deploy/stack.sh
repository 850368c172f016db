#!/usr/bin/env bash
# stack.sh - start or stop a private PostgreSQL cluster and redis-server on
# free loopback ports, for the tests and for `deploy/dev.sh up`.
#
#   deploy/stack.sh start DIR   # writes DIR/env (QR_PG_CONNINFO, QR_REDIS_PORT, ...)
#   deploy/stack.sh stop DIR    # stops both and removes their data
#
# initdb and postgres refuse to run as root: as root the cluster runs as the
# `postgres` user, with its data in a private folder under /tmp that this
# user owns (DIR itself may sit in a tree that user cannot write).
set -euo pipefail

die() { echo "stack.sh: $*" >&2; exit 1; }
. "$(dirname "$0")/common.sh"
# The stack is private and named in full on every command line: a PGHOST,
# PGSSLMODE or PGOPTIONS meant for another server must not reach initdb,
# pg_ctl or createdb.
# shellcheck disable=SC2046
unset $(compgen -v PG || true) 2>/dev/null || true

pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return; }
    die "PostgreSQL server binaries not found (apt-get install postgresql)"
}

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local dir=$1
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -f "$dir/env" ] && { stop "$dir" >/dev/null 2>&1 || true; }
    local bin; bin=$(pg_bindir)
    command -v redis-server >/dev/null || die "redis-server not found (deploy/dev.sh deps installs it)"

    local data; data=$(mktemp -d /tmp/quorum-pg.XXXXXX)
    chmod 700 "$data"
    [ "$(id -u)" = 0 ] && chown postgres: "$data"
    as_pg "$bin/initdb" -D "$data/db" -U quorum --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }

    # Neither server can bind port 0 and tell the port back usefully: each is
    # started on a port free a moment ago (free_port) and, when another
    # process took it first (EADDRINUSE), started again on another.
    local pgport try
    for try in $(seq 1 10); do
        pgport=$(free_port)
        if as_pg "$bin/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w -t 60 \
            -o "-p $pgport -k $data -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null 2>&1; then
            break
        fi
        pgport=""
    done
    [ -n "$pgport" ] || { cat "$data/postgres.log" >&2 2>/dev/null; die "postgres did not start"; }
    "$bin/createdb" -h 127.0.0.1 -p "$pgport" -U quorum quorum || die "createdb failed"

    local rport rdir="$data/redis"
    mkdir -p "$rdir"
    for try in $(seq 1 10); do
        rport=$(free_port)
        rm -f "$rdir/redis.pid"
        if redis-server --port "$rport" --bind 127.0.0.1 --daemonize yes --dir "$rdir" \
            --pidfile "$rdir/redis.pid" --logfile "$rdir/redis.log" --save '' --appendonly no >/dev/null; then
            # --daemonize returns before the bind: wait until a server answers
            # and is ours (its dir is rdir), not one that holds the port.
            local i ok=0
            for i in $(seq 1 50); do
                if [ "$(redis-cli -p "$rport" config get dir 2>/dev/null | sed -n 2p)" = "$rdir" ]; then
                    ok=1
                    break
                fi
                grep -q 'Address already in use\|Could not create server TCP' "$rdir/redis.log" 2>/dev/null && break
                sleep 0.1
            done
            [ $ok = 1 ] && break
            if [ -f "$rdir/redis.pid" ]; then kill "$(cat "$rdir/redis.pid")" 2>/dev/null || true; fi
            : >"$rdir/redis.log"
        fi
        rport=""
    done
    [ -n "$rport" ] || die "redis-server did not start"

    cat >"$dir/env" <<ENV
QR_STACK_DATA='$data'
QR_PG_BINDIR='$bin'
QR_PG_PORT=$pgport
QR_PG_CONNINFO='host=127.0.0.1 port=$pgport user=quorum dbname=quorum'
QR_REDIS_HOST=127.0.0.1
QR_REDIS_PORT=$rport
ENV
    echo "stack up: postgres on 127.0.0.1:$pgport, redis on 127.0.0.1:$rport ($dir/env)"
}

stop() {
    local dir=$1
    [ -f "$dir/env" ] || { echo "stack.sh: nothing to stop in $dir"; return 0; }
    # shellcheck disable=SC1091
    . "$dir/env"
    if [ -n "${QR_REDIS_PORT:-}" ]; then
        redis-cli -p "$QR_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        if [ -f "$QR_STACK_DATA/redis/redis.pid" ]; then
            kill "$(cat "$QR_STACK_DATA/redis/redis.pid")" 2>/dev/null || true
        fi
    fi
    if [ -d "$QR_STACK_DATA/db" ]; then
        as_pg "$QR_PG_BINDIR/pg_ctl" -D "$QR_STACK_DATA/db" -m fast -w stop >/dev/null 2>&1 || true
    fi
    case "$QR_STACK_DATA" in /tmp/quorum-pg.*) rm -rf "$QR_STACK_DATA" ;; esac
    rm -f "$dir/env"
    echo "stack down"
}

case "${1:-}" in
start) [ $# = 2 ] || die "usage: stack.sh start DIR"; start "$2" ;;
stop) [ $# = 2 ] || die "usage: stack.sh stop DIR"; stop "$2" ;;
*) echo "usage: stack.sh start|stop DIR" >&2; exit 2 ;;
esac
