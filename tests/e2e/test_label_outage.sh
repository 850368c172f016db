#!/usr/bin/env bash
# quorum-agent label with the broker gone (tmux: send-keys / capture-pane).
#  - The broker is killed while tasks are prefetched; five labels (and a
#    skip) typed then are each fsynced to the spool before the next task
#    shows, and the
#    screen says "broker unreachable — N labels kept on disk" (no raw
#    errors across it). After kill -9 of the agent all five are on disk;
#    with the broker back (a new port: the same deployment) `spool --send`
#    stores all five exactly once.
#  - q with the broker down returns within a few seconds; the summary counts
#    what the broker stored (nothing), what stays spooled, and says the
#    leases left expire on their own. That label is delivered later too.
#  - Ctrl-C with the broker up quits as q does, giving the leases back.
. "$(dirname "$0")/lib.sh"

tmux_server
start_broker --reaper-ms 200
AGENT="$QR_BIN_DIR/quorum-agent"
TOKEN=$(new_annotator out-ann)
P=$(new_project '{"name":"outage","labels":["red","green","blue"],"annotations_per_task":1,"lease_ttl_ms":300000}')
for i in $(seq 1 12); do echo "{\"text\":\"item $i\"}"; done | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
BROKER_ARGS=(--pg "$E2E_PG" --redis "127.0.0.1:$QR_REDIS_PORT" --cert "$E2E_DIR/tls/server.crt"
    --key "$E2E_DIR/tls/server.key" --reaper-ms 200)
kill_broker() { kill -KILL "$QUORUMD_PID"; wait "$QUORUMD_PID" 2>/dev/null || true; QUORUMD_PID=""; }
restart_broker() { # on a new port, as after `deploy/dev.sh up`; sets URL
    start_quorumd "$QR_BIN_DIR/quorumd" "$E2E_DIR/quorumd.log" "${BROKER_ARGS[@]}" || exit 1
    QUORUMD_PID=$QD_PID
    URL="https://127.0.0.1:$QD_PORT"
    export QUORUM_URL=$URL
    local i
    for i in $(seq 1 100); do curl -fsS --cacert "$CA" "$URL/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
    fail "the broker did not come back"
}
stored() { sql "SELECT count(*) FROM annotations a JOIN users u ON u.id = a.annotator_id WHERE a.project_id = $P AND u.name = 'out-ann'"; }
pending() { "$AGENT" spool --spool "$1" 2>/dev/null | head -1 | grep -o '[0-9]* result' | cut -d' ' -f1; }

# run-label.sh NAME PREFETCH: the labeler with its stderr on the screen, as
# an annotator has it; its pid in NAME.pid, its exit status in NAME.rc.
cat >"$E2E_DIR/run-label.sh" <<EOF
#!/usr/bin/env bash
export QUORUM_URL=\$(cat '$E2E_DIR/url') QUORUM_TOKEN='$TOKEN' QUORUM_CA='$CA' TERM=xterm
(echo \$BASHPID >'$E2E_DIR/'\$1.pid; exec '$AGENT' label --project $P --prefetch \$2 --spool '$E2E_DIR/'\$1.spool)
echo \$? >'$E2E_DIR/'\$1.rc
sleep 120
EOF
chmod +x "$E2E_DIR/run-label.sh"
screen() { "${TMUX_CMD[@]}" capture-pane -p -t "$1"; }
wait_for() { # wait_for SESSION PATTERN [TENTHS]: until the screen shows it
    local i
    for i in $(seq 1 "${3:-100}"); do screen "$1" | grepq -- "$2" && return 0; sleep 0.1; done
    return 1
}
on_screen() { screen "$1" | sed -n 's/^Task \([0-9]*\).*/\1/p' | head -1; }

# --- five labels typed with the broker gone, then kill -9 ---------------------
echo "$URL" >"$E2E_DIR/url"
"${TMUX_CMD[@]}" new-session -d -s crash -x 100 -y 24 "$E2E_DIR/run-label.sh crash 6"
wait_for crash "Task " && pass "a task is on screen" || fail "no task: $(screen crash)"
sleep 2 # the first answer leased the task on screen and the six prefetched
kill_broker
for k in 1 2 3 1 2; do
    before=$(on_screen crash)
    "${TMUX_CMD[@]}" send-keys -t crash "$k"
    for i in $(seq 1 50); do now=$(on_screen crash); [ -n "$now" ] && [ "$now" != "$before" ] && break; sleep 0.1; done
done
wait_for crash "broker unreachable — 5 labels kept on disk" 50 &&
    pass "the screen says: broker unreachable — 5 labels kept on disk" || fail "no outage state: $(screen crash)"
before=$(on_screen crash)
SKIPPED=$before
"${TMUX_CMD[@]}" send-keys -t crash s # a skip goes to disk the same way
for i in $(seq 1 50); do now=$(on_screen crash); [ -n "$now" ] && [ "$now" != "$before" ] && break; sleep 0.1; done
screen crash | sed 's/^/    | /'
check "no raw error across the screen" 0 "$(screen crash | grep -c 'quorum-agent:\|retrying in' || true)"
check "a seventh task is on screen (the labeling went on)" 1 "$(screen crash | grep -c '^Task ')"
check "all five labels and the skip on disk before the agent is killed" 6 "$(pending "$E2E_DIR/crash.spool")"
kill -KILL "$(cat "$E2E_DIR/crash.pid")"
sleep 0.5
check "after kill -9: five labels and the skip in the spool" 6 "$(pending "$E2E_DIR/crash.spool")"
"$AGENT" spool --spool "$E2E_DIR/crash.spool" | sed 's/^/    /'
restart_broker
set +e
out=$(QUORUM_URL=$URL QUORUM_TOKEN=$TOKEN "$AGENT" spool --send --spool "$E2E_DIR/crash.spool" 2>&1); rc=$?
set -e
echo "$out" | sed 's/^/    /'
check "spool --send through the broker on its new port: exit 0" 0 "$rc"
check "... all five stored" 1 "$(echo "$out" | grep -c '^sent: 5 stored (0 replayed), 0 rejected; 0 pending$')"
check "five annotations in PostgreSQL, five tasks, five keys" "5 5 5" \
    "$(sql "SELECT count(*), count(DISTINCT task_id), count(DISTINCT idempotency_key) FROM annotations WHERE project_id = $P" | tr '|' ' ')"
check "the labels as typed" "blue green green red red" \
    "$(sql "SELECT string_agg(label, ' ' ORDER BY label) FROM annotations WHERE project_id = $P")"
check "... and the skip sent after them" 1 "$(echo "$out" | grep -c 'sent 1 spooled skip(s), release(s) or undo(s)')"
check "the skipped task's lease ended as skipped" skipped \
    "$(wait_sql skipped "SELECT outcome FROM leases WHERE project_id = $P AND task_id = $SKIPPED")"
"${TMUX_CMD[@]}" kill-session -t crash

# --- q with the broker down returns at once ----------------------------------
echo "$URL" >"$E2E_DIR/url"
"${TMUX_CMD[@]}" new-session -d -s quit -x 200 -y 24 "$E2E_DIR/run-label.sh quit 2"
wait_for quit "Task " && pass "quit: a task is on screen" || fail "quit: no task: $(screen quit)"
sleep 1
kill_broker
"${TMUX_CMD[@]}" send-keys -t quit 3
wait_for quit "broker unreachable — 1 label kept on disk" 50 &&
    pass "quit: one label kept on disk" || fail "quit: $(screen quit)"
t0=$(date +%s%N)
"${TMUX_CMD[@]}" send-keys -t quit q
for i in $(seq 1 300); do [ -s "$E2E_DIR/quit.rc" ] && break; sleep 0.05; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "    q returned after $ms ms"
[ -s "$E2E_DIR/quit.rc" ] && [ "$ms" -le 6000 ] && pass "q with the broker down returns within 6 s ($ms ms)" ||
    fail "q took $ms ms (rc file: $(cat "$E2E_DIR/quit.rc" 2>/dev/null))"
check "exit 7: the label stays spooled" 7 "$(cat "$E2E_DIR/quit.rc")"
screen quit | grep -v '^$' | sed 's/^/    | /'
screen quit | grepq "label: 0 labels stored by the broker, 0 skipped, 0 released" &&
    pass "the summary counts what the broker stored (nothing)" || fail "summary: $(screen quit)"
screen quit | grepq "label: 1 label not acknowledged yet stays spooled" &&
    pass "the summary counts what stays spooled" || fail "spooled summary: $(screen quit)"
screen quit | grepq "could not be given back; they expire on their own within the lease TTL (300 s)" &&
    pass "the summary says the leases left expire on their own" || fail "leases summary: $(screen quit)"
restart_broker
set +e
out=$(QUORUM_URL=$URL QUORUM_TOKEN=$TOKEN "$AGENT" spool --send --spool "$E2E_DIR/quit.spool" 2>&1); rc=$?
set -e
echo "$out" | sed 's/^/    /'
check "the label typed before q is delivered later: exit 0" 0 "$rc"
check "... with the release of the task that was on screen" 1 \
    "$(echo "$out" | grep -c 'sent 1 spooled skip(s), release(s) or undo(s)')"
check "six annotations in all" 6 "$(stored)"

# --- Ctrl-C with the broker up quits as q does: the leases go back ----------
live() { redis-cli -p "$QR_REDIS_PORT" hvals "{p:$P}:lease" | grep -c ' live ' || true; }
base=$(live)
for i in 13 14 15; do echo "{\"text\":\"item $i\"}"; done | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
echo "$URL" >"$E2E_DIR/url"
"${TMUX_CMD[@]}" new-session -d -s sigint -x 200 -y 24 "$E2E_DIR/run-label.sh sigint 2"
wait_for sigint "Task " && pass "Ctrl-C: a task is on screen" || fail "Ctrl-C: no task: $(screen sigint)"
sleep 1
held=$(( $(live) - base ))
[ "$held" -ge 3 ] && pass "Ctrl-C: the labeler holds $held leases" || fail "Ctrl-C: holds $held leases"
"${TMUX_CMD[@]}" send-keys -t sigint C-c
for i in $(seq 1 100); do [ -s "$E2E_DIR/sigint.rc" ] && break; sleep 0.1; done
check "Ctrl-C: exit 0" 0 "$(cat "$E2E_DIR/sigint.rc" 2>/dev/null)"
check "Ctrl-C gave back every lease it held" "$base" "$(live)"
screen sigint | grepq "label: 0 labels stored by the broker, 0 skipped, $held released" &&
    pass "... and says so" || fail "Ctrl-C summary: $(screen sigint)"

finish
