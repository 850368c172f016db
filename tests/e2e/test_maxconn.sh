#!/usr/bin/env bash
# Maximum connections (issue 7, item 4): with --max-connections 20, twenty
# idle TLS connections are held open; the 21st is accepted, its request is
# answered 503 {"error":{"code":"unavailable"}} with Connection: close and
# the connection closed, and the refusal is logged; the held connections are
# still served (200); once some close, a new connection is served again.
# The default cap follows the open-files limit.
. "$(dirname "$0")/lib.sh"

start_broker --max-connections 20
sleep 2.5 # the health checks' connections have lingered out (LINGER_MS 2000)

out=$(python3 - "$PORT" "$CA" <<'PY'
import socket, ssl, sys, time

port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)

def connect():
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")  # handshake now

def get(s):
    """One GET /healthz: (status, body, whether the server then closed)."""
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return 0, "", True
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    length = next(int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length"))
    while len(body) < length:
        body += s.recv(65536)
    closes = any(l.lower() == "connection: close" for l in lines)
    closed = False
    if closes:
        try:
            closed = s.recv(100) == b""
        except (ssl.SSLError, OSError):
            closed = True
    return int(lines[0].split()[1]), body.decode(), closes and closed

held = [connect() for _ in range(20)]
time.sleep(0.3)
st, body, closed = get(connect())
print("refused", st, body, "closed" if closed else "open")
print("held", get(held[0])[0], get(held[19])[0])
for s in held[10:]:
    s.close()
time.sleep(0.5)
print("after", get(connect())[0])
for s in held[:10]:
    s.close()
PY
)
echo "$out" | sed 's/^/    /'
check "the 21st connection: 503, then closed" "refused 503 closed" \
    "$(echo "$out" | awk '/^refused/ {print $1, $2, $NF}')"
check "its body says why" unavailable \
    "$(echo "$out" | sed -n 's/^refused 503 \(.*\) closed$/\1/p' | jq -r .error.code)"
check "the held connections are still served" "held 200 200" "$(echo "$out" | grep '^held')"
check "after 10 closed, a new connection is served" "after 200" "$(echo "$out" | grep '^after')"
grep -q 'over --max-connections (20 open): answered 503' "$E2E_DIR/quorumd.log" &&
    pass "the refusal is logged: $(grep -m1 'over --max-connections' "$E2E_DIR/quorumd.log" | cut -c1-120)" ||
    fail "no log line for the refusal"
check "and the broker serves as usual" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/healthz")"

# The default cap fits the open-files limit: lowered under a hard limit of
# 300 (300 - 64 - 32 - 2 x 8 pool = 188), or the soft limit raised for it.
capline() { # [quorumd flags]: the "at most N connections" line of a short run
    timeout 3 "$QR_BIN_DIR/quorumd" serve --listen 127.0.0.1:0 --cert "$E2E_DIR/tls/server.crt" \
        --key "$E2E_DIR/tls/server.key" --pg "$E2E_PG" --redis "127.0.0.1:$QR_REDIS_PORT" "$@" 2>&1 |
        grep -o 'at most [0-9]* connections\|has room for about [0-9]*' | tr '\n' ' ' || true
}
check "open-files limit 300: the default cap is lowered to fit" "at most 188 connections " \
    "$(ulimit -n 300; capline)"
check "open-files limit 300, --max-connections 5000: kept, with a warning" \
    "has room for about 188 at most 5000 connections " "$(ulimit -n 300; capline --max-connections 5000)"
if [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 16496 ]; then
    check "soft limit 1024 under a higher hard limit: raised, the cap stays 16384" \
        "at most 16384 connections " "$(ulimit -Sn 1024; capline)"
fi

check "--max-connections 0 is a usage error (2)" 2 \
    "$("$QR_BIN_DIR/quorumd" serve --max-connections 0 >/dev/null 2>&1; echo $?)"

# A port already in use: status 1, one line saying so, and the backends opened
# before the listen failed closed again (no LeakSanitizer report), no port file.
rc=0
timeout 30 "$QR_BIN_DIR/quorumd" serve --listen "127.0.0.1:$PORT" --port-file "$E2E_DIR/taken.port" \
    --cert "$E2E_DIR/tls/server.crt" --key "$E2E_DIR/tls/server.key" --pg "$E2E_PG" \
    --redis "127.0.0.1:$QR_REDIS_PORT" >"$E2E_DIR/taken.out" 2>"$E2E_DIR/taken.err" || rc=$?
sed 's/^/    /' "$E2E_DIR/taken.err"
check "listen on a port in use: exit 1" 1 "$rc"
check "... one line on stderr" 1 "$(wc -l <"$E2E_DIR/taken.err")"
check "... saying so" "quorumd: http: listen 127.0.0.1:$PORT: address already in use" "$(cat "$E2E_DIR/taken.err")"
check "... no port file" no "$([ -e "$E2E_DIR/taken.port" ] && echo yes || echo no)"
finish
