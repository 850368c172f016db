#!/usr/bin/env bash
# Token lifecycle: created and shown once, stored hashed, listed without the
# secret, expired and revoked tokens refused exactly like unknown ones, and
# a revocation holding on every broker at once.
. "$(dirname "$0")/lib.sh"

start_broker
start_second_broker

# 6 s: long enough for the first use on a loaded machine; the test then
# waits for PostgreSQL's clock to pass the expiry, not a fixed time.
T=$("$QR_BIN_DIR/quorumctl" token create --user tok-ann --role annotator --expires 6s 2>/dev/null)
check "token shown once, stored hashed" "1 0" \
    "$(sql "SELECT count(*) FROM api_tokens WHERE token_sha256 = encode(sha256('$T'::bytea), 'hex')") $(sql "SELECT count(*) FROM api_tokens WHERE prefix = '$T' OR token_sha256 = '$T'")"
r=$(api GET /v1/projects/1 "$T")
check "a fresh token works (403: no access to project 1, but authenticated)" 403 "${r%% *}"
for _ in $(seq 100); do
    [ "$(sql "SELECT now() > expires_at + interval '200 ms' FROM api_tokens WHERE token_sha256 = encode(sha256('$T'::bytea), 'hex')")" = t ] && break
    sleep 0.2
done
r=$(api GET /v1/projects/1 "$T")
unknown=$(api GET /v1/projects/1 "qr_$(printf '%064d' 7)")
check "expired token: 401" 401 "${r%% *}"
check "expired and unknown tokens get the same answer" "${unknown}" "${r}"

M=$("$QR_BIN_DIR/quorumctl" token create --user tok-mgr --role manager 2>/dev/null)
r=$(api POST /v1/projects "$M" '{"name":"x","labels":["a"]}')
check "manager token works" 201 "${r%% *}"
r=$(API_URL=$URL2 api POST /v1/projects "$M" '{"name":"y","labels":["a"]}')
check "and on broker 2 (now cached there)" 201 "${r%% *}"
LIST=$("$QR_BIN_DIR/quorumctl" token list --json)
ID=$(echo "$LIST" | jq '.tokens[] | select(.user == "tok-mgr") | .id')
check "list shows prefix, not the secret" "false" "$(echo "$LIST" | jq --arg t "$M" 'tostring | contains($t)')"
check "list shows last use" true "$(echo "$LIST" | jq '.tokens[] | select(.user == "tok-mgr") | .last_used_at != null')"
"$QR_BIN_DIR/quorumctl" token revoke "$ID" 2>/dev/null
r=$(API_URL=$URL2 api GET /v1/tokens "$M")
check "revoked on broker 1, refused at once on broker 2" 401 "${r%% *}"
check "revoked and unknown tokens get the same answer" "$unknown" "$(api GET /v1/projects/1 "$M")"
r=$(api DELETE "/v1/tokens/$ID")
check "revoking twice: 404" 404 "${r%% *}"

# A manager cannot mint or revoke admin tokens.
M2=$("$QR_BIN_DIR/quorumctl" token create --user tok-mgr2 --role manager 2>/dev/null)
r=$(api POST /v1/tokens "$M2" '{"user":"evil","role":"admin"}')
check "manager cannot create an admin token" 403 "${r%% *}"
ADMIN_ID=$(sql "SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.role = 'admin' ORDER BY t.id LIMIT 1")
r=$(api DELETE "/v1/tokens/$ADMIN_ID" "$M2")
check "manager cannot revoke an admin token" 404 "${r%% *}"
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"tok-mgr2","role":"annotator"}')
check "existing user, other role: 409" 409 "${r%% *}"
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"z","role":"annotator","expires":"soon"}')
check "bad expiry: 422" 422 "${r%% *}"
r=$(api GET /v1/tokens "$(sql "SELECT 1" >/dev/null; echo "$T")")
check "annotators cannot list tokens (expired one: 401)" 401 "${r%% *}"

# RFC 6750: every 401 carries a Bearer challenge; error="invalid_token" only
# when a token was given and refused (section 3.1).
challenge() { # challenge [TOKEN] -> the WWW-Authenticate value of GET /v1/tokens
    local args=(-sS --cacert "$CA" -o /dev/null -D -)
    [ -n "${1-}" ] && args+=(-H "Authorization: Bearer $1")
    curl "${args[@]}" "$URL/v1/tokens" | tr -d '\r' | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: //p'
}
check "401 without a token: a Bearer challenge, no error code" 'Bearer realm="quorum"' "$(challenge)"
check "401 for a refused token: error=\"invalid_token\"" \
    'Bearer realm="quorum", error="invalid_token"' "$(challenge "qr_$(printf '%064d' 7)")"
check "401 for an expired token: the same challenge" \
    'Bearer realm="quorum", error="invalid_token"' "$(challenge "$T")"
check "a 200 carries no challenge" "" "$(challenge "$ADMIN_TOKEN")"
r=$(api GET /v1/tokens "")
check "the 401 message says what to send" \
    'this request needs a token: send the header "Authorization: Bearer TOKEN"' \
    "$(echo "${r#* }" | jq -r .error.message)"

finish
