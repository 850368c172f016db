#!/usr/bin/env bash
# quorum-agent exec stops on a broken command (issue 13 item 4). A command
# that cannot be started (a typo: ./nosuch), exits non-zero, crashes, prints
# something that is not JSON or a label outside the project's, or times out
# fails; --max-failures failures in a row (or --attempts of one task) make
# exec release its leases (never skip them) and stop within seconds with one
# line naming the cause and exit 9. The tasks stay leasable: once the typo is
# fixed the same annotator labels every one of them (none lost to a skip),
# and results stored before the stop are kept.
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200
AGENT="$QR_BIN_DIR/quorum-agent"
user() { api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"$1\",\"role\":\"annotator\"}" | cut -d' ' -f2- | jq -r .token; }
TOKEN=$(user exec-bot)
OTHER=$(user other-bot)
# new_project NAME TASKS: a project of TASKS tasks whose data.mode is "ok"
# ("want" the label to give), then the modes given in MODES (one task each).
new_project() {
    local r p i
    r=$(api POST /v1/projects "$ADMIN_TOKEN" "{\"name\":\"$1\",\"labels\":[\"a\",\"b\"],\"annotations_per_task\":1}")
    p=$(echo "${r#* }" | jq .id)
    {
        for i in $(seq 1 "$2"); do echo "{\"mode\":\"ok\",\"want\":\"$(echo ab | cut -c$(( (i % 2) + 1 )))\"}"; done
        for i in ${MODES-}; do echo "{\"mode\":\"$i\"}"; done
    } | "$QR_BIN_DIR/quorumctl" import --project "$p" - >/dev/null
    echo "$p"
}
count() { sql "SELECT count(*) FROM $1"; }
outcomes() { # PROJECT -> "released:3 skipped:0 submitted:0"
    echo "released:$(count "leases WHERE project_id = $1 AND outcome = 'released'")" \
        "skipped:$(count "leases WHERE project_id = $1 AND outcome = 'skipped'")" \
        "submitted:$(count "leases WHERE project_id = $1 AND outcome = 'submitted'")"
}

# The command: by the task's data.mode; with BROKEN set every task fails
# that way (BROKEN=exit, crash, garbage, zebra, hang).
cd "$E2E_DIR"
cat >"$E2E_DIR/cmd.sh" <<'EOF'
#!/usr/bin/env bash
task=$(cat)
mode=${BROKEN:-$(jq -r .data.mode <<<"$task")}
case "$mode" in
ok) jq -c '{label: .data.want}' <<<"$task" ;;
exit) echo "cannot load the model" >&2; exit 3 ;;
crash) kill -SEGV $$ ;;
garbage) echo "this is not json {" ;;
zebra) echo '{"label":"zebra"}' ;;
hang) sleep "$HANG_SECONDS" & wait ;;
mixed) # exit 4 and garbage by turns
    n=$(( $(cat "$E2E_DIR/turn" 2>/dev/null || echo 0) + 1 )); echo "$n" >"$E2E_DIR/turn"
    if [ $((n % 2)) = 1 ]; then exit 4; else echo "not json"; fi ;;
esac
EOF
chmod +x "$E2E_DIR/cmd.sh"
export HANG_SECONDS="1000.$$" E2E_DIR # a duration only this test uses (see the pgrep below)

# run_exec NAME PROJECT [FLAGS...] -- CMD: runs exec as exec-bot; sets RC,
# MS (wall time) and LAST (its last line on stderr).
run_exec() {
    local name=$1 p=$2 t0 t1
    shift 2
    t0=$(date +%s%N)
    set +e
    QUORUM_TOKEN=$TOKEN timeout 60 "$AGENT" exec --project "$p" --idle-exit 5 \
        --spool "$E2E_DIR/spool" "$@" 2>"$E2E_DIR/$name.err"
    RC=$?
    set -e
    t1=$(date +%s%N)
    MS=$(( (t1 - t0) / 1000000 ))
    LAST=$(tail -1 "$E2E_DIR/$name.err")
    sed 's/^/    /' "$E2E_DIR/$name.err" | tail -6
}

# --- a typo: ./nosuch --------------------------------------------------------------------------
P=$(new_project typo 6)
run_exec nosuch "$P" -- ./nosuch
check "./nosuch: exit 9" 9 "$RC"
[ "$MS" -lt 5000 ] && pass "./nosuch: stopped within seconds (${MS} ms)" || fail "./nosuch: took ${MS} ms"
check "./nosuch: one line names the cause" \
    "quorum-agent: stopping: ./nosuch could not be started 3 times in a row (No such file or directory); 3 leases released" "$LAST"
check "./nosuch: its leases were released, none skipped, nothing stored" \
    "released:3 skipped:0 submitted:0" "$(outcomes "$P")"
check "./nosuch: each release says why" 3 \
    "$(count "leases WHERE project_id = $P AND reason = 'exec: ./nosuch could not be started (No such file or directory)'")"
# Every task is leasable again: another annotator gets all 6 at once.
r=$(api POST "/v1/projects/$P/leases" "$OTHER" '{"max":10,"wait_ms":0}')
check "./nosuch: no lease left behind (another annotator gets all 6 tasks)" 6 "$(echo "${r#* }" | jq '.leases | length')"
for l in $(echo "${r#* }" | jq -r '.leases[].lease'); do
    api POST "/v1/projects/$P/leases/$l/release" "$OTHER" '{}' >/dev/null
done
# The typo fixed: the same annotator labels every task; none was lost to a skip.
run_exec fixed "$P" -- ./cmd.sh
check "fixed command: exit 0" 0 "$RC"
check "fixed command: every task labeled as the command said" 6 \
    "$(count "annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P AND a.label = t.data->>'want'")"
check "no task was ever skipped" 0 "$(count "leases WHERE project_id = $P AND outcome = 'skipped'")"
check "spool empty" "spool $E2E_DIR/spool: 0 result(s) pending" "$("$AGENT" spool --spool "$E2E_DIR/spool")"

# --- each way of failing stops exec after --max-failures, with its cause ------------------------
# expect_stop NAME MAX CAUSE [FLAGS...]: a project of 4 tasks, every one
# breaking the command in the way BROKEN=NAME says.
expect_stop() {
    local name=$1 max=$2 cause=$3 p
    shift 3
    p=$(new_project "$name" 4)
    BROKEN=$name run_exec "$name" "$p" --max-failures "$max" --concurrency 2 "$@" -- ./cmd.sh
    check "$name: exit 9" 9 "$RC"
    [ "$MS" -lt 10000 ] && pass "$name: stopped within seconds (${MS} ms)" || fail "$name: took ${MS} ms"
    case "$LAST" in
    "quorum-agent: stopping: ./cmd.sh $cause; "[0-9]*" leases released") pass "$name: $LAST" ;;
    *) fail "$name: the last line is '$LAST'" ;;
    esac
    check "$name: nothing stored, nothing skipped" "skipped:0 submitted:0" "$(outcomes "$p" | cut -d' ' -f2-)"
    local released live
    released=$(count "leases WHERE project_id = $p AND outcome = 'released'")
    [ "$released" -ge "$max" ] && pass "$name: $released leases released" || fail "$name: $released leases released"
    live=$(api POST "/v1/projects/$p/leases" "$OTHER" '{"max":10,"wait_ms":0}' | cut -d' ' -f2- | jq '.leases | length')
    check "$name: all 4 tasks leasable again" 4 "$live"
}
expect_stop exit 3 "failed 3 times in a row (exited with status 3)"
expect_stop crash 2 "failed 2 times in a row (killed by signal 11: Segmentation fault)"
expect_stop garbage 3 "gave an invalid result 3 times in a row (invalid JSON: 'this is not json {')"
expect_stop zebra 3 "gave an invalid result 3 times in a row (label 'zebra' is not one of the project's: a, b)"
expect_stop hang 2 "timed out 2 times in a row (no answer within 500 ms)" --timeout-ms 500
check "no process left behind (the hang's grandchildren were killed)" 0 "$(pgrep -f "sleep $HANG_SECONDS" | wc -l)"
# Failures of different kinds in a row: the line says so and names the last.
P=$(new_project mixed 2)
BROKEN=mixed run_exec mixed "$P" -- ./cmd.sh
check "mixed failures: exit 9" 9 "$RC"
check "mixed failures: the cause names the last" \
    "quorum-agent: stopping: ./cmd.sh failed 3 times in a row (the last time it failed: exited with status 4); 3 leases released" "$LAST"

# --- one task that always breaks the command: --attempts -----------------------------------------
# Released, it comes back; after 2 failures on it exec stops, keeping the
# label of the task answered before.
MODES="exit"
P=$(new_project attempts 1)
MODES=
run_exec attempts "$P" --max-failures 10 --attempts 2 -- ./cmd.sh
check "one poisonous task: exit 9" 9 "$RC"
T=$(sql "SELECT id FROM tasks WHERE project_id = $P AND data->>'mode' = 'exit'")
check "one poisonous task: the cause names it" \
    "quorum-agent: stopping: ./cmd.sh failed 2 times on task $T (exited with status 3); 2 leases released" "$LAST"
check "one poisonous task: the answered task is stored, none skipped" "released:2 skipped:0 submitted:1" "$(outcomes "$P")"

# --- bad flag values ------------------------------------------------------------------------------
for v in 0 1001 x; do
    set +e
    out=$(QUORUM_TOKEN=$TOKEN "$AGENT" exec --project "$P" --max-failures "$v" -- true 2>&1); rc=$?
    set -e
    check "--max-failures $v: usage error 2" 2 "$rc"
    check "--max-failures $v: says so" "quorum-agent: exec: --max-failures must be 1-1000, not '$v'" "$(echo "$out" | head -1)"
done
"$AGENT" exec --help >"$E2E_DIR/help"
grep -q -- '--max-failures N   failures in a row that stop exec' "$E2E_DIR/help" && pass "exec --help lists --max-failures" || fail "exec --help: no --max-failures"
grep -q '^  9  exec: CMD failed --max-failures times in a row' "$E2E_DIR/help" && pass "exec --help documents exit 9" || fail "exec --help: no exit 9"

finish
