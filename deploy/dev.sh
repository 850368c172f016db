#!/usr/bin/env bash
# dev.sh - Quorum's developer entry point.
#
#   deploy/dev.sh deps                  install what is missing (apt), quietly
#   deploy/dev.sh build                 configure and build into build/
#   deploy/dev.sh up [--empty]          run the local stack until Ctrl-C; its data is kept
#   deploy/dev.sh down                  stop the local stack; its data is kept
#   deploy/dev.sh reset [--yes]         stop the local stack and delete its data (asks first)
#   deploy/dev.sh demo [--json-report FILE]   the whole job end to end on a throwaway stack
#   deploy/dev.sh test                  deps, sanitizer build, every test, 10 s per fuzz harness
#   deploy/dev.sh chaos                 the lease engine under faults (build/chaos.json)
#   deploy/dev.sh bench [FLAGS]         lease throughput and latency, CPU per completion, BullMQ as
#                                       peer (build/bench.json; FLAGS: deploy/bench.sh --help)
#   deploy/dev.sh fuzz [SECONDS]        every libFuzzer harness, SECONDS in all (default 600)
#   deploy/dev.sh package               the Debian package from a Release build (in build-rel/):
#                                       build/quorum_<version>_amd64.deb (docs/OPERATIONS.md)
#
# The local stack lives in .quorum/ (git-ignored) and outlives `down`, Ctrl-C
# and a crash: PostgreSQL's cluster (.quorum/stack/pg) and Redis's
# append-only file (.quorum/stack/redis) on loopback ports, a private CA and
# server certificate (.quorum/tls), quorumd's port and the admin token. Each
# `up` reuses them: the same URL, token and projects. The first `up` also
# makes a sample project of 2,000 texts (not with --empty). Once the stack
# answers, .quorum/env (mode 0600) holds `export` lines for QUORUM_URL,
# QUORUM_TOKEN, QUORUM_CA and QUORUM_PROJECT: `source .quorum/env` works from
# any folder. Only `reset` deletes the data (--yes: without asking; it
# refuses to delete without a terminal to ask in). While a stack runs, a
# second up, demo, chaos or bench refuses with one line and changes nothing.
# demo, chaos and bench run on throwaway stacks of their own.
#
# Environment:
#   QUORUM_DEV_STATE=DIR   keep the local stack in DIR instead of .quorum/
#   QUORUM_DEV_BIN=DIR     run the binaries in DIR (up, demo, chaos); skips deps and build
#
# Exit codes: 0 done, 1 failure or refusal, 2 usage error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${QUORUM_DEV_STATE:-$ROOT/.quorum}
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
BIN=${QUORUM_DEV_BIN:-$ROOT/build/bin}
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
SAMPLE="$ROOT/deploy/sample/news.jsonl"
SAMPLE_LABELS="sports,technology,cooking,weather"
. "$ROOT/deploy/common.sh"

PACKAGES=(build-essential cmake pkg-config libuv1-dev libpq-dev libhiredis-dev libssl-dev libjemalloc-dev
    libhttp-parser-dev libjansson-dev libcurl4-openssl-dev libcsv-dev libcmocka-dev
    postgresql redis-server openssl curl jq ca-certificates tmux python3 bc clang libclang-rt-14-dev
    prometheus libutf8proc-dev chromium chromium-driver python3-selenium
    libnss3-tools systemd adduser haproxy)

say() { printf 'dev.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -n '/^#/s/^# \{0,1\}//p'
}
usage_error() { say "$* (deploy/dev.sh --help lists the commands)"; exit 2; }

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

# deps and build, unless QUORUM_DEV_BIN names the binaries to run.
need_bin() {
    if [ -z "${QUORUM_DEV_BIN:-}" ]; then
        deps
        say "building"
        build
    fi
    if [ ! -x "$BIN/quorumd" ] || [ ! -x "$BIN/quorumctl" ]; then die "no quorumd and quorumctl in $BIN"; fi
}

# --- the lock ---------------------------------------------------------------
# One command at a time runs a stack from this checkout: up, demo, chaos and
# bench hold an exclusive flock on $STATE/lock (fd 9) while they run, and
# write "PID COMMAND" into it. The processes they start do not inherit the
# descriptor (9>&-): the servers of an `up` killed with SIGKILL are found
# from their pid files instead (stack_leftovers).

# lock_open: opens $STATE/lock as fd 9 (made, with $STATE, if need be).
lock_open() {
    # Traversable by others: as root, PostgreSQL runs as `postgres` on a
    # cluster inside. What is secret in it is mode 0600.
    # shellcheck disable=SC2174 # only the state folder itself needs o+x
    [ -d "$STATE" ] || mkdir -p -m 711 "$STATE"
    exec 9>>"$STATE/lock"
}

# lock_holder: "PID COMMAND" of the lock's holder, as it wrote it.
lock_holder() { cat "$STATE/lock" 2>/dev/null || true; }

# A pid that names a live process (not a zombie) whose name is $2.
alive_as() {
    local st
    st=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# stack_leftovers: what of the stack in $STATE runs ("quorumd postgres
# redis", or nothing), whoever started it.
stack_leftovers() {
    local out="" pid
    pid=$(cat "$STATE/quorumd.pid" 2>/dev/null || true)
    [ -n "$pid" ] && alive_as "$pid" quorumd && out="quorumd"
    [ -d "$STATE/stack" ] && out="$out $("$ROOT/deploy/stack.sh" status --keep "$STATE/stack" 9>&-)"
    # shellcheck disable=SC2086 # word splitting trims the spaces
    echo $out
}

# take_lock COMMAND: takes the lock for COMMAND (up, demo, chaos, bench),
# or refuses with one line, changing nothing, while a stack runs.
take_lock() {
    lock_open
    if ! flock -n 9; then
        local pid cmd
        read -r pid cmd <<<"$(lock_holder)" || true
        case "$cmd" in
        up) die "a stack is already running in $STATE (deploy/dev.sh up, pid $pid); deploy/dev.sh down stops it" ;;
        *) die "deploy/dev.sh ${cmd:-?} (pid ${pid:-?}) is running a stack of its own; try again when it is done" ;;
        esac
    fi
    local left; left=$(stack_leftovers)
    [ -z "$left" ] || die "a stack is already running in $STATE ($left, left by an up that was killed); deploy/dev.sh down stops it"
    echo "$$ $1" >"$STATE/lock"
}

# claim_lock_to_stop: takes the lock for down or reset. An `up` holding it
# is asked to stop (SIGTERM: it stops its stack and exits) and waited for;
# STOPPED_UP is then its pid.
STOPPED_UP=""
claim_lock_to_stop() {
    lock_open
    flock -n 9 && return 0
    local pid cmd
    read -r pid cmd <<<"$(lock_holder)" || true
    [ "$cmd" = up ] || die "deploy/dev.sh ${cmd:-?} (pid ${pid:-?}) is running a stack of its own; it stops it when done"
    kill -TERM "$pid" 2>/dev/null || true
    flock -w 60 9 || die "deploy/dev.sh up (pid $pid) did not stop within 60 s"
    STOPPED_UP=$pid
}

# --- the stack ----------------------------------------------------------------

# write_secret FILE: stdin into FILE, mode 0600 from its creation, written
# to a temporary name and renamed, so readers see all of it or nothing.
write_secret() {
    (
        umask 077
        cat >"$1.tmp"
        mv -f "$1.tmp" "$1"
    )
}

# stack_up DIR KEEP SAMPLE: starts PostgreSQL, Redis and quorumd with their
# state in DIR and, once quorumd answers (with the sample project made when
# SAMPLE is 1 and DIR has none yet), writes DIR/env. KEEP=1: the stack of
# `up`, kept in DIR and reused (port, token, certificate); KEEP=0: a
# throwaway one (demo), made afresh.
stack_up() {
    local dir=$1 keep=$2 with_sample=$3
    rm -f "$dir/env" "$dir/env.tmp"
    if [ "$keep" = 1 ]; then
        "$ROOT/deploy/stack.sh" start --keep "$dir/stack" >/dev/null 9>&-
    else
        "$ROOT/deploy/stack.sh" start "$dir/stack" >/dev/null 9>&-
    fi
    # shellcheck disable=SC1091
    . "$dir/stack/env"
    # A certificate about to expire is made afresh (the CA with it).
    if [ -f "$dir/tls/server.crt" ] && ! openssl x509 -checkend 86400 -noout -in "$dir/tls/server.crt" >/dev/null 2>&1; then
        rm -rf "$dir/tls"
    fi
    make_certs "$dir/tls" 3650
    "$BIN/quorumd" migrate --pg "$QR_PG_CONNINFO" --sql-dir "$ROOT/sql" 2>"$dir/migrate.log" ||
        { cat "$dir/migrate.log" >&2; die "migration failed"; }
    local serve=(--pg "$QR_PG_CONNINFO" --redis "127.0.0.1:$QR_REDIS_PORT"
        --cert "$dir/tls/server.crt" --key "$dir/tls/server.key")
    [ -s "$dir/admin-token" ] ||
        "$BIN/quorumd" bootstrap-admin --pg "$QR_PG_CONNINFO" | write_secret "$dir/admin-token"
    local token port=""
    token=$(cat "$dir/admin-token")
    # The last run's log stays beside the new one (a crash's, say).
    if [ -s "$dir/quorumd.log" ]; then mv -f "$dir/quorumd.log" "$dir/quorumd.log.1"; fi
    : >"$dir/quorumd.log"
    if [ "$keep" = 0 ]; then
        start_quorumd "$BIN/quorumd" "$dir/quorumd.log" "${serve[@]}" 9>&- || die "quorumd did not start"
    elif [ -s "$dir/port" ]; then
        # The port of the first up, kept so that clients' settings stay valid.
        port=$(cat "$dir/port")
        if ! QD_LISTEN="127.0.0.1:$port" start_quorumd "$BIN/quorumd" "$dir/quorumd.log" "${serve[@]}" 9>&-; then
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
                die "another program listens on 127.0.0.1:$port, the stack's port: stop it and run up again"
            die "quorumd did not start"
        fi
    else
        # A port below the kernel's ephemeral range (free_port), which no
        # outgoing connection takes on a later up; another if it was taken.
        for _ in 1 2 3 4 5; do
            port=$(free_port)
            QD_LISTEN="127.0.0.1:$port" start_quorumd "$BIN/quorumd" "$dir/quorumd.log" "${serve[@]}" \
                9>&- 2>/dev/null && break
            port=""
        done
        [ -n "$port" ] || { cat "$dir/quorumd.log" >&2; die "quorumd did not start"; }
        echo "$port" >"$dir/port"
    fi
    echo "$QD_PID" >"$dir/quorumd.pid"
    wait_https "https://127.0.0.1:$QD_PORT" "$dir/tls/ca.crt" "$QD_PID" ||
        { cat "$dir/quorumd.log" >&2; die "quorumd did not come up"; }
    STACK_URL="https://127.0.0.1:$QD_PORT" STACK_TOKEN=$token STACK_CA="$dir/tls/ca.crt"
    if [ "$with_sample" = 1 ] && [ ! -f "$dir/sample-project" ]; then
        local project
        project=$(ctl project create --name sample --labels "$SAMPLE_LABELS")
        ctl import --project "$project" "$SAMPLE" >&2
        echo "$project" >"$dir/sample-project"
    elif [ ! -f "$dir/sample-project" ] && [ "$keep" = 1 ]; then
        : >"$dir/sample-project" # up --empty: none now, nor later
    fi
    STACK_PROJECT=$(cat "$dir/sample-project" 2>/dev/null || true)
    {
        echo "# deploy/dev.sh up: the local stack's settings; \`source\` this file from any folder"
        echo "export QUORUM_URL='$STACK_URL'"
        echo "export QUORUM_TOKEN='$STACK_TOKEN'"
        echo "export QUORUM_CA='$STACK_CA'"
        [ -z "$STACK_PROJECT" ] || echo "export QUORUM_PROJECT='$STACK_PROJECT'"
    } | write_secret "$dir/env"
}

# ctl ARGS...: quorumctl against the stack stack_up started, with its
# settings alone (no QUORUM_CERT or the like of the caller's shell).
ctl() {
    env -u QUORUM_CERT -u QUORUM_KEY QUORUM_URL="$STACK_URL" QUORUM_TOKEN="$STACK_TOKEN" \
        QUORUM_CA="$STACK_CA" "$BIN/quorumctl" "$@"
}

# stack_down DIR: stops quorumd, Redis and PostgreSQL; a kept stack's data
# stays, a throwaway stack's goes.
stack_down() {
    local dir=$1 pid
    pid=$(cat "$dir/quorumd.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && alive_as "$pid" quorumd; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do alive_as "$pid" quorumd || break; sleep 0.1; done
        if alive_as "$pid" quorumd; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$dir/quorumd.pid" "$dir/env" "$dir/quorumd.log.port"
    "$ROOT/deploy/stack.sh" stop "$dir/stack" >/dev/null 2>&1 9>&- || true
}

KEPT_LINE="data kept in $STATE (deploy/dev.sh reset deletes it)"

# The EXIT trap of up: stops what it started (a second Ctrl-C meanwhile is
# ignored), keeps the data, and says so unless up failed before the stack
# answered (the failure's line is then the one to read).
UP_READY=0 UP_STOPPED=0
up_exit() {
    trap '' INT TERM HUP
    trap - EXIT
    stack_down "$STATE"
    [ "$UP_READY$UP_STOPPED" = 00 ] || say "stopped; $KEPT_LINE"
}

up() {
    local with_sample=1
    case "${1:-}" in
    --empty) with_sample=0 ;;
    "") ;;
    *) usage_error "up: unknown option $1" ;;
    esac
    [ $# -le 1 ] || usage_error "up: unexpected argument $2"
    take_lock up
    need_bin
    # From here on the stack is this process's: any exit stops it.
    # (Ctrl-C: after the terminal's ^C, on a line of its own.)
    trap 'UP_STOPPED=1; [ -t 2 ] && echo >&2; exit 0' INT
    trap 'UP_STOPPED=1; exit 0' TERM HUP
    trap up_exit EXIT
    say "starting PostgreSQL, Redis and quorumd in $STATE"
    stack_up "$STATE" 1 "$with_sample"
    UP_READY=1
    local b=${BIN#"$ROOT"/} s=${STATE#"$ROOT"/}
    cat <<MSG
Quorum is up.
  URL:    $STACK_URL
  CA:     $STACK_CA
  token:  $STACK_TOKEN (admin)
MSG
    [ -n "$STACK_PROJECT" ] && echo "  sample project: $STACK_PROJECT (labels $SAMPLE_LABELS)"
    cat <<MSG
From another terminal (any folder):  source $STATE/env
  $b/quorumctl report --project \${QUORUM_PROJECT:-1}
  $b/quorum-agent simulate --project \${QUORUM_PROJECT:-1} --annotators 4 --accuracy 0.9
Ctrl-C (or deploy/dev.sh down) stops it; the data stays in $s/ for the next up.
MSG
    local rc=0
    wait "$(cat "$STATE/quorumd.pid")" || rc=$?
    die "quorumd exited (status $rc; its log: $STATE/quorumd.log)"
}

down() {
    [ $# = 0 ] || usage_error "down: unexpected argument $1"
    if [ ! -d "$STATE" ]; then
        say "no stack to stop in $STATE"
        return 0
    fi
    claim_lock_to_stop
    local left; left=$(stack_leftovers)
    if [ -n "$left" ]; then
        stack_down "$STATE"
    elif [ -z "$STOPPED_UP" ]; then
        say "no stack running; $KEPT_LINE"
        return 0
    fi
    say "stopped${STOPPED_UP:+ (deploy/dev.sh up, pid $STOPPED_UP)}; $KEPT_LINE"
}

# What reset deletes: every name a stack of up writes into $STATE.
STATE_FILES=(env env.tmp tls stack quorumd.log quorumd.log.1 quorumd.log.port quorumd.pid migrate.log
    port admin-token admin-token.tmp sample-project lock)

reset() {
    local yes=0
    while [ $# -gt 0 ]; do
        case "$1" in
        --yes) yes=1; shift ;;
        *) usage_error "reset: unknown option $1" ;;
        esac
    done
    if [ ! -d "$STATE" ]; then
        say "nothing to delete: $STATE does not exist"
        return 0
    fi
    if [ $yes = 0 ]; then
        [ -t 0 ] || die "reset deletes every project, task and label in $STATE: run it in a terminal to confirm, or add --yes"
        local answer=""
        read -r -p "dev.sh: delete every project, task, label and the admin token in $STATE? [y/N] " answer || true
        case "$answer" in
        y | Y | yes) ;;
        *) die "nothing deleted" ;;
        esac
    fi
    claim_lock_to_stop
    [ -z "$(stack_leftovers)" ] || stack_down "$STATE"
    local f
    for f in "${STATE_FILES[@]}"; do rm -rf "${STATE:?}/$f"; done
    if rmdir "$STATE" 2>/dev/null; then
        say "deleted $STATE; the next deploy/dev.sh up starts afresh"
    else
        say "deleted the stack's data in $STATE (other files there kept); the next deploy/dev.sh up starts afresh"
    fi
}

demo() {
    local json_report=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --json-report) [ $# -ge 2 ] || usage_error "--json-report needs a FILE"; json_report=$2; shift 2 ;;
        *) usage_error "demo: unknown option $1" ;;
        esac
    done
    case "$json_report" in ""|/*) ;; *) json_report="$PWD/$json_report" ;; esac
    local t0=$SECONDS
    take_lock demo
    need_bin
    # A throwaway stack of its own, never the one of `up`.
    DEMO_DIR=$(mktemp -d /tmp/quorum-demo.XXXXXX)
    trap 'exit 130' INT TERM
    trap 'stack_down "$DEMO_DIR"; rm -rf "$DEMO_DIR"' EXIT
    say "starting PostgreSQL, Redis and quorumd (throwaway, in $DEMO_DIR)"
    stack_up "$DEMO_DIR" 0 0
    local project
    project=$(ctl project create --name "demo" --labels "$SAMPLE_LABELS" \
        --annotations-per-task 3 --lease-ttl-ms 30000)
    say "project $project: 2,000 texts, 3 annotations per task"
    ctl import --project "$project" "$SAMPLE" >&2
    say "8 simulated annotators at accuracy 0.9"
    env -u QUORUM_CERT -u QUORUM_KEY QUORUM_URL="$STACK_URL" QUORUM_TOKEN="$STACK_TOKEN" \
        QUORUM_CA="$STACK_CA" "$BIN/quorum-agent" simulate --project "$project" --annotators 8 \
        --accuracy 0.9 --think-ms 0-4 --seed 7 >&2
    echo
    ctl report --project "$project"
    local report; report=$(ctl report --project "$project" --json)
    [ -n "$json_report" ] && printf '%s\n' "$report" >"$json_report"
    # The demo checks the invariants it is meant to show.
    local ok
    ok=$(printf '%s' "$report" | jq -r '(.tasks == 2000) and (.tasks_complete == .tasks)
        and (.annotations == 3 * .tasks) and (.duplicate_assignments == 0)
        and (.overfilled_tasks == 0)')
    stack_down "$DEMO_DIR"
    rm -rf "$DEMO_DIR"
    trap - EXIT
    say "done in $((SECONDS - t0)) s"
    [ "$ok" = true ] || die "the report breaks an invariant (see above)"
}

# The tests' tools from the npm registry (tests/node/package-lock.json pins
# them): Node.js and npm from Debian when the machine has none.
test_deps() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        say "installing: nodejs npm"
        # (deps updates the package lists only when it installs something.)
        $sudo apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            nodejs npm >/dev/null
    fi
    local n="$ROOT/tests/node"
    if [ ! -f "$n/node_modules/.package-lock.json" ] ||
        ! cmp -s <(jq -S '.packages | del(."")' "$n/package-lock.json") \
            <(jq -S '.packages' "$n/node_modules/.package-lock.json"); then
        say "installing the tests' npm packages (tests/node)"
        (cd "$n" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
            die "npm ci in tests/node failed"
    fi
}

# The Debian package (cmake/package.cmake): CPack's DEB generator over a
# Release build in build-rel/, written to build/quorum_<version>_amd64.deb,
# the version being the top-level CMakeLists.txt's project() version.
package() {
    deps
    local b="$ROOT/build-rel" version
    version=$(sed -n 's/^project(quorum VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
    [ -n "$version" ] || die "no project(quorum VERSION x.y.z) in CMakeLists.txt"
    say "building (Release, in $b)"
    cmake -S "$ROOT" -B "$b" -DCMAKE_BUILD_TYPE=Release -DQUORUM_SANITIZE=OFF >/dev/null
    cmake --build "$b" -j"$(nproc)" -- --no-print-directory >/dev/null
    local out="$b/package"
    rm -rf "$out"
    (cd "$b" && cpack -G DEB -B "$out" >"$b/cpack.log" 2>&1) || { cat "$b/cpack.log" >&2; die "cpack failed"; }
    mkdir -p "$ROOT/build"
    local deb="$ROOT/build/quorum_${version}_amd64.deb"
    mv "$out/quorum_${version}_amd64.deb" "$deb" || die "cpack wrote no quorum_${version}_amd64.deb"
    rm -rf "$out"
    say "$deb"
}

run_tests() {
    deps
    test_deps
    local b="$ROOT/build-asan"
    cmake -S "$ROOT" -B "$b" -DQUORUM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
    cmake --build "$b" -j"$(nproc)" -- --no-print-directory >/dev/null
    cd "$b"
    local rc=0
    # One test more than the cores: the end-to-end tests spend much of their
    # time waiting (leases expiring, brokers restarting, browsers), so with
    # one per core the CPU idles (user+sys was 55 % of 2 cores at -j2).
    ctest --output-on-failure -j"$(($(nproc) + 1))" --timeout 600 || rc=$?
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
down) down "$@" ;;
reset) reset "$@" ;;
demo) demo "$@" ;;
test) run_tests ;;
chaos) take_lock chaos; need_bin; "$ROOT/deploy/chaos.sh" --bin "$BIN" "$@" 9>&- ;;
bench) take_lock bench; deps; "$ROOT/deploy/bench.sh" "$@" 9>&- ;;
fuzz) deps; "$ROOT/deploy/fuzz.sh" "$@" ;;
package) [ $# = 0 ] || usage_error "package takes no arguments"; package ;;
-h|--help|help) usage ;;
"") usage >&2; exit 2 ;;
*) usage_error "unknown command $cmd" ;;
esac
