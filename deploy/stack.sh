#!/usr/bin/env bash
# stack.sh - start or stop a private PostgreSQL cluster and redis-server on
# loopback ports, for the tests and for `deploy/dev.sh up`.
#
#   deploy/stack.sh start DIR          # throwaway: data in a new folder under /tmp
#   deploy/stack.sh stop DIR           # stops both and removes a throwaway stack's data
#   deploy/stack.sh start --keep DIR   # persistent: data in DIR/pg and DIR/redis,
#                                      # reused by the next start --keep DIR
#   deploy/stack.sh stop --keep DIR    # stops both; deletes nothing
#   deploy/stack.sh status --keep DIR  # which of them runs ("postgres redis", or nothing)
#
# Both write DIR/env (QR_PG_CONNINFO, QR_REDIS_PORT, ...) once the servers
# answer; stop removes it. A throwaway stack starts on free ports; a kept
# one first tries the ports of its last start, and Redis appends every write
# to DIR/redis (AOF, fsynced every second).
#
# initdb and postgres refuse to run as root: as root the cluster runs as the
# `postgres` user, which must own its data folder. A throwaway stack keeps
# it in a private folder under /tmp that this user owns (DIR itself may sit
# in a tree that user cannot write); a kept one in DIR/pg, so every folder
# above DIR must be traversable by that user (start says which is not).
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

# pg_reachable DATA: as root, DATA (a folder root made) is handed to the
# postgres user, who must be able to reach it: dies naming the first folder
# on the way that this user cannot traverse.
pg_reachable() {
    local data=$1 d part
    [ "$(id -u)" = 0 ] || return 0
    chown postgres: "$data"
    as_pg test -w "$data" -a -x "$data" 2>/dev/null && return 0
    # The first folder from / down that this user cannot pass through.
    local parts
    IFS=/ read -ra parts <<<"${data#/}"
    d=""
    for part in "${parts[@]}"; do
        d="$d/$part"
        as_pg test -x "$d" 2>/dev/null ||
            die "the postgres user cannot reach $data: $d is not traversable by it (chmod o+x $d, or keep the stack in another folder)"
    done
    die "the postgres user cannot write $data"
}

# start_pg BIN DATA LOG SOCKDIR FIRST_PORT: the cluster in DATA on FIRST_PORT
# if given and free, else on a free port; sets PGPORT_UP. Neither server can
# bind port 0 and tell the port back usefully: each is started on a port
# free a moment ago (free_port) and, when another process took it first
# (EADDRINUSE), started again on another.
start_pg() {
    local bin=$1 data=$2 log=$3 sock=$4 port=$5 try
    for try in $(seq 1 10); do
        [ -n "$port" ] && [ "$try" = 1 ] || port=$(free_port)
        if as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
            -o "-p $port -k '$sock' -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null 2>&1; then
            PGPORT_UP=$port
            return 0
        fi
    done
    cat "$log" >&2 2>/dev/null
    die "postgres did not start"
}

write_env() { # DIR DATA BIN PGPORT RPORT KEEP
    cat >"$1/env.tmp" <<ENV
QR_STACK_DATA='$2'
QR_STACK_KEEP=$6
QR_PG_BINDIR='$3'
QR_PG_PORT=$4
QR_PG_CONNINFO='host=127.0.0.1 port=$4 user=quorum dbname=quorum'
QR_REDIS_HOST=127.0.0.1
QR_REDIS_PORT=$5
ENV
    mv -f "$1/env.tmp" "$1/env"
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
    start_pg "$bin" "$data/db" "$data/postgres.log" "$data" ""
    "$bin/createdb" -h 127.0.0.1 -p "$PGPORT_UP" -U quorum quorum || die "createdb failed"
    start_redis "$data/redis" "" --save '' --appendonly no || die "redis-server did not start"

    write_env "$dir" "$data" "$bin" "$PGPORT_UP" "$RPORT_UP" 0
    echo "stack up: postgres on 127.0.0.1:$PGPORT_UP, redis on 127.0.0.1:$RPORT_UP ($dir/env)"
}

# The servers of a kept stack in DIR that still run, as words ("postgres
# redis"); empty when none does.
kept_running() {
    local dir=$1 bin out=""
    bin=$(pg_bindir)
    if [ -f "$dir/pg/db/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir/pg/db" status >/dev/null 2>&1; then
        out="postgres"
    fi
    local rpid
    rpid=$(cat "$dir/redis/redis.pid" 2>/dev/null || true)
    if [ -n "$rpid" ] && grep -qs redis "/proc/$rpid/comm"; then
        out="${out:+$out }redis"
    fi
    echo "$out"
}

start_keep() {
    local dir=$1
    # shellcheck disable=SC2174 # only DIR itself needs o+x (for postgres)
    [ -d "$dir" ] || mkdir -p -m 711 "$dir"
    dir=$(cd "$dir" && pwd)
    local bin running; bin=$(pg_bindir)
    command -v redis-server >/dev/null || die "redis-server not found (deploy/dev.sh deps installs it)"
    running=$(kept_running "$dir")
    [ -z "$running" ] || die "a stack already runs in $dir ($running; stack.sh stop --keep $dir stops it)"
    rm -f "$dir/env"

    # PostgreSQL: the cluster is made once, aside, and renamed into place
    # when complete, so an interrupted first start leaves nothing half made.
    local data="$dir/pg"
    mkdir -p "$data"
    chmod 700 "$data"
    pg_reachable "$data"
    if [ ! -f "$data/db/PG_VERSION" ]; then
        rm -rf "$data/db.new" "$data/db"
        as_pg "$bin/initdb" -D "$data/db.new" -U quorum --auth=trust -E UTF8 --no-locale >"$data/initdb.log" 2>&1 \
            || { cat "$data/initdb.log" >&2; die "initdb failed"; }
        as_pg mv "$data/db.new" "$data/db"
    fi
    # No Unix socket (clients use TCP): DIR may be too deep a path for one.
    start_pg "$bin" "$data/db" "$data/postgres.log" "" "$(cat "$data/port" 2>/dev/null || true)"
    local has
    has=$("$bin/psql" -X -h 127.0.0.1 -p "$PGPORT_UP" -U quorum -d postgres -Atqc \
        "SELECT 1 FROM pg_database WHERE datname = 'quorum'") || die "cannot query postgres"
    [ "$has" = 1 ] || "$bin/createdb" -h 127.0.0.1 -p "$PGPORT_UP" -U quorum quorum || die "createdb failed"
    echo "$PGPORT_UP" >"$data/port.tmp" && mv -f "$data/port.tmp" "$data/port"

    local rdir="$dir/redis"
    start_redis "$rdir" "$(cat "$rdir/port" 2>/dev/null || true)" --save '' \
        --appendonly yes --appendfsync everysec || die "redis-server did not start"
    echo "$RPORT_UP" >"$rdir/port.tmp" && mv -f "$rdir/port.tmp" "$rdir/port"

    write_env "$dir" "$dir" "$bin" "$PGPORT_UP" "$RPORT_UP" 1
    echo "stack up: postgres on 127.0.0.1:$PGPORT_UP, redis on 127.0.0.1:$RPORT_UP, data kept in $dir"
}

# stop DIR: stops a throwaway stack and removes its data.
stop() {
    local dir=$1
    [ -d "$dir/pg/db" ] && { stop_keep "$dir"; return; }
    [ -f "$dir/env" ] || { echo "stack.sh: nothing to stop in $dir"; return 0; }
    # shellcheck disable=SC1091
    . "$dir/env"
    stop_redis "${QR_REDIS_PORT:-}" "$QR_STACK_DATA/redis" nosave
    # The end-to-end tests' own Redis servers (tests/e2e/lib.sh), left by a
    # test killed before its cleanup.
    local r
    for r in "$dir"/e2e-redis/*/redis.pid; do
        [ -f "$r" ] && kill "$(cat "$r")" 2>/dev/null || true
    done
    rm -rf "$dir/e2e-redis"
    if [ -d "$QR_STACK_DATA/db" ]; then
        as_pg "$QR_PG_BINDIR/pg_ctl" -D "$QR_STACK_DATA/db" -m fast -w stop >/dev/null 2>&1 || true
    fi
    case "$QR_STACK_DATA" in /tmp/quorum-pg.*) rm -rf "$QR_STACK_DATA" ;; esac
    rm -f "$dir/env"
    echo "stack down"
}

# stop_keep DIR: stops a kept stack from what DIR holds (DIR/env may be
# gone after a crash) and deletes nothing but DIR/env.
stop_keep() {
    local dir=$1
    [ -d "$dir/pg/db" ] || [ -d "$dir/redis" ] || { echo "stack.sh: nothing to stop in $dir"; return 0; }
    stop_redis "$(cat "$dir/redis/port" 2>/dev/null || true)" "$dir/redis" ""
    if [ -f "$dir/pg/db/postmaster.pid" ]; then
        as_pg "$(pg_bindir)/pg_ctl" -D "$dir/pg/db" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -f "$dir/env"
    echo "stack down; data kept in $dir"
}

usage() { echo "usage: stack.sh start|stop [--keep] DIR, or stack.sh status --keep DIR" >&2; exit 2; }
cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd $*" in
"start --keep "?*) [ $# = 2 ] || usage; start_keep "$2" ;;
"stop --keep "?*) [ $# = 2 ] || usage; stop_keep "$2" ;;
"status --keep "?*) [ $# = 2 ] || usage; kept_running "$2" ;;
"start "?*) [ $# = 1 ] || usage; start "$1" ;;
"stop "?*) [ $# = 1 ] || usage; stop "$1" ;;
*) usage ;;
esac
