#!/usr/bin/env bash
# bench_idle.sh - idle_agents (issue 18): many connected agents that do no
# work, what they cost the broker, and how fast they are back after a restart.
# A benchmark, not a test: it prints a table and writes the idle_agents JSON
# object to FILE.
#
#   deploy/bench_idle.sh --bin DIR --out FILE [--agents N] [--active A]
#       [--active-rate R] [--holders H] [--wait-ms W] [--spread-ms S]
#       [--idle-seconds I] [--active-seconds T] [--logs DIR]
#
# Its own PostgreSQL + Redis and quorumd (DIR/quorumd, DIR/quorum-agent,
# DIR/quorumctl; a Release build gives the figures worth quoting), the open
# files limit raised to the hard one. Then:
#  1. N agents (default 10000) of `quorum-agent simulate --idle` connect over
#     TLS within S ms (default 10000) to a project of H tasks (default N/10):
#     H agents hold a lease and heartbeat it every 20 s (lease TTL 60 s), the
#     others sit in long polls of W ms (default 60000, the broker's most). handshake_cpu_us: the
#     broker's CPU time (user + system) from the agents' start until each had
#     its first answer, divided by the TLS connections they made.
#  2. broker_rss_mb: the broker's VmRSS with them all connected;
#     broker_idle_cpu_percent: its CPU over I seconds (default 10) of that,
#     in % of one core.
#  3. active_lease_p99_ms: A more agents (default 100) label another project
#     at about R completions/s (default 200; think time A/R s, uniform from
#     half to 1.5 times that) for T seconds (default 15): the p99 of their
#     lease requests answered after the first WARMUP_S seconds (their
#     handshakes and first token lookups; simulate --warmup). Beside it,
#     active_lease_p99_ms_second_max: the largest of the p99s of each of
#     those seconds (simulate's progress lines; about 200 answers each, so
#     nearly the largest answer of the second): a bound from above; and
#     active_lease_p99_ms_with_warmup, the same with the warm-up in.
#  4. reconnect_all_seconds: the broker gets SIGTERM, and once it has exited
#     the idle agents are told (SIGUSR1: the restart mark), and once they
#     have taken it the same quorumd starts again on the same port; the
#     seconds from that mark until every idle agent had an answer to a
#     request sent after it (long pollers ask at once, holders at their next
#     heartbeat, failed requests retry with exponential backoff and jitter).
# Keys of FILE (contracts): agents, broker_rss_mb, broker_idle_cpu_percent,
# handshake_cpu_us, active_lease_p99_ms, reconnect_all_seconds; then the
# details (holders, wait_ms, connections, ..., load_average). --logs DIR keeps
# the agents' and the broker's output there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="" OUT="" AGENTS=10000 ACTIVE=100 ACTIVE_RATE=200 HOLDERS="" WAIT_MS=60000 SPREAD_MS=10000
IDLE_SECONDS=10 ACTIVE_SECONDS=15 LOGS="" WARMUP_S=2
# The header above, without its "# ".
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "bench_idle.sh: $*" >&2; exit 2; }
int_arg() { # NAME VALUE MIN MAX
    if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
        die "$1 must be an integer $3-$4, not '$2'"
    fi
}
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --bin | --out | --agents | --active | --active-rate | --holders | --wait-ms | --spread-ms | \
        --idle-seconds | --active-seconds | --logs) [ $# -ge 2 ] || die "$1 needs a value" ;;
    *) die "unknown option $1 (--help lists them)" ;;
    esac
    case "$1" in
    --bin) BIN=$2 ;;
    --out) OUT=$2 ;;
    --agents) int_arg "$1" "$2" 1 20000; AGENTS=$2 ;;
    --active) int_arg "$1" "$2" 1 1000; ACTIVE=$2 ;;
    --active-rate) int_arg "$1" "$2" 1 100000; ACTIVE_RATE=$2 ;;
    --holders) int_arg "$1" "$2" 0 20000; HOLDERS=$2 ;;
    --wait-ms) int_arg "$1" "$2" 1000 60000; WAIT_MS=$2 ;;
    --spread-ms) int_arg "$1" "$2" 0 600000; SPREAD_MS=$2 ;;
    --idle-seconds) int_arg "$1" "$2" 10 600; IDLE_SECONDS=$2 ;;
    --active-seconds) int_arg "$1" "$2" 4 600; ACTIVE_SECONDS=$2 ;;
    --logs) LOGS=$2 ;;
    esac
    shift 2
done
[ -n "$BIN" ] || die "--bin DIR is required"
[ -n "$OUT" ] || die "--out FILE is required"
for b in quorumd quorumctl quorum-agent; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is not an executable"
done
BIN=$(cd "$BIN" && pwd)
HOLDERS=${HOLDERS:-$((AGENTS / 10))}
[ "$HOLDERS" -le "$AGENTS" ] || die "--holders ($HOLDERS) must not exceed --agents ($AGENTS)"
mkdir -p "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")

# The agents and the broker each hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((AGENTS + ACTIVE + 200)) ] ||
    echo "bench_idle.sh: warning: the open files limit ($(ulimit -n)) is short of $((AGENTS + ACTIVE + 200))" >&2

here=$ROOT/tests/bench
# shellcheck source=../tests/bench/bench_lib.sh
. "$here/bench_lib.sh"
BROKER_FLAGS=(--max-connections $((AGENTS + ACTIVE + 1000)) --pg-pool 8)
echo "bench_idle: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $AGENTS agents ($HOLDERS holding a lease), broker $BIN"
bench_broker "$BIN" "${BROKER_FLAGS[@]}"
SIM_PID="" ACT_PID=""
cleanup_idle() {
    local p
    for p in $SIM_PID $ACT_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    if [ -n "$LOGS" ]; then
        mkdir -p "$LOGS"
        cp "$W"/*.err "$W"/*.out "$W"/*.json "$W/q.log" "$LOGS/" 2>/dev/null || true
    fi
    bench_broker_stop
}
trap cleanup_idle EXIT

# CPU time (ms, user + system) of a process.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"; }
rss_mb() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
now_ms() { echo $(( ${EPOCHREALTIME/[.,]/} / 1000 )); }
# wait_line FILE PATTERN SECONDS PID: until FILE has PATTERN; fails if PID exits or time is up.
wait_line() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qs "$2" "$1" && return 0
        kill -0 "$4" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
fail() {
    echo "bench_idle.sh: $*" >&2
    tail -n 15 "$W/idle.err" >&2 2>/dev/null || true
    tail -n 15 "$W/q.log" >&2 2>/dev/null || true
    exit 1
}

# The projects: the idle one with a task per holder, the active one with
# twice what the active crew can label.
PI=$("$BIN/quorumctl" project create --name idle --labels a,b --lease-ttl-ms 60000)
PA=$("$BIN/quorumctl" project create --name active --labels a,b --lease-ttl-ms 60000)
if [ "$HOLDERS" -gt 0 ]; then
    seq 1 "$HOLDERS" | awk '{printf "{\"n\":%d}\n", $1}' >"$W/idle.jsonl"
    "$BIN/quorumctl" import --project "$PI" "$W/idle.jsonl" >/dev/null
fi
seq 1 $((ACTIVE_RATE * ACTIVE_SECONDS * 2 + 1000)) |
    awk '{printf "{\"n\":%d,\"_true_label\":\"a\"}\n", $1}' >"$W/active.jsonl"
"$BIN/quorumctl" import --project "$PA" "$W/active.jsonl" >/dev/null

# 1. The idle crew connects.
"$BIN/quorum-agent" simulate --idle --project "$PI" --annotators "$AGENTS" --wait-ms "$WAIT_MS" \
    --spread-ms "$SPREAD_MS" --duration 3600 --json-summary "$W/idle.json" \
    >"$W/idle.out" 2>"$W/idle.err" &
SIM_PID=$!
wait_line "$W/idle.err" "idle: $AGENTS agents start" 600 "$SIM_PID" || fail "the idle agents' users were not created"
cpu0=$(cpu_ms "$QPID") t0=$(now_ms) acpu0=$(cpu_ms "$SIM_PID")
wait_line "$W/idle.err" "idle: all $AGENTS agents connected" $((SPREAD_MS / 1000 + 300)) "$SIM_PID" ||
    fail "the idle agents did not all connect"
cpu1=$(cpu_ms "$QPID") t1=$(now_ms) acpu1=$(cpu_ms "$SIM_PID")
conns=$(sed -n "s/.*idle: all $AGENTS agents connected (\([0-9]*\) connections made).*/\1/p" "$W/idle.err")
handshake_us=$(awk -v c=$((cpu1 - cpu0)) -v n="$conns" 'BEGIN {printf "%.0f", n ? c * 1000 / n : 0}')
agent_hs_us=$(awk -v c=$((acpu1 - acpu0)) -v n="$conns" 'BEGIN {printf "%.0f", n ? c * 1000 / n : 0}')
echo "connect: $conns TLS connections in $(((t1 - t0) / 1000)) s, broker CPU $((cpu1 - cpu0)) ms: $handshake_us us per handshake (the agents': $agent_hs_us us)"

# 2. Idle: RSS and CPU.
sleep 3
cpu2=$(cpu_ms "$QPID") t2=$(now_ms) acpu2=$(cpu_ms "$SIM_PID")
sleep "$IDLE_SECONDS"
cpu3=$(cpu_ms "$QPID") t3=$(now_ms) acpu3=$(cpu_ms "$SIM_PID")
rss=$(rss_mb "$QPID")
idle_cpu=$(awk -v c=$((cpu3 - cpu2)) -v w=$((t3 - t2)) 'BEGIN {printf "%.2f", 100 * c / w}')
agent_idle_cpu=$(awk -v c=$((acpu3 - acpu2)) -v w=$((t3 - t2)) 'BEGIN {printf "%.2f", 100 * c / w}')
conns_open=$(curl -fsS --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$URL/metrics" |
    awk '$1 == "quorum_http_connections" {print $2}')
echo "idle: RSS $rss MiB, CPU $idle_cpu % of a core over $(((t3 - t2) / 1000)) s (the agents': $agent_idle_cpu %), $conns_open connections open"

# 3. The active subset at a fixed rate, beside the idle crew.
think=$((ACTIVE * 1000 / ACTIVE_RATE))
"$BIN/quorum-agent" simulate --project "$PA" --annotators "$ACTIVE" --accuracy 0.9 \
    --think-ms "$((think / 2))-$((think * 3 / 2))" --no-spool --duration "$ACTIVE_SECONDS" \
    --warmup "$WARMUP_S" \
    --json-summary "$W/active.json" >"$W/active.out" 2>"$W/active.err" &
ACT_PID=$!
wait "$ACT_PID" || { ACT_PID=""; tail -n 15 "$W/active.err" >&2; fail "the active crew failed"; }
ACT_PID=""
lease_p99=$(jq -r '.lease_latency_ms.p99' "$W/active.json")
# Progress lines "[  3.0s] ... lease p99 5.94 ms (196) ...": the largest
# per-second p99 after the warm-up, and of every second.
read -r lease_p99_max lease_p99_all < <(awk -v w="$WARMUP_S" '
    /^\[ *[0-9.]+s\] submitted/ && match($0, /lease p99 [0-9.]+ ms/) {
        v = substr($0, RSTART + 10, RLENGTH - 13) + 0; if (v > all) all = v
        t = $0; sub(/^\[ */, "", t); sub(/s\].*/, "", t)
        if (t + 0 > w) { if (v > m) m = v; n++ } }
    END {printf "%.2f %.2f\n", n ? m : -1, all}' "$W/active.err")
active_rate=$(jq -r '.completions_per_second' "$W/active.json")
rss_active=$(rss_mb "$QPID")
echo "active: $ACTIVE agents at $active_rate completions/s (asked $ACTIVE_RATE): lease p99 $lease_p99 ms after $WARMUP_S s (the worst second's p99: $lease_p99_max ms; $lease_p99_all ms with the warm-up); RSS $rss_active MiB"

# 4. Restart on the same port; the mark once the old broker is gone.
t4=$(now_ms)
kill -TERM "$QPID"
wait "$QPID" 2>/dev/null || true
t5=$(now_ms)
acpu4=$(cpu_ms "$SIM_PID")
kill -USR1 "$SIM_PID"
# The new broker starts once the agents have taken the mark: a request that
# reached it before would count as sent before the restart, and a long poll
# of --wait-ms sent that way is only answered, and its agent only counted as
# served again, when it ends.
wait_line "$W/idle.err" "idle: restart mark at" 30 "$SIM_PID" || fail "the idle agents did not take the restart mark"
QD_LISTEN=127.0.0.1:$QD_PORT start_quorumd "$BIN/quorumd" "$W/q.log" --pg "$QR_PG_CONNINFO" \
    --redis "127.0.0.1:$QR_REDIS_PORT" --cert "$W/tls/server.crt" --key "$W/tls/server.key" \
    --auth-fail-rate 0 --rate-limit 0 "${BROKER_FLAGS[@]}" || fail "quorumd did not start again"
QPID=$QD_PID
wait_line "$W/idle.err" "idle: all $AGENTS agents served again" 300 "$SIM_PID" ||
    fail "the idle agents were not all served again"
cpu_storm=$(cpu_ms "$QPID") acpu5=$(cpu_ms "$SIM_PID")
reconnect=$(sed -n "s/.*idle: all $AGENTS agents served again \([0-9.]*\) s after the mark.*/\1/p" "$W/idle.err")
echo "restart: stopped in $((t5 - t4)) ms; all $AGENTS agents served again $reconnect s after the mark (new broker's CPU $cpu_storm ms, the agents' $((acpu5 - acpu4)) ms)"

kill -TERM "$SIM_PID"
wait "$SIM_PID" || fail "simulate --idle failed"
SIM_PID=""
j() { jq -r "$1" "$W/idle.json"; }

jq -n --argjson agents "$AGENTS" --argjson rss "$rss" --argjson idle_cpu "$idle_cpu" \
    --argjson hs "$handshake_us" --argjson p99 "$lease_p99" --argjson rc "$reconnect" \
    --argjson holders "$HOLDERS" --argjson held "$(j .holding_max)" --argjson wait "$WAIT_MS" \
    --argjson conns "$conns" --argjson connect_s "$(j .connect_seconds)" \
    --argjson beat "$(j .heartbeat_period_ms)" --argjson lost "$(j .leases_lost)" \
    --argjson active "$ACTIVE" --argjson arate "$active_rate" --argjson rss_active "$rss_active" \
    --argjson stop_ms $((t5 - t4)) --argjson storm_cpu "$cpu_storm" \
    --argjson p99_all "$lease_p99_all" --argjson p99_max "$lease_p99_max" --argjson agent_hs "$agent_hs_us" --argjson agent_idle "$agent_idle_cpu" \
    --argjson agent_storm $((acpu5 - acpu4)) --argjson conns_open "${conns_open:-0}" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg build "$(basename "$(dirname "$BIN")")" \
    '{agents: $agents, broker_rss_mb: $rss, broker_idle_cpu_percent: $idle_cpu,
      handshake_cpu_us: $hs, active_lease_p99_ms: $p99, reconnect_all_seconds: $rc,
      holders: $holders, leases_held: $held, leases_lost: $lost, wait_ms: $wait,
      heartbeat_period_ms: $beat, connections: $conns, connect_seconds: $connect_s,
      active_agents: $active, active_completions_per_second: $arate,
      active_lease_p99_ms_second_max: $p99_max, active_lease_p99_ms_with_warmup: $p99_all,
      broker_rss_mb_with_active: $rss_active, stop_ms: $stop_ms,
      connections_open: $conns_open, agents_cpu_us_per_handshake: $agent_hs,
      agents_idle_cpu_percent: $agent_idle, restart_broker_cpu_ms: $storm_cpu,
      restart_agents_cpu_ms: $agent_storm, load_average: $load, build: $build}' >"$OUT"

printf '\n%-28s %12s %s\n' "idle_agents" "measured" "acceptance"
printf '%-28s %12s\n' "agents" "$AGENTS"
printf '%-28s %12s %s\n' "broker_rss_mb" "$rss" "< 300"
printf '%-28s %12s %s\n' "broker_idle_cpu_percent" "$idle_cpu" "< 5"
printf '%-28s %12s\n' "handshake_cpu_us" "$handshake_us"
printf '%-28s %12s %s\n' "active_lease_p99_ms" "$lease_p99" "< 10"
printf '%-28s %12s %s\n' "reconnect_all_seconds" "$reconnect" "< 30"
echo "written to $OUT"
