#!/usr/bin/env bash
# bench_curve.sh - the latency curve (issue 18, build/bench.json's
# latency_curve): open-loop Poisson arrivals at 25, 50, 75 and 90 % of a
# batched capacity, latencies from the intended send time. A benchmark, not
# a test: it prints a table and writes the curve as JSON.
#
#   deploy/bench_curve.sh --bin DIR --capacity C|auto --out FILE [--agents N]
#       [--seconds S] [--warmup W] [--think MEDIAN_MS,SIGMA] [--seed N] [--batch K]
#       [--levels "P..."] [--metrics MDIR]
#
# DIR holds quorumd, quorumctl and quorum-agent (a Release build). Starts
# its own PostgreSQL + Redis and quorumd (tests/bench/bench_lib.sh
# bench_broker, pool of 8 like deploy/bench.sh), then per level a project
# with enough tasks and one `quorum-agent simulate
# --arrival-rate` run of N agents (default 1000): log-normal think time
# (default 10 ms median, sigma 0.5), each intent taken by a free agent, a
# warm-up of W s (default 5) left out of the figures, then S s measured
# (default 15).
# The load is offered in the shape the capacity was measured in: with
# --batch K (default 8) an intent is one lease request of up to K tasks,
# labeled one after another (a think time each), their results sent in one
# batch submit (`simulate --prefetch K --batch`); the rate stays tasks per
# second. The batched capacity (--prefetch 8 --batch) is about 2.5 times
# what one lease and one submit request per task carry, so offering a share
# of it one task per request overloads that mode from about 35-40 %: its queue,
# not the broker's latency at that load, is what such a curve measures.
# --batch 1 is that single-request curve (one lease, one submit per task);
# give it single-request mode's own capacity.
# C is the batched capacity in completions/s (deploy/bench.sh measures it);
# "auto" measures it first with a 15 s closed-loop batched run of the same
# agents (--connect-first; completions/s over its working time). FILE gets
# the latency_curve object:
#   {"25": {"offered_per_second", "lease": {"p50", "p99", "p999"},
#           "submit": {...}, ...}, "50": ..., "75": ..., "90": ...}
# in ms (lease: one per lease request, submit: one per result); rates in
# tasks per second; each level also carries tasks_per_lease (K),
# asked_per_second, achieved_per_second, intents (lease requests),
# waited_share and wait {p50, p99, p999} (the time intents waited for
# their agent before the lease went out: the generator's share of the lease
# latency), agent_cpu_us_per_completion (simulate's CPU time from the start
# of its loop, set-up left out), agent_process_cpu_us_per_completion and
# broker_cpu_us_per_completion (the whole process, user + system, set-up of
# N users and their TLS connections included), each per completion of the
# run, and the machine's load average when the level started.
# --levels runs other levels (percentages, default "25 50 75 90"; FILE then
# has those keys). --metrics keeps the broker's GET /metrics before and
# after each level as MDIR/metrics.P.before and MDIR/metrics.P.after
# (request, Redis and PostgreSQL round-trip and event-loop turn histograms:
# the broker's own share of the latencies).
set -euo pipefail
here=$(cd "$(dirname "$0")/../tests/bench" && pwd)
# shellcheck disable=SC2034 # root is bench_broker's
root=$(cd "$here/../.." && pwd)
BIN="" CAP="" OUT="" AGENTS=1000 SECS=15 WARMUP=5 THINK=10,0.5 SEED=18 K=8 MDIR=""
LEVELS=(25 50 75 90)
# The header above, without its "# ".
header() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
usage() { header | sed -n '6,8p' >&2; exit 2; }
need() { [ -n "${2-}" ] || { echo "bench_curve.sh: $1 needs a value" >&2; usage; }; }
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) need "$1" "${2-}"; BIN=$2; shift 2 ;;
    --capacity) need "$1" "${2-}"; CAP=$2; shift 2 ;;
    --out) need "$1" "${2-}"; OUT=$2; shift 2 ;;
    --agents) need "$1" "${2-}"; AGENTS=$2; shift 2 ;;
    --seconds) need "$1" "${2-}"; SECS=$2; shift 2 ;;
    --warmup) need "$1" "${2-}"; WARMUP=$2; shift 2 ;;
    --think) need "$1" "${2-}"; THINK=$2; shift 2 ;;
    --seed) need "$1" "${2-}"; SEED=$2; shift 2 ;;
    --batch) need "$1" "${2-}"; K=$2; shift 2 ;;
    --levels) need "$1" "${2-}"; read -r -a LEVELS <<<"$2"; shift 2 ;;
    --metrics) need "$1" "${2-}"; MDIR=$2; shift 2 ;;
    -h|--help) header; exit 0 ;;
    *) echo "bench_curve.sh: unknown option $1" >&2; usage ;;
    esac
done
if [ -z "$BIN" ] || [ -z "$CAP" ] || [ -z "$OUT" ]; then usage; fi
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
for b in quorumd quorumctl quorum-agent; do
    [ -x "$BIN/$b" ] || { echo "bench_curve.sh: no $BIN/$b" >&2; exit 2; }
done
num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v v="$1" 'BEGIN { exit !(v > 0) }'; }
[ "$CAP" = auto ] || num "$CAP" || { echo "bench_curve.sh: --capacity must be a positive number or auto, not '$CAP'" >&2; exit 2; }
if ! num "$AGENTS" || ! num "$SECS"; then
    echo "bench_curve.sh: --agents and --seconds must be positive numbers" >&2
    exit 2
fi
if ! [[ $K =~ ^[0-9]+$ ]] || [ "$K" -lt 1 ] || [ "$K" -gt 100 ]; then
    echo "bench_curve.sh: --batch must be 1-100 tasks per lease request, not '$K'" >&2
    exit 2
fi
[[ $WARMUP =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "bench_curve.sh: --warmup must be a number of seconds, not '$WARMUP'" >&2; exit 2; }
[ "${#LEVELS[@]}" -gt 0 ] || { echo "bench_curve.sh: --levels needs at least one percentage" >&2; exit 2; }
for pct in "${LEVELS[@]}"; do
    if ! [[ $pct =~ ^[0-9]+$ ]] || [ "$pct" -lt 1 ] || [ "$pct" -gt 100 ]; then
        echo "bench_curve.sh: --levels takes whole percentages 1-100, not '$pct'" >&2
        exit 2
    fi
done
if [ -n "$MDIR" ]; then
    mkdir -p "$MDIR" || exit 2
    case "$MDIR" in /*) ;; *) MDIR="$PWD/$MDIR" ;; esac
fi

# shellcheck source=tests/bench/bench_lib.sh
. "$here/bench_lib.sh"
bench_broker "$BIN" --pg-pool 8
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# CPU time (ms, user + system) of running processes.
cpu_ms() { # PID...
    local t=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo $((t * 1000 / $(getconf CLK_TCK)))
}
MAX_S=$((${SECS%.*} + ${WARMUP%.*} + 120))

# new_project NAME TASKS: a project of TASKS tasks, imported 100,000 at a
# time as deploy/bench.sh does; prints its id.
new_project() {
    local p part
    p=$("$BIN/quorumctl" project create --name "$1" --labels a,b,c --lease-ttl-ms 60000)
    rm -f "$W"/tasks.part.*
    seq 1 "$2" | awk '{printf "{\"n\":%d,\"true_label\":\"a\"}\n", $1}' | split -l 100000 - "$W/tasks.part."
    for part in "$W"/tasks.part.*; do "$BIN/quorumctl" import --project "$p" "$part" >/dev/null; done
    rm -f "$W"/tasks.part.*
    echo "$p"
}
# --batch K: K tasks per lease request and their results in one batch
# submit; K = 1: one lease and one submit request per task.
SHAPE=(--prefetch "$K" --batch)
[ "$K" = 1 ] && SHAPE=()
echo "bench_curve: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $AGENTS agents, think $THINK (ms median, sigma), ${WARMUP} s warm-up + ${SECS} s per level, $K task(s) per lease request$([ "$K" -gt 1 ] && echo ", one batch submit each")"

if [ "$CAP" = auto ]; then
    P=$(new_project capacity 250000)
    # Every agent connected first: N TLS handshakes and token lookups at
    # once took several seconds of a loaded machine, inside the run.
    "$BIN/quorum-agent" simulate --project "$P" --annotators "$AGENTS" --accuracy 0.9 --think-ms 0 \
        --prefetch 8 --batch --connect-first --no-spool --duration 15 --max-seconds 135 --seed "$SEED" \
        --json-summary "$W/cap.json" >/dev/null 2>"$W/cap.err" || { tail -5 "$W/cap.err" >&2; exit 1; }
    CAP=$(jq .completions_per_second "$W/cap.json")
    num "$CAP" || { echo "bench_curve: no capacity measured:" >&2; tail -5 "$W/cap.err" >&2; exit 1; }
    echo "bench_curve: capacity measured: $CAP completions/s (15 s closed loop, batched, prefetch 8, agents connected first)"
fi

scrape() { # FILE: the broker's GET /metrics
    curl -fsS --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$URL/metrics" >"$1" ||
        echo "bench_curve: GET /metrics failed" >&2
}

run_level() { # PERCENT -> $W/level.PERCENT.json
    local pct=$1 rate load qc0 qc1 acpu rc=0
    rate=$(awk -v c="$CAP" -v p="$pct" 'BEGIN { printf "%.3f", c * p / 100 }')
    # A project per level, its tasks for the whole run and a margin.
    P=$(new_project "latency-curve-$pct" "$(awk -v r="$rate" -v s="$SECS" -v w="$WARMUP" 'BEGIN { printf "%d", r * (s + w) * 1.3 + 5000 }')")
    load=$(cut -d' ' -f1 /proc/loadavg)
    [ -z "$MDIR" ] || scrape "$MDIR/metrics.$pct.before"
    qc0=$(cpu_ms "$QPID")
    local TIMEFORMAT=%U,%S
    { time "$BIN/quorum-agent" simulate --project "$P" --annotators "$AGENTS" --accuracy 0.9 \
        --arrival-rate "$rate" "${SHAPE[@]}" --think-lognormal "$THINK" --warmup "$WARMUP" \
        --duration "$(awk -v s="$SECS" -v w="$WARMUP" 'BEGIN { print s + w }')" --max-seconds "$MAX_S" \
        --no-spool --seed "$((SEED + pct))" --json-summary "$W/sim.$pct.json" >"$W/sim.$pct.out" 2>"$W/sim.$pct.err" ||
        rc=$?; } 2>"$W/agent.$pct.time"
    if [ "$rc" != 0 ]; then
        echo "bench_curve: the $pct % level failed (exit $rc):" >&2
        grep -v '^\[' "$W/sim.$pct.err" | tail -5 >&2
        exit 1
    fi
    qc1=$(cpu_ms "$QPID")
    [ -z "$MDIR" ] || scrape "$MDIR/metrics.$pct.after"
    acpu=$(awk -F, '{printf "%d", ($1 + $2) * 1000}' "$W/agent.$pct.time")
    jq --argjson asked "$rate" --argjson load "$load" --argjson ca "$acpu" --argjson cq $((qc1 - qc0)) \
        --argjson cap "$CAP" --argjson k "$K" '
        def p3: {p50, p99, p999};
        .completions as $n | .open_loop as $o |
        {offered_per_second: $o.offered_per_second, lease: ($o.lease | p3), submit: ($o.submit | p3),
         tasks_per_lease: $k, asked_per_second: $asked, achieved_per_second: $o.achieved_per_second,
         capacity_per_second: $cap, measured_seconds: $o.measured_seconds, intents: $o.intents,
         intents_unserved: $o.intents_unserved, waited_share: $o.waited_share, wait: ($o.wait | p3),
         completions: $n, errors: .errors,
         agent_cpu_us_per_completion: $o.cpu_us_per_completion,
         agent_process_cpu_us_per_completion: (if $n > 0 then $ca * 1000 / $n else null end),
         broker_cpu_us_per_completion: (if $n > 0 then $cq * 1000 / $n else null end),
         load_average: $load}' "$W/sim.$pct.json" >"$W/level.$pct.json"
}

for pct in "${LEVELS[@]}"; do run_level "$pct"; done
mkdir -p "$(dirname "$OUT")"
for pct in "${LEVELS[@]}"; do jq --arg k "$pct" '{($k): .}' "$W/level.$pct.json"; done | jq -s 'add' >"$OUT"

printf '%5s %9s %9s %9s | %24s | %24s | %7s %9s %9s %5s\n' load% asked/s offered/s achieved \
    "lease p50/p99/p99.9 ms" "submit p50/p99/p99.9 ms" waited agent-us broker-us load
jq -r 'to_entries[] | .key as $k | .value |
    [$k, .asked_per_second, .offered_per_second, .achieved_per_second,
     "\(.lease.p50 * 100 | round / 100)/\(.lease.p99 * 100 | round / 100)/\(.lease.p999 * 100 | round / 100)",
     "\(.submit.p50 * 100 | round / 100)/\(.submit.p99 * 100 | round / 100)/\(.submit.p999 * 100 | round / 100)",
     "\(.waited_share * 1000 | round / 10)%", (.agent_cpu_us_per_completion | round),
     (.broker_cpu_us_per_completion | round), .load_average] | @tsv' "$OUT" |
    awk -F'\t' '{printf "%5s %9.1f %9.1f %9.1f | %24s | %24s | %7s %9s %9s %5s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}'
echo "bench_curve: wrote $OUT (capacity $CAP completions/s; $K task(s) per lease request; rates in tasks/s; latencies from the intended send time, warm-up left out)"
