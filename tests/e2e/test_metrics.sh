#!/usr/bin/env bash
# GET /metrics and GET /readyz (issue 6 item 5). Scrapes /metrics before,
# during and after a run of simulated annotators, checks every scrape with
# Prometheus's own parser and linter (promtool check metrics, Debian package
# prometheus) and that the counters, histograms and queue gauges move between
# scrapes; /metrics without a token is 401 unless quorumd runs with
# --metrics-public; /readyz is 200 with PostgreSQL and Redis up and 503 naming
# the one that is down (a broker pointed at a dead Redis, or a dead
# PostgreSQL, port).
. "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null || { echo "not ok - promtool not found (deploy/dev.sh deps installs prometheus)"; exit 1; }

start_broker

r=$(api POST /v1/projects "$ADMIN_TOKEN" \
    '{"name": "metrics", "labels": ["sports", "technology", "cooking", "weather"], "annotations_per_task": 2}')
P=$(echo "${r#* }" | jq .id)
head -n 400 "$QR_SOURCE_DIR/deploy/sample/news.jsonl" >"$E2E_DIR/tasks.jsonl"
"$QR_BIN_DIR/quorumctl" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null

# scrape FILE [URL] [TOKEN]: GET /metrics into FILE; prints the status.
scrape() {
    local out=$1 url=${2:-$URL} token=${3-$ADMIN_TOKEN} args=()
    [ -n "$token" ] && args=(-H "Authorization: Bearer $token")
    curl -sS --cacert "$CA" -o "$out" -w '%{http_code}' "${args[@]}" "$url/metrics"
}
# value FILE SERIES: the value of one series ("name{labels}" exactly as
# rendered), or "absent".
value() {
    awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print "absent" }' "$1"
}
# promcheck FILE DESCRIPTION: promtool parses and lints the exposition.
promcheck() {
    local out
    if out=$(promtool check metrics <"$1" 2>&1); then
        pass "$2: promtool check metrics finds nothing wrong"
    else
        fail "$2: promtool check metrics: $out"
    fi
}
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }
check_gt() { # DESCRIPTION A B: A > B
    if gt "$2" "$3"; then pass "$1 ($2 > $3)"; else fail "$1 (expected $2 > $3)"; fi
}

# --- who may scrape ---------------------------------------------------------------------
check "no token: 401" 401 "$(scrape "$E2E_DIR/m0" "$URL" "")"
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"m-manager","role":"manager"}')
check "a manager: 403" 403 "$(scrape "$E2E_DIR/m0" "$URL" "$(echo "${r#* }" | jq -r .token)")"
check "an admin: 200" 200 "$(scrape "$E2E_DIR/m1" "$URL")"
ctype=$(curl -sS --cacert "$CA" -o /dev/null -w '%{content_type}' -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/metrics")
check "content type of the text format 0.0.4" "text/plain; version=0.0.4; charset=utf-8" "$ctype"
promcheck "$E2E_DIR/m1" "before the run"
check "queue of the project before: 400 tasks waiting" 400 "$(value "$E2E_DIR/m1" "quorum_tasks{project=\"$P\",state=\"waiting\"}")"
check "nothing granted yet" absent "$(value "$E2E_DIR/m1" "quorum_leases_granted_total{project=\"$P\"}")"
check "Redis is up" 1 "$(value "$E2E_DIR/m1" quorum_redis_up)"
check "the queue figures were read" 1 "$(value "$E2E_DIR/m1" quorum_queue_up)"
check "build info" 1 "$(grep -c '^quorum_build_info{libuv="' "$E2E_DIR/m1")"

# --- during and after a run -------------------------------------------------------------------
"$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 4 --accuracy 0.9 \
    --think-ms 20-60 --seed 3 --skip-rate 0.1 --release-rate 0.05 --duration 4 --no-spool \
    --max-seconds 60 >"$E2E_DIR/sim.out" 2>"$E2E_DIR/sim.err" &
SIM=$!
sleep 2
check "a scrape during the run: 200" 200 "$(scrape "$E2E_DIR/m2")"
SIM_RC=0
wait "$SIM" || SIM_RC=$?
check "simulate exits 0" 0 "$SIM_RC"
sleep 0.5
check "a scrape after the run: 200" 200 "$(scrape "$E2E_DIR/m3")"
promcheck "$E2E_DIR/m2" "during the run"
promcheck "$E2E_DIR/m3" "after the run"

for m in granted submitted skipped released; do
    a=$(value "$E2E_DIR/m2" "quorum_leases_${m}_total{project=\"$P\"}")
    b=$(value "$E2E_DIR/m3" "quorum_leases_${m}_total{project=\"$P\"}")
    check_gt "leases $m: counted during the run" "$a" 0
    check_gt "leases $m: moved between the scrapes" "$b" "$a"
done
check "no lease expired" 0 "$(value "$E2E_DIR/m3" "quorum_leases_expired_total{project=\"$P\"}")"
# The broker's counters agree with what PostgreSQL stored.
stored=$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")
check "submitted counter = annotations stored" "$stored" "$(value "$E2E_DIR/m3" "quorum_leases_submitted_total{project=\"$P\"}")"
check "quorum_annotations gauge = annotations stored" "$stored" "$(value "$E2E_DIR/m3" "quorum_annotations{project=\"$P\"}")"
for s in 'quorum_request_duration_seconds_count{endpoint="lease"}' \
    'quorum_request_duration_seconds_count{endpoint="submit"}' \
    quorum_pg_query_duration_seconds_count quorum_redis_command_duration_seconds_count \
    quorum_loop_busy_seconds_count; do
    check_gt "$s moved" "$(value "$E2E_DIR/m3" "$s")" "$(value "$E2E_DIR/m1" "$s")"
done
check "lease histogram: +Inf bucket = count" \
    "$(value "$E2E_DIR/m3" 'quorum_request_duration_seconds_count{endpoint="lease"}')" \
    "$(value "$E2E_DIR/m3" 'quorum_request_duration_seconds_bucket{endpoint="lease",le="+Inf"}')"
check "loop turns histogram: +Inf bucket = count" \
    "$(value "$E2E_DIR/m3" quorum_loop_busy_seconds_count)" \
    "$(value "$E2E_DIR/m3" 'quorum_loop_busy_seconds_bucket{le="+Inf"}')"
# The turns' busy time is a share of the time between the scrapes.
check_gt "loop turns: some busy time counted" "$(value "$E2E_DIR/m3" quorum_loop_busy_seconds_sum)" 0
check_gt "loop turns: busy less than the broker has run" "$(awk -v s="$(ps -o etimes= -p "$QUORUMD_PID")" 'BEGIN { print s + 1 }')" "$(value "$E2E_DIR/m3" quorum_loop_busy_seconds_sum)"
check_gt "the queue moved: complete tasks" \
    "$(value "$E2E_DIR/m3" "quorum_tasks{project=\"$P\",state=\"complete\"}")" \
    "$(value "$E2E_DIR/m1" "quorum_tasks{project=\"$P\",state=\"complete\"}")"
check_gt "the Redis ready window is reported" \
    "$(value "$E2E_DIR/m3" "quorum_ready_window_tasks{project=\"$P\"}")" 0
check "no lease live after the run" 0 "$(value "$E2E_DIR/m3" "quorum_leases_live{project=\"$P\"}")"
check_gt "open connections include the scrape's own" "$(value "$E2E_DIR/m3" quorum_http_connections)" 0
check "no PostgreSQL error" 0 "$(value "$E2E_DIR/m3" quorum_pg_errors_total)"

# --- --metrics-public ------------------------------------------------------------------------
start_second_broker --metrics-public
check "--metrics-public: no token, 200" 200 "$(scrape "$E2E_DIR/m4" "$URL2" "")"
promcheck "$E2E_DIR/m4" "--metrics-public"
check "--metrics-public: a token is not even looked at" 200 "$(scrape "$E2E_DIR/m4" "$URL2" nonsense)"
check "--metrics-public: other routes still need a token" 401 "$(API_URL=$URL2 api GET "/v1/projects/$P" "" | cut -d' ' -f1)"
check "without the flag: no token, 401" 401 "$(scrape "$E2E_DIR/m5" "$URL" "")"
kill -TERM "$QUORUMD2_PID"; wait "$QUORUMD2_PID" 2>/dev/null || true; QUORUMD2_PID=""

# --- /readyz --------------------------------------------------------------------------------------
r=$(api GET /readyz "")
check "readyz with both up: 200" 200 "${r%% *}"
check "readyz says ready" true "$(echo "${r#* }" | jq .ready)"
check "readyz: postgresql ok" true "$(echo "${r#* }" | jq .postgresql.ok)"
check "readyz: redis ok" true "$(echo "${r#* }" | jq .redis.ok)"

# readyz_of ARGS...: a broker of its own with ARGS; prints /readyz's "STATUS BODY".
readyz_of() {
    : >"$E2E_DIR/quorumd3.log"
    start_quorumd "$QR_BIN_DIR/quorumd" "$E2E_DIR/quorumd3.log" --cert "$E2E_DIR/tls/server.crt" \
        --key "$E2E_DIR/tls/server.key" "$@" || { echo "000 the readyz broker did not start"; return 0; }
    QUORUMD2_PID=$QD_PID
    local port=$QD_PORT i
    for i in $(seq 1 100); do
        curl -fsS --cacert "$CA" "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    sleep 0.5 # let the backends' first connection attempts fail
    local t0 t1 r
    t0=$(date +%s%N)
    r=$(API_URL="https://127.0.0.1:$port" api GET /readyz "")
    t1=$(date +%s%N)
    echo "$r"
    echo "$(((t1 - t0) / 1000000))" >"$E2E_DIR/readyz_ms"
    kill -TERM "$QUORUMD2_PID"
    wait "$QUORUMD2_PID" 2>/dev/null || true
    QUORUMD2_PID=""
    if grep -q 'Sanitizer\|runtime error' "$E2E_DIR/quorumd3.log"; then
        fail "sanitizer report in the readyz broker's log"
        grep -A20 'Sanitizer\|runtime error' "$E2E_DIR/quorumd3.log" | head -40
    fi
}
# A port bound but not listening (connections refused), held to the end.
hold_dead_port
HELPER_PIDS+=("$DEAD_PID")
DEAD=$DEAD_PORT
r=$(readyz_of --pg "$E2E_PG" --redis "127.0.0.1:$DEAD")
check "readyz with Redis down: 503" 503 "${r%% *}"
check "... not ready" false "$(echo "${r#* }" | jq .ready)"
check "... PostgreSQL is fine" true "$(echo "${r#* }" | jq .postgresql.ok)"
check "... Redis is not" false "$(echo "${r#* }" | jq .redis.ok)"
check "... the message names redis" 1 "$(echo "${r#* }" | jq -r .error.message | grep -c '^redis is down')"
ms=$(cat "$E2E_DIR/readyz_ms")
if [ "$ms" -lt 1500 ]; then pass "... answered within the deadline ($ms ms)"; else fail "readyz took $ms ms"; fi

r=$(readyz_of --pg "host=127.0.0.1 port=$DEAD user=quorum dbname=$E2E_DB" --redis "127.0.0.1:$QR_REDIS_PORT")
check "readyz with PostgreSQL down: 503" 503 "${r%% *}"
check "... PostgreSQL is not fine" false "$(echo "${r#* }" | jq .postgresql.ok)"
check "... Redis is" true "$(echo "${r#* }" | jq .redis.ok)"
check "... the message names postgresql" 1 "$(echo "${r#* }" | jq -r .error.message | grep -c '^postgresql is down')"

# Stopping the stack's Redis itself: the main broker turns unready, then ready again.
redis-cli -p "$QR_REDIS_PORT" client pause 3000 >/dev/null
r=$(api GET /readyz "")
check "readyz while Redis does not answer: 503" 503 "${r%% *}"
check "... naming redis" 1 "$(echo "${r#* }" | jq -r .error.message | grep -c '^redis is down')"
sleep 3
r=$(api GET /readyz "")
check "readyz once Redis answers again: 200" 200 "${r%% *}"

finish
