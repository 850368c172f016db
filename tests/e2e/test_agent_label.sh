#!/usr/bin/env bash
# quorum-agent label driven through tmux (send-keys / capture-pane): the
# screen shows the task text, the numbered choices and the progress line; a
# digit submits that label with the time on screen as active_ms; u undoes
# the last submit (the annotation leaves PostgreSQL, the task is on screen
# again on a new lease, and the next choice stores the corrected label: one
# annotation for the task); u with nothing to undo says so; s skips, a
# resize redraws, q quits and gives back the leases held. Also: it refuses a
# non-terminal stdin.
. "$(dirname "$0")/lib.sh"

tmux_server
start_broker --reaper-ms 200
AGENT="$QR_BIN_DIR/quorum-agent"
TOKEN=$(new_annotator term-ann)
P=$(new_project '{"name":"term","labels":["positive","negative","neutral"],"annotations_per_task":1}')
for i in 1 2 3 4 5; do echo "{\"text\":\"review number $i: the soup was cold\"}"; done |
    "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null

set +e
out=$(echo 1 | QUORUM_TOKEN=$TOKEN "$AGENT" label --project "$P" 2>&1); rc=$?
set -e
check "stdin not a terminal: exit 2" 2 "$rc"
case "$out" in *"needs a terminal"*) pass "and says so" ;; *) fail "non-tty: $out" ;; esac

cat >"$E2E_DIR/run-label.sh" <<EOF
#!/usr/bin/env bash
export QUORUM_URL='$URL' QUORUM_TOKEN='$TOKEN' QUORUM_CA='$CA' TERM=xterm
'$AGENT' label --project $P --prefetch 2 --spool '$E2E_DIR/label-spool' 2>'$E2E_DIR/label.err'
echo \$? >'$E2E_DIR/label.rc'
sleep 60
EOF
chmod +x "$E2E_DIR/run-label.sh"
"${TMUX_CMD[@]}" new-session -d -s label -x 80 -y 24 "$E2E_DIR/run-label.sh"

screen() { "${TMUX_CMD[@]}" capture-pane -p -t label; }
wait_for() { # wait_for PATTERN: until the screen shows it (10 s)
    local i
    for i in $(seq 1 100); do screen | grepq -- "$1" && return 0; sleep 0.1; done
    return 1
}
wait_for "Task " && pass "a task is on screen" || fail "no task on screen: $(screen)"
wait_for "queue left 5" && pass "progress line: queue left" || fail "progress: $(screen | head -1)"
screen | sed 's/^/    | /'
screen | grepq "review number 1: the soup was cold" && pass "shows the task text" || fail "no task text"
screen | grepq "\[1\] positive   \[2\] negative   \[3\] neutral" && pass "shows the numbered choices" || fail "no choices"
check "fits 80 columns" 0 "$(screen | awk 'length > 80' | wc -l)"
T1="(SELECT min(id) FROM tasks WHERE project_id = $P)"
"${TMUX_CMD[@]}" send-keys -t label u
wait_for "nothing to undo" && pass "u before any submit: nothing to undo" || fail "u with nothing: $(screen)"
"${TMUX_CMD[@]}" send-keys -t label 1
wait_for "Task 2" && pass "choosing shows the next task at once (prefetched)" || fail "after choosing: $(screen)"
check "the first choice is stored" "positive" \
    "$(wait_sql positive "SELECT string_agg(label, ',') FROM annotations WHERE task_id = $T1")"
"${TMUX_CMD[@]}" send-keys -t label u
wait_for "Task 1 .*undone; it was labeled positive" && pass "u: task 1 is on screen again, its label shown" ||
    fail "after u: $(screen)"
screen | grepq "review number 1: the soup was cold" && pass "u: the same task's text is on screen again" ||
    fail "no task 1 text after u: $(screen)"
check "u: the annotation is gone from PostgreSQL" 0 \
    "$(wait_sql 0 "SELECT count(*) FROM annotations WHERE task_id = $T1")"
check "u: the submitted lease is ended as undone" 1 \
    "$(sql "SELECT count(*) FROM leases WHERE project_id = $P AND task_id = $T1 AND reason = 'undone'")"
screen | sed 's/^/    | /'
"${TMUX_CMD[@]}" send-keys -t label u
wait_for "nothing to undo" && pass "u again: nothing to undo (one level)" || fail "second u: $(screen)"
sleep 1.2 # time on task
"${TMUX_CMD[@]}" send-keys -t label 2
wait_for "Task 2" && pass "after the corrected choice the task put aside is back" || fail "after re-choosing: $(screen)"
check "the corrected label is stored, one annotation for the task" "negative" \
    "$(wait_sql negative "SELECT string_agg(label, ',') FROM annotations WHERE task_id = $T1")"
"${TMUX_CMD[@]}" send-keys -t label s
wait_for "Task 3" && pass "s skips to the next task" || fail "after skip: $(screen)"
"${TMUX_CMD[@]}" resize-window -t label -x 100 -y 30 2>/dev/null || "${TMUX_CMD[@]}" resize-pane -t label -x 100 -y 30
sleep 0.5
screen | grepq "review number 3" && pass "redrawn after a resize" || fail "after resize: $(screen)"
check "the screen has the new height" 30 "$(screen | wc -l)"
"${TMUX_CMD[@]}" send-keys -t label q
for i in $(seq 1 100); do [ -s "$E2E_DIR/label.rc" ] && break; sleep 0.1; done
check "q exits 0" 0 "$(cat "$E2E_DIR/label.rc" 2>/dev/null)"
sed 's/^/    stderr: /' "$E2E_DIR/label.err"

check "task 1 labeled negative" negative "$(sql "SELECT label FROM annotations WHERE project_id = $P AND task_id = $T1")"
check "one annotation in all" 1 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"
check "active_ms is the time on screen (>= 1 s)" t "$(sql "SELECT active_ms >= 1000 AND active_ms < 30000 FROM annotations WHERE project_id = $P")"
check "task 2 skipped" skipped "$(sql "SELECT outcome FROM leases WHERE project_id = $P AND task_id = (SELECT min(id) + 1 FROM tasks WHERE project_id = $P)")"
check "quitting released the task on screen and the prefetched ones" 3 \
    "$(sql "SELECT count(*) FROM leases WHERE project_id = $P AND outcome = 'released' AND reason IN ('released in the terminal', 'annotator quit')")"
r=$(api POST "/v1/projects/$P/leases" "$TOKEN" '{"max":10}')
check "the released tasks can be leased again at once" 3 "$(echo "${r#* }" | jq '.leases | length')"
check "label spool empty" "spool $E2E_DIR/label-spool: 0 result(s) pending" "$("$AGENT" spool --spool "$E2E_DIR/label-spool")"

# Past the expiry of the lease a label was submitted on, u says "too late to
# undo" and the label stays.
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"term-late","labels":["x","y"],"annotations_per_task":1,"lease_ttl_ms":1000}')
P2=$(echo "${r#* }" | jq .id)
for i in 1 2; do echo "{\"text\":\"late review $i\"}"; done | "$QR_BIN_DIR/quorumctl" import --project "$P2" - >/dev/null
sed -e "s/--project $P /--project $P2 /" -e 's/label\.rc/label2.rc/' "$E2E_DIR/run-label.sh" >"$E2E_DIR/run-label2.sh"
chmod +x "$E2E_DIR/run-label2.sh"
"${TMUX_CMD[@]}" new-session -d -s late -x 80 -y 24 "$E2E_DIR/run-label2.sh"
screen() { "${TMUX_CMD[@]}" capture-pane -p -t late; }
wait_for "late review 1" && pass "late: a task is on screen" || fail "late: no task: $(screen)"
"${TMUX_CMD[@]}" send-keys -t late 1
check "late: the label is stored" 1 "$(wait_sql 1 "SELECT count(*) FROM annotations WHERE project_id = $P2")"
sleep 1.5 # past the 1 s lease
"${TMUX_CMD[@]}" send-keys -t late u
wait_for "too late to undo" && pass "late: u says too late to undo" || fail "late u: $(screen)"
check "late: the label stays" 1 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P2")"
"${TMUX_CMD[@]}" send-keys -t late q
for i in $(seq 1 100); do [ -s "$E2E_DIR/label2.rc" ] && break; sleep 0.1; done
check "late: q exits 0" 0 "$(cat "$E2E_DIR/label2.rc" 2>/dev/null)"
tmux_cleanup
finish
