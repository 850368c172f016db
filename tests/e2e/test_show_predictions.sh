#!/usr/bin/env bash
# Predictions shown to annotators (issue 16, point 9): a project with
# show_predictions sends each leased task's prediction with the lease (a
# project without it sends none); the terminal labeler shows it and `a`
# accepts it; the exec bridge hands it to its command; the report says how
# often humans gave the prediction they were shown. Bad settings are
# refused and change nothing.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
AGENT="$QR_BIN_DIR/quorum-agent"

# --- the setting ------------------------------------------------------------------------------
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name": "x", "labels": ["a"], "show_predictions": "yes"}')
check "show_predictions \"yes\": 422" 422 "${r%% *}"
grepq "show_predictions must be true" <<<"$r" && pass "it says why" || fail "message: $r"
rc=0
"$CTL" project create --name x --labels a --show-predictions maybe >/dev/null 2>"$E2E_DIR/err" || rc=$?
check "quorumctl: --show-predictions maybe is a usage error" 2 "$rc"
check "nothing made" 0 "$(sql "SELECT count(*) FROM projects")"
P=$("$CTL" project create --name pre --labels pos,neg,neutral --show-predictions on)
check "the project shows it" "true" "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -r .show_predictions)"
check "project show says it" "show_predictions: on" "$("$CTL" project show "$P" | grep '^show_predictions')"
Q=$(new_project '{"name": "plain", "labels": ["pos", "neg", "neutral"]}')
check "off by default" "false" "$(api GET "/v1/projects/$Q" | cut -d' ' -f2- | jq -r .show_predictions)"

# 30 tasks: 20 with a prediction (the first 10 right, as the data says), 10 without.
python3 - "$E2E_DIR/tasks.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(30):
        t = {"data": {"n": i, "truth": ["pos", "neg", "neutral"][i % 3]}}
        if i < 20:
            t["prediction"] = {"label": ["pos", "neg", "neutral"][i % 3] if i < 10 else "pos",
                               "score": 0.5 + i / 100, "model_version": "m1"}
        f.write(json.dumps(t) + "\n")
PY
"$CTL" import --project "$P" "$E2E_DIR/tasks.jsonl" >/dev/null
"$CTL" import --project "$Q" "$E2E_DIR/tasks.jsonl" >/dev/null

# --- the lease carries it ---------------------------------------------------------------------
ANN=$(new_annotator ann)
r=$(api POST "/v1/projects/$Q/leases" "$ANN" '{"max": 2}' | cut -d' ' -f2-)
check "a project without the setting: no prediction in the lease" "false false" \
    "$(echo "$r" | jq -r '[.leases[] | has("prediction")] | map(tostring) | join(" ")')"
r=$(api POST "/v1/projects/$P/leases" "$ANN" '{"max": 3}' | cut -d' ' -f2-)
T0=$(echo "$r" | jq '.leases[0].task_id')
check "each lease carries its task's prediction, as PostgreSQL holds it" \
    "$(sql "SELECT prediction::jsonb FROM tasks WHERE id = $T0" | jq -c .)" \
    "$(echo "$r" | jq -c '.leases[0].prediction')"
for l in $(echo "$r" | jq -r '.leases[].lease'); do api POST "/v1/projects/$P/leases/$l/release" "$ANN" '{}' >/dev/null; done

# --- the exec bridge hands it to its command, which gives it back --------------------------------
cat >"$E2E_DIR/cmd.sh" <<'EOF'
#!/usr/bin/env bash
task=$(cat)
echo "$task" >>"$SEEN"
jq -c 'if .prediction then {label: .prediction.label} else {label: .data.truth} end' <<<"$task"
EOF
chmod +x "$E2E_DIR/cmd.sh"
export SEEN="$E2E_DIR/seen.jsonl"
BOT=$(new_annotator bot)
QUORUM_TOKEN=$BOT timeout 120 "$AGENT" exec --project "$P" --concurrency 2 --idle-exit 2 \
    --spool "$E2E_DIR/bot.spool" -- "$E2E_DIR/cmd.sh" 2>"$E2E_DIR/exec.err" || true
check "the bot labeled all 30 tasks" 30 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"
check "its command saw a prediction with 20 of them" 20 "$(jq -c 'select(.prediction != null)' "$SEEN" | wc -l)"
check "and the prediction it saw is the task's" 0 \
    "$(jq -r 'select(.prediction != null) | "\(.task_id) \(.prediction.label) \(.prediction.model_version)"' "$SEEN" |
        while read -r t l m; do sql "SELECT 1 FROM tasks WHERE id = $t AND (prediction->>'label' <> '$l' OR prediction->>'model_version' <> '$m')"; done | wc -l)"

# --- the report -------------------------------------------------------------------------------
q=$(api GET "/v1/projects/$P/report" | cut -d' ' -f2- | jq -c .quality.shown_predictions)
check "the report: 20 labels on tasks with a prediction, all 20 gave it" '{"compared":20,"accepted":20,"rate":1}' "$q"
check "quorumctl report says it" "1" \
    "$("$CTL" report --project "$P" | grep -c 'humans gave the model.s prediction in 20 of 20 labels (100.0 %)')"
check "a project that shows none: null" null \
    "$(api GET "/v1/projects/$Q/report" | cut -d' ' -f2- | jq -c .quality.shown_predictions)"

# --- the terminal labeler shows it, and `a` accepts it -------------------------------------------
tmux_server
R=$(new_project '{"name": "tty", "labels": ["pos", "neg"], "show_predictions": true}')
echo '{"data": {"text": "fine"}, "prediction": {"label": "neg", "score": 0.73}}' | "$CTL" import --project "$R" - >/dev/null
HUMAN=$(new_annotator human)
label_in_tmux tty "$HUMAN" "$R" "$E2E_DIR/tty.spool"
tmux_wait_for tty "model suggests: neg (score 0.73)" && pass "the labeler shows the suggestion" ||
    fail "screen: $(tmux_screen tty)"
"${TMUX_CMD[@]}" send-keys -t tty a
check "a accepts it: the annotation is the prediction's label" neg \
    "$(wait_sql neg "SELECT label FROM annotations WHERE project_id = $R")"
"${TMUX_CMD[@]}" send-keys -t tty q

# --- turning it off ---------------------------------------------------------------------------
r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"show_predictions": 1}')
check "PATCH show_predictions 1: 422" 422 "${r%% *}"
check "nothing changed" "true" "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -r .show_predictions)"
"$CTL" project update "$P" --show-predictions off >/dev/null
check "quorumctl project update --show-predictions off" "false" \
    "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -r .show_predictions)"

finish
