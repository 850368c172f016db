#!/usr/bin/env bash
# agreement_bench.sh - benchmark (not a test) for `quorumctl agreement`: issue 4
# asks for 1,000,000 judgements (200,000 items x 5 judgements, 50 annotators,
# 10 labels) in <= 0.25 s wall, parsing included, and under 200 MiB.
#
# Usage: tests/bench/agreement_bench.sh [QUORUMCTL] [RUNS] [OUT.json]
#   QUORUMCTL  the binary to time (default: build-agr-rel/bin/quorumctl); it is
#              run as `QUORUMCTL agreement FILE --json`. A binary whose basename
#              is not quorumctl is run as `BINARY FILE --json` (a driver that
#              calls qr_ctl_agreement directly).
#   RUNS       timed runs per case (default 7); the median is reported.
# Cases: --json, --json --per-item, text, text --per-item; for each the JSON
# records the median, minimum, maximum and every wall time, and the peak RSS.
#   OUT.json   where the results go (default: agreement_bench.json in the
#              current directory).
# Environment: QR_BENCH_DIR keeps the generated CSV (default: a temp dir,
# removed on exit).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/build-agr-rel/bin/quorumctl}
runs=${2:-7}
out=${3:-agreement_bench.json}
[ -x "$bin" ] || { echo "agreement_bench: no executable $bin (build it first)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "agreement_bench: needs GNU time (/usr/bin/time)" >&2; exit 2; }

if [ -n "${QR_BENCH_DIR:-}" ]; then
    dir=$QR_BENCH_DIR; mkdir -p "$dir"
else
    dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
fi
csv=$dir/judgements_1m.csv

# 200,000 items x 5 distinct annotators of 50, labels 1..10; each item has a
# "true" label that an annotator gives with probability 0.7 (so agreement is
# neither 0 nor 1). Deterministic (fixed srand seed).
if [ ! -s "$csv" ]; then
    awk 'BEGIN {
        srand(20240604);
        print "item,annotator,label";
        for (i = 0; i < 200000; i++) {
            truth = int(rand() * 10) + 1;
            start = int(rand() * 50);
            step = 1 + int(rand() * 9);      # 1..9, coprime to 50 only if odd and != 5
            if (step % 2 == 0 || step == 5) step = 1;
            for (k = 0; k < 5; k++) {
                a = (start + k * step) % 50;
                l = rand() < 0.7 ? truth : int(rand() * 10) + 1;
                printf "item-%06d,annotator-%02d,%d\n", i, a, l;
            }
        }
    }' > "$csv"
fi
lines=$(($(wc -l < "$csv") - 1))
bytes=$(wc -c < "$csv")

case "$(basename "$bin")" in
    quorumctl*) cmd=("$bin" agreement) ;;
    *) cmd=("$bin") ;;
esac

# run_case NAME FLAGS...: RUNS timed runs; prints and records the median,
# minimum and maximum wall seconds (millisecond resolution, from bash's
# EPOCHREALTIME around the run; GNU time's %e has only 10 ms) and the largest
# peak RSS (KiB, from GNU time).
results=()
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
run_case() {
    local name=$1; shift
    local walls=() rss_max=0 t w r t0 t1
    "${cmd[@]}" "$csv" "$@" > /dev/null # warm the page cache
    for ((t = 0; t < runs; t++)); do
        t0=$(now_us)
        /usr/bin/time -f '%e %M' -o "$dir/time.txt" "${cmd[@]}" "$csv" "$@" > /dev/null
        t1=$(now_us)
        read -r w r < "$dir/time.txt"
        walls+=("$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e6 }')")
        ((r > rss_max)) && rss_max=$r
    done
    local sorted median min max
    sorted=$(printf '%s\n' "${walls[@]}" | sort -n)
    median=$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' <<< "$sorted")
    min=$(head -n1 <<< "$sorted")
    max=$(tail -n1 <<< "$sorted")
    printf '%-22s median %6.3f s over %d runs (min %s, max %s; all: %s), peak RSS %d KiB (%.1f MiB)\n' \
        "$name" "$median" "$runs" "$min" "$max" "${walls[*]}" "$rss_max" \
        "$(awk -v k="$rss_max" 'BEGIN { print k / 1024 }')"
    results+=("{\"case\": \"$name\", \"flags\": \"$*\", \"runs\": $runs, \"median_wall_s\": $median, \"min_wall_s\": $min, \"max_wall_s\": $max, \"walls_s\": [$(IFS=,; echo "${walls[*]}")], \"peak_rss_kib\": $rss_max, \"peak_rss_mib\": $(awk -v k="$rss_max" 'BEGIN { printf "%.1f", k / 1024 }')}")
}

echo "agreement_bench: $lines judgements, $bytes bytes, $(nproc) cores, binary $bin"
run_case json --json
run_case json_per_item --json --per-item
run_case text
run_case text_per_item --per-item

{
    printf '{"judgements": %d, "csv_bytes": %d, "binary": "%s", "cores": %d, "loadavg_1m": %s, "date": "%s",\n' \
        "$lines" "$bytes" "$bin" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf ' "limits": {"wall_s": 0.25, "rss_mib": 200}, "results": [\n'
    (IFS=$'\n'; echo "${results[*]}" | sed '$!s/$/,/')
    printf ']}\n'
} > "$out"
echo "agreement_bench: results in $out"
