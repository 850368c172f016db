#!/usr/bin/env bash
# Account takeover: POST /v1/users never touches an existing user (409
# user_exists, no token, nothing changed), and POST /v1/tokens gives an
# existing user a token only for a caller of its organization whose role is
# not below the user's. Tokens and users are counted in PostgreSQL before
# and after each refusal.
. "$(dirname "$0")/lib.sh"

start_broker

M=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"mgr","role":"manager"}' | cut -d' ' -f2- | jq -r .token)
ADMIN_NAME=$(sql "SELECT name FROM users WHERE role = 'admin' ORDER BY id LIMIT 1")
counts() { sql "SELECT (SELECT count(*) FROM api_tokens) || ' ' || (SELECT count(*) FROM users) || ' ' || (SELECT string_agg(id || ':' || name || ':' || role, ',' ORDER BY id) FROM users)"; }

# --- the exact request of the report -----------------------------------------------------------
before=$(counts)
r=$(api POST /v1/users "$M" "{\"name\": \"$ADMIN_NAME\", \"role\": \"annotator\"}")
check "a manager creating the admin's name: 409 user_exists" "409 user_exists null" \
    "${r%% *} $(echo "${r#* }" | jq -r '.error.code') $(echo "${r#* }" | jq -c '.token')"
check "no token made, no user changed" "$before" "$(counts)"
check "the admin is still an admin" admin "$(sql "SELECT role FROM users WHERE name = '$ADMIN_NAME'")"

# The same as an admin, and for a user of a lower role: still 409.
r=$(api POST /v1/users "$ADMIN_TOKEN" '{"name": "mgr", "role": "manager"}')
check "an admin re-creating an existing manager: 409" 409 "${r%% *}"
check "nothing changed" "$before" "$(counts)"
r=$(api POST /v1/users "$M" '{"name": "fresh", "role": "annotator"}')
check "a new name still works" "201 annotator" "${r%% *} $(echo "${r#* }" | jq -r .role)"
before=$(counts)

# --- POST /v1/tokens for existing users ----------------------------------------------------------
r=$(api POST /v1/tokens "$M" "{\"user\": \"$ADMIN_NAME\", \"role\": \"admin\"}")
check "a manager cannot mint the admin's token (admin role)" 403 "${r%% *}"
r=$(api POST /v1/tokens "$M" "{\"user\": \"$ADMIN_NAME\", \"role\": \"annotator\"}")
check "nor by asking another role" 403 "${r%% *}"
check "nothing changed" "$before" "$(counts)"
r=$(api POST /v1/tokens "$M" '{"user": "fresh", "role": "annotator"}')
check "a manager may give its annotator a new token" 201 "${r%% *}"
NEW=$(echo "${r#* }" | jq -r .token)
r=$(api GET /v1/projects/1 "$NEW")
check "and it authenticates (403: no project 1 here)" 403 "${r%% *}"
R=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"rev","role":"reviewer"}' | cut -d' ' -f2- | jq -r .token)
before=$(counts)
r=$(api POST /v1/tokens "$R" '{"user": "fresh", "role": "annotator"}')
check "a reviewer cannot mint tokens at all" 403 "${r%% *}"
check "nothing changed" "$before" "$(counts)"

finish
