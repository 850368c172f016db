#!/usr/bin/env bash
# `quorumctl report` read as a team lead reads it (issue 13, point 7): a
# short run of 20 tasks x 2 by two simulated annotators (~15 s), reported
# while work remains. The ETA, from the pace of the last 10 minutes of
# work, must be within a factor of 2 of the time the crew really took for
# the rest; percentages are percentages; each agreement figure has a
# reading and a count; no row for auto-acceptance (not built); the
# simulator's rate and the report's are one definition and agree; the
# simulated crew reads its truth from "_true_label", which the exec bridge
# never hands to a command and the terminal labeler never shows.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
AGENT="$QR_BIN_DIR/quorum-agent"
SAMPLE="$QR_SOURCE_DIR/deploy/sample/news.jsonl"
P=$("$CTL" project create --name plain --labels sports,technology,cooking,weather \
    --annotations-per-task 2)
head -20 "$SAMPLE" | "$CTL" import --project "$P" - >/dev/null

# Two annotators, 600-800 ms a task: 40 annotations in about 15 s.
"$AGENT" simulate --project "$P" --annotators 2 --accuracy 0.9 --think-ms 600-800 --seed 11 \
    --json-summary "$E2E_DIR/sim.json" >"$E2E_DIR/sim.out" 2>"$E2E_DIR/sim.err" &
SIM=$!
at_exit "kill $SIM 2>/dev/null || true"
n=0
for _ in $(seq 1 300); do
    n=$("$CTL" report --project "$P" --json | jq .annotations)
    [ "$n" -ge 16 ] && break
    sleep 0.1
done
check "the run is under way (16 or more of 40 annotations)" true "$([ "$n" -ge 16 ] && [ "$n" -lt 40 ] && echo true)"
T_REPORT=$(date +%s.%N)
TEXT=$("$CTL" report --project "$P")
J=$("$CTL" report --project "$P" --json)
echo "$TEXT" | sed 's/^/# /'
wait "$SIM"
check "simulate finished the project" true "$(jq .project_complete "$E2E_DIR/sim.json")"

FINAL=$("$CTL" report --project "$P" --json)
LAST=$(echo "$FINAL" | jq -r .last_annotation_at)
REAL=$(echo "$(date -d "$LAST" +%s.%N) - $T_REPORT" | bc -l)
ETA=$(echo "$J" | jq .eta_seconds)
PACE_ETA=$(echo "$J" | jq .throughput.eta.pace.seconds)
echo "# ETA $ETA s (throughput: $PACE_ETA s); the rest really took $REAL s"
within2() { [ "$(echo "$1 > 0 && $2 > 0 && $1 <= 2 * $2 && $2 <= 2 * $1" | bc -l)" = 1 ] && echo yes; }
check "report ETA within a factor of 2 of the real remaining time" yes "$(within2 "$ETA" "$REAL")"
check "throughput ETA (eta.pace.seconds) within a factor of 2 too" yes "$(within2 "$PACE_ETA" "$REAL")"
check "the text says how the ETA is computed" 1 \
    "$(echo "$TEXT" | grep -c '^ETA .* at the pace of the last 10 minutes of work')"

# Percentages as percentages, each agreement figure read and counted.
check "no auto-accepted row (the feature is not built)" 0 "$(echo "$TEXT" | grep -ci 'auto.accepted')"
check "percent agreement printed as a percentage" 1 \
    "$(echo "$TEXT" | grep -cE '^percent agreement +[0-9]{1,3}\.[0-9]%')"
check "no fraction where a percentage belongs" 0 \
    "$(echo "$TEXT" | grep -E '(percent|complete|outcomes|util)' | grep -cE '(^|[^0-9.])0\.[0-9]{3}' || true)"
check "percent agreement counts its tasks" 1 \
    "$(echo "$TEXT" | grep -cE '^ +\(over [0-9]+ tasks with two or more annotations\)')"
check "alpha has a reading" 1 \
    "$(echo "$TEXT" | grep -cE "^Krippendorff's alpha +-?[0-9]\.[0-9]{3}  (reliable agreement|tentative agreement|too low to rely on)")"
check "alpha says its thresholds and count" 1 \
    "$(echo "$TEXT" | grep -cE 'over the same [0-9]+ tasks; >= 0.80 is reliable')"
check "JSON: agreement carries its counts" true \
    "$(echo "$J" | jq '.agreement.pairable_tasks > 0 and .agreement.judgements == .annotations')"
check "the fast-response rule in words" 1 "$(echo "$TEXT" | grep -c 'flagged: whoever works much faster than the rest')"

# One definition of a rate: the simulator's and the report's agree (up to
# the two clocks: the broker stamps a stored annotation, the simulator
# its answer).
SIM_RATE=$(jq .completions_per_second "$E2E_DIR/sim.json")
REP_RATE=$(echo "$FINAL" | jq .completions_per_second)
echo "# completions/s: simulator $SIM_RATE over $(jq .working_seconds "$E2E_DIR/sim.json") s, report $REP_RATE over $(echo "$FINAL" | jq .working_seconds) s"
check "simulator and report rates agree within 10%" 1 \
    "$(echo "$SIM_RATE > 0 && $REP_RATE > 0 && $SIM_RATE <= 1.1 * $REP_RATE && $REP_RATE <= 1.1 * $SIM_RATE" | bc -l)"
check "the contract keys are still there" true \
    "$(echo "$FINAL" | jq '(.tasks == 20) and (.tasks_complete == 20) and (.annotations == 40) and (.duplicate_assignments == 0) and (.overfilled_tasks == 0)')"

# The truth is read from "_true_label" (every answer was checked against it)...
check "simulate read the truth from _true_label" 40 \
    "$(jq '[.per_annotator[].with_truth] | add' "$E2E_DIR/sim.json")"
echo "# matched the truth: $(jq '[.per_annotator[].matched_truth] | add' "$E2E_DIR/sim.json") of 40"
check "and labeled by it (accuracy 0.9: 28 or more of 40 right)" true \
    "$(jq '[.per_annotator[].matched_truth] | add >= 28' "$E2E_DIR/sim.json")"
# ...and never handed to an exec command, which sees the rest of the data.
Q=$("$CTL" project create --name view --labels sports,technology,cooking,weather --annotations-per-task 1)
head -3 "$SAMPLE" | "$CTL" import --project "$Q" - >/dev/null
cat >"$E2E_DIR/look.sh" <<'EOF'
#!/usr/bin/env bash
task=$(cat)
echo "$task" >>"$SEEN"
echo '{"label":"sports"}'
EOF
chmod +x "$E2E_DIR/look.sh"
TOKEN=$(api POST /v1/users "$ADMIN_TOKEN" '{"name":"viewer","role":"annotator"}' | cut -d' ' -f2- | jq -r .token)
SEEN="$E2E_DIR/seen.jsonl" QUORUM_TOKEN=$TOKEN timeout 60 "$AGENT" exec --project "$Q" --idle-exit 2 \
    --spool "$E2E_DIR/spool" -- "$E2E_DIR/look.sh" >/dev/null 2>"$E2E_DIR/exec.err" || true
check "exec: the command saw every task's text" 3 "$(jq -r .data.text "$E2E_DIR/seen.jsonl" 2>/dev/null | grep -c .)"
check "exec: and never a key starting with _" 0 "$(grep -c '_true_label' "$E2E_DIR/seen.jsonl")"

# ...nor shown by the terminal labeler, which shows the text.
if command -v tmux >/dev/null; then
    SOCK="qr-plain-$$"
    TMUX_CMD=(tmux -L "$SOCK" -f /dev/null)
    at_exit "${TMUX_CMD[*]} kill-server 2>/dev/null || true"
    R=$("$CTL" project create --name look --labels sports,technology,cooking,weather --annotations-per-task 1)
    head -1 "$SAMPLE" | "$CTL" import --project "$R" - >/dev/null
    cat >"$E2E_DIR/run-label.sh" <<EOF
#!/usr/bin/env bash
export QUORUM_URL='$URL' QUORUM_TOKEN='$TOKEN' QUORUM_CA='$CA' TERM=xterm
exec '$AGENT' label --project $R --spool '$E2E_DIR/label-spool' 2>'$E2E_DIR/label.err'
EOF
    chmod +x "$E2E_DIR/run-label.sh"
    "${TMUX_CMD[@]}" new-session -d -s label -x 80 -y 24 "$E2E_DIR/run-label.sh"
    for _ in $(seq 1 100); do
        "${TMUX_CMD[@]}" capture-pane -p -t label | grepq "text: " && break
        sleep 0.1
    done
    SCREEN=$("${TMUX_CMD[@]}" capture-pane -p -t label)
    check "label: the task's text is on screen" 1 "$(echo "$SCREEN" | grep -c '^text: The compiler team')"
    check "label: the true label is not" 0 "$(echo "$SCREEN" | grep -c 'true_label')"
    "${TMUX_CMD[@]}" send-keys -t label q
else
    pass "SKIP: tmux not installed (the labeler's screen is not checked)"
fi

finish
