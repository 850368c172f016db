#!/usr/bin/env bash
# quorum-agent exec --persistent (issue 5 item 3): one CMD process stays up
# and speaks JSON lines, one task line in, one answer line out. Its answers
# land as labels; {"skip": true, "reason": ...} skips with the reason; a line
# that is not JSON releases the lease with the reason (never skips it: the
# task comes back and is labeled) while the same process goes on; a CMD that
# exits without answering is released with its exit status and started again
# for the next task. Proven by the PIDs the command records: far fewer
# processes than tasks. Each failure happens once per task, below
# --max-failures: exec goes on and labels everything.
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200
AGENT="$QR_BIN_DIR/quorum-agent"
TOKEN=$(api POST /v1/users "$ADMIN_TOKEN" '{"name":"persistent-bot","role":"annotator"}' | cut -d' ' -f2- | jq -r .token)
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"persistent","labels":["a","b","c"],"annotations_per_task":1}')
P=$(echo "${r#* }" | jq .id)
{
    for i in $(seq 1 12); do echo "{\"mode\":\"ok\",\"want\":\"$(echo abc | cut -c$(( (i % 3) + 1 )))\"}"; done
    echo '{"mode":"skip"}'
    echo '{"mode":"garbage"}'
    echo '{"mode":"die"}'
} | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null

# The command: a loop over JSON lines; appends "PID MODE" to a log per task.
# garbage and die fail the first time they see a task (a mark per task id),
# and answer "c" the next time.
cat >"$E2E_DIR/cmd.sh" <<'EOF'
#!/usr/bin/env bash
while IFS= read -r task; do
    mode=$(jq -r .data.mode <<<"$task")
    echo "$$ $mode" >>"$PIDLOG"
    if [ "$mode" = garbage ] || [ "$mode" = die ]; then
        mkdir "$MARKS/$(jq -r .task_id <<<"$task")" 2>/dev/null || mode=again
    fi
    case "$mode" in
    ok) jq -c '{label: .data.want}' <<<"$task" ;;
    skip) echo '{"skip": true, "reason": "not my kind of task"}' ;;
    garbage) echo 'this is not json {' ;;
    die) exit 3 ;;
    again) echo '{"label": "c"}' ;;
    esac
done
EOF
chmod +x "$E2E_DIR/cmd.sh"
export PIDLOG="$E2E_DIR/pids.log" MARKS="$E2E_DIR/marks"
mkdir "$MARKS"
: >"$PIDLOG"

set +e
QUORUM_TOKEN=$TOKEN timeout 120 "$AGENT" exec --project "$P" --persistent --concurrency 1 \
    --timeout-ms 5000 --idle-exit 2 --spool "$E2E_DIR/spool" -- "$E2E_DIR/cmd.sh" \
    2>"$E2E_DIR/exec.err"
rc=$?
set -e
sed 's/^/    /' "$E2E_DIR/exec.err" | tail -8
check "exec --persistent exits 0 after going idle" 0 "$rc"

check "the twelve answered tasks carry the command's labels" 12 \
    "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P AND t.data->>'mode' = 'ok' AND a.label = t.data->>'want'")"
check "garbage and die were labeled at their second try" "c c" \
    "$(sql "SELECT string_agg(a.label, ' ') FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P AND t.data->>'mode' IN ('garbage', 'die')")"
check "nothing else was labeled" 14 \
    "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P")"
reasons() { sql "SELECT string_agg(l.outcome || ': ' || coalesce(l.reason, ''), ' | ' ORDER BY l.ended_at) FROM leases l JOIN tasks t ON t.id = l.task_id WHERE l.project_id = $P AND t.data->>'mode' = '$1'"; }
for m in skip garbage die; do echo "    $m: $(reasons "$m")"; done
check "skip: skipped with the command's reason" "skipped: exec: not my kind of task" "$(reasons skip)"
expect_reason() { # MODE PATTERN
    case "$(reasons "$1")" in
    "released: exec: "*$2*" | submitted: "*) pass "$1: released with the reason, then labeled" ;;
    *) fail "$1: leases $(reasons "$1")" ;;
    esac
}
expect_reason garbage "invalid JSON"
expect_reason die "exited with status 3 without answering"

tasks=$(wc -l <"$PIDLOG")
pids=$(cut -d' ' -f1 "$PIDLOG" | sort -u | wc -l)
echo "    $tasks task lines handled by $pids command process(es)"
check "every task line reached the command (12 ok, 1 skip, 2 garbage, 2 die)" 17 "$tasks"
# One process until the first die, a second until the second die, a third after.
if [ "$pids" -ge 2 ] && [ "$pids" -le 3 ]; then
    pass "one process per run of tasks, restarted after it died ($pids processes)"
else
    fail "expected 2 or 3 command processes, got $pids"
fi
garbage_pid=$(awk '$2 == "garbage" {print $1; exit}' "$PIDLOG")
after=$(awk -v p="$garbage_pid" 'seen && $1 == p {n++} $2 == "garbage" && $1 == p {seen = 1} END {print n + 0}' "$PIDLOG")
if [ "$after" -ge 1 ]; then pass "after a garbage line the same process got the next task"; else
    fail "the process was not reused after garbage: $(tr '\n' ';' <"$PIDLOG")"; fi
check "no command left running" 0 "$(pgrep -f "$E2E_DIR/cmd.sh" | wc -l)"
check "spool empty" "spool $E2E_DIR/spool: 0 result(s) pending" "$("$AGENT" spool --spool "$E2E_DIR/spool")"

finish
