#!/usr/bin/env bash
# quorum-agent simulate's open loop (--arrival-rate, issue 18): the crew's
# lease intents arrive as a Poisson process whatever the broker answers,
# each taken by a free annotator, and latencies run from the intended time. Bad flag values are refused with exit 2 before
# anything is made; at a low rate the crew offers and achieves the rate
# asked (within 15 %); intents of the warm-up are left out; and an
# annotator that cannot keep up counts its backlog in its latencies (no
# coordinated omission) while the offered rate stays the one asked. With
# --prefetch K (--batch) an intent is one lease request of up to K tasks
# (their results in one batch submit): the rate stays tasks per second, a
# K-th of the lease requests go out, and each result's submit latency runs
# from the time its batch was meant to go. An intent waits only when no
# annotator of the crew is free.
. "$(dirname "$0")/lib.sh"

start_broker
AGENT="$QR_BIN_DIR/quorum-agent"
P=$(new_project '{"name": "open", "labels": ["a", "b", "c"], "annotations_per_task": 1}')
seq 1 3000 | awk '{printf "{\"n\":%d,\"_true_label\":\"a\"}\n", $1}' >"$E2E_DIR/tasks.jsonl"
"$QR_BIN_DIR/quorumctl" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
check "3000 tasks imported" 3000 "$(sql "SELECT count(*) FROM tasks WHERE project_id = $P")"

# --- bad values: exit 2, a message saying why, no user made ------------------------------------
USERS=$(sql "SELECT count(*) FROM users")
refused() { # refused DESCRIPTION EXPECTED_MESSAGE FLAGS...
    local what=$1 msg=$2 rc=0
    shift 2
    "$AGENT" simulate --project "$P" --annotators 2 --accuracy 0.9 --no-spool "$@" \
        >/dev/null 2>"$E2E_DIR/err" || rc=$?
    if [ "$rc" = 2 ] && grepq -F -- "$msg" <"$E2E_DIR/err"; then
        pass "$what: exit 2, says why"
    else
        fail "$what: exit $rc, stderr: $(cat "$E2E_DIR/err")"
    fi
}
refused "--arrival-rate 0" "--arrival-rate must be a number of tasks per second" \
    --arrival-rate 0
refused "--arrival-rate abc" "not 'abc'" --arrival-rate abc
refused "--arrival-rate -5" "--arrival-rate must be" --arrival-rate -5
refused "--arrival-rate with --prefetch 0" "--prefetch must be 1-100, not '0'" \
    --arrival-rate 10 --prefetch 0 --batch
refused "--arrival-rate with --prefetch 101" "--prefetch must be 1-100, not '101'" \
    --arrival-rate 10 --prefetch 101 --batch
refused "--arrival-rate with --prefetch 4x" "--prefetch must be 1-100, not '4x'" \
    --arrival-rate 10 --prefetch 4x
rc=0
"$AGENT" simulate --idle --project "$P" --annotators 2 --warmup 2 >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" = 2 ] && grepq -F -- "--idle sends no results: --warmup does not apply" <"$E2E_DIR/err" &&
    pass "--warmup with --idle: exit 2, says why" || fail "--warmup with --idle: exit $rc, $(cat "$E2E_DIR/err")"
refused "--warmup -1" "--warmup must be a number of seconds >= 0" --arrival-rate 10 --warmup -1
refused "--warmup as long as --duration" "leaves nothing of --duration 5 to measure" \
    --arrival-rate 10 --warmup 5 --duration 5
refused "--think-lognormal 0,1" "--think-lognormal must be MEDIAN_MS,SIGMA" --think-lognormal 0,1
refused "--think-lognormal 20" "not '20'" --think-lognormal 20
refused "--think-lognormal 20,9" "0 <= SIGMA <= 5" --think-lognormal 20,9
refused "--think-ms with --think-lognormal" "exclude each other" --think-ms 5 --think-lognormal 20,0.5
check "no user made by a refused run" "$USERS" "$(sql "SELECT count(*) FROM users")"
"$AGENT" simulate --help | grepq -- "--arrival-rate R" && pass "--help names --arrival-rate" ||
    fail "--help lacks --arrival-rate"
"$AGENT" simulate --help | grepq -- "one lease request of up to K tasks" &&
    pass "--help says an intent leases up to K tasks" || fail "--help lacks the batched open loop"

# --- a low rate: offered and achieved as asked, the warm-up left out ---------------------------
# 100 annotators at 50 intents/s: each has an intent every 2 s and a cycle
# (lease, 10 ms of thought, submit) far shorter, even on a loaded machine.
S1=$E2E_DIR/open.json
timeout 120 "$AGENT" simulate --project "$P" --annotators 100 --accuracy 0.9 --no-spool --seed 7 \
    --arrival-rate 50 --think-lognormal 10,0.5 --warmup 2 --duration 8 --max-seconds 60 \
    --json-summary "$S1" >"$E2E_DIR/open.out" 2>"$E2E_DIR/open.err" ||
    { tail -5 "$E2E_DIR/open.err"; fail "the open-loop run"; }
jq -c '.open_loop | del(.lease, .submit, .wait)' "$S1"
jq -c '.open_loop | {lease, submit, wait}' "$S1"
within() { # within VALUE TARGET FRACTION -> true|false
    awk -v v="$1" -v t="$2" -v f="$3" 'BEGIN { print (v >= t * (1 - f) && v <= t * (1 + f)) ? "true" : "false" }'
}
check "offered 50/s within 15 %" true "$(within "$(jq .open_loop.offered_per_second "$S1")" 50 0.15)"
check "achieved 50/s within 15 %" true "$(within "$(jq .open_loop.achieved_per_second "$S1")" 50 0.15)"
check "measured over the 6 s after the warm-up" true "$(within "$(jq .open_loop.measured_seconds "$S1")" 6 0.01)"
check "at most 5 % of the intents left unserved at the end" true \
    "$(jq '.open_loop.intents_unserved <= 0.05 * .open_loop.intents' "$S1")"
check "the run stopped cleanly" "true" "$(jq .stopped_by_duration "$S1")"
check "a lease latency for (nearly) every measured intent" true \
    "$(jq '.open_loop.lease.n >= 0.9 * .open_loop.intents and .open_loop.lease.n <= .open_loop.intents' "$S1")"
# The crew's intents start with the loop: about 100 leases (2 s at 50/s)
# are made in the warm-up but not measured.
ALL=$(jq .lease_latency_ms.n "$S1")
MEASURED=$(jq .open_loop.lease.n "$S1")
check "the warm-up's leases are left out (60-150 of $ALL)" true \
    "$(awk -v d=$((ALL - MEASURED)) 'BEGIN { print (d >= 60 && d <= 150) ? "true" : "false" }')"
STORED=$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")
check "every acknowledged submit stored" "$(jq .completions "$S1")" "$STORED"
check "the window's completions are fewer than those stored" true \
    "$([ "$(jq .open_loop.completions "$S1")" -lt "$STORED" ] && echo true || echo false)"
check "lease and submit latencies: 0 < p50 <= p99 <= p99.9" true \
    "$(jq '[.open_loop.lease, .open_loop.submit] | all(.p50 > 0 and .p50 <= .p99 and .p99 <= .p999)' "$S1")"
check "the think time is log-normal, as asked" '{"median_ms":10,"sigma":0.5}' "$(jq -c .think_lognormal "$S1")"
check "the CPU per completion of the loop is reported" true "$(jq '.open_loop.cpu_us_per_completion > 0' "$S1")"
check "K = 1, no batch: one task per intent" '{"tasks_per_intent":1,"batch":false}' \
    "$(jq -c '.open_loop | {tasks_per_intent, batch}' "$S1")"
grepq "open loop: 50.0 tasks/s asked (K = 1 tasks per lease intent, one submit per task)" \
    <"$E2E_DIR/open.out" && pass "the text summary says it" ||
    fail "text summary: $(grep 'open loop' "$E2E_DIR/open.out")"

# --- one annotator offered twice what it can do: the backlog is counted -------------------------
# (a crew of one: every intent that comes while it is busy waits for it)
S2=$E2E_DIR/backlog.json
timeout 120 "$AGENT" simulate --project "$P" --annotators 1 --accuracy 0.9 --no-spool --seed 3 \
    --arrival-rate 20 --think-lognormal 100,0 --warmup 1 --duration 5 --max-seconds 60 \
    --json-summary "$S2" >"$E2E_DIR/backlog.out" 2>"$E2E_DIR/backlog.err" ||
    { tail -5 "$E2E_DIR/backlog.err"; fail "the overloaded run"; }
jq -c '.open_loop | del(.lease, .submit, .wait)' "$S2"
check "offered stays about 20/s (within 35 %: 80 intents)" true \
    "$(within "$(jq .open_loop.offered_per_second "$S2")" 20 0.35)"
check "achieved is what 100 ms of thought allows (at most 10/s)" true \
    "$(jq '.open_loop.achieved_per_second <= 10.5 and .open_loop.achieved_per_second >= 3' "$S2")"
check "most intents waited for the annotator" true "$(jq '.open_loop.waited_share > 0.5' "$S2")"
check "intents never sent are counted" true "$(jq '.open_loop.intents_unserved > 10' "$S2")"
check "their waits are in the lease latency (p99 over 500 ms)" true "$(jq '.open_loop.lease.p99 > 500' "$S2")"
check "but not in the submit latency (p50 under 100 ms)" true "$(jq '.open_loop.submit.p50 < 100' "$S2")"

# --- batched: an intent leases 4 tasks, their results go in one batch submit ---------------------
# 20 annotators offered 160 tasks/s, 4 tasks per lease request: 40 intents/s,
# one every 0.5 s per annotator, each 4 x 50 ms of thought (fixed: sigma 0)
# and one batch submit. A project of its own, to count what it stored.
PB=$(new_project '{"name": "open-batched", "labels": ["a", "b", "c"], "annotations_per_task": 1}')
"$QR_BIN_DIR/quorumctl" import --project "$PB" "$E2E_DIR/tasks.jsonl" >/dev/null
S4=$E2E_DIR/batched.json
timeout 120 "$AGENT" simulate --project "$PB" --annotators 20 --accuracy 0.9 --no-spool --seed 5 \
    --arrival-rate 160 --prefetch 4 --batch --think-lognormal 50,0 --warmup 1 --duration 6 \
    --max-seconds 60 --ack-log "$E2E_DIR/batched.acks" --json-summary "$S4" \
    >"$E2E_DIR/batched.out" 2>"$E2E_DIR/batched.err" && pass "batched open loop: exit 0" ||
    { tail -5 "$E2E_DIR/batched.err"; fail "the batched open-loop run"; }
jq -c '.open_loop | del(.lease, .submit, .wait)' "$S4"
jq -c '{requests, open_loop: (.open_loop | {lease, submit, wait})}' "$S4"
check "batched: open_loop.tasks_per_intent 4, batch true" '{"tasks_per_intent":4,"batch":true}' \
    "$(jq -c '.open_loop | {tasks_per_intent, batch}' "$S4")"
check "batched: a lease request per 4 completions (within 10 %)" true \
    "$(jq '(.completions / 4) as $c | .requests.lease >= 0.9 * $c and .requests.lease <= 1.1 * $c + 2' "$S4")"
check "batched: a batch submit per lease request, no single submit" true \
    "$(jq '.requests.batch_submit >= 0.9 * .requests.lease and .requests.submit == 0' "$S4")"
check "batched: offered 160 tasks/s within 20 %" true "$(within "$(jq .open_loop.offered_per_second "$S4")" 160 0.2)"
check "batched: achieved 160 tasks/s within 20 %" true "$(within "$(jq .open_loop.achieved_per_second "$S4")" 160 0.2)"
check "batched: a submit latency per measured completion" "$(jq .open_loop.completions "$S4")" \
    "$(jq .open_loop.submit.n "$S4")"
check "batched: a lease latency per intent (4 tasks each)" true \
    "$(jq '.open_loop.lease.n >= 0.9 * .open_loop.intents and .open_loop.lease.n * 4 >= .open_loop.completions' "$S4")"
# The batch is meant to go after all 4 thoughts (200 ms after the lease):
# timed from the first one's end instead, the median would be over 150 ms.
check "batched: submit p50 from the batch's intended time (under 100 ms)" true \
    "$(jq '.open_loop.submit.p50 > 0 and .open_loop.submit.p50 < 100' "$S4")"
check "batched: every acknowledged submit stored" "$(jq .completions "$S4")" \
    "$(sql "SELECT count(*) FROM annotations WHERE project_id = $PB")"
check "batched: every acknowledged annotation is in PostgreSQL" 0 "$(acks_missing "$E2E_DIR/batched.acks")"
grepq "open loop: 160.0 tasks/s asked (K = 4 tasks per lease intent, one batch submit each)" \
    <"$E2E_DIR/batched.out" && pass "batched: the text summary says tasks/s and K" ||
    fail "batched text summary: $(grep 'open loop' "$E2E_DIR/batched.out")"

# --- K = 4 without --batch: each result is sent once thought about, and meant then ------------------
# 100 ms of thought per task (fixed): a result timed from the lease's first
# thought would be 100, 200 and 300 ms late for the 2nd, 3rd and 4th task.
S5=$E2E_DIR/prefetch.json
timeout 120 "$AGENT" simulate --project "$PB" --annotators 10 --accuracy 0.9 --no-spool --seed 6 \
    --arrival-rate 40 --prefetch 4 --think-lognormal 100,0 --warmup 1 --duration 3 \
    --max-seconds 60 --json-summary "$S5" >"$E2E_DIR/prefetch.out" 2>"$E2E_DIR/prefetch.err" ||
    { tail -5 "$E2E_DIR/prefetch.err"; fail "the K = 4 run without --batch"; }
jq -c '{requests, open_loop: (.open_loop | {tasks_per_intent, batch, completions, lease, submit})}' "$S5"
check "K = 4 without --batch: one submit per task, no batch" true \
    "$(jq '.open_loop.tasks_per_intent == 4 and .open_loop.batch == false and .requests.batch_submit == 0 and .requests.submit == .completions' "$S5")"
check "K = 4 without --batch: a submit latency per measured completion, p50 under 90 ms" true \
    "$(jq '.open_loop.submit.n == .open_loop.completions and .open_loop.submit.n > 0 and .open_loop.submit.p50 < 90' "$S5")"
# Each annotator is busy 40 % of the time (10 intents/s of 400 ms of
# thought over 10 annotators), but an intent goes to any free one: it waits
# only when all 10 are busy (Erlang C: about 3 %), not whenever one
# particular annotator is (40 %).
check "an intent waits only when no annotator is free (under 15 % of them)" true \
    "$(jq '.open_loop.intents > 0 and .open_loop.waited_share < 0.15' "$S5")"

# --- --connect-first: the closed loop connects its agents first too -----------------------------
# With --warmup 1: the lease and submit answers of its first second are
# left out of the run's latencies.
S3=$E2E_DIR/closed.json
timeout 120 "$AGENT" simulate --project "$P" --annotators 5 --accuracy 0.9 --no-spool --seed 4 \
    --think-ms 0-5 --connect-first --warmup 1 --duration 2 --max-seconds 60 --json-summary "$S3" \
    >"$E2E_DIR/closed.out" 2>"$E2E_DIR/closed.err" || { tail -5 "$E2E_DIR/closed.err"; fail "--connect-first run"; }
check "--connect-first: a closed-loop run, no open_loop in its summary" "null" "$(jq -c .open_loop "$S3")"
check "--connect-first: it annotated" true "$(jq '.completions > 0' "$S3")"
check "--connect-first: says when its 5 agents are connected and the run starts" 1 \
    "$(grep -c '^quorum-agent: 5 annotators connected in [0-9.]* s; the run starts$' "$E2E_DIR/closed.err")"
# The run's own CPU, set-up left out: more than nothing, less than the
# whole process's (users made, 5 handshakes).
check "--connect-first: loop_cpu_ms counts the run's CPU" true \
    "$(jq '.loop_cpu_ms > 0 and .loop_cpu_ms < 60000' "$S3")"
jq -c '{warmup_seconds, requests, lease: .lease_latency_ms.n, submit: .submit_latency_ms.n}' "$S3"
check "closed loop --warmup 1: in the summary" 1 "$(jq .warmup_seconds "$S3")"
grepq "^latencies of the answers after the 1 s warm-up:$" <"$E2E_DIR/closed.out" &&
    pass "closed loop --warmup 1: the text summary says so" || fail "text summary: $(cat "$E2E_DIR/closed.out")"
check "closed loop --warmup 1: some lease answers measured, those of the first second not" true \
    "$(jq '.lease_latency_ms.n > 0 and .lease_latency_ms.n < .requests.lease' "$S3")"
check "closed loop --warmup 1: likewise the submits" true \
    "$(jq '.submit_latency_ms.n > 0 and .submit_latency_ms.n < .requests.submit' "$S3")"

# --- no --duration: the crew ends when the project is complete ----------------------------------
# 40 tasks, 10 annotators offered 200/s: the annotators left free when the
# last task is done end too, not wait for intents nobody can serve.
PC=$(new_project '{"name": "open-complete", "labels": ["a", "b", "c"], "annotations_per_task": 1}')
head -40 "$E2E_DIR/tasks.jsonl" >"$E2E_DIR/tasks40.jsonl"
"$QR_BIN_DIR/quorumctl" import --project "$PC" "$E2E_DIR/tasks40.jsonl" >/dev/null
S6=$E2E_DIR/complete.json
rc=0
timeout 120 "$AGENT" simulate --project "$PC" --annotators 10 --accuracy 0.9 --no-spool --seed 8 \
    --arrival-rate 200 --max-seconds 60 --json-summary "$S6" >"$E2E_DIR/complete.out" \
    2>"$E2E_DIR/complete.err" || rc=$?
check "no --duration: exit 0 once the project is complete" 0 "$rc"
check "no --duration: project complete, its 40 tasks labeled" "true 40" \
    "$(jq -r '"\(.project_complete) \(.completions)"' "$S6")"

finish
