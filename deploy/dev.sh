#!/usr/bin/env bash
# dev.sh - Quorum's developer entry point.
#
#   deploy/dev.sh deps                  install what is missing (apt), quietly
#   deploy/dev.sh build                 configure and build into build/
#   deploy/dev.sh up [--empty]          run a local stack until Ctrl-C
#   deploy/dev.sh demo [--json-report FILE]   the whole job end to end, then stop
#   deploy/dev.sh test                  deps, sanitizer build, every test, 10 s per fuzz harness
#   deploy/dev.sh down                  stop what `up` left running
#   deploy/dev.sh chaos                 the lease engine under faults (build/chaos.json)
#   deploy/dev.sh bench                 lease throughput and latency (build/bench.json)
#   deploy/dev.sh fuzz [SECONDS]        every libFuzzer harness, SECONDS in all (default 600)
#
# The local stack lives in .quorum/ (git-ignored): a private PostgreSQL and
# redis-server on free loopback ports, a self-signed CA and server
# certificate, and quorumd. .quorum/env holds QUORUM_URL, QUORUM_TOKEN,
# QUORUM_CA (and QUORUM_PROJECT) for clients in other terminals.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.quorum"
BIN="$ROOT/build/bin"
SAMPLE="$ROOT/deploy/sample/news.jsonl"
SAMPLE_LABELS="sports,technology,cooking,weather"
. "$ROOT/deploy/common.sh"

PACKAGES=(build-essential cmake pkg-config libuv1-dev libpq-dev libhiredis-dev libssl-dev
    libhttp-parser-dev libjansson-dev libcurl4-openssl-dev libcsv-dev libcmocka-dev
    postgresql redis-server openssl curl jq ca-certificates tmux python3 bc clang libclang-rt-14-dev
    prometheus)

say() { printf 'dev.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# --- deps -------------------------------------------------------------------
deps() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    say "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    # Do not let the packages start their own system-wide servers.
    if [ ! -e /usr/sbin/policy-rc.d ] && [ -z "$sudo" ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' RETURN
    fi
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- build ------------------------------------------------------------------
build() {
    cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$ROOT/build" -j"$(nproc)" -- --no-print-directory >/dev/null
}

# --- the local stack ------------------------------------------------------------


# Starts PostgreSQL, Redis and quorumd; writes $STATE/env. $1 = 1 for the sample project.
stack_up() {
    local with_sample=$1
    [ -f "$STATE/quorumd.pid" ] && kill -0 "$(cat "$STATE/quorumd.pid")" 2>/dev/null &&
        die "a stack is already running (deploy/dev.sh down stops it)"
    mkdir -p "$STATE"
    "$ROOT/deploy/stack.sh" start "$STATE/stack" >/dev/null
    # shellcheck disable=SC1091
    . "$STATE/stack/env"
    make_certs "$STATE/tls"
    "$BIN/quorumd" migrate --pg "$QR_PG_CONNINFO" --sql-dir "$ROOT/sql" 2>"$STATE/migrate.log" ||
        { cat "$STATE/migrate.log" >&2; die "migration failed"; }
    local token port
    token=$("$BIN/quorumd" bootstrap-admin --pg "$QR_PG_CONNINFO")
    : >"$STATE/quorumd.log"
    start_quorumd "$BIN/quorumd" "$STATE/quorumd.log" --pg "$QR_PG_CONNINFO" \
        --redis "127.0.0.1:$QR_REDIS_PORT" --cert "$STATE/tls/server.crt" \
        --key "$STATE/tls/server.key" || die "quorumd did not start"
    port=$QD_PORT
    echo "$QD_PID" >"$STATE/quorumd.pid"
    wait_https "https://127.0.0.1:$port" "$STATE/tls/ca.crt" "$QD_PID" ||
        { cat "$STATE/quorumd.log" >&2; die "quorumd did not come up"; }
    # The env file holds the admin token: mode 0600 from its creation (the
    # umask, in a subshell), written to a temporary name and renamed.
    (
        umask 077
        cat >"$STATE/env.tmp" <<ENV
QUORUM_URL='https://127.0.0.1:$port'
QUORUM_TOKEN='$token'
QUORUM_CA='$STATE/tls/ca.crt'
ENV
        chmod 600 "$STATE/env.tmp"
        mv -f "$STATE/env.tmp" "$STATE/env"
    )
    export QUORUM_URL="https://127.0.0.1:$port" QUORUM_TOKEN="$token" QUORUM_CA="$STATE/tls/ca.crt"
    if [ "$with_sample" = 1 ]; then
        local project
        project=$("$BIN/quorumctl" project create --name sample --labels "$SAMPLE_LABELS")
        "$BIN/quorumctl" import --project "$project" "$SAMPLE" >&2
        echo "QUORUM_PROJECT=$project" >>"$STATE/env"
    fi
}

stack_down() {
    if [ -f "$STATE/quorumd.pid" ]; then
        local pid; pid=$(cat "$STATE/quorumd.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            local i
            for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$STATE/quorumd.pid"
    fi
    "$ROOT/deploy/stack.sh" stop "$STATE/stack" >/dev/null 2>&1 || true
    rm -f "$STATE/env" "$STATE/quorumd.log.port"
}

up() {
    local with_sample=1
    case "${1:-}" in
    --empty) with_sample=0 ;;
    "") ;;
    *) die "up: unknown option $1" ;;
    esac
    deps
    build
    trap 'stack_down; exit 0' INT TERM
    trap 'stack_down' EXIT
    stack_up "$with_sample"
    # shellcheck disable=SC1091
    . "$STATE/env"
    cat <<MSG
Quorum is up.
  URL:    $QUORUM_URL
  CA:     $QUORUM_CA
  token:  $QUORUM_TOKEN (admin)
MSG
    [ -n "${QUORUM_PROJECT:-}" ] && echo "  sample project: $QUORUM_PROJECT (2,000 texts, labels $SAMPLE_LABELS)"
    cat <<MSG
From another terminal:  source $STATE/env
  build/bin/quorumctl report --project \${QUORUM_PROJECT:-1}
  build/bin/quorum-agent simulate --project \${QUORUM_PROJECT:-1} --annotators 4 --accuracy 0.9
Ctrl-C (or deploy/dev.sh down) stops everything.
MSG
    wait "$(cat "$STATE/quorumd.pid")" || true
}

demo() {
    local json_report=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --json-report) [ $# -ge 2 ] || die "--json-report needs a FILE"; json_report=$2; shift 2 ;;
        *) die "demo: unknown option $1" ;;
        esac
    done
    case "$json_report" in ""|/*) ;; *) json_report="$PWD/$json_report" ;; esac
    local t0=$SECONDS
    deps
    say "building"
    build
    trap 'stack_down' EXIT
    say "starting PostgreSQL, Redis and quorumd under .quorum/"
    stack_up 0
    local project
    project=$("$BIN/quorumctl" project create --name "demo" --labels "$SAMPLE_LABELS" \
        --annotations-per-task 3 --lease-ttl-ms 30000)
    say "project $project: 2,000 texts, 3 annotations per task"
    "$BIN/quorumctl" import --project "$project" "$SAMPLE" >&2
    say "8 simulated annotators at accuracy 0.9"
    "$BIN/quorum-agent" simulate --project "$project" --annotators 8 --accuracy 0.9 --think-ms 0-4 --seed 7 >&2
    echo
    "$BIN/quorumctl" report --project "$project"
    local report; report=$("$BIN/quorumctl" report --project "$project" --json)
    [ -n "$json_report" ] && printf '%s\n' "$report" >"$json_report"
    # The demo checks the invariants it is meant to show.
    local ok
    ok=$(printf '%s' "$report" | jq -r '(.tasks == 2000) and (.tasks_complete == .tasks)
        and (.annotations == 3 * .tasks) and (.duplicate_assignments == 0)
        and (.overfilled_tasks == 0)')
    stack_down
    trap - EXIT
    say "done in $((SECONDS - t0)) s"
    [ "$ok" = true ] || die "the report breaks an invariant (see above)"
}

run_tests() {
    deps
    local b="$ROOT/build-asan"
    cmake -S "$ROOT" -B "$b" -DQUORUM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
    cmake --build "$b" -j"$(nproc)" -- --no-print-directory >/dev/null
    cd "$b"
    local rc=0
    ctest --output-on-failure -j2 --timeout 600 || rc=$?
    # Never leave the test stack behind, whatever happened.
    "$ROOT/deploy/stack.sh" stop "$b/teststack" >/dev/null 2>&1 || true
    # Every libFuzzer harness 10 s on its seeds (clang build in build-fuzz).
    "$ROOT/deploy/fuzz.sh" --ci 10 || rc=1
    return $rc
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
deps) deps ;;
build) deps; build ;;
up) up "$@" ;;
demo) demo "$@" ;;
test) run_tests ;;
down) stack_down ;;
chaos) deps; build; "$ROOT/deploy/chaos.sh" --bin "$BIN" "$@" ;;
bench) deps; "$ROOT/deploy/bench.sh" "$@" ;;
fuzz) deps; "$ROOT/deploy/fuzz.sh" "$@" ;;
-h|--help|help) usage ;;
*) usage >&2; exit 2 ;;
esac
