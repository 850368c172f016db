#!/usr/bin/env bash
# Hostile text (issue 11, finding 9): names, labels and reasons with control
# characters are refused (422) and nothing is stored; CSV cells that a
# spreadsheet would run as formulas are neutralized in the export; and what
# reaches a terminal anyway (older rows) is escaped by quorumctl.
. "$(dirname "$0")/lib.sh"

start_broker

counts() { sql "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM api_tokens) || ' ' || (SELECT count(*) FROM organizations) || ' ' || (SELECT count(*) FROM projects) || ' ' || (SELECT count(*) FROM leases) || ' ' || (SELECT count(*) FROM client_certs)"; }
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"hostile","labels":["+1","-1","=2+3"]}')
P=$(echo "${r#* }" | jq .id)
seq 1 4 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null

# --- control characters refused ---------------------------------------------------------------
before=$(counts)
for bad in '\u001b[31mred' 'two\nlines' 'tab\there' 'del\u007f' 'c1\u0085next' 'csi\u009b2J'; do
    r=$(api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"$bad\",\"role\":\"annotator\"}")
    check "user name \"$bad\": 422" 422 "${r%% *}"
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "{\"user\":\"$bad\",\"role\":\"annotator\"}")
    check "token user \"$bad\": 422" 422 "${r%% *}"
    r=$(api POST /v1/organizations "$ADMIN_TOKEN" "{\"name\":\"$bad\",\"kind\":\"vendor\"}")
    check "organization name \"$bad\": 422" 422 "${r%% *}"
    r=$(api POST /v1/projects "$ADMIN_TOKEN" "{\"name\":\"$bad\",\"labels\":[\"a\"]}")
    check "project name \"$bad\": 422" 422 "${r%% *}"
    r=$(api POST /v1/projects "$ADMIN_TOKEN" "{\"name\":\"ok\",\"labels\":[\"a\",\"$bad\"]}")
    check "label \"$bad\": 422" 422 "${r%% *}"
    r=$(api POST /v1/certs "$ADMIN_TOKEN" "{\"user\":\"$bad\",\"certificate\":\"x\"}")
    check "certificate user \"$bad\": 422" 422 "${r%% *}"
done
check "nothing stored" "$before" "$(counts)"
r=$(api POST "/v1/projects/$P/leases" "$ADMIN_TOKEN" '{"max":1}')
L=$(echo "${r#* }" | jq -r '.leases[0].lease')
before=$(counts)
for step in release skip; do
    r=$(api POST "/v1/projects/$P/leases/$L/$step" "$ADMIN_TOKEN" '{"reason":"x\u001b[2J\nforged"}')
    check "a $step reason with control characters: 422" 422 "${r%% *}"
done
r=$(api POST "/v1/projects/$P/leases/$L/submit" "$ADMIN_TOKEN" '{"label":"+1\n"}')
check "a submitted label with a line feed: 422" 422 "${r%% *}"
check "nothing stored, the lease still held" "$before 0" "$(counts) $(sql "SELECT count(*) FROM annotations")"
r=$(api POST "/v1/projects/$P/leases/$L/release" "$ADMIN_TOKEN" '{"reason":"plain, fine"}')
check "a plain reason is fine" 200 "${r%% *}"

# --- CSV export neutralized -------------------------------------------------------------------------
EVIL='=HYPERLINK(\"http://evil.example\",\"x\")'
T1=$(api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"$EVIL\",\"role\":\"annotator\"}" | cut -d' ' -f2- | jq -r .token)
T2=$(api POST /v1/users "$ADMIN_TOKEN" '{"name":"@bob","role":"annotator"}' | cut -d' ' -f2- | jq -r .token)
for t in "$T1" "$T2"; do
    for label in "+1" "=2+3"; do
        r=$(api POST "/v1/projects/$P/leases" "$t" '{"max":1}')
        L=$(echo "${r#* }" | jq -r '.leases[0].lease')
        r=$(api POST "/v1/projects/$P/leases/$L/submit" "$t" "{\"label\":\"$label\"}")
        check "submit $label" 201 "${r%% *}"
    done
done
"$QR_BIN_DIR/quorumctl" export --project "$P" >"$E2E_DIR/export.csv"
check "no cell of the export starts a formula" "" \
    "$(tail -n +2 "$E2E_DIR/export.csv" | tr -d '\r' | tr ',' '\n' | sed 's/^"//' | grep -E '^[=+@-]' || true)"
check "the annotator's name is quoted and neutralized" 2 \
    "$(grep -c "^[0-9]*,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",'+1\|^[0-9]*,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",'=2+3" "$E2E_DIR/export.csv")"
check "@bob and the labels too" 2 "$(grep -c "^[0-9]*,'@bob,'[+=]" "$E2E_DIR/export.csv")"
check "quorumctl agreement reads the values back (labels +1 and =2+3)" "+1 =2+3" \
    "$("$QR_BIN_DIR/quorumctl" agreement --json "$E2E_DIR/export.csv" | jq -r '.labels | keys | join(" ")')"

# --- terminal output escaped ----------------------------------------------------------------------
# A name from before the check (written straight into PostgreSQL) must not
# colour the terminal or add a row to the report.
sql "UPDATE users SET name = E'ev\\x1b[31mil\\nforged             999' WHERE name = '@bob'" >/dev/null
out=$("$QR_BIN_DIR/quorumctl" report --project "$P")
check "report: no escape byte reaches the terminal" 0 "$(printf '%s' "$out" | grep -c $'\x1b' || true)"
check "report: no forged row" 0 "$(printf '%s\n' "$out" | grep -c '^forged' || true)"
check "report: the name shown escaped" yes \
    "$(printf '%s\n' "$out" | grepq -F 'ev\x1b[31mil\x0aforged' && echo yes)"
out=$("$QR_BIN_DIR/quorumctl" throughput --project "$P" 2>&1 || true)
check "throughput: no escape byte, no forged row" "0 0" \
    "$(printf '%s' "$out" | grep -c $'\x1b' || true) $(printf '%s\n' "$out" | grep -c '^forged' || true)"

finish
