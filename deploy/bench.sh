#!/usr/bin/env bash
# bench.sh - lease throughput and latency (deploy/dev.sh bench). A benchmark,
# not a test: it prints figures and writes them as JSON.
#
#   deploy/bench.sh [--agents N] [--seconds S] [--runs R] [--out FILE]
#                   [--skip-peer] [--skip-curve] [--skip-idle]
#
# A Release build, a private PostgreSQL + Redis, one quorumd; N simulated
# agents (default 1,000) over TLS (keep-alive) for S seconds (default 15),
# R runs (default 3) of each mode:
#   single   one lease per request, one submit per request;
#   batched  up to 8 leases per request, their results in one batch submit.
# Every annotation is durable (committed before its ack). The agents connect
# first (N TLS handshakes and token checks: set-up, whose broker CPU each run
# records as setup_broker_cpu_ms); the run and its figures start once all
# are connected. Per run it reads
# Redis calls (INFO commandstats) and PostgreSQL commits (pg_stat_database)
# per completion, the broker's RSS and the CPU time (/proc) of PostgreSQL,
# Redis, the broker and the agents (simulate's loop_cpu_ms) per completion,
# from the run's start to its end; and, on the same Redis,
# the ceiling redis-benchmark reaches with the lease (grant) script. Medians
# over runs. Then, written to FILE (default build/bench.json) beside those:
#   saturation     single and batched completions/s, and the batched run's
#                  cpu_us_per_completion {postgres, redis, broker, agents,
#                  total} (total: the median of each run's sum);
#   peer           BullMQ's no-op jobs/s on the same Redis (its own key
#                  prefix), R runs of 5,000 x S jobs (each run at most
#                  2 x S seconds), and ratio = batched completions/s /
#                  BullMQ's (deploy/peer/, installed with npm ci into
#                  build/peer); null when npm cannot install it;
#   latency_curve  what deploy/bench_curve.sh --bin DIR --capacity C --out F
#                  writes (C: the batched completions/s), when it exists:
#                  the curve is batched (K = 8: each lease request asks
#                  for up to 8 tasks, their results go in one batch
#                  submit), the shape the batched capacity is measured in,
#                  so 50 % is half of what that shape carries; rates in
#                  tasks/s, tasks_per_lease 8 in each level;
#   idle_agents    what deploy/bench_idle.sh --bin DIR --out F writes, when
#                  it exists.
# A key whose part was skipped (--skip-peer, --skip-curve, --skip-idle) or
# failed is null, with a line printed saying why; the rest is written.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENTS=1000
SECONDS_PER_RUN=15
RUNS=3
OUT="$ROOT/build/bench.json"
SKIP_PEER=0 SKIP_CURVE=0 SKIP_IDLE=0
usage_error() { echo "bench.sh: $*" >&2; exit 2; }
count() { # OPTION VALUE: VALUE, a positive integer
    [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 wants a positive integer, not '${2:-}'"
    echo "$2"
}
while [ $# -gt 0 ]; do
    case "$1" in
    --agents) AGENTS=$(count "$1" "${2:-}"); shift 2 ;;
    --seconds) SECONDS_PER_RUN=$(count "$1" "${2:-}"); shift 2 ;;
    --runs) RUNS=$(count "$1" "${2:-}"); shift 2 ;;
    --out) [ -n "${2:-}" ] || usage_error "--out wants a file"; OUT=$2; shift 2 ;;
    --skip-peer) SKIP_PEER=1; shift ;;
    --skip-curve) SKIP_CURVE=1; shift ;;
    --skip-idle) SKIP_IDLE=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) usage_error "unknown option $1 (--help lists them)" ;;
    esac
done
B="$ROOT/build-rel"
echo "building (Release)..."
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
nice cmake --build "$B" --target quorumd quorumctl quorum-agent -j2 >/dev/null
mkdir -p "$(dirname "$OUT")"

# The peer: BullMQ from deploy/peer (package.json and its lock file, pinned)
# into build/peer, installed before the runs so that npm does not run beside
# them; again only when the lock file changed. Sets PEER_REASON when it
# cannot be installed.
PEER_DIR="$ROOT/build/peer" PEER_REASON=""
peer_install() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        PEER_REASON="node or npm is not installed"
        return
    fi
    mkdir -p "$PEER_DIR"
    cp "$ROOT/deploy/peer/bullmq_noop.js" "$PEER_DIR/"
    if cmp -s "$ROOT/deploy/peer/package-lock.json" "$PEER_DIR/package-lock.json" &&
        [ -f "$PEER_DIR/node_modules/bullmq/package.json" ]; then
        return
    fi
    cp "$ROOT/deploy/peer/package.json" "$ROOT/deploy/peer/package-lock.json" "$PEER_DIR/"
    echo "installing BullMQ (npm ci in $PEER_DIR)..."
    if ! (cd "$PEER_DIR" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) >"$PEER_DIR/npm.log" 2>&1; then
        PEER_REASON="npm ci failed (offline?), $PEER_DIR/npm.log: $(grep -m1 'Error:' "$PEER_DIR/npm.log" ||
            grep -m1 . "$PEER_DIR/npm.log" || true)"
        rm -f "$PEER_DIR/package-lock.json" # so that the next run tries again
    fi
}
if [ "$SKIP_PEER" = 1 ]; then PEER_REASON="skipped (--skip-peer)"; else peer_install; fi
[ -z "$PEER_REASON" ] || echo "peer: $PEER_REASON; peer will be null"

W=$(mktemp -d /tmp/quorum-bench.XXXXXX)
stop_stack() {
    if [ -n "${QPID:-}" ]; then
        kill "$QPID" 2>/dev/null || true
        wait "$QPID" 2>/dev/null || true
        QPID=""
    fi
    "$ROOT/deploy/stack.sh" stop "$W/stack" >/dev/null 2>&1 || true
}
cleanup() {
    # A crew started in the background ignores Ctrl-C: stop it with the rest.
    [ -z "${SIM_PID:-}" ] || kill "$SIM_PID" 2>/dev/null || true
    stop_stack
    rm -rf "$W"
}
trap cleanup EXIT
"$ROOT/deploy/stack.sh" start "$W/stack" >/dev/null
# shellcheck disable=SC1091 # written by stack.sh
. "$W/stack/env"
PG="$QR_PG_CONNINFO"
R=(redis-cli -p "$QR_REDIS_PORT")
# shellcheck disable=SC1091
. "$ROOT/deploy/common.sh"
make_certs "$W/tls" 1
"$B/bin/quorumd" migrate --pg "$PG" --sql-dir "$ROOT/sql" 2>/dev/null
export QUORUM_TOKEN
QUORUM_TOKEN=$("$B/bin/quorumd" bootstrap-admin --pg "$PG")
start_quorumd "$B/bin/quorumd" "$W/quorumd.log" --pg "$PG" --redis "127.0.0.1:$QR_REDIS_PORT" \
    --cert "$W/tls/server.crt" --key "$W/tls/server.key" --pg-pool 8 || exit 1
QPID=$QD_PID PORT=$QD_PORT
export QUORUM_URL="https://127.0.0.1:$PORT" QUORUM_CA="$W/tls/ca.crt"
wait_https "$QUORUM_URL" "$QUORUM_CA" "$QPID" || { cat "$W/quorumd.log" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

redis_calls() { "${R[@]}" info commandstats | awk -F'[=,:]' '/^cmdstat_/ {s += $3} END {print s}'; }
pg_commits() { psql "$PG" -Atqc "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
# CPU time (ms, user + system) of a process and its children still running.
cpu_ms() { # PID...
    local t=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo $((t * 1000 / $(getconf CLK_TCK)))
}
pg_pids() { local pm; pm=$(head -1 "$QR_STACK_DATA/db/postmaster.pid"); echo "$pm"; pgrep -P "$pm"; }
REDIS_PID=$(cat "$QR_STACK_DATA/redis/redis.pid")
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

run_mode() { # MODE RUN -> appends a JSON line to $W/runs.jsonl
    local mode=$1 run=$2 extra=()
    [ "$mode" = batched ] && extra=(--prefetch 8 --batch) || extra=(--prefetch 1)
    local project
    project=$("$B/bin/quorumctl" project create --name "bench-$mode-$run" --labels a,b,c --lease-ttl-ms 60000)
    # Enough tasks that the crew never runs dry within the run, in imports of
    # 100,000 (one import of them all is over what the broker parses at once).
    seq 1 400000 | awk '{printf "{\"n\":%d,\"true_label\":\"a\"}\n", $1}' >"$W/tasks.jsonl"
    rm -f "$W"/tasks.part.*
    split -l 100000 "$W/tasks.jsonl" "$W/tasks.part."
    local part
    for part in "$W"/tasks.part.*; do
        "$B/bin/quorumctl" import --project "$project" "$part" >/dev/null
    done
    local rc0 pc0 n0 qc0 rcpu0 pcpu0 qcs pgp=() i
    mapfile -t pgp < <(pg_pids)
    # No lease is asked for before the run starts, so the count before the
    # crew's set-up is the count at its start.
    n0=$(psql "$PG" -Atqc "SELECT count(*) FROM annotations")
    qcs=$(cpu_ms "$QPID")
    # Every agent connects first (its TLS handshake, its token checked): that
    # set-up is not the run. The figures start at simulate's "the run
    # starts" line; the agents' CPU is simulate's own from that moment on.
    "$B/bin/quorum-agent" simulate --project "$project" --annotators "$AGENTS" --accuracy 0.9 \
        --think-ms 0 --seed "$run" --duration "$SECONDS_PER_RUN" --max-seconds $((SECONDS_PER_RUN + 120)) \
        --connect-first --no-spool "${extra[@]}" --json-summary "$W/sim.json" >"$W/sim.out" 2>"$W/sim.err" &
    SIM_PID=$!
    for i in $(seq 1 6000); do
        grep -q 'the run starts' "$W/sim.err" && break
        kill -0 "$SIM_PID" 2>/dev/null || break
        sleep 0.02
    done
    qc0=$(cpu_ms "$QPID"); rcpu0=$(cpu_ms "$REDIS_PID"); pcpu0=$(cpu_ms "${pgp[@]}")
    rc0=$(redis_calls); pc0=$(pg_commits)
    wait "$SIM_PID" || true
    SIM_PID=""
    local rc1 pc1 n1 rss qc1 rcpu1 pcpu1 acpu
    qc1=$(cpu_ms "$QPID"); rcpu1=$(cpu_ms "$REDIS_PID"); pcpu1=$(cpu_ms "${pgp[@]}")
    acpu=$(jq '.loop_cpu_ms // 0 | round' "$W/sim.json" 2>/dev/null || echo 0)
    rc1=$(redis_calls); pc1=$(pg_commits)
    n1=$(psql "$PG" -Atqc "SELECT count(*) FROM annotations")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$QPID/status")
    jq -c --arg mode "$mode" --argjson run "$run" --argjson dr $((rc1 - rc0)) --argjson dp $((pc1 - pc0)) \
        --argjson dn $((n1 - n0)) --argjson rss "$rss" \
        --argjson cq $((qc1 - qc0)) --argjson cr $((rcpu1 - rcpu0)) --argjson cp $((pcpu1 - pcpu0)) \
        --argjson ca "$acpu" --argjson setup $((qc0 - qcs)) \
        '{mode: $mode, run: $run, completions: $dn, completions_per_second: .completions_per_second,
          setup_seconds, setup_broker_cpu_ms: $setup,
          lease_latency_ms: .lease_latency_ms, submit_latency_ms: .submit_latency_ms,
          redis_calls_per_completion: (if $dn > 0 then $dr / $dn else null end),
          pg_transactions_per_completion: (if $dn > 0 then $dp / $dn else null end),
          broker_rss_mb: ($rss / 1024),
          cpu_us_per_completion: (if $dn > 0 then {broker: ($cq * 1000 / $dn), agents: ($ca * 1000 / $dn),
            redis: ($cr * 1000 / $dn), postgres: ($cp * 1000 / $dn),
            total: (($cq + $ca + $cr + $cp) * 1000 / $dn)} else null end)}' "$W/sim.json" | tee -a "$W/runs.jsonl"
}

echo "$AGENTS agents, $SECONDS_PER_RUN s per run, $RUNS runs per mode"
for run in $(seq 1 "$RUNS"); do
    run_mode single "$run"
    run_mode batched "$run"
done

# The Redis ceiling with the lease script, on the same Redis.
GRANT_LUA=$("$B/bin/quorumd" print-script grant)
SHA=$("${R[@]}" script load "$GRANT_LUA")
# Its keys, in order, as its first line names them: local <names> = unpack(KEYS).
GRANT_KEYS=()
for k in $(head -1 <<<"$GRANT_LUA" | sed 's/^local \(.*\) = unpack(KEYS)$/\1/; s/,//g'); do
    GRANT_KEYS+=("{p:999999}:$k")
done
"${R[@]}" set "{p:999999}:built" 1 >/dev/null # as if a broker had built it
for t in $(seq 1 16); do
    "${R[@]}" hset "{p:999999}:free" "$t" 1000000000 >/dev/null
    "${R[@]}" zadd "{p:999999}:ready" "$t" "$t" >/dev/null
done
NOW=$(( $(date +%s) * 1000 ))
ceiling() { # extra redis-benchmark flags
    # ARGV: annotator, max, now, ttl, scan, live (-1: no bound).
    redis-benchmark -p "$QR_REDIS_PORT" -c 50 -n 200000 -r 1000000 "$@" -q \
        evalsha "$SHA" "${#GRANT_KEYS[@]}" "${GRANT_KEYS[@]}" __rand_int__ 1 "$NOW" 60000 260 -1 \
        2>/dev/null | tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) v = $i} END {print v}'
}
CEIL_SINGLE=$(ceiling)
CEIL_PIPE=$(ceiling -P 16)

med() { jq -r "select(.mode == \"$1\") | $2" "$W/runs.jsonl" | median; }
cpu_med() { # MODE -> {broker, agents, redis, postgres} medians
    printf '{"broker":%s,"agents":%s,"redis":%s,"postgres":%s}' "$(med "$1" .cpu_us_per_completion.broker)" \
        "$(med "$1" .cpu_us_per_completion.agents)" "$(med "$1" .cpu_us_per_completion.redis)" \
        "$(med "$1" .cpu_us_per_completion.postgres)"
}
SINGLE=$(med single .completions_per_second)
BATCHED=$(med batched .completions_per_second)
# saturation: the batched run's CPU per completion, total the median of each
# run's sum (a sum of medians would mix runs).
SATURATION=$(jq -n --argjson single "$SINGLE" --argjson batched "$BATCHED" \
    --argjson pg "$(med batched .cpu_us_per_completion.postgres)" --argjson redis "$(med batched .cpu_us_per_completion.redis)" \
    --argjson broker "$(med batched .cpu_us_per_completion.broker)" --argjson agents "$(med batched .cpu_us_per_completion.agents)" \
    --argjson total "$(med batched .cpu_us_per_completion.total)" \
    '{single: $single, batched: $batched,
      cpu_us_per_completion: {postgres: $pg, redis: $redis, broker: $broker, agents: $agents, total: $total}}')

# peer: BullMQ's no-op jobs/s on this Redis, under its own key prefix.
PEER=null
if [ -z "$PEER_REASON" ]; then
    echo "peer: BullMQ, $RUNS runs of $((5000 * SECONDS_PER_RUN)) no-op jobs (at most $((2 * SECONDS_PER_RUN)) s each) on the same Redis"
    if node "$PEER_DIR/bullmq_noop.js" --port "$QR_REDIS_PORT" --jobs $((5000 * SECONDS_PER_RUN)) --runs "$RUNS" \
        --max-seconds $((2 * SECONDS_PER_RUN)) --concurrency 100 --prefix bullmq-peer >"$W/peer.json" &&
        jq -e '.jobs_per_second > 0' "$W/peer.json" >/dev/null; then
        PEER=$(jq -c --argjson batched "$BATCHED" \
            '{bullmq_jobs_per_second: .jobs_per_second, ratio: ($batched / .jobs_per_second), bullmq_version,
              node_version, jobs_per_run, concurrency, node_cpu_us_per_job, redis_cpu_us_per_job,
              runs: [.runs[] | {jobs, seconds, jobs_per_second, node_cpu_us_per_job, redis_cpu_us_per_job}]}' "$W/peer.json")
    else
        PEER_REASON="bullmq_noop.js failed (see above)"
        echo "peer: $PEER_REASON; peer will be null"
    fi
fi
# Neither hook needs this stack or its broker: each starts its own.
stop_stack
unset QUORUM_URL QUORUM_TOKEN QUORUM_CA

# hook KEY SKIP SCRIPT ARGS...: when SCRIPT exists and is not skipped, runs
# it with ARGS --out FILE and prints FILE's JSON object; else (or when it
# fails) prints null, with a line on stderr saying why.
hook() {
    local key=$1 skip=$2 script=$3 out="$W/$1.json" rc=0
    shift 3
    if [ "$skip" = 1 ]; then
        echo "$key: skipped; $key will be null" >&2
    elif [ ! -f "$script" ]; then
        echo "$key: ${script#"$ROOT"/} does not exist; $key will be null" >&2
    else
        echo "$key: ${script#"$ROOT"/} $*" >&2
        bash "$script" "$@" --out "$out" >&2 || rc=$?
        if [ "$rc" != 0 ]; then
            echo "$key: ${script#"$ROOT"/} failed (exit $rc); $key will be null" >&2
        elif ! jq -e 'type == "object"' "$out" >/dev/null 2>&1; then
            echo "$key: ${script#"$ROOT"/} wrote no JSON object to $out; $key will be null" >&2
        else
            jq -c . "$out"
            return
        fi
    fi
    echo null
}
CAPACITY=$(awk -v c="$BATCHED" 'BEGIN {printf "%.0f", c}')
if [ "$CAPACITY" -gt 0 ]; then
    CURVE=$(hook latency_curve "$SKIP_CURVE" "$ROOT/deploy/bench_curve.sh" --bin "$B/bin" --capacity "$CAPACITY")
else
    echo "latency_curve: no batched capacity measured; latency_curve will be null"
    CURVE=null
fi
IDLE=$(hook idle_agents "$SKIP_IDLE" "$ROOT/deploy/bench_idle.sh" --bin "$B/bin")

jq -n --argjson agents "$AGENTS" --argjson secs "$SECONDS_PER_RUN" --argjson runs "$RUNS" \
    --argjson single "$SINGLE" --argjson batched "$BATCHED" \
    --argjson l50 "$(med batched .lease_latency_ms.p50)" --argjson l99 "$(med batched .lease_latency_ms.p99)" \
    --argjson l999 "$(med batched .lease_latency_ms.p999)" \
    --argjson sl50 "$(med single .lease_latency_ms.p50)" --argjson sl99 "$(med single .lease_latency_ms.p99)" \
    --argjson sl999 "$(med single .lease_latency_ms.p999)" \
    --argjson s50 "$(med batched .submit_latency_ms.p50)" --argjson s99 "$(med batched .submit_latency_ms.p99)" \
    --argjson ss50 "$(med single .submit_latency_ms.p50)" --argjson ss99 "$(med single .submit_latency_ms.p99)" \
    --argjson rcpc "$(med batched .redis_calls_per_completion)" --argjson srcpc "$(med single .redis_calls_per_completion)" \
    --argjson pgpc "$(med batched .pg_transactions_per_completion)" --argjson spgpc "$(med single .pg_transactions_per_completion)" \
    --argjson rss "$(jq -r .broker_rss_mb "$W/runs.jsonl" | sort -g | tail -1)" \
    --argjson ceil "$CEIL_PIPE" --argjson ceil1 "$CEIL_SINGLE" --slurpfile all "$W/runs.jsonl" \
    --argjson cpus "$(cpu_med single)" --argjson cpub "$(cpu_med batched)" \
    --argjson saturation "$SATURATION" --argjson peer "$PEER" --argjson curve "$CURVE" --argjson idle "$IDLE" \
    '{agents: $agents, seconds_per_run: $secs, runs_per_mode: $runs,
      completions_per_second: {single: $single, batched: $batched},
      lease_latency_ms: {p50: $l50, p99: $l99, p999: $l999},
      submit_latency_ms: {p50: $s50, p99: $s99},
      single_mode_latency_ms: {lease: {p50: $sl50, p99: $sl99, p999: $sl999}, submit: {p50: $ss50, p99: $ss99}},
      redis_calls_per_completion: $rcpc, pg_transactions_per_completion: $pgpc,
      single_mode_per_completion: {redis_calls: $srcpc, pg_transactions: $spgpc},
      broker_rss_mb: $rss,
      cpu_us_per_completion: {single: $cpus, batched: $cpub},
      redis_lease_script_ceiling_per_second: $ceil,
      redis_lease_script_unpipelined_per_second: $ceil1,
      ratio_to_ceiling: {single: ($single / $ceil), batched: ($batched / $ceil)},
      saturation: $saturation, peer: $peer, latency_curve: $curve, idle_agents: $idle,
      runs: $all}' >"$OUT"
jq '{agents, completions_per_second, lease_latency_ms, submit_latency_ms, redis_calls_per_completion,
     pg_transactions_per_completion, broker_rss_mb, redis_lease_script_ceiling_per_second,
     redis_lease_script_unpipelined_per_second, ratio_to_ceiling}' "$OUT"
jq -r '"saturation: single \(.saturation.single | round) /s, batched \(.saturation.batched | round) /s",
    "cpu us per batched completion: " + (.saturation.cpu_us_per_completion | to_entries
        | map("\(.key) \(.value * 10 | round / 10)") | join(", ")),
    if .peer == null then "peer: null"
    else "peer: BullMQ \(.peer.bullmq_version) \(.peer.bullmq_jobs_per_second | round) no-op jobs/s (node \(.peer.node_cpu_us_per_job) + redis \(.peer.redis_cpu_us_per_job) us of CPU per job); ratio \(.peer.ratio * 100 | round / 100) (Quorum batched / BullMQ)" end,
    "latency_curve: \(if .latency_curve == null then "null" else "written" end); idle_agents: \(if .idle_agents == null then "null" else "written" end)"' "$OUT"
echo "wrote $OUT (medians of $RUNS runs; latencies of the batched mode, single mode under single_mode_latency_ms)"
