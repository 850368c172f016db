#!/usr/bin/env bash
# agreement_bench.sh - benchmark (not a test) for `quorumctl agreement`. Issue 15
# (point 5): on 1,000,000 judgements (200,000 items x 5 judgements, 50
# annotators, numeric labels 1-10, so all four Krippendorff alpha levels are
# computed) `quorumctl agreement --json` in <= 0.2 s wall in the build users
# get (deploy/dev.sh build: RelWithDebInfo), and >= 14x faster than a pandas +
# numpy + statsmodels script doing the same job (tests/bench/agreement_ref.py),
# timed here in the same run. Issue 4's limit of 200 MiB peak RSS still holds.
#
# Usage: tests/bench/agreement_bench.sh [QUORUMCTL] [RUNS] [OUT.json]
#   QUORUMCTL  the binary to time (default: build/bin/quorumctl, what
#              deploy/dev.sh build makes); it is run as `QUORUMCTL agreement
#              FILE --json`. A binary whose basename is not quorumctl is run as
#              `BINARY FILE --json` (a driver that calls qr_ctl_agreement).
#   RUNS       timed runs per case (default 5); medians are reported.
#   OUT.json   where the results go (default: agreement_bench.json in the
#              current directory).
# Cases: json (the one issue 15 sets the limit for), json --per-item, text,
# text --per-item, and reference: agreement_ref.py on the same file. For each,
# the median, minimum and maximum wall time, the median CPU time (user +
# system) and the peak RSS; then the ratios reference / json.
# The reference needs Debian's python3-pandas, python3-numpy and
# python3-statsmodels under /usr/bin/python3: when one is missing and this runs
# as root, they are installed with apt-get; otherwise (or with
# QR_BENCH_NO_REF=1) the reference case is skipped and no ratio is printed.
# Environment: QR_BENCH_DIR keeps the generated CSV (default: a temp dir,
# removed on exit).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/build/bin/quorumctl}
runs=${2:-5}
out=${3:-agreement_bench.json}
[ -x "$bin" ] || { echo "agreement_bench: no executable $bin (build it first: deploy/dev.sh build)" >&2; exit 2; }
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
build_type=unknown
cache=$(cd "$(dirname "$bin")/.." && pwd)/CMakeCache.txt
[ -f "$cache" ] && build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache")

# The reference: Debian's Python with pandas, numpy and statsmodels.
py=/usr/bin/python3
ref_ok=0
have_ref() { [ -x "$py" ] && "$py" -c 'import pandas, numpy, statsmodels' 2>/dev/null; }
if [ "${QR_BENCH_NO_REF:-0}" != 1 ]; then
    if ! have_ref && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "agreement_bench: installing python3-pandas python3-numpy python3-statsmodels" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pandas python3-numpy \
            python3-statsmodels >/dev/null || true
    fi
    if have_ref; then
        ref_ok=1
    else
        echo "agreement_bench: no pandas/numpy/statsmodels under $py: reference skipped" >&2
    fi
fi

# run_case NAME CMD...: RUNS timed runs (after one untimed run that warms the
# page cache); records the median, minimum and maximum wall seconds
# (millisecond resolution, from bash's EPOCHREALTIME around the run; GNU
# time's %e has only 10 ms), the median CPU seconds (user + system, GNU time)
# and the largest peak RSS (KiB).
results=()
declare -A med_wall med_cpu
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run_case() {
    local name=$1; shift
    local walls=() cpus=() rss_max=0 t u s r t0 t1
    "$@" > /dev/null # warm the page cache
    for ((t = 0; t < runs; t++)); do
        t0=$(now_us)
        /usr/bin/time -f '%U %S %M' -o "$dir/time.txt" "$@" > /dev/null
        t1=$(now_us)
        read -r u s r < "$dir/time.txt"
        walls+=("$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e6 }')")
        cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')")
        ((r > rss_max)) && rss_max=$r
    done
    local median_w median_c min max
    median_w=$(printf '%s\n' "${walls[@]}" | median)
    median_c=$(printf '%s\n' "${cpus[@]}" | median)
    min=$(printf '%s\n' "${walls[@]}" | sort -n | head -n1)
    max=$(printf '%s\n' "${walls[@]}" | sort -n | tail -n1)
    med_wall[$name]=$median_w
    med_cpu[$name]=$median_c
    printf '%-15s median wall %6.3f s, CPU %5.2f s over %d runs (wall min %s, max %s; all: %s), peak RSS %.1f MiB\n' \
        "$name" "$median_w" "$median_c" "$runs" "$min" "$max" "${walls[*]}" \
        "$(awk -v k="$rss_max" 'BEGIN { print k / 1024 }')"
    results+=("{\"case\": \"$name\", \"runs\": $runs, \"median_wall_s\": $median_w, \"median_cpu_s\": $median_c, \"min_wall_s\": $min, \"max_wall_s\": $max, \"walls_s\": [$(IFS=,; echo "${walls[*]}")], \"cpus_s\": [$(IFS=,; echo "${cpus[*]}")], \"peak_rss_kib\": $rss_max}")
}

echo "agreement_bench: $lines judgements, $bytes bytes, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "agreement_bench: binary $bin (CMAKE_BUILD_TYPE $build_type)"
run_case json "${cmd[@]}" "$csv" --json
run_case json_per_item "${cmd[@]}" "$csv" --json --per-item
run_case text "${cmd[@]}" "$csv"
run_case text_per_item "${cmd[@]}" "$csv" --per-item
ratio_json=null
check_json=null
if [ "$ref_ok" = 1 ]; then
    run_case reference "$py" "$here/agreement_ref.py" "$csv"
    wall_ratio=$(awk -v r="${med_wall[reference]}" -v q="${med_wall[json]}" 'BEGIN { printf "%.1f", r / q }')
    cpu_ratio=$(awk -v r="${med_cpu[reference]}" -v q="${med_cpu[json]}" 'BEGIN { if (q > 0) printf "%.1f", r / q; else print "null" }')
    echo "agreement_bench: reference / quorumctl --json: ${wall_ratio}x wall, ${cpu_ratio}x CPU (medians)"
    ratio_json="{\"wall\": $wall_ratio, \"cpu\": $cpu_ratio}"
    # Both must report the same figures (to rounding).
    "${cmd[@]}" "$csv" --json > "$dir/quorumctl.json"
    "$py" "$here/agreement_ref.py" "$csv" "$dir/ref.json"
    diff=$("$py" - "$dir/quorumctl.json" "$dir/ref.json" <<'EOF'
import json, sys
q, r = (json.load(open(p)) for p in sys.argv[1:3])
assert q["counts"] == r["counts"] and q["labels"] == r["labels"], "counts or labels differ"
d = 0.0
for k, v in q["metrics"].items():
    assert v["status"] == r["metrics"][k]["status"], k
    if v["status"] == "defined":
        d = max(d, abs(v["value"] - r["metrics"][k]["value"]))
assert len(q["pairwise"]) == len(r["pairwise"]), "pairwise differs"
for a, b in zip(q["pairwise"], r["pairwise"]):
    assert (a["a"], a["b"], a["items"], a["agree"]) == (b["a"], b["b"], b["items"], b["agree"])
    d = max(d, abs(a["cohen_kappa"]["value"] - b["cohen_kappa"]["value"]))
for a, b in zip(q["per_annotator"], r["per_annotator"]):
    assert a["judgements"] == b["judgements"]
    assert a["majority_agreement"]["agree"] == b["majority_agreement"]["agree"]
print("%.3g" % d)
EOF
)
    echo "agreement_bench: reference and quorumctl agree (largest difference of a figure: $diff)"
    check_json="{\"max_abs_diff\": $diff}"
fi

{
    printf '{"judgements": %d, "csv_bytes": %d, "binary": "%s", "build_type": "%s", "cores": %d, "loadavg_1m": %s, "date": "%s",\n' \
        "$lines" "$bytes" "$bin" "$build_type" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf ' "limits": {"json_wall_s": 0.2, "ratio": 14, "rss_mib": 200},\n'
    printf ' "reference_over_json": %s, "reference_check": %s,\n' "$ratio_json" "$check_json"
    printf ' "results": [\n'
    (IFS=$'\n'; echo "${results[*]}" | sed '$!s/$/,/')
    printf ']}\n'
} > "$out"
echo "agreement_bench: results in $out"
