#!/usr/bin/env bash
# Limits against abuse: a flood from one token gets 429 with Retry-After while
# another token is served as usual; a slowloris client is cut off at the
# idle deadline; oversized headers get 431; deeply nested JSON gets 400.
. "$(dirname "$0")/lib.sh"

start_broker --rate-limit 20 --idle-timeout-ms 1500
F=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"flood","role":"manager"}' | cut -d' ' -f2- | jq -r .token)
G=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"calm","role":"manager"}' | cut -d' ' -f2- | jq -r .token)

# 200 requests from F over one keep-alive connection, as fast as curl goes.
urls=(); for i in $(seq 1 200); do urls+=(-o /dev/null "$URL/v1/tokens"); done
curl -s --cacert "$CA" -H "Authorization: Bearer $F" -w '%{http_code}\n' "${urls[@]}" >"$E2E_DIR/flood.codes" &
FLOOD=$!
sleep 0.2
t0=$(date +%s%N)
r=$(api GET /v1/tokens "$G")
t1=$(date +%s%N)
wait $FLOOD
ms=$(( (t1 - t0) / 1000000 ))
check "the other token is served during the flood" 200 "${r%% *}"
[ "$ms" -lt 1000 ] && pass "in ${ms} ms" || fail "the other token waited ${ms} ms"
n429=$(grep -c '^429$' "$E2E_DIR/flood.codes" || true)
n200=$(grep -c '^200$' "$E2E_DIR/flood.codes" || true)
[ "$n429" -gt 100 ] && [ "$n200" -ge 40 ] && pass "flood: $n200 served (burst 40), $n429 refused with 429" ||
    fail "flood: $n200 x 200, $n429 x 429"
h=$(curl -s --cacert "$CA" -H "Authorization: Bearer $F" -D - "${urls[@]:0:120}" | tr -d '\r')
echo "$h" | grep -A8 '^HTTP/1.1 429' | grep -qi '^Retry-After: [0-9]' &&
    pass "429 carries Retry-After" || fail "429 headers: $(echo "$h" | head -12)"
sleep 2.1 # the bucket refills
r=$(api GET /v1/tokens "$F")
check "the flooding token is served again once it slows down" 200 "${r%% *}"

# Slowloris: half a request, then silence.
ms=$(python3 - "$PORT" "$CA" <<'PY'
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="127.0.0.1")
t.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ...and never the end of it
t.settimeout(10)
t0 = time.time()
try:
    while t.recv(100):
        pass
except OSError:
    pass
print(int((time.time() - t0) * 1000))
PY
)
[ "$ms" -lt 4000 ] && pass "a slowloris client is cut off after ${ms} ms (idle deadline 1500 ms)" ||
    fail "slowloris connection lived ${ms} ms"
check "and the broker still serves" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/healthz")"

big=$(head -c 40000 /dev/zero | tr '\0' 'x')
check "oversized headers: 431" 431 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -H "X-Big: $big" "$URL/healthz")"
deep=$(printf '%.0s[' $(seq 1 5000))
r=$(api POST /v1/projects "$ADMIN_TOKEN" "{\"name\":\"x\",\"labels\":$deep}")
check "JSON nested 5000 deep: 400, nothing created" "400 0" "${r%% *} $(sql "SELECT count(*) FROM projects")"

finish
