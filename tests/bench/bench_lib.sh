# shellcheck shell=bash
# bench_lib.sh - sourced by the benchmark scripts that run a C benchmark of
# tests/bench and time quorumctl on a generated file: the Release build they
# need, the folder for their data, and a median of wall times.
#
# Usage, after setting here (this folder) and root (the checkout):
#   . "$here/bench_lib.sh"
#   bench_release NAME BUILD_DIR TARGET...
#   bench_data_dir
#   bench_median_wall RUNS CMD...   (sets walls and median)

# bench_release NAME BUILD_DIR TARGET...: sets build (BUILD_DIR made
# absolute) and bt (its build type); configures BUILD_DIR as a Release build
# and builds the TARGETs (binaries in BUILD_DIR/bin) when one is missing;
# warns on stderr when BUILD_DIR is not a Release build.
bench_release() {
    local name=$1 t missing=0
    : "${root:?bench_release needs root, the checkout}"
    build=$2
    shift 2
    case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
    for t in "$@"; do [ -x "$build/bin/$t" ] || missing=1; done
    if [ "$missing" = 1 ]; then
        cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
        nice cmake --build "$build" --target "$@" -j2 >/dev/null
    fi
    bt=$(grep -m1 '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" | cut -d= -f2)
    [ "$bt" = Release ] || echo "$name: warning: $build is a $bt build, not Release" >&2
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
