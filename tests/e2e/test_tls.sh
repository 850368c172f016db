#!/usr/bin/env bash
# TLS: 1.2 and 1.3 accepted, 1.0 and 1.1 refused (by a client proven able to
# speak them), and the certificate reloaded on SIGHUP without a restart; a
# broken certificate on SIGHUP leaves the old one serving.
. "$(dirname "$0")/lib.sh"

start_broker
subject() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$CA" 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null; }
for v in tls1_2 tls1_3; do
    out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -$v -CAfile "$CA" 2>&1 || true)
    echo "$out" | grepq 'Verify return code: 0' && pass "$v accepted and verified" || fail "$v: $(echo "$out" | tail -2)"
done
# Port 0, read back from its ACCEPT line. Its stdin is a FIFO it holds open
# itself: without -quiet (which hides that line) an EOF on stdin stops it.
mkfifo "$E2E_DIR/s_server.in"
openssl s_server -accept 127.0.0.1:0 -cert "$E2E_DIR/tls/server.crt" -key "$E2E_DIR/tls/server.key" \
    -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' <>"$E2E_DIR/s_server.in" >"$E2E_DIR/s_server.out" 2>&1 &
S_SERVER_PID=$!
CTRL=$(wait_accept_line "$E2E_DIR/s_server.out" "$S_SERVER_PID") || { cat "$E2E_DIR/s_server.out"; CTRL=0; }
echo | timeout 10 openssl s_client -connect "127.0.0.1:$CTRL" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' 2>&1 |
    grepq 'Protocol *: TLSv1.1' && pass "control: the client negotiates TLS 1.1 with a server allowing it" ||
    fail "control client cannot do TLS 1.1: the refusal below would prove nothing"
kill "$S_SERVER_PID" 2>/dev/null; S_SERVER_PID=""
for v in tls1 tls1_1; do
    if echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -$v -cipher 'DEFAULT:@SECLEVEL=0' >/dev/null 2>&1; then
        fail "$v accepted"
    else
        pass "$v refused"
    fi
done

before=$(subject)
# A new certificate from the same CA, written over the files quorumd reads.
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$E2E_DIR/new.key" -out "$E2E_DIR/new.csr" 2>/dev/null
openssl x509 -req -in "$E2E_DIR/new.csr" -CA "$E2E_DIR/tls/ca.crt" -CAkey "$E2E_DIR/tls/ca.key" \
    -CAcreateserial -days 2 -extfile "$E2E_DIR/tls/ext.cnf" -out "$E2E_DIR/new.crt" 2>/dev/null
cp "$E2E_DIR/new.crt" "$E2E_DIR/tls/server.crt"
cp "$E2E_DIR/new.key" "$E2E_DIR/tls/server.key"
kill -HUP "$QUORUMD_PID"
sleep 0.5
after=$(subject)
[ -n "$before" ] && [ -n "$after" ] && [ "$before" != "$after" ] && pass "SIGHUP: the new certificate is served ($after)" ||
    fail "SIGHUP: certificate not reloaded ($before -> $after)"
check "the broker kept running" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/healthz")"
echo "not a certificate" >"$E2E_DIR/tls/server.crt"
kill -HUP "$QUORUMD_PID"
sleep 0.5
check "SIGHUP with a broken certificate: the old one keeps serving" "$after" "$(subject)"
grep -q 'not reloaded' "$E2E_DIR/quorumd.log" && pass "and the log says why" || fail "no log line for the failed reload"
cp "$E2E_DIR/new.crt" "$E2E_DIR/tls/server.crt" # so nothing else trips on the file

finish
