#!/usr/bin/env bash
# test_docs.sh - issue 14 item 6: the documentation says what the binaries do.
#
# Offline, from the binaries themselves (no command list is written here):
# every command that quorumd, quorumctl and quorum-agent name under
# "Commands:" in their --help has its own row in README.md's table for that
# binary, and `BINARY COMMAND --help` exits 0 and says which formats the
# command reads and writes ("Reads:", "Writes:") with an example command line.
#
# Against a broker of its own: each table a list command prints has exactly
# the columns its --help promises, and the answers docs/API.md shows for a
# fixed sequence of requests on a fresh database are what the broker says,
# byte for byte.
. "$(dirname "$0")/lib.sh"

README="$QR_SOURCE_DIR/README.md"
API_MD="$QR_SOURCE_DIR/docs/API.md"

# commands_of BINARY: the commands its --help lists under "Commands:", one a
# line, with their subcommand ("token create|list" gives "token create" and
# "token list"). A line of that section is "  SYNOPSIS  DESCRIPTION": the
# synopsis ends at the first two spaces; its second word is a subcommand when
# it is lower case (not a flag, not a placeholder such as FILE or NAME).
commands_of() {
    "$1" --help | awk '
        /^Commands:$/ && !done { on = 1; next }
        on && /^$/ { on = 0; done = 1 }
        on && /^  [a-z]/ {
            syn = substr($0, 3)
            cut = index(syn, "  ")
            if (cut) syn = substr(syn, 1, cut - 1)
            n = split(syn, w, " ")
            if (n >= 2 && w[2] ~ /^[a-z][a-z|-]*$/) {
                k = split(w[2], alt, "|")
                for (j = 1; j <= k; j++) out[++m] = w[1] " " alt[j]
            } else {
                out[++m] = w[1]
            }
        }
        END { for (j = 1; j <= m; j++) if (!seen[out[j]]++) print out[j] }'
}

# readme_section BINARY: README.md's "### `BINARY`" section of "## Commands".
readme_section() {
    awk -v h="### \`$1\`" '
        $0 == h { on = 1; next }
        on && /^##/ { exit }
        on' "$README"
}

for bin in quorumd quorumctl quorum-agent; do
    BIN="$QR_BIN_DIR/$bin"
    cmds=$(commands_of "$BIN")
    n=$(printf '%s\n' "$cmds" | grep -c . || true)
    if [ "$n" -ge 3 ]; then pass "$bin --help lists $n commands"; else fail "$bin --help lists $n commands"; fi
    section=$(readme_section "$bin")
    [ -n "$section" ] && pass "README.md has a section for $bin" || fail "README.md has no '### \`$bin\`' section"
    while IFS= read -r cmd; do
        [ -n "$cmd" ] || continue
        # One row of its own: "| `BINARY COMMAND` ..." or "| `BINARY COMMAND ARGS...`".
        # (grep -q reads a here-string: from a pipe, its early exit can
        # fail the writer under pipefail when the section passes 4 KiB.)
        if grep -qF "| \`$bin $cmd\`" <<<"$section" ||
            grep -qF "| \`$bin $cmd " <<<"$section"; then
            pass "README.md: $bin $cmd"
        else
            fail "README.md: no row for '$bin $cmd' in its $bin table"
        fi
        rc=0
        # shellcheck disable=SC2086
        "$BIN" $cmd --help >"$E2E_DIR/help" 2>"$E2E_DIR/help.err" || rc=$?
        check "$bin $cmd --help: exit 0" 0 "$rc"
        check "$bin $cmd --help: nothing on stderr" "" "$(cat "$E2E_DIR/help.err")"
        for what in 'Reads:' 'Writes:'; do
            grep -q "^$what " "$E2E_DIR/help" && pass "$bin $cmd --help: $what" ||
                fail "$bin $cmd --help: no '$what' line (formats read and written)"
        done
        if grep -q '^Examples\?:$' "$E2E_DIR/help" && grep -q "^  $bin " "$E2E_DIR/help"; then
            pass "$bin $cmd --help: an example command line"
        else
            fail "$bin $cmd --help: no Example(s): section with a '  $bin ...' line"
        fi
    done <<<"$cmds"
done

# The claims above in both directions: every "BINARY COMMAND" row of README
# names a command the binary lists (a removed command leaves no stale row).
for bin in quorumd quorumctl quorum-agent; do
    cmds=$(commands_of "$QR_BIN_DIR/$bin")
    while IFS= read -r row; do
        name=$(printf '%s' "$row" | sed -E "s/^\| \`$bin ([a-z-]+( [a-z-]+)?).*/\1/")
        first=${name%% *}
        if grep -qxF "$name" <<<"$cmds" || grep -qxF "$first" <<<"$cmds"; then
            pass "README.md row '$name' is a command of $bin"
        else
            fail "README.md row '$bin $name' names no command of $bin --help"
        fi
    done < <(readme_section "$bin" | grep "^| \`$bin ")
done

# --- against a broker ------------------------------------------------------------------

start_broker
CTL="$QR_BIN_DIR/quorumctl"

# api_doc DESCRIPTION METHOD PATH [TOKEN] [BODY]: the answer's body must be
# in docs/API.md as it is (the broker's compact JSON).
api_doc() {
    local what=$1 r body
    shift
    r=$(api "$@")
    body=${r#* }
    if grep -qF -- "$body" "$API_MD"; then
        pass "API.md shows what $what answers: ${r%% *} $body"
    else
        fail "API.md does not show what $what answers: ${r%% *} $body"
    fi
}

P='{"name": "sentiment", "labels": ["positive", "negative", "neutral"], "annotations_per_task": 3}'
api_doc "POST /v1/projects" POST /v1/projects "$ADMIN_TOKEN" "$P"
BOB=$(new_annotator bob)
printf '%s\n' '{"data": {"text": "great"}, "prediction": {"label": "positive", "score": 0.42}, "gold": "positive"}' \
    '{"data": {"text": "awful"}}' '{"text": "meh"}' >"$E2E_DIR/tasks.jsonl"
r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/x-ndjson' \
    --data-binary @"$E2E_DIR/tasks.jsonl" "$URL/v1/projects/1/tasks?file_name=tasks.jsonl")
grep -qF -- "$r" "$API_MD" && pass "API.md shows an import's answer: $r" || fail "API.md lacks the import's answer: $r"
r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/x-ndjson' \
    --data-binary @"$E2E_DIR/tasks.jsonl" "$URL/v1/projects/1/tasks")
grep -qF -- "$r" "$API_MD" && pass "API.md shows a duplicate import's answer: $r" ||
    fail "API.md lacks the duplicate import's answer: $r"
r=$(curl -sS --cacert "$CA" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/x-ndjson' \
    --data-binary $'{"data": {}}\n{oops' "$URL/v1/projects/1/tasks")
grep -qF -- "$r" "$API_MD" && pass "API.md shows a bad line's answer: $r" || fail "API.md lacks a bad line's answer: $r"

lease() { api POST /v1/projects/1/leases "$BOB" '{"max": 1}' | cut -d' ' -f2- | jq -r '.leases[0].lease'; }
L1=$(lease)
check "the first lease of a fresh stack" 1000001 "$L1"
S='{"label": "positive", "idempotency_key": "a1b2", "active_ms": 1200}'
api_doc "a submit" POST "/v1/projects/1/leases/$L1/submit" "$BOB" "$S"
api_doc "the same submit again" POST "/v1/projects/1/leases/$L1/submit" "$BOB" "$S"
api_doc "the key with another label" POST "/v1/projects/1/leases/$L1/submit" "$BOB" \
    '{"label": "negative", "idempotency_key": "a1b2", "active_ms": 1200}'
L2=$(lease)
api_doc "a label outside the choices" POST "/v1/projects/1/leases/$L2/submit" "$BOB" '{"label": "sarcastic"}'
api_doc "a release" POST "/v1/projects/1/leases/$L2/release" "$BOB" '{"reason": "closing my laptop"}'
api_doc "a heartbeat of an ended lease" POST "/v1/projects/1/leases/$L2/heartbeat" "$BOB"
api_doc "a submit on an ended lease" POST "/v1/projects/1/leases/$L2/submit" "$BOB" '{"label": "positive"}'
L3=$(lease)
api_doc "a skip" POST "/v1/projects/1/leases/$L3/skip" "$BOB" '{"reason": "unreadable"}'
api_doc "progress" GET /v1/projects/1/progress "$BOB"
api POST /v1/projects/1/pause >/dev/null
api_doc "a lease request on a paused project" POST /v1/projects/1/leases "$BOB" '{"max": 1}'
api_doc "a resume" POST /v1/projects/1/resume
api_doc "an unknown token" GET /v1/whoami qr_nope
api_doc "another organization's project" GET /v1/projects/99
api_doc "an annotator asking for the report" GET /v1/projects/1/report "$BOB"
api_doc "no such route" GET /v1/nothing
api_doc "a malformed body" POST /v1/projects/1/leases "$BOB" '{oops'
api_doc "healthz" GET /healthz ""

# Each list command prints the columns its --help promises ("a table with the
# columns A, B, C"), no more and no fewer.
"$CTL" org create acme-labeling >/dev/null 2>&1
"$CTL" project share --project 1 --org acme-labeling --quota 5000 --cap 200 >/dev/null 2>&1
for c in "token list" "cert list" "org list" "import list --project 1" "project shares --project 1"; do
    # shellcheck disable=SC2086
    promised=$("$CTL" $c --help | tr '\n' ' ' | tr -s ' ' |
        sed -nE 's/.*a table with the columns //p' | sed -E 's/ \(--json.*//; s/;.*//; s/, /|/g')
    # shellcheck disable=SC2086
    printed=$("$CTL" $c | sed -n 1p | sed -E 's/ +$//; s/  +/|/g')
    if [ -z "$promised" ]; then
        fail "$c --help names no columns ('a table with the columns ...')"
    else
        check "$c prints the columns its --help promises" \
            "$(printf '%s' "$promised" | tr '[:upper:]' '[:lower:]')" \
            "$(printf '%s' "$printed" | tr '[:upper:]' '[:lower:]')"
    fi
done

finish
