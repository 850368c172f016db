#!/usr/bin/env bash
# pg_commit_bench.sh - what PostgreSQL spends on one durable completion. A
# benchmark, not a test: it prints figures and writes them as JSON.
#
#   tests/bench/pg_commit_bench.sh [--agents N] [--seconds S] [--runs R]
#                                  [--tasks T] [--build DIR] [--out FILE]
#                                  [--no-statements] [--pg-set NAME=VALUE]...
#
# A Release build (DIR, default build-rel), a private PostgreSQL + Redis
# (pg_stat_statements preloaded, track = all, track_planning on), one
# quorumd; per run a new project of T tasks (default 150,000) and N
# simulated agents (default 500) in batched mode (8 leases a request, one
# batch submit) for S seconds (default 15). Per completion (an annotation
# committed during the run), as the batched mode of deploy/bench.sh runs:
#   pg_cpu_us       CPU time of the postmaster and all its children (the
#                   backends, the WAL writer, autovacuum; children that
#                   exited count through the postmaster's cutime/cstime);
#   wal_bytes       pg_current_wal_lsn() after minus before;
#   transactions    xact_commit + xact_rollback of pg_stat_database;
#   broker_cpu_us   quorumd's CPU, for context;
#   redis_cpu_us    redis-server's CPU, likewise;
# and the statements with the most time (execution + planning) from
# pg_stat_statements, nested ones included (the statements inside the
# commit function show there), with their calls per completion and their
# µs per call. Medians over R runs (default 3); the statements of the
# median run (by pg_cpu_us). Default output build/pg_commit_bench.json.
# pg_stat_statements (track all, planning) costs CPU of its own: with
# --no-statements it is not loaded and the statements list is empty.
# --pg-set sets a server setting (ALTER SYSTEM, then the restart below) to
# measure it against the default; the JSON lists them as pg_settings.
#
# deploy/stack.sh takes no extra server settings: the script sets them with
# ALTER SYSTEM on its private cluster and restarts it before the broker
# starts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
AGENTS=500
SECS=15
RUNS=3
TASKS=150000
STATEMENTS=1
PGSET=()
B="$ROOT/build-rel"
OUT="$ROOT/build/pg_commit_bench.json"
need() { [ -n "${2-}" ] || { echo "pg_commit_bench.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
    --agents) need "$1" "${2-}"; AGENTS=$2; shift 2 ;;
    --seconds) need "$1" "${2-}"; SECS=$2; shift 2 ;;
    --runs) need "$1" "${2-}"; RUNS=$2; shift 2 ;;
    --tasks) need "$1" "${2-}"; TASKS=$2; shift 2 ;;
    --build) need "$1" "${2-}"; B=$2; shift 2 ;;
    --out) need "$1" "${2-}"; OUT=$2; shift 2 ;;
    --no-statements) STATEMENTS=0; shift ;;
    --pg-set)
        [[ ${2:-} =~ ^[a-z_.]+=[^\']+$ ]] || { echo "pg_commit_bench.sh: --pg-set takes NAME=VALUE, not '${2:-}'" >&2; exit 2; }
        PGSET+=("$2"); shift 2 ;;
    -h | --help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "pg_commit_bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for v in "--agents $AGENTS" "--seconds $SECS" "--runs $RUNS" "--tasks $TASKS"; do
    [[ ${v#* } =~ ^[1-9][0-9]*$ ]] || { echo "pg_commit_bench.sh: ${v% *} takes a whole number above 0, not '${v#* }'" >&2; exit 2; }
done
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
if ! [ -x "$B/bin/quorumd" ] || ! [ -x "$B/bin/quorum-agent" ] || ! [ -x "$B/bin/quorumctl" ]; then
    echo "building (Release) in $B..."
    cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
    nice cmake --build "$B" --target quorumd quorumctl quorum-agent -j2 >/dev/null
fi
bt=$(grep -m1 '^CMAKE_BUILD_TYPE:' "$B/CMakeCache.txt" | cut -d= -f2)
[ "$bt" = Release ] || echo "pg_commit_bench: warning: $B is a $bt build, not Release" >&2
mkdir -p "$(dirname "$OUT")"

W=$(mktemp -d /tmp/quorum-pgbench.XXXXXX)
cleanup() {
    [ -n "${QPID:-}" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
    "$ROOT/deploy/stack.sh" stop "$W/stack" >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT
for v in $(env | grep -o '^QUORUM_[A-Z_]*' || true); do unset "$v"; done
"$ROOT/deploy/stack.sh" start "$W/stack" >/dev/null
. "$W/stack/env"
. "$ROOT/deploy/common.sh"
PG="$QR_PG_CONNINFO"
q() { psql "$PG" -Atqc "$1"; }

# pg_stat_statements needs a preload, hence a restart; so may --pg-set.
for kv in ${PGSET[@]+"${PGSET[@]}"}; do q "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'"; done
if [ "$STATEMENTS" = 1 ] || [ "${#PGSET[@]}" -gt 0 ]; then
    [ "$STATEMENTS" = 0 ] || q "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$QR_PG_BINDIR/pg_ctl" -D "$QR_STACK_DATA/db" -w -t 60 restart >/dev/null
    else
        "$QR_PG_BINDIR/pg_ctl" -D "$QR_STACK_DATA/db" -w -t 60 restart >/dev/null
    fi
fi
if [ "$STATEMENTS" = 1 ]; then
    # Its own settings are known once it is loaded.
    q "ALTER SYSTEM SET pg_stat_statements.track = 'all'"
    q "ALTER SYSTEM SET pg_stat_statements.track_planning = on"
    q "SELECT pg_reload_conf()" >/dev/null
    q "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
fi

make_certs "$W/tls" 1
"$B/bin/quorumd" migrate --pg "$PG" --sql-dir "$ROOT/sql" 2>/dev/null
export QUORUM_TOKEN
QUORUM_TOKEN=$("$B/bin/quorumd" bootstrap-admin --pg "$PG")
start_quorumd "$B/bin/quorumd" "$W/quorumd.log" --pg "$PG" --redis "127.0.0.1:$QR_REDIS_PORT" \
    --cert "$W/tls/server.crt" --key "$W/tls/server.key" --pg-pool 8 \
    --auth-fail-rate 0 --rate-limit 0 || exit 1
QPID=$QD_PID
export QUORUM_URL="https://127.0.0.1:$QD_PORT" QUORUM_CA="$W/tls/ca.crt"
wait_https "$QUORUM_URL" "$QUORUM_CA" "$QPID" || { cat "$W/quorumd.log" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TCK=$(getconf CLK_TCK)
PM=$(head -1 "$QR_STACK_DATA/db/postmaster.pid")
# CPU ticks of the cluster: the postmaster (its own and its reaped
# children's) and every child still running.
pg_ticks() {
    local t p
    t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$PM/stat")
    for p in $(pgrep -P "$PM"); do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RPID=$(cat "$QR_STACK_DATA/redis/redis.pid")
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

seq 1 "$TASKS" | awk '{printf "{\"n\":%d,\"true_label\":\"a\"}\n", $1}' >"$W/tasks.jsonl"
split -l 100000 "$W/tasks.jsonl" "$W/tasks.part."

run() { # RUN -> a JSON line appended to $W/runs.jsonl, statements to $W/stmts.RUN.json
    local r=$1 project part
    project=$("$B/bin/quorumctl" project create --name "pgbench-$r" --labels a,b,c --lease-ttl-ms 60000)
    for part in "$W"/tasks.part.*; do
        "$B/bin/quorumctl" import --project "$project" "$part" >/dev/null
    done
    q "CHECKPOINT" >/dev/null
    [ "$STATEMENTS" = 0 ] || q "SELECT pg_stat_statements_reset()" >/dev/null
    local n0 lsn0 x0 p0 b0 r0 r1
    n0=$(q "SELECT count(*) FROM annotations")
    lsn0=$(q "SELECT pg_current_wal_lsn()")
    x0=$(q "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
    p0=$(pg_ticks) b0=$(ticks "$QPID") r0=$(ticks "$RPID")
    "$B/bin/quorum-agent" simulate --project "$project" --annotators "$AGENTS" --accuracy 0.9 \
        --think-ms 0 --seed "$r" --duration "$SECS" --max-seconds $((SECS + 120)) \
        --no-spool --prefetch 8 --batch --json-summary "$W/sim.json" >"$W/sim.out" 2>"$W/sim.err" || true
    local p1 b1 n1 wal x1
    p1=$(pg_ticks) b1=$(ticks "$QPID") r1=$(ticks "$RPID")
    n1=$(q "SELECT count(*) FROM annotations")
    wal=$(q "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')")
    x1=$(q "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
    local n=$((n1 - n0))
    [ "$n" -gt 0 ] || { echo "run $r: no completion" >&2; cat "$W/sim.err" >&2; return 1; }
    [ "$STATEMENTS" = 1 ] || { echo '[]' >"$W/stmts.$r.json"; }
    [ "$STATEMENTS" = 0 ] || q "SELECT coalesce(json_agg(s), '[]') FROM (
         SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query, toplevel, calls,
                round((calls::numeric / $n), 3) AS calls_per_completion,
                round(((total_exec_time + total_plan_time) * 1000 / $n)::numeric, 2) AS us_per_completion,
                round(((total_exec_time + total_plan_time) * 1000 / greatest(calls, 1))::numeric, 1) AS us_per_call,
                round((total_plan_time * 1000 / greatest(calls, 1))::numeric, 1) AS plan_us_per_call,
                plans, round((wal_bytes / $n)::numeric, 1) AS wal_bytes_per_completion
           FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY total_exec_time + total_plan_time DESC LIMIT 15) s" >"$W/stmts.$r.json"
    jq -c --argjson run "$r" --argjson n "$n" --argjson pcpu $(((p1 - p0) * 1000000 / TCK)) \
        --argjson bcpu $(((b1 - b0) * 1000000 / TCK)) --argjson rcpu $(((r1 - r0) * 1000000 / TCK)) \
        --argjson wal "$wal" --argjson x $((x1 - x0)) \
        '{run: $run, completions: $n, completions_per_second: .completions_per_second,
          pg_cpu_us: ($pcpu / $n), broker_cpu_us: ($bcpu / $n), redis_cpu_us: ($rcpu / $n),
          wal_bytes: ($wal / $n),
          transactions: ($x / $n)}' "$W/sim.json" | tee -a "$W/runs.jsonl"
}

echo "pg_commit_bench: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), build $B ($bt)," \
    "$AGENTS agents, $SECS s, $RUNS runs, $TASKS tasks a run"
for r in $(seq 1 "$RUNS"); do run "$r"; done

med() { jq -r "$1" "$W/runs.jsonl" | median; }
MID=$(jq -r '"\(.pg_cpu_us) \(.run)"' "$W/runs.jsonl" | sort -g | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}')
jq -n --argjson agents "$AGENTS" --argjson secs "$SECS" --argjson runs "$RUNS" \
    --argjson cps "$(med .completions_per_second)" --argjson pcpu "$(med .pg_cpu_us)" \
    --argjson bcpu "$(med .broker_cpu_us)" --argjson rcpu "$(med .redis_cpu_us)" \
    --argjson wal "$(med .wal_bytes)" \
    --argjson x "$(med .transactions)" --slurpfile all "$W/runs.jsonl" \
    --slurpfile st "$W/stmts.$MID.json" --argjson mid "$MID" --argjson stm "$STATEMENTS" \
    --argjson pgset "$(printf '%s\n' ${PGSET[@]+"${PGSET[@]}"} | jq -R 'select(length > 0)' | jq -s .)" \
    '{agents: $agents, seconds_per_run: $secs, runs: $runs, mode: "batched", pg_settings: $pgset,
      completions_per_second: $cps,
      pg_stat_statements: ($stm == 1),
      per_completion: {pg_cpu_us: $pcpu, wal_bytes: $wal, transactions: $x, broker_cpu_us: $bcpu,
                       redis_cpu_us: $rcpu},
      statements_run: $mid, statements: $st[0], all_runs: $all}' >"$OUT"
jq -r '"median of \(.runs): \(.completions_per_second | floor)/s; per completion: PostgreSQL \(.per_completion.pg_cpu_us | floor) µs CPU, \(.per_completion.wal_bytes | floor) WAL bytes, \(.per_completion.transactions) transactions; broker \(.per_completion.broker_cpu_us | floor) µs, Redis \(.per_completion.redis_cpu_us | floor) µs"' "$OUT"
echo "top statements (run $MID): µs per completion | calls per completion | µs per call (plan) | query"
jq -r '.statements[] | "\(.us_per_completion)\t\(.calls_per_completion)\t\(.us_per_call) (\(.plan_us_per_call))\t\(if .toplevel then "" else "  > " end)\(.query)"' "$OUT"
echo "wrote $OUT"
