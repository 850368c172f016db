#!/usr/bin/env bash
# Pausing a project (issue 5 item 6): POST /v1/projects/{id}/pause and
# /resume, on two brokers sharing PostgreSQL and Redis. While paused no
# lease is granted on either broker (409 project_paused, a long poll at its
# end), while work already held goes on (heartbeat, submit, release) and
# imports still work; only the owner's admins and managers may pause; a
# resume wakes a waiting long poll; quorumctl project pause|resume; and
# quorum-agent exec, simulate and label on a paused project exit 8 with one
# line saying so (label once the tasks it holds are labeled).
. "$(dirname "$0")/lib.sh"

start_broker
start_second_broker
CTL="$QR_BIN_DIR/quorumctl"
AGENT="$QR_BIN_DIR/quorum-agent"
api2() { API_URL=$URL2 api "$@"; } # api on the second broker
code() { echo "${1%% *} $(echo "${1#* }" | jq -r '.error.code // empty')"; }
now_ms() { date +%s%3N; }

tok() { # USER ROLE [ORGANIZATION] -> a token
    local r body="{\"user\":\"$1\",\"role\":\"$2\"${3:+,\"organization\":\"$3\"}}"
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "$body")
    [ "${r%% *}" = 201 ] || { echo "token for $1: $r" >&2; return 1; }
    echo "${r#* }" | jq -r .token
}
ANN1=$(tok ann1 annotator)
ANN2=$(tok ann2 annotator)
ANN3=$(tok ann3 annotator)
MGR=$(tok mgr manager)
REV=$(tok rev reviewer)

r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"pausable","labels":["a","b"]}')
P=$(echo "${r#* }" | jq .id)
seq 1 6 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P" - >/dev/null
r=$(api GET "/v1/projects/$P")
check "a new project is not paused" "false null" "$(echo "${r#* }" | jq -r '"\(.paused) \(.paused_at)"')"

# Leases held before the pause: one from each broker (the second broker then
# has the project in its cache, which the pause must reach).
r=$(api POST "/v1/projects/$P/leases" "$ANN1" '{"max":1}')
L1=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(api2 POST "/v1/projects/$P/leases" "$ANN2" '{"max":1}')
L2=$(echo "${r#* }" | jq -r '.leases[0].lease')
check "two leases held before the pause" "yes" "$([ "$L1" != null ] && [ "$L2" != null ] && echo yes)"

# --- pause ---------------------------------------------------------------------------------
r=$(api POST "/v1/projects/$P/pause" "$MGR")
check "the owner's manager pauses: 200, paused" "200 $P true" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.id) \(.paused)"')"
AT=$(echo "${r#* }" | jq -r .paused_at)
check "the answer says since when, as stored" "yes 1" \
    "$([ "$AT" != null ] && echo yes) $(sql "SELECT count(*) FROM projects WHERE id = $P AND paused_at IS NOT NULL")"
r1=$(api POST "/v1/projects/$P/leases" "$ANN3" '{"max":1}')
r2=$(api2 POST "/v1/projects/$P/leases" "$ANN3" '{"max":1}')
check "a lease request on the pausing broker: 409 project_paused" "409 project_paused" "$(code "$r1")"
check "a lease request on the other broker at once: 409 project_paused" "409 project_paused" "$(code "$r2")"
check "the message names the project" "project $P is paused" "$(echo "${r2#* }" | jq -r .error.message)"
r=$(api POST "/v1/projects/$P/pause" "$ADMIN_TOKEN")
check "pausing again: 200, the first pause's time kept (idempotent)" "200 true $AT" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.paused) \(.paused_at)"')"
r=$(api2 GET "/v1/projects/$P" "$ANN2")
check "GET on the other broker shows it paused" "200 true $AT" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.paused) \(.paused_at)"')"

# Work already held goes on; imports too.
r=$(api POST "/v1/projects/$P/leases/$L1/heartbeat" "$ANN1" '{}')
check "a held lease still heartbeats" 200 "${r%% *}"
r=$(api2 POST "/v1/projects/$P/leases/$L1/submit" "$ANN1" '{"label":"a"}')
check "a held lease is still submitted (on the other broker)" 201 "${r%% *}"
r=$(api POST "/v1/projects/$P/leases/$L2/release" "$ANN2" '{"reason":"lunch"}')
check "a held lease is still released" 200 "${r%% *}"
r=$(api POST "/v1/projects/$P/tasks" "$MGR" '{"n":7}')
check "import still works" 201 "${r%% *}"
check "the submitted label is stored" 1 "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P")"
r=$(api POST "/v1/projects/$P/leases" "$ANN2" '{"max":1}')
check "the released task is not handed out while paused" "409 project_paused" "$(code "$r")"

# A long poll while paused waits and answers 409 at its end.
t0=$(now_ms)
r=$(api2 POST "/v1/projects/$P/leases" "$ANN3" '{"max":1,"wait_ms":1000}')
t1=$(now_ms)
check "a long poll on a paused project: 409 project_paused" "409 project_paused" "$(code "$r")"
check "... at the end of its wait (>= 900 ms)" yes "$([ $((t1 - t0)) -ge 900 ] && echo yes || echo "no: $((t1 - t0)) ms")"

# --- who may pause ---------------------------------------------------------------------------
r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"vendor-v","kind":"vendor"}')
V=$(echo "${r#* }" | jq .id)
api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"vendor-w","kind":"vendor"}' >/dev/null
r=$(api PUT "/v1/projects/$P/shares/$V" "$ADMIN_TOKEN" '{}')
check "the project is shared with vendor V" 201 "${r%% *}"
VMGR=$(tok v-mgr manager vendor-v)
VADM=$(tok v-adm admin vendor-v)
WMGR=$(tok w-mgr manager vendor-w)
for who in VMGR VADM; do
    r=$(api POST "/v1/projects/$P/resume" "${!who}")
    check "a shared vendor's ${who#V} may not resume: 403" "403 forbidden" "$(code "$r")"
    r=$(api2 POST "/v1/projects/$P/pause" "${!who}")
    check "a shared vendor's ${who#V} may not pause: 403" "403 forbidden" "$(code "$r")"
done
r=$(api2 POST "/v1/projects/$P/leases" "$(tok v-ann annotator vendor-v)" '{"max":1}')
check "the vendor's annotators see the pause too" "409 project_paused" "$(code "$r")"
a=$(api POST "/v1/projects/$P/pause" "$WMGR")
b=$(api POST "/v1/projects/987654/pause" "$WMGR")
check "a project not yours: the same 403 as for no project at all" \
    "$(echo "${b#* }" | jq -r '.error.code + " " + .error.message' | sed 's/987654/N/') ${b%% *}" \
    "$(echo "${a#* }" | jq -r '.error.code + " " + .error.message' | sed "s/$P/N/") ${a%% *}"
check "... which is 403" 403 "${a%% *}"
r=$(api POST "/v1/projects/987654/resume" "$ADMIN_TOKEN")
check "the owner's admin, a project that does not exist: 403" "403 forbidden" "$(code "$r")"
for who in REV ANN1; do
    r=$(api POST "/v1/projects/$P/resume" "${!who}")
    check "the owner's $who may not resume: 403" "403 forbidden" "$(code "$r")"
done
r=$(api POST "/v1/projects/$P/pause" "")
check "no token: 401" 401 "${r%% *}"
r=$(api GET "/v1/projects/$P/pause" "$ADMIN_TOKEN")
check "GET on the pause route: 405" 405 "${r%% *}"
check "none of those changed the pause" "$AT" "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -r .paused_at)"

# --- quorum-agent on a paused project ------------------------------------------------------------
rc=0
QUORUM_TOKEN=$ANN3 timeout 60 "$AGENT" exec --project "$P" --idle-exit 1 --spool "$E2E_DIR/spool" \
    -- cat >"$E2E_DIR/exec.out" 2>"$E2E_DIR/exec.err" || rc=$?
check "quorum-agent exec on a paused project: exit 8" 8 "$rc"
check "one line on stderr names the pause" 1 "$(grep -c 'paused' "$E2E_DIR/exec.err")"
case "$(grep paused "$E2E_DIR/exec.err")" in
"quorum-agent: project $P is paused; "*) pass "it says: $(grep paused "$E2E_DIR/exec.err")" ;;
*) fail "the pause line: $(cat "$E2E_DIR/exec.err")" ;;
esac
for cmd in "" login label exec spool simulate; do
    # shellcheck disable=SC2086
    "$AGENT" $cmd --help | tr '\n' ' ' | grepq '8 *the project \(is\|was\) paused' &&
        pass "quorum-agent ${cmd:-main} --help documents exit 8" || fail "quorum-agent ${cmd:-main} --help: no exit 8"
done
rc=0
QUORUM_TOKEN=$MGR timeout 60 "$AGENT" simulate --project "$P" --annotators 2 --accuracy 1 \
    --wait-ms 500 --no-spool >"$E2E_DIR/sim.out" 2>"$E2E_DIR/sim.err" || rc=$?
check "quorum-agent simulate on a paused project: exit 8" 8 "$rc"
check "simulate: one line names the pause" 1 "$(grep -c "^quorum-agent: project $P is paused; " "$E2E_DIR/sim.err")"

# --- resume ----------------------------------------------------------------------------------
# A long poll started while paused (on the other broker) gets work when the
# project is resumed, long before its wait is over.
t0=$(now_ms)
(api2 POST "/v1/projects/$P/leases" "$ANN3" '{"max":1,"wait_ms":15000}' >"$E2E_DIR/poll") &
POLL=$!
sleep 1
kill -0 "$POLL" 2>/dev/null && pass "the long poll waits while paused" || fail "the long poll answered while paused: $(cat "$E2E_DIR/poll")"
rc=0
"$CTL" project resume --project "$P" 2>"$E2E_DIR/ctl.err" || rc=$?
check "quorumctl project resume: exit 0, says so" "0 project $P is running" "$rc $(cat "$E2E_DIR/ctl.err")"
wait "$POLL"
t1=$(now_ms)
r=$(cat "$E2E_DIR/poll")
check "the waiting long poll gets a lease after the resume" "200 1" "${r%% *} $(echo "${r#* }" | jq '.leases | length')"
check "... well before its wait was over" yes "$([ $((t1 - t0)) -lt 10000 ] && echo yes || echo "no: $((t1 - t0)) ms")"
r=$(api POST "/v1/projects/$P/leases" "$ANN1" '{"max":1}')
check "leases are granted again on the first broker" "200 1" "${r%% *} $(echo "${r#* }" | jq '.leases | length')"
check "stored as running" 0 "$(sql "SELECT count(*) FROM projects WHERE paused_at IS NOT NULL")"
r=$(api POST "/v1/projects/$P/resume" "$MGR")
check "resuming a running project: 200, unchanged (idempotent)" "200 false null" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.paused) \(.paused_at)"')"

# A long poll already waiting (nothing ready for it) when the pause comes
# answers 409 project_paused by its end.
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"one-task","labels":["a"]}')
Q=$(echo "${r#* }" | jq .id)
api POST "/v1/projects/$Q/tasks" "$ADMIN_TOKEN" '{"n":1}' >/dev/null
api POST "/v1/projects/$Q/leases" "$ANN1" '{"max":1}' >/dev/null
(api2 POST "/v1/projects/$Q/leases" "$ANN2" '{"max":1,"wait_ms":2500}' >"$E2E_DIR/poll2") &
POLL=$!
sleep 0.7
r=$(api POST "/v1/projects/$Q/pause" "$ADMIN_TOKEN")
check "pause while a long poll waits" 200 "${r%% *}"
wait "$POLL"
check "the waiting long poll answers 409 project_paused" "409 project_paused" "$(code "$(cat "$E2E_DIR/poll2")")"

# --- quorumctl -----------------------------------------------------------------------------------
ctl_rc() { "$CTL" "$@" >/dev/null 2>&1 && echo 0 || echo $?; }
"$CTL" project pause --help | grepq 'quorumctl project pause --project ID' &&
    pass "quorumctl project pause --help" || fail "quorumctl project pause --help"
"$CTL" project resume --help | grepq '^Exit codes:' && pass "quorumctl project resume --help: exit codes" ||
    fail "quorumctl project resume --help: exit codes"
"$CTL" --help | grepq 'project pause|resume' && pass "quorumctl --help lists pause|resume" ||
    fail "quorumctl --help does not list pause|resume"
check "quorumctl project pause without --project: usage error" 2 "$(ctl_rc project pause)"
check "quorumctl project pause --project x: usage error" 2 "$(ctl_rc project pause --project x)"
check "quorumctl project pause with a stray argument: usage error" 2 "$(ctl_rc project pause --project "$P" now)"
check "quorumctl project pause of another organization's project: exit 1" 1 \
    "$(QUORUM_TOKEN=$WMGR ctl_rc project pause --project "$P")"
rc=0
"$CTL" project pause --project "$P" 2>"$E2E_DIR/ctl.err" || rc=$?
check "quorumctl project pause: exit 0" 0 "$rc"
grep -q "^project $P is paused (since " "$E2E_DIR/ctl.err" && pass "it says since when" || fail "quorumctl pause said: $(cat "$E2E_DIR/ctl.err")"
check "quorumctl project pause --json prints the state" "true" \
    "$("$CTL" project pause --project "$P" --json | jq .paused)"
r=$(api2 POST "/v1/projects/$P/leases" "$ANN2" '{"max":1}')
check "paused by quorumctl: 409 on the other broker" "409 project_paused" "$(code "$r")"
check "quorumctl project resume: exit 0" 0 "$(ctl_rc project resume --project "$P")"
r=$(api2 POST "/v1/projects/$P/leases" "$ANN2" '{"max":1}')
check "resumed by quorumctl: the other broker grants again" 200 "${r%% *}"

# --- quorum-agent label (through tmux): the tasks held are labeled, then it exits 8 ---------------
if command -v tmux >/dev/null; then
    r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"term","labels":["yes","no"]}')
    T=$(echo "${r#* }" | jq .id)
    seq 1 6 | sed 's/.*/{"text":"task &"}/' | "$CTL" import --project "$T" - >/dev/null
    SOCK="qr-pause-$$"
    TMUX_CMD=(tmux -L "$SOCK" -f /dev/null)
    at_exit '"${TMUX_CMD[@]}" kill-server 2>/dev/null'
    cat >"$E2E_DIR/run-label.sh" <<EOF
#!/usr/bin/env bash
export QUORUM_URL='$URL' QUORUM_TOKEN='$ANN3' QUORUM_CA='$CA' TERM=xterm
'$AGENT' label --project $T --prefetch 1 --spool '$E2E_DIR/label-spool' 2>'$E2E_DIR/label.err'
echo \$? >'$E2E_DIR/label.rc'
sleep 60
EOF
    chmod +x "$E2E_DIR/run-label.sh"
    "${TMUX_CMD[@]}" new-session -d -s label -x 80 -y 24 "$E2E_DIR/run-label.sh"
    for i in $(seq 1 100); do "${TMUX_CMD[@]}" capture-pane -p -t label | grepq "Task " && break; sleep 0.1; done
    sleep 0.5 # the prefetch lands
    api POST "/v1/projects/$T/pause" "$MGR" >/dev/null
    presses=0
    for k in 1 2 3 4 5 6; do
        [ -s "$E2E_DIR/label.rc" ] && break
        "${TMUX_CMD[@]}" send-keys -t label 1
        presses=$((presses + 1))
        for i in $(seq 1 20); do [ -s "$E2E_DIR/label.rc" ] && break; sleep 0.1; done
    done
    for i in $(seq 1 50); do [ -s "$E2E_DIR/label.rc" ] && break; sleep 0.1; done
    check "label on a paused project: exits 8 once the tasks held are labeled" 8 "$(cat "$E2E_DIR/label.rc" 2>/dev/null)"
    stored=$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $T")
    check "label: the tasks held were labeled and stored (2 or 3: one per key)" yes \
        "$([ "$stored" -ge 2 ] && [ "$stored" -le 3 ] && [ "$stored" = "$presses" ] && echo yes || echo "no: $stored stored, $presses keys")"
    check "label: one line on stderr names the pause" 1 "$(grep -c "^quorum-agent: project $T is paused; " "$E2E_DIR/label.err")"
    api POST "/v1/projects/$T/resume" "$MGR" >/dev/null
    r=$(api POST "/v1/projects/$T/leases" "$ANN1" '{"max":10}')
    check "label held no lease when it left: the rest is all there after the resume" $((6 - stored)) \
        "$(echo "${r#* }" | jq '.leases | length')"
else
    pass "SKIP label: tmux not installed"
fi

if grep -q 'Sanitizer\|runtime error' "$E2E_DIR/quorumd2.log"; then fail "the second broker's log has a sanitizer report"; else pass "the second broker's log is clean"; fi
finish
