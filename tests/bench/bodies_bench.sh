#!/usr/bin/env bash
# bodies_bench.sh - a benchmark, not a test: the broker's peak RSS and
# /healthz latency while 32 connections at once send the largest body their
# route accepts (the figures issue 11 asks for), on a Release quorumd with
# default limits on a private stack. The same three phases as
# tests/e2e/test_bodies.sh, which runs them on the sanitizer build:
#   1. no token, 64 MiB import bodies (3 rounds per connection): 401 from the head;
#   2. an annotator's 1 MiB JSON bodies to /leases (5 rounds): 400 too_many_values;
#   3. a manager's 64 MiB import bodies: read within the 128 MiB body budget,
#      2 at a time, refused at their first line (400), or 503 busy after
#      waiting 10 s (--idle-timeout-ms 10000) for their turn.
#
#   tests/bench/bodies_bench.sh [RUNS] [OUT.json]
#
# Prints each run's figures and, per phase, the median over RUNS (default 3)
# of the peak RSS (MiB), the /healthz p50/p99 (ms) and the seconds taken;
# writes them as JSON (default build/bodies_bench.json).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${1:-3}
OUT=${2:-$ROOT/build/bodies_bench.json}
B="$ROOT/build-rel"
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" --target quorumd quorumctl -j"$(nproc)" >/dev/null
W=$(mktemp -d /tmp/quorum-bench.XXXXXX)
cleanup() {
    [ -n "${QPID:-}" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
    "$ROOT/deploy/stack.sh" stop "$W/stack" >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT
"$ROOT/deploy/stack.sh" start "$W/stack" >/dev/null
. "$W/stack/env"
. "$ROOT/deploy/common.sh"
"$B/bin/quorumd" migrate --pg "$QR_PG_CONNINFO" --sql-dir "$ROOT/sql" 2>/dev/null
TOKEN=$("$B/bin/quorumd" bootstrap-admin --pg "$QR_PG_CONNINFO")
make_certs "$W/tls" 1
start_quorumd "$B/bin/quorumd" "$W/q.log" --pg "$QR_PG_CONNINFO" --redis "127.0.0.1:$QR_REDIS_PORT" \
    --cert "$W/tls/server.crt" --key "$W/tls/server.key" --auth-fail-rate 0 \
    --idle-timeout-ms 10000 || exit 1
QPID=$QD_PID PORT=$QD_PORT URL="https://127.0.0.1:$QD_PORT" CA="$W/tls/ca.crt"
wait_https "$URL" "$CA" "$QPID"
user() { curl -fsS --cacert "$CA" -H "Authorization: Bearer $TOKEN" --data "{\"name\":\"$1\",\"role\":\"$2\"}" "$URL/v1/users" | jq -r .token; }
P=$(QUORUM_URL=$URL QUORUM_TOKEN=$TOKEN QUORUM_CA=$CA "$B/bin/quorumctl" project create --name bench --labels a,b)
MGR=$(user bench-mgr manager) ANN=$(user bench-ann annotator)
phase() { # NAME KIND TOKEN PATH BYTES ROUNDS
    python3 "$ROOT/tests/e2e/bodies.py" "$PORT" "$CA" "$QPID" 32 "$2" "$3" "$4" "$5" "$6" |
        jq -c --arg p "$1" '. + {phase: $p}'
}
for r in $(seq 1 "$RUNS"); do
    phase unauthenticated jsonl - "/v1/projects/$P/tasks" $((64 << 20)) 3
    phase annotator_json json "$ANN" "/v1/projects/$P/leases" $((1 << 20)) 5
    phase manager_import jsonl "$MGR" "/v1/projects/$P/tasks" $((64 << 20)) 1
done | tee "$W/runs.jsonl"
jq -s '{runs: ., medians: (group_by(.phase) | map({phase: .[0].phase,
        rss_peak_mib: (map(.rss_peak_mib) | sort | .[length / 2 | floor]),
        healthz_p50_ms: (map(.healthz_p50_ms) | sort | .[length / 2 | floor]),
        healthz_p99_ms: (map(.healthz_p99_ms) | sort | .[length / 2 | floor]),
        seconds: (map(.seconds) | sort | .[length / 2 | floor])}))}' "$W/runs.jsonl" >"$OUT"
jq -r '.medians[] | "\(.phase): peak RSS \(.rss_peak_mib) MiB, /healthz p50 \(.healthz_p50_ms) ms, p99 \(.healthz_p99_ms) ms (medians of runs), \(.seconds) s"' "$OUT"
echo "written: $OUT"
