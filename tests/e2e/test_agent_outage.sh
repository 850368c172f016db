#!/usr/bin/env bash
# Agents keep working through outages: three `quorum-agent exec` agents
# (each its own annotator and spool) label through a loopback TCP proxy
# while quorumd is killed with SIGKILL and restarted twice and the proxy
# cuts every connection for 5 s. Every label an agent reports stored is in PostgreSQL
# exactly once, every task is complete, the spools are empty, and the agents
# finish on their own.
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200
AGENT="$QR_BIN_DIR/quorum-agent"
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"outage","labels":["a","b","c"],"annotations_per_task":2,"lease_ttl_ms":15000}')
P=$(echo "${r#* }" | jq .id)
seq 1 300 | awk '{print "{\"n\":" $1 ",\"want\":\"" substr("abc", $1 % 3 + 1, 1) "\"}"}' |
    "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null

# The proxy: accepts on a port of its own (bound once, port 0, so nothing
# can take it while the network is "down") and pipes bytes to the port
# quorumd wrote to its port file, read afresh for each connection (a
# restarted quorumd binds a new port 0 too). SIGUSR1 cuts the network: every
# connection is closed and new ones are closed at once; SIGUSR2 restores it.
cat >"$E2E_DIR/proxy.py" <<'EOF'
import asyncio, os, signal, sys
port_out, target_file = sys.argv[1], sys.argv[2]
down = False
live = set()
def target():
    try:
        with open(target_file) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def handle(cr, cw):
    port = target()
    if down or port is None:
        cw.transport.abort()
        return
    try:
        sr, sw = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        cw.transport.abort()
        return
    pair = (cw, sw)
    live.add(pair)
    try:
        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))
    finally:
        live.discard(pair)
def cut():
    global down
    down = True
    for pair in list(live):
        for w in pair:
            w.transport.abort()
def restore():
    global down
    down = False
async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, cut)
    loop.add_signal_handler(signal.SIGUSR2, restore)
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    with open(port_out + ".tmp", "w") as f:
        f.write("%d\n" % server.sockets[0].getsockname()[1])
    os.rename(port_out + ".tmp", port_out)
    async with server:
        await server.serve_forever()
asyncio.run(main())
EOF
python3 "$E2E_DIR/proxy.py" "$E2E_DIR/proxy.port" "$E2E_DIR/quorumd.log.port" &
PROXY_PID=$!
HELPER_PIDS+=("$PROXY_PID")
PPORT=$(wait_port_file "$E2E_DIR/proxy.port" "$PROXY_PID") || { echo "the proxy did not start"; exit 1; }
cut_network() { kill -USR1 "$PROXY_PID"; }
restore_network() { # then a connection through the proxy reaches quorumd again
    kill -USR2 "$PROXY_PID"
    for i in $(seq 1 50); do
        curl -fsS --cacert "$CA" "https://127.0.0.1:$PPORT/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
restart_broker() { # SIGKILL, then the same quorumd on a new port the proxy finds
    kill -KILL "$QUORUMD_PID"
    wait "$QUORUMD_PID" 2>/dev/null || true
    sleep 1
    start_quorumd "$QR_BIN_DIR/quorumd" "$E2E_DIR/quorumd.log" --pg "$E2E_PG" \
        --redis "127.0.0.1:$QR_REDIS_PORT" --cert "$E2E_DIR/tls/server.crt" \
        --key "$E2E_DIR/tls/server.key" --reaper-ms 200 || return 1
    QUORUMD_PID=$QD_PID
    PORT=$QD_PORT
    URL="https://127.0.0.1:$PORT"
    export QUORUM_URL=$URL
    for i in $(seq 1 100); do curl -fsS --cacert "$CA" "$URL/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
AGENT_PIDS=()
at_exit 'for p in ${AGENT_PIDS[@]+"${AGENT_PIDS[@]}"}; do kill "$p" 2>/dev/null; done'

# The command labels after a short think, so the run spans the outages.
printf '#!/bin/sh\nsleep 0.05\nexec jq -c "{label: .data.want}"\n' >"$E2E_DIR/cmd.sh"
chmod +x "$E2E_DIR/cmd.sh"
for i in 1 2 3; do
    tok=$(api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"crew-$i\",\"role\":\"annotator\"}" | cut -d' ' -f2- | jq -r .token)
    mkdir -p "$E2E_DIR/a$i"
    QUORUM_URL="https://127.0.0.1:$PPORT" QUORUM_TOKEN=$tok timeout 240 "$AGENT" exec --project "$P" \
        --concurrency 2 --spool "$E2E_DIR/a$i/spool" -- "$E2E_DIR/cmd.sh" 2>"$E2E_DIR/a$i/err" &
    AGENT_PIDS+=($!)
done

done_count() { sql "SELECT count(*) FROM annotations WHERE project_id = $P"; }
wait_count() { # N: until N annotations are stored; a stuck run fails within 180 s
    local end=$((SECONDS + 180))
    while [ "$(done_count)" -lt "$1" ]; do
        [ "$SECONDS" -lt "$end" ] || { echo "not ok - stuck at $(done_count) of $1 annotations"; exit 1; }
        sleep 0.2
    done
}
wait_count 60
echo "    $(done_count) annotations: SIGKILL quorumd"
restart_broker && pass "quorumd restarted after SIGKILL" || fail "quorumd did not restart"
wait_count 200
echo "    $(done_count) annotations: cutting the network for 5 s"
cut_network
sleep 5
restore_network && pass "network back" || fail "the proxy does not reach quorumd again"
wait_count 320
echo "    $(done_count) annotations: SIGKILL quorumd again"
restart_broker && pass "quorumd restarted after the second SIGKILL" || fail "quorumd did not restart"

rcs=""
for p in "${AGENT_PIDS[@]}"; do
    st=0
    wait "$p" || st=$?
    rcs="$rcs$st "
done
AGENT_PIDS=()
check "the three agents finished on their own with exit 0" "0 0 0 " "$rcs"
for i in 1 2 3; do sed "s/^/    a$i: /" "$E2E_DIR/a$i/err" | grep -v 'retrying in' | tail -4; done
claimed=$(cat "$E2E_DIR"/a*/err | sed -n 's/.*exec: \([0-9]*\) submitted.*/\1/p' | paste -sd+ | bc)
check "every label the agents stored is in PostgreSQL (600 = 300 tasks x 2)" "600 600" "$claimed $(done_count)"
check "every task complete, exactly 2 annotations each" 300 \
    "$(sql "SELECT count(*) FROM (SELECT task_id FROM annotations WHERE project_id = $P GROUP BY task_id HAVING count(*) = 2) x")"
check "no annotator labeled a task twice" 0 \
    "$(sql "SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $P GROUP BY task_id, annotator_id HAVING count(*) > 1) x")"
check "labels are the command's" 600 \
    "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P AND a.label = t.data->>'want'")"
for i in 1 2 3; do
    check "agent $i spool empty" "spool $E2E_DIR/a$i/spool: 0 result(s) pending" "$("$AGENT" spool --spool "$E2E_DIR/a$i/spool" 2>/dev/null)"
done
# A result the broker refused for good would be in <spool>.rejected: lost.
# (A result retried with the full 10 s backoff could sleep through the short
# window between two outages until its 15 s lease expired: 409 lease_expired.
# The agent's retries of results are capped at an eighth of the lease TTL.)
check "no label refused by the broker after an outage (none lost)" 0 \
    "$(cat "$E2E_DIR"/a*/spool.rejected 2>/dev/null | wc -l)"
cat "$E2E_DIR"/a*/spool.rejected 2>/dev/null | sed 's/^/    rejected: /' | head -5 || true
grep -q 'retrying in' "$E2E_DIR"/a*/err && pass "agents saw the outages and retried" || fail "no retries seen (outages missed?)"
finish
