# shellcheck shell=bash
# bench_lib.sh - sourced by the benchmark scripts that run a C benchmark of
# tests/bench and time quorumctl on a generated file: their arguments, the
# Release build they need, the folder for their data, the C benchmark's run,
# and a median of wall times.
#
# Usage, with here set to this folder:
#   . "$here/bench_lib.sh"
#   bench_init NAME TARGET... -- "$@"   (NAME: the C benchmark, also a TARGET)
#   ... generate data in "$dir", time with bench_median_wall RUNS CMD...

# bench_init NAME TARGET... -- [BUILD_DIR] [RUNS] [OUT.json]: sets root (the
# checkout), build (BUILD_DIR, default build-rel, made absolute), bt (its
# build type), runs (default 5), out (default NAME.json) and dir (see
# bench_data_dir); configures BUILD_DIR as a Release build and builds the
# TARGETs when one is missing (warns when it is not a Release build); runs
# the C benchmark NAME for RUNS runs, prints its lines and sets lib_json to
# its "JSON " line.
bench_init() {
    local name=$1 targets=() t missing=0 lib
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        targets+=("$1")
        shift
    done
    shift
    root=$(cd "${here:?bench_init needs here, the folder of bench_lib.sh}/../.." && pwd)
    build=${1:-$root/build-rel}
    runs=${2:-5}
    # shellcheck disable=SC2034 # out and lib_json are the caller's
    out=${3:-$name.json}
    case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
    for t in "${targets[@]}"; do [ -x "$build/bin/$t" ] || missing=1; done
    if [ "$missing" = 1 ]; then
        cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
        nice cmake --build "$build" --target "${targets[@]}" -j2 >/dev/null
    fi
    bt=$(grep -m1 '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" | cut -d= -f2)
    [ "$bt" = Release ] || echo "$name: warning: $build is a $bt build, not Release" >&2
    bench_data_dir
    echo "$name: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), build $build ($bt)"
    lib=$("$build/bin/$name" "$runs")
    echo "$lib" | grep -v '^JSON '
    # shellcheck disable=SC2034
    lib_json=$(echo "$lib" | sed -n 's/^JSON //p')
}

# bench_data_dir: sets dir to $QR_BENCH_DIR (kept) or to a temporary folder
# removed on exit.
bench_data_dir() {
    if [ -n "${QR_BENCH_DIR:-}" ]; then
        dir=$QR_BENCH_DIR
        mkdir -p "$dir"
    else
        dir=$(mktemp -d)
        # shellcheck disable=SC2064 # the folder is known now
        trap "rm -rf '$dir'" EXIT
    fi
}

# bench_median_wall RUNS CMD...: runs CMD once (to warm the page cache),
# then RUNS times with its stdout discarded; sets walls (each run's wall
# time in seconds, in run order) and median.
bench_median_wall() {
    local runs=$1 t t0 t1
    shift
    # shellcheck disable=SC2034 # walls and median are the caller's
    walls=()
    "$@" >/dev/null
    for ((t = 0; t < runs; t++)); do
        t0=${EPOCHREALTIME/[.,]/}
        "$@" >/dev/null
        t1=${EPOCHREALTIME/[.,]/}
        walls+=("$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e6 }')")
    done
    # shellcheck disable=SC2034
    median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
}

# bench_broker BUILD [quorumd serve flags...]: a private stack (PostgreSQL
# and Redis) in a temporary folder W, migrated, with a bootstrap admin, TLS
# certificates and BUILD's quorumd serving on it with rate limits off and
# the flags given; every QUORUM_* variable of the caller's shell unset
# first. Sets W, QPID, URL, CA, TOKEN, exports QUORUM_URL, QUORUM_TOKEN and
# QUORUM_CA, sources the stack's env (QR_PG_CONNINFO, QR_REDIS_PORT) and
# deploy/common.sh; everything is stopped and removed on exit.
bench_broker() {
    local bin=$1 v
    shift
    root=${root:-$(cd "${here:?bench_broker needs here, the folder of bench_lib.sh}/../.." && pwd)}
    W=$(mktemp -d /tmp/quorum-bench.XXXXXX)
    trap bench_broker_stop EXIT
    for v in $(env | grep -o '^QUORUM_[A-Z_]*' || true); do unset "$v"; done
    "$root/deploy/stack.sh" start "$W/stack" >/dev/null
    . "$W/stack/env"
    . "$root/deploy/common.sh"
    "$bin/quorumd" migrate --pg "$QR_PG_CONNINFO" --sql-dir "$root/sql" 2>/dev/null
    TOKEN=$("$bin/quorumd" bootstrap-admin --pg "$QR_PG_CONNINFO")
    make_certs "$W/tls" 1
    start_quorumd "$bin/quorumd" "$W/q.log" --pg "$QR_PG_CONNINFO" --redis "127.0.0.1:$QR_REDIS_PORT" \
        --cert "$W/tls/server.crt" --key "$W/tls/server.key" --auth-fail-rate 0 --rate-limit 0 "$@" || exit 1
    QPID=$QD_PID URL="https://127.0.0.1:$QD_PORT" CA="$W/tls/ca.crt"
    wait_https "$URL" "$CA" "$QPID"
    export QUORUM_URL=$URL QUORUM_TOKEN=$TOKEN QUORUM_CA=$CA
}

bench_broker_stop() {
    [ -n "${QPID:-}" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
    "$root/deploy/stack.sh" stop "$W/stack" >/dev/null 2>&1 || true
    rm -rf "$W"
}
