#!/usr/bin/env bash
# Mutual TLS for agents (issue 7, item 3): quorumd --client-ca verifies client
# certificates; one mapped to a user (quorumctl cert add) authenticates
# without a token: leases and submits with curl and with quorum-agent. A
# certificate from another CA fails the handshake; an unmapped or revoked one
# gets the 401 of a bad token; a bearer token still works and wins; bad
# mapping requests are refused; SIGHUP reloads the client CA; with
# --require-client-cert a client without a certificate is refused.
. "$(dirname "$0")/lib.sh"

T="$E2E_DIR/tls"
O="$E2E_DIR/other"
make_certs "$T" 2
make_certs "$O" 2 # another CA, trusted by nobody here
make_client_cert "$T" ann
make_client_cert "$T" stranger
make_client_cert "$T" boss
make_client_cert "$O" mallory
cp "$T/ca.crt" "$E2E_DIR/client-ca.pem"
start_broker --client-ca "$E2E_DIR/client-ca.pem"
CTL="$QR_BIN_DIR/quorumctl"
export XDG_CONFIG_HOME="$E2E_DIR/config" # no profile of the machine's user

# capi CERT METHOD PATH [BODY] [TOKEN] -> "STATUS BODY", over TLS with the
# client certificate CERT.crt/CERT.key ("000" when the handshake failed;
# curl's complaint is then in $E2E_DIR/c.err).
capi() {
    local crt=$1 method=$2 path=$3 body=${4-} token=${5-} url=${API_URL:-$URL}
    local args=(-sS --cacert "$CA" --cert "$crt.crt" --key "$crt.key" -X "$method"
        -o "$E2E_DIR/c.out" -w '%{http_code}')
    [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
    [ -n "$body" ] && args+=(--data-binary "$body" -H 'Content-Type: application/json')
    local st
    st=$(curl "${args[@]}" "$url$path" 2>"$E2E_DIR/c.err") || true
    printf '%s %s' "$st" "$(cat "$E2E_DIR/c.out" 2>/dev/null)"
    rm -f "$E2E_DIR/c.out"
}

MGR=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"lead","role":"manager"}' | cut -d' ' -f2- | jq -r .token)
api POST /v1/users "$ADMIN_TOKEN" '{"name":"ann","role":"annotator"}' >/dev/null
api POST /v1/users "$ADMIN_TOKEN" '{"name":"stranger","role":"annotator"}' >/dev/null
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"mtls","labels":["a","b"],"annotations_per_task":1}')
P=$(echo "${r#* }" | jq .id)
for i in 1 2 3 4 5; do echo "{\"n\":$i}"; done | "$CTL" import --project "$P" - >/dev/null

# --- mapping ------------------------------------------------------------------
id=$(QUORUM_TOKEN=$MGR "$CTL" cert add --user ann --cert "$T/ann.crt" 2>"$E2E_DIR/add.err")
[[ "$id" =~ ^[0-9]+$ ]] && pass "quorumctl cert add prints the mapping id ($id): $(cat "$E2E_DIR/add.err")" ||
    fail "cert add printed '$id': $(cat "$E2E_DIR/add.err")"
fp=$(openssl x509 -in "$T/ann.crt" -outform DER | sha256sum | cut -d' ' -f1)
check "only the SHA-256 of the certificate's DER is stored" "$fp" \
    "$(sql "SELECT cert_sha256 FROM client_certs WHERE id = ${id:-0}")"

# --- a mapped certificate, no token ----------------------------------------------
r=$(capi "$T/ann" GET "/v1/projects/$P")
check "mapped certificate, no token: GET project" 200 "${r%% *}"
r=$(capi "$T/ann" POST "/v1/projects/$P/leases" '{}')
check "mapped certificate, no token: lease" "200 1" "${r%% *} $(echo "${r#* }" | jq '.leases | length')"
L=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(capi "$T/ann" POST "/v1/projects/$P/leases/$L/submit" '{"label":"a"}')
check "mapped certificate, no token: submit" 201 "${r%% *}"
check "the annotation is ann's" "ann" \
    "$(sql "SELECT u.name FROM annotations a JOIN users u ON u.id = a.annotator_id WHERE a.project_id = $P")"
r=$(capi "$T/ann" GET /v1/tokens)
check "the certificate carries its user's role (annotator: no token list)" 403 "${r%% *}"

# quorum-agent with --cert/--key and no token at all labels the rest.
echo 'jq -c "{label: \"b\"}"' >"$E2E_DIR/label.sh"
set +e
env -u QUORUM_TOKEN timeout 60 "$QR_BIN_DIR/quorum-agent" exec --project "$P" --cert "$T/ann.crt" \
    --key "$T/ann.key" --idle-exit 2 --spool "$E2E_DIR/spool" -- bash "$E2E_DIR/label.sh" \
    2>"$E2E_DIR/agent.err"
rc=$?
set -e
check "quorum-agent exec with a client certificate and no token exits 0" 0 "$rc"
[ "$rc" = 0 ] || tail -5 "$E2E_DIR/agent.err"
check "and labeled the four other tasks as ann" "4" \
    "$(sql "SELECT count(*) FROM annotations a JOIN users u ON u.id = a.annotator_id WHERE a.project_id = $P AND u.name = 'ann' AND a.label = 'b'")"

# quorum-agent login checks the certificate instead of a token, and stores it.
set +e
env -u QUORUM_TOKEN "$QR_BIN_DIR/quorum-agent" login --cert "$T/ann.crt" --key "$T/ann.key" \
    >/dev/null 2>"$E2E_DIR/login.err"
check "quorum-agent login with a mapped certificate and no token: exit 0" 0 "$?"
env -u QUORUM_TOKEN "$QR_BIN_DIR/quorum-agent" login --cert "$T/stranger.crt" \
    --key "$T/stranger.key" >/dev/null 2>>"$E2E_DIR/login.err"
check "quorum-agent login with an unmapped certificate: exit 3 (refused)" 3 "$?"
set -e
grep -q "QUORUM_CERT=.*ann.crt" "$XDG_CONFIG_HOME/quorum/profile" &&
    ! grep -q QUORUM_TOKEN "$XDG_CONFIG_HOME/quorum/profile" &&
    pass "the profile holds the certificate and no token" || fail "profile: $(cat "$XDG_CONFIG_HOME/quorum/profile")"

# --- what is refused --------------------------------------------------------------
bad=$(api GET "/v1/projects/$P" qr_not_a_token)
check "a bad token: 401" 401 "${bad%% *}"
r=$(capi "$T/stranger" GET "/v1/projects/$P")
check "a valid but unmapped certificate: the same 401 as a bad token" "$bad" "$r"
r=$(capi "$O/mallory" GET "/v1/projects/$P")
check "a certificate from another CA: handshake refused" 000 "${r%% *}"
grep -qiE 'alert|certificate' "$E2E_DIR/c.err" && pass "curl: $(head -c 150 "$E2E_DIR/c.err")" ||
    fail "curl said: $(cat "$E2E_DIR/c.err")"
r=$(api GET "/v1/projects/$P" "")
check "no certificate, no token: 401" 401 "${r%% *}"

# --- a bearer token still works, and wins over the certificate --------------------------
r=$(capi "$T/ann" GET /v1/tokens "" "$ADMIN_TOKEN")
check "certificate + admin token: acts as the admin" 200 "${r%% *}"
r=$(capi "$T/ann" GET "/v1/projects/$P" "" qr_not_a_token)
check "certificate + bad token: the token decides (401)" 401 "${r%% *}"
check "a token alone works as before" 200 "$(api GET "/v1/projects/$P" "$MGR" | cut -d' ' -f1)"

# --- bad mapping requests -----------------------------------------------------------
pem=$(jq -Rs . <"$T/stranger.crt")
check "garbage instead of a certificate: 422" 422 \
    "$(api POST /v1/certs "$MGR" '{"user":"stranger","certificate":"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}' | cut -d' ' -f1)"
check "a key instead of a certificate: 422" 422 \
    "$(api POST /v1/certs "$MGR" "{\"user\":\"stranger\",\"certificate\":$(jq -Rs . <"$T/stranger.key")}" | cut -d' ' -f1)"
check "a chain of two certificates: 422" 422 \
    "$(api POST /v1/certs "$MGR" "{\"user\":\"stranger\",\"certificate\":$(cat "$T/stranger.crt" "$T/ca.crt" | jq -Rs .)}" | cut -d' ' -f1)"
check "certificate over 16 KB: 422" 422 \
    "$(api POST /v1/certs "$MGR" "{\"user\":\"stranger\",\"certificate\":\"$(head -c 17000 /dev/zero | tr '\0' A)\"}" | cut -d' ' -f1)"
check "no certificate field: 422" 422 "$(api POST /v1/certs "$MGR" '{"user":"stranger"}' | cut -d' ' -f1)"
check "a user of no such name: 404" 404 \
    "$(api POST /v1/certs "$MGR" "{\"user\":\"nobody\",\"certificate\":$pem}" | cut -d' ' -f1)"
check "a manager may not map a certificate to an admin: 403" 403 \
    "$(api POST /v1/certs "$MGR" "{\"user\":\"admin\",\"certificate\":$(jq -Rs . <"$T/boss.crt")}" | cut -d' ' -f1)"
check "an annotator may not map certificates: 403" 403 \
    "$(capi "$T/ann" POST /v1/certs "{\"user\":\"stranger\",\"certificate\":$pem}" | cut -d' ' -f1)"
check "the same certificate twice: 409" 409 \
    "$(api POST /v1/certs "$MGR" "{\"user\":\"stranger\",\"certificate\":$(jq -Rs . <"$T/ann.crt")}" | cut -d' ' -f1)"
# An expired certificate (notAfter = notBefore = now): refused by the API
# and at the handshake.
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=old" \
    -keyout "$T/old.key" -out "$T/old.csr" 2>/dev/null
openssl x509 -req -in "$T/old.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 0 \
    -extfile "$T/client.cnf" -out "$T/old.crt" 2>/dev/null
sleep 1.1
r=$(api POST /v1/certs "$MGR" "{\"user\":\"stranger\",\"certificate\":$(jq -Rs . <"$T/old.crt")}")
check "an expired certificate: 422" "422 the certificate has expired" "${r%% *} $(echo "${r#* }" | jq -r .error.message)"
r=$(capi "$T/old" GET "/v1/projects/$P")
check "an expired certificate: handshake refused" 000 "${r%% *}"
grep -qi 'expired' "$E2E_DIR/c.err" && pass "curl: $(head -c 150 "$E2E_DIR/c.err")" ||
    fail "curl said: $(cat "$E2E_DIR/c.err")"
set +e
QUORUM_TOKEN=$MGR "$CTL" cert add --user ann --cert "$E2E_DIR/missing.crt" 2>/dev/null
check "quorumctl cert add with an unreadable file: exit 2" 2 "$?"
QUORUM_TOKEN=$MGR "$CTL" cert revoke abc 2>/dev/null
check "quorumctl cert revoke with a bad id: exit 2" 2 "$?"
set -e
check "nothing was mapped by the refused requests" 1 "$(sql "SELECT count(*) FROM client_certs")"

list=$(QUORUM_TOKEN=$MGR "$CTL" cert list --json)
check "cert list: ann's mapping, with its fingerprint and last use" "ann $fp true" \
    "$(echo "$list" | jq -r '.certificates[0] | "\(.user) \(.sha256) \(.last_used_at != null)"')"

# A resumed TLS session (no certificate sent again) still stands for the
# certificate's user: OpenSSL keeps the verified peer in the session.
req='GET /v1/projects/'"$P"'/progress HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
printf "$req" | timeout 10 openssl s_client -quiet -connect "127.0.0.1:$PORT" -CAfile "$CA" \
    -cert "$T/ann.crt" -key "$T/ann.key" -sess_out "$E2E_DIR/sess" 2>/dev/null >/dev/null || true
out=$(printf "$req" | timeout 10 openssl s_client -ign_eof -connect "127.0.0.1:$PORT" -CAfile "$CA" \
    -sess_in "$E2E_DIR/sess" 2>/dev/null || true)
check "a resumed session without the certificate: reused, and still ann's (200)" "Reused 200" \
    "$(echo "$out" | grep -o '^Reused' | head -1) $(echo "$out" | sed -n 's/^HTTP\/1.1 \([0-9]*\).*/\1/p' | head -1)"

# --- revocation ---------------------------------------------------------------------
QUORUM_TOKEN=$MGR "$CTL" cert revoke "$id" 2>/dev/null
r=$(capi "$T/ann" GET "/v1/projects/$P")
check "a revoked certificate: the same 401 as a bad token, at once" "$bad" "$r"
out=$(printf "$req" | timeout 10 openssl s_client -ign_eof -connect "127.0.0.1:$PORT" -CAfile "$CA" \
    -sess_in "$E2E_DIR/sess" 2>/dev/null || true)
check "and a session resumed after the revocation gets 401" 401 \
    "$(echo "$out" | sed -n 's/^HTTP\/1.1 \([0-9]*\).*/\1/p' | head -1)"
set +e
QUORUM_TOKEN=$MGR "$CTL" cert revoke "$id" 2>/dev/null
check "revoking it again: exit 1 (404)" 1 "$?"
set -e

# --- SIGHUP reloads the client CA ---------------------------------------------------------
cat "$O/ca.crt" >>"$E2E_DIR/client-ca.pem"
kill -HUP "$QUORUMD_PID"
sleep 0.5
r=$(capi "$O/mallory" GET "/v1/projects/$P")
check "after SIGHUP with the other CA added, its certificate passes the handshake (unmapped: 401)" \
    401 "${r%% *}"
cp "$E2E_DIR/client-ca.pem" "$E2E_DIR/client-ca.good"
echo "not a CA bundle" >"$E2E_DIR/client-ca.pem"
kill -HUP "$QUORUMD_PID"
sleep 0.5
grep -q 'not reloaded.*client CA' "$E2E_DIR/quorumd.log" &&
    pass "SIGHUP with a broken client CA file: logged, nothing changed" || fail "no log line for the failed reload"
r=$(capi "$O/mallory" GET "/v1/projects/$P")
check "and the CA bundle loaded before still applies" 401 "${r%% *}"
cp "$E2E_DIR/client-ca.good" "$E2E_DIR/client-ca.pem"

# --- required mode: a second broker on the same database ---------------------------------
check "--require-client-cert without --client-ca: usage error (2)" 2 \
    "$("$QR_BIN_DIR/quorumd" serve --cert "$T/server.crt" --key "$T/server.key" --require-client-cert >/dev/null 2>&1; echo $?)"
QUORUM_TOKEN=$MGR "$CTL" cert add --user stranger --cert "$T/stranger.crt" >/dev/null 2>&1
: >"$E2E_DIR/quorumd2.log"
start_quorumd "$QR_BIN_DIR/quorumd" "$E2E_DIR/quorumd2.log" --pg "$E2E_PG" \
    --redis "127.0.0.1:$QR_REDIS_PORT" --cert "$T/server.crt" --key "$T/server.key" \
    --client-ca "$T/ca.crt" --require-client-cert || fail "the second broker did not start"
QUORUMD2_PID=$QD_PID
URL2="https://127.0.0.1:$QD_PORT"
for i in $(seq 1 100); do
    [ "$(API_URL=$URL2 capi "$T/stranger" GET /healthz | cut -d' ' -f1)" = 200 ] && break
    sleep 0.1
done
r=$(API_URL=$URL2 capi "$T/stranger" GET "/v1/projects/$P")
check "required mode: a mapped certificate works" 200 "${r%% *}"
st=$(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$URL2/v1/projects/$P" 2>"$E2E_DIR/c.err" || true)
check "required mode: no certificate, even with a token: refused" 000 "$st"
grep -qiE 'alert|certificate' "$E2E_DIR/c.err" && pass "curl: $(head -c 150 "$E2E_DIR/c.err")" ||
    fail "curl said: $(cat "$E2E_DIR/c.err")"
r=$(API_URL=$URL2 capi "$O/mallory" GET "/v1/projects/$P")
check "required mode: another CA's certificate: refused" 000 "${r%% *}"
kill -TERM "$QUORUMD2_PID"
wait "$QUORUMD2_PID" && pass "the second broker stopped cleanly" || fail "second broker exit status $?"
QUORUMD2_PID=""
grep -q 'Sanitizer\|runtime error' "$E2E_DIR/quorumd2.log" && fail "sanitizer report in quorumd2.log" ||
    pass "no sanitizer report from the second broker"

finish
