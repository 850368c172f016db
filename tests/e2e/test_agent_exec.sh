#!/usr/bin/env bash
# quorum-agent exec end to end: a command that answers, one that answers
# after outliving the lease TTL (heartbeats keep the lease), one that crashes,
# one that prints garbage, one that answers a label outside the choices, and
# one that hangs past the timeout, each the first time it sees its task. The
# right labels land; each failure releases the lease with its reason (never a
# skip), the task comes back and is labeled at its second try; the agent goes
# on (fewer failures in a row than --max-failures), leaves no process behind,
# and ends with an empty spool. test_agent_exec_broken.sh has the commands
# that keep failing.
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200
AGENT="$QR_BIN_DIR/quorum-agent"
TOKEN=$(api POST /v1/users "$ADMIN_TOKEN" '{"name":"exec-bot","role":"annotator"}' | cut -d' ' -f2- | jq -r .token)
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"exec","labels":["a","b","c"],"annotations_per_task":1,"lease_ttl_ms":2000}')
P=$(echo "${r#* }" | jq .id)
{
    for i in 1 2 3 4 5 6; do echo "{\"mode\":\"ok\",\"want\":\"$(echo abc | cut -c$(( (i % 3) + 1 )))\"}"; done
    echo '{"mode":"slow","want":"b"}'
    echo '{"mode":"crash"}'
    echo '{"mode":"garbage"}'
    echo '{"mode":"badlabel"}'
    echo '{"mode":"hang"}'
} | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null

# The command: decides by the task's data.mode. "hang" starts a grandchild
# too, which must die with it (exec kills the whole process group). The
# failing modes fail once per task (a mark per task id), then answer "c".
cat >"$E2E_DIR/cmd.sh" <<'EOF'
#!/usr/bin/env bash
task=$(cat)
mode=$(jq -r .data.mode <<<"$task")
case "$mode" in
crash | garbage | badlabel | hang) mkdir "$MARKS/$(jq -r .task_id <<<"$task")" 2>/dev/null || mode=again ;;
esac
case "$mode" in
again) echo '{"label":"c"}' ;;
ok) jq -c '{label: .data.want}' <<<"$task" ;;
slow) sleep 3; jq -c '{label: .data.want}' <<<"$task" ;;
crash) echo "about to crash" >&2; kill -SEGV $$ ;;
garbage) echo "this is not json {" ;;
badlabel) echo '{"label":"zebra"}' ;;
hang) sleep "$HANG_SECONDS" & wait ;;
esac
EOF
chmod +x "$E2E_DIR/cmd.sh"
# A duration only this test uses, so the check below finds our sleep alone
# even while other tests run on the machine.
export HANG_SECONDS="1000.$$" MARKS="$E2E_DIR/marks"
mkdir "$MARKS"

SPOOL="$E2E_DIR/agent/spool"
mkdir -p "$E2E_DIR/agent"
set +e
QUORUM_TOKEN=$TOKEN timeout 120 "$AGENT" exec --project "$P" --concurrency 3 --timeout-ms 5000 \
    --max-failures 5 --idle-exit 3 --spool "$SPOOL" -- "$E2E_DIR/cmd.sh" 2>"$E2E_DIR/exec.err"
rc=$?
set -e
sed 's/^/    /' "$E2E_DIR/exec.err" | tail -25
check "exec exits 0 once the project is complete" 0 "$rc"

ann() { sql "SELECT string_agg(a.label, ',') FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P AND t.data->>'mode' = '$1'"; }
check "the six answered tasks carry the command's labels" 6 \
    "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P AND t.data->>'mode' = 'ok' AND a.label = t.data->>'want'")"
check "a task that outlived the 2 s lease TTL landed (heartbeats)" b "$(ann slow)"
for m in crash garbage badlabel hang; do
    check "$m: labeled at the second try" c "$(ann "$m")"
done
reasons() { sql "SELECT string_agg(l.outcome || ': ' || coalesce(l.reason, ''), ' | ' ORDER BY l.ended_at) FROM leases l JOIN tasks t ON t.id = l.task_id WHERE l.project_id = $P AND t.data->>'mode' = '$1'"; }
for m in crash garbage badlabel hang; do echo "    $m: $(reasons "$m")"; done
expect_reason() { # MODE PATTERN
    case "$(reasons "$1")" in
    "released: exec: "*$2*" | submitted: "*) pass "$1: released with the reason, then labeled" ;;
    *) fail "$1: leases $(reasons "$1")" ;;
    esac
}
expect_reason crash "killed by signal 11"
expect_reason garbage "invalid JSON"
expect_reason badlabel "zebra"
expect_reason hang "timed out (no answer within 5000 ms)"
check "no lease skipped" 0 "$(sql "SELECT count(*) FROM leases WHERE project_id = $P AND outcome = 'skipped'")"
check "no expired lease (heartbeats held them)" 0 "$(sql "SELECT count(*) FROM leases WHERE project_id = $P AND outcome = 'expired'")"
check "no process left behind (the hang's grandchild was killed)" 0 "$(pgrep -f "sleep $HANG_SECONDS" | wc -l)"
check "spool empty" "spool $SPOOL: 0 result(s) pending" "$("$AGENT" spool --spool "$SPOOL")"
check "every result was spooled before being sent (the file exists, 0600)" 600 "$(stat -c %a "$SPOOL")"

# Bad settings: one line each, with the documented exit code.
set +e
out=$(QUORUM_TOKEN=qr_bad "$AGENT" exec --project "$P" --spool "$E2E_DIR/agent/s2" -- true 2>&1); rc=$?
set -e
check "bad token: exit 3" 3 "$rc"
case "$out" in *"401 unauthorized"*) pass "bad token: says 401 unauthorized" ;; *) fail "bad token: $out" ;; esac
set +e
out=$(QUORUM_TOKEN=$TOKEN "$AGENT" exec --project 999999 --spool "$E2E_DIR/agent/s2" -- true 2>&1); rc=$?
set -e
check "no such project: exit 5" 5 "$rc"
set +e
out=$(echo '{}' | QUORUM_TOKEN=$TOKEN "$AGENT" exec --project "$P" --spool "$SPOOL" -- 2>&1); rc=$?
set -e
check "no command: usage error 2" 2 "$rc"

finish
