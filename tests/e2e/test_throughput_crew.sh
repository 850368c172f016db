#!/usr/bin/env bash
# The throughput report against a crew of known, fixed behaviour (issue 6,
# acceptance 1). A driver (python3, one keep-alive HTTPS connection per
# annotator, an absolute schedule) runs five annotators for 30 s:
#
#   r1    1 task/s, reports 800 ms of active time per task, and stops for
#         10 s half-way (the "idle minute", scaled: see below)
#   r2    2 tasks/s, 400 ms
#   r3    3 tasks/s, 267 ms
#   r4    4 tasks/s, 200 ms, skips every 5th lease (20%)
#   fast  5 tasks/s, 40 ms: implausibly fast; it also takes one lease at the
#         start and never answers it, so that lease expires (TTL 2 s)
#
# Labels go round a, b, c, d per annotator. Scaling: the run is 30 s, not an
# hour, so the idle threshold is asked as idle_gap_ms=3000 instead of 5
# minutes and the idle "minute" is 10 s. Each figure of issue 6 item 2 is
# checked against what the driver did (its own log of acknowledged submits,
# skips and times), with the tolerance stated at each check: counts, shares
# and agent-reported times on task are exact; rates and activity, which
# depend on real scheduling, within 5-10%. The same window is then asked for
# with a 3-hour window, which reads the rollups (the per-hour one for whole
# hours, none of which the run fills; the per-minute one; the raw events of
# the current minute), and must agree with the exact reading. The hour rows
# are checked against the log here, and read and compared with exact=1 over
# whole hours in tests/integration/test_analytics.c.
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200

r=$(api POST /v1/projects "$ADMIN_TOKEN" \
    '{"name": "crew", "labels": ["a", "b", "c", "d"], "annotations_per_task": 1, "lease_ttl_ms": 2000}')
check "project: 201" 201 "${r%% *}"
P=$(echo "${r#* }" | jq .id)
seq 1 700 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
check "700 tasks" 700 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P")"

declare -A TOK ID
for a in r1 r2 r3 r4 fast; do
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "{\"user\":\"crew-$a\",\"role\":\"annotator\"}")
    TOK[$a]=$(echo "${r#* }" | jq -r .token)
    ID[$a]=$(sql "SELECT id FROM users WHERE name = 'crew-$a'")
done

cat >"$E2E_DIR/driver.py" <<'PY'
import http.client, json, ssl, sys, threading, time
url, ca, project, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
tokens = dict(a.split('=', 1) for a in sys.argv[5:])
host, port = url.split('//')[1].split(':')
ctx = ssl.create_default_context(cafile=ca)
DURATION = 30.0
# name: (tasks per second, reported active ms, skip every Nth lease, idle (at s, for s))
CREW = {'r1': (1, 800, 0, (15.0, 10.0)), 'r2': (2, 400, 0, None), 'r3': (3, 267, 0, None),
        'r4': (4, 200, 5, None), 'fast': (5, 40, 0, None)}
LABELS = ['a', 'b', 'c', 'd']
log, lock = [], threading.Lock()
start = time.time() + 1.0

def call(conn, tok, method, path, body):
    conn.request(method, path, json.dumps(body), {'Authorization': 'Bearer ' + tok,
                                                'Content-Type': 'application/json'})
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b'{}')

def run(name):
    rate, active, skip_every, idle = CREW[name]
    tok = tokens[name]
    conn = http.client.HTTPSConnection(host, int(port), context=ctx)
    base = '/v1/projects/%s' % project
    if name == 'fast':  # one lease left to expire, just before the schedule starts
        time.sleep(max(0, start - 0.2 - time.time()))
        st, b = call(conn, tok, 'POST', base + '/leases', {'max': 1})
        with lock:
            log.append((name, 'abandon', time.time(), 0, None))
    n = int(DURATION * rate)
    k = 0
    for i in range(n):
        t = start + i / rate
        if idle and i / rate >= idle[0]:
            t += idle[1]
        delay = t - time.time()
        if delay > 0:
            time.sleep(delay)
        st, b = call(conn, tok, 'POST', base + '/leases', {'max': 1})
        if st != 200 or not b['leases']:
            with lock:
                log.append((name, 'nolease', time.time(), st, None))
            continue
        lease = b['leases'][0]['lease']
        k += 1
        time.sleep(active / 1000.0)
        if skip_every and k % skip_every == 0:
            st, b = call(conn, tok, 'POST', base + '/leases/%s/skip' % lease, {'reason': 'unclear'})
            kind = 'skip'
        else:
            label = LABELS[i % 4]
            st, b = call(conn, tok, 'POST', base + '/leases/%s/submit' % lease,
                         {'label': label, 'active_ms': active,
                          'idempotency_key': '%s-%d' % (name, i)})
            kind = 'submit'
        with lock:
            log.append((name, kind, time.time(), st, None if kind == 'skip' else LABELS[i % 4]))

threads = [threading.Thread(target=run, args=(a,)) for a in CREW]
for th in threads: th.start()
for th in threads: th.join()
with open(out, 'w') as f:
    json.dump({'start': start, 'log': log}, f)
PY
t0=$(date +%s)
python3 "$E2E_DIR/driver.py" "$URL" "$CA" "$P" "$E2E_DIR/log.json" \
    r1="${TOK[r1]}" r2="${TOK[r2]}" r3="${TOK[r3]}" r4="${TOK[r4]}" fast="${TOK[fast]}"
echo "# the crew ran for $(($(date +%s) - t0)) s"
sleep 1 # the lease log's flush (200 ms) and the reaper

LOG=$E2E_DIR/log.json
count() { jq "[.log[] | select(.[0] == \"$1\" and .[1] == \"$2\" and (.[3] == 200 or .[3] == 201))] | length" "$LOG"; }
for a in r1 r2 r3 r4 fast; do
    check "driver: no failed request for $a" 0 \
        "$(jq "[.log[] | select(.[0] == \"$a\" and .[1] != \"abandon\" and .[3] != 200 and .[3] != 201)] | length" "$LOG")"
done

q="window=15m&idle_gap_ms=3000"
r=$(api GET "/v1/projects/$P/throughput?$q" "$ADMIN_TOKEN")
check "report: 200" 200 "${r%% *}"
R=${r#* }
echo "$R" >"$E2E_DIR/report.json"
row() { echo "$R" | jq ".rows[] | select(.annotator == \"crew-$1\") | $2"; }
within() { # DESCRIPTION ACTUAL EXPECTED TOLERANCE(fraction)
    if awk -v a="$2" -v e="$3" -v t="$4" 'BEGIN { d = a - e; if (d < 0) d = -d; exit !(a != "null" && d <= t * (e < 0 ? -e : e) + 1e-9) }'; then
        pass "$1 ($2, expected $3 +-$(awk -v t="$4" 'BEGIN { print t * 100 }')%)"
    else
        fail "$1 (got $2, expected $3 +-$(awk -v t="$4" 'BEGIN { print t * 100 }')%)"
    fi
}

# --- completed annotations and rates ------------------------------------------------------------
total=0
declare -A RATE=([r1]=1 [r2]=2 [r3]=3 [r4]=4 [fast]=5) ACT=([r1]=800 [r2]=400 [r3]=267 [r4]=200 [fast]=40)
for a in r1 r2 r3 r4 fast; do
    n=$(count "$a" submit)
    total=$((total + n))
    check "$a: annotations = the driver's acknowledged submits (exact)" "$n" "$(row "$a" .annotations)"
    check "$a: annotations/hour = annotations / window hours (exact)" \
        "$(awk -v n="$n" 'BEGIN { printf "%.2f", n / 0.25 }')" "$(row "$a" .annotations_per_hour | awk '{ printf "%.2f", $1 }')"
    # Tasks per second over the annotator's active span: the fixed rate (5%).
    leases=$(( n + $(count "$a" skip) ))
    within "$a: tasks per active second" \
        "$(awk -v n="$leases" -v ms="$(row "$a" .active_ms)" -v act="${ACT[$a]}" 'BEGIN { printf "%.3f", (n - 1) / ((ms - act) / 1000) }')" \
        "${RATE[$a]}" 0.05
done
check "totals: annotations (exact)" "$total" "$(echo "$R" | jq .totals.annotations)"
check "totals: tasks completed, one annotation each (exact)" "$total" "$(echo "$R" | jq .totals.tasks_completed)"
check "totals: tasks completed in the window (exact)" "$total" "$(echo "$R" | jq .totals.tasks_completed_in_window)"
check "totals: annotators" 5 "$(echo "$R" | jq .totals.annotators)"

# --- time on task (agent-reported: exact) ---------------------------------------------------------
for a in r1 r2 r3 r4 fast; do
    check "$a: time on task median = reported ${ACT[$a]} ms" "${ACT[$a]}" "$(row "$a" .time_on_task.median_ms | awk '{ print $1 + 0 }')"
    check "$a: p90" "${ACT[$a]}" "$(row "$a" .time_on_task.p90_ms | awk '{ print $1 + 0 }')"
    check "$a: mean" "${ACT[$a]}" "$(row "$a" .time_on_task.mean_ms | awk '{ print $1 + 0 }')"
done
# The crew's: percentile_cont over the multiset the driver produced.
read -r med p90 mean < <(jq -r '[.log[] | select(.[1] == "submit") | {"r1":800,"r2":400,"r3":267,"r4":200,"fast":40}[.[0]]] | sort as $v | ($v | length) as $n |
    def pc(p): (p * ($n - 1)) as $r | ($r | floor) as $f | $v[$f] + ($r - $f) * ($v[[$f + 1, $n - 1] | min] - $v[$f]);
    "\(pc(0.5)) \(pc(0.9)) \(($v | add) / $n)"' "$LOG")
within "crew time on task median (percentile_cont)" "$(echo "$R" | jq .time_on_task.median_ms)" "$med" 0.001
within "crew time on task p90" "$(echo "$R" | jq .time_on_task.p90_ms)" "$p90" 0.001
within "crew time on task mean" "$(echo "$R" | jq .time_on_task.mean_ms)" "$mean" 0.001
for l in a b c d; do
    check "by label $l: n (exact)" "$(jq "[.log[] | select(.[1] == \"submit\" and .[4] == \"$l\")] | length" "$LOG")" \
        "$(echo "$R" | jq ".time_on_task.by_label[] | select(.label == \"$l\") | .n")"
done

# --- activity: idle gaps and utilisation -----------------------------------------------------------
check "r1: one idle gap (its 10 s pause, threshold 3 s)" 1 "$(row r1 .idle_gaps)"
within "r1: idle time = its 10 s pause + 0.2 s between two tasks" "$(row r1 .idle_ms)" 10200 0.05
within "r1: utilisation = active / (active + idle)" "$(row r1 .utilisation)" \
    "$(awk -v a="$(row r1 .active_ms)" -v i="$(row r1 .idle_ms)" 'BEGIN { printf "%.4f", a / (a + i) }')" 0.001
within "r1: active time = its working span less the pause" "$(row r1 .active_ms)" 29600 0.05
for a in r2 r3 r4; do
    check "$a: no idle gap" 0 "$(row "$a" .idle_gaps)"
    check "$a: utilisation 1" 1 "$(row "$a" .utilisation)"
done

# --- lease outcomes -----------------------------------------------------------------------------------
sk=$(count r4 skip)
within "r4: skipped share = 20%" "$(awk -v s="$sk" -v e="$(row r4 .leases.ended)" 'BEGIN { print s / e }')" 0.2 0.02
check "r4: skipped count (exact)" "$sk" "$(row r4 .leases.skipped)"
check "fast: its abandoned lease expired" 1 "$(row fast .leases.expired)"
check "fast: expiry rate = 1 / ended (exact)" \
    "$(awk -v e="$(row fast .leases.ended)" 'BEGIN { printf "%.4f", 1 / e }')" "$(row fast .expiry_rate | awk '{ printf "%.4f", $1 }')"
ended=$(echo "$R" | jq .outcomes.ended)
check "outcomes: ended = submits + skips + the expiry (exact)" "$((total + sk + 1))" "$ended"
check "outcomes: skipped share (exact)" "$(awk -v s="$sk" -v e="$ended" 'BEGIN { printf "%.4f", s / e }')" \
    "$(echo "$R" | jq .outcomes.skipped_share | awk '{ printf "%.4f", $1 }')"
check "outcomes: nothing released" 0 "$(echo "$R" | jq .outcomes.released)"

# --- queue and ETA ------------------------------------------------------------------------------------
check "queue: complete = annotations (exact)" "$total" "$(echo "$R" | jq .queue.complete)"
check "queue: waiting = the rest (exact)" "$((700 - total))" "$(echo "$R" | jq .queue.waiting)"
check "queue: nothing in progress, no live lease" "0 0" "$(echo "$R" | jq -r '"\(.queue.in_progress) \(.queue.leases_live)"')"
check "ETA: remaining annotations, counted in annotations" "$((700 - total))" "$(echo "$R" | jq .eta.annotations_remaining)"
check "ETA: rate window = the last hour: every annotation of the run" "$total" "$(echo "$R" | jq .eta.annotations_in_rate_window)"
check "ETA: seconds = remaining / hourly rate (exact)" \
    "$(awk -v r="$((700 - total))" -v n="$total" 'BEGIN { printf "%.0f", r * 3600 / n }')" "$(echo "$R" | jq .eta.seconds)"

# --- fast response ---------------------------------------------------------------------------------------
check "fast-response: only the 40 ms clicker is flagged" '["crew-fast"]' "$(echo "$R" | jq -c '[.fast_response.flagged[].annotator]')"
check "fast-response: the crew median is the median of the medians (267 ms)" 267 "$(echo "$R" | jq .fast_response.crew_median_ms | awk '{ print $1 + 0 }')"

# --- trend by hour and by vendor --------------------------------------------------------------------------
r=$(api GET "/v1/projects/$P/throughput?$q&by=hour" "$ADMIN_TOKEN")
check "by=hour: the hours add up to every annotation" "$total" "$(echo "${r#* }" | jq '[.rows[].annotations] | add')"
r=$(api GET "/v1/projects/$P/throughput?$q&by=vendor" "$ADMIN_TOKEN")
check "by=vendor: one organization with all five" "1 5 $total" "$(echo "${r#* }" | jq -r '"\(.rows | length) \(.rows[0].annotators) \(.rows[0].annotations)"')"

# --- the rollup agrees with the raw log -----------------------------------------------------------------------
check "rollup rows written with the events" "$(sql "SELECT count(*) FROM lease_events WHERE project_id = $P")" \
    "$(sql "SELECT sum(granted + heartbeats + submitted + skipped + released + expired) FROM lease_event_minutes WHERE project_id = $P")"
check "hour rollup rows written with the events" "$(sql "SELECT count(*) FROM lease_event_hours WHERE project_id = $P")" \
    "$(sql "SELECT count(*) FROM (SELECT DISTINCT annotator_id, date_trunc('hour', at, 'UTC') FROM lease_events WHERE project_id = $P) h")"
check "hour rollup: counts and submits" "$(sql "SELECT count(*), count(*) FILTER (WHERE kind = 'submit') FROM lease_events WHERE project_id = $P")" \
    "$(sql "SELECT sum(granted + heartbeats + submitted + skipped + released + expired), sum(submitted) FROM lease_event_hours WHERE project_id = $P")"
r=$(api GET "/v1/projects/$P/throughput?window=3h" "$ADMIN_TOKEN"); F=${r#* }
r=$(api GET "/v1/projects/$P/throughput?window=3h&exact=1" "$ADMIN_TOKEN"); E=${r#* }
check "3h window: read from the rollups (hours, minutes, the edges)" "hourly events" "$(echo "$F" | jq -r .window.source) $(echo "$E" | jq -r .window.source)"
# The crew's working time comes from raw annotations, for raw windows only.
NOWORK='del(.working_ms, .annotations_per_working_hour)'
check "rollup = exact: totals, outcomes, queue" "$(echo "$E" | jq -c "[(.totals | $NOWORK), .outcomes, .queue]")" "$(echo "$F" | jq -c "[(.totals | $NOWORK), .outcomes, .queue]")"
check "working time: from the raw window, null from the rollups" "true null" \
    "$(echo "$E" | jq '.totals.working_ms > 0') $(echo "$F" | jq .totals.working_ms)"
check "rollup = exact: per annotator counts, leases, idle gaps" \
    "$(echo "$E" | jq -c '[.rows[] | [.annotations, .leases, .idle_gaps, .time_on_task.n, .fast_response]]')" \
    "$(echo "$F" | jq -c '[.rows[] | [.annotations, .leases, .idle_gaps, .time_on_task.n, .fast_response]]')"
check "rollup = exact: active time to the millisecond" \
    "$(echo "$E" | jq -c '[.rows[].active_ms]')" "$(echo "$F" | jq -c '[.rows[].active_ms]')"
for a in r1 r2 r3 r4 fast; do
    within "rollup: $a median within the histogram's 2.2%" \
        "$(echo "$F" | jq ".rows[] | select(.annotator == \"crew-$a\") | .time_on_task.median_ms")" "${ACT[$a]}" 0.022
done
within "rollup: crew mean exact" "$(echo "$F" | jq .time_on_task.mean_ms)" "$(echo "$E" | jq .time_on_task.mean_ms)" 0.0001
check "a bad idle_gap_ms: 422" 422 "$(api GET "/v1/projects/$P/throughput?idle_gap_ms=5" "$ADMIN_TOKEN" | cut -d' ' -f1)"
check "a bad exact: 422" 422 "$(api GET "/v1/projects/$P/throughput?exact=yes" "$ADMIN_TOKEN" | cut -d' ' -f1)"

finish
