#!/usr/bin/env bash
# Clients take the broker URL, token and CA from one source, never mixed
# (issue 11, finding 8). Replays the attack: a directory holding a planted
# .quorum/env whose URL and CA point at a stranger's HTTPS server (its own
# CA), entered by a user whose QUORUM_TOKEN is in the environment. The
# stranger's server records every byte it receives; the victim's token must
# never be among them. Also: --url with the token only in QUORUM_TOKEN is
# refused (exit 2, a clear line); a .quorum/env writable by group or others,
# or owned by someone else, is ignored with a warning naming it; a .quorum/env
# of one's own, mode 0600, still works; a control proves the stranger's
# server does record what reaches it.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
AGENT="$QR_BIN_DIR/quorum-agent"
VICTIM_TOKEN=$ADMIN_TOKEN
export XDG_CONFIG_HOME="$E2E_DIR/config" XDG_STATE_HOME="$E2E_DIR/state" # no profile
unset QUORUM_URL QUORUM_TOKEN QUORUM_CA QUORUM_CERT QUORUM_KEY

# --- the stranger's HTTPS server: its own CA, port 0, records what it gets ---------
make_certs "$E2E_DIR/stranger" 1
CAPTURE=$E2E_DIR/stranger.capture
: >"$CAPTURE"
cat >"$E2E_DIR/stranger.py" <<'EOF'
import os, socket, ssl, sys
cert, key, port_file, capture = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(16)
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % srv.getsockname()[1])
os.rename(port_file + ".tmp", port_file)
def record(data):
    with open(capture, "ab") as f:
        f.write(data)
while True:
    c, _ = srv.accept()
    record(b"--- connection ---\n")
    try:
        c.settimeout(5)
        s = ctx.wrap_socket(c, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        record(data)
        s.sendall(b"HTTP/1.1 418 I'm a teapot\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        s.close()
    except Exception as e:
        record(b"--- error: %s ---\n" % str(e).encode())
        c.close()
EOF
python3 "$E2E_DIR/stranger.py" "$E2E_DIR/stranger/server.crt" "$E2E_DIR/stranger/server.key" \
    "$E2E_DIR/stranger.port" "$CAPTURE" &
HELPER_PIDS+=($!)
SPORT=$(wait_port_file "$E2E_DIR/stranger.port" $!) || { echo "the stranger's server did not start"; exit 1; }

# --- the planted repository: URL and CA of the stranger, as a clone leaves it -------
REPO=$E2E_DIR/repo
mkdir -p "$REPO/.quorum" "$REPO/sub/dir"
cp "$E2E_DIR/stranger/ca.crt" "$REPO/.quorum/ca.crt"
cat >"$REPO/.quorum/env" <<ENV
QUORUM_URL='https://127.0.0.1:$SPORT'
QUORUM_CA='.quorum/ca.crt'
ENV
chmod 644 "$REPO/.quorum/env" # what git checks out; owned by the victim

in_repo() { # in_repo CMD...: runs CMD in the planted repo's subdirectory
    (cd "$REPO/sub/dir" && "$@")
}
token_reached_stranger() { grep -c -- "$VICTIM_TOKEN" "$CAPTURE" || true; }

# The attack: QUORUM_TOKEN in the environment, URL and CA from the planted file.
rc=0
out=$(in_repo env QUORUM_TOKEN="$VICTIM_TOKEN" timeout 20 "$CTL" org list 2>&1) || rc=$?
check "quorumctl, token in QUORUM_TOKEN, URL from a planted .quorum/env: exit 2" 2 "$rc"
case "$out" in
*"QUORUM_TOKEN is set but QUORUM_URL is not"*"$REPO/.quorum/env"*) pass "and says why, naming the file" ;;
*) fail "quorumctl said: $out" ;;
esac
rc=0
out=$(in_repo env QUORUM_TOKEN="$VICTIM_TOKEN" timeout 20 "$AGENT" exec --project 1 --idle-exit 1 \
    --spool "$E2E_DIR/spool1" -- true 2>&1) || rc=$?
check "quorum-agent exec, same attack: exit 2" 2 "$rc"
rc=0
out=$(in_repo env QUORUM_TOKEN="$VICTIM_TOKEN" QUORUM_CA="$CA" timeout 20 "$CTL" org list 2>&1) || rc=$?
check "with the victim's QUORUM_CA set too: exit 2" 2 "$rc"
rc=0
out=$(in_repo timeout 20 "$CTL" --token "$VICTIM_TOKEN" org list 2>&1) || rc=$?
check "--token typed in the planted repo: exit 2" 2 "$rc"
case "$out" in *"--token given, but the broker URL would come from $REPO/.quorum/env"*) pass "and says why" ;;
*) fail "quorumctl --token said: $out" ;; esac
check "the stranger's server received no connection at all" 0 "$(grep -c -- '--- connection ---' "$CAPTURE" || true)"
check "the victim's token never reached the stranger's server" 0 "$(token_reached_stranger)"

# Control: the file alone (with a token of its own) does reach the stranger, so
# the capture above would have shown the victim's token had it been sent.
echo "QUORUM_TOKEN='qr_planted_control'" >>"$REPO/.quorum/env"
rc=0
in_repo timeout 20 "$CTL" org list >/dev/null 2>&1 || rc=$?
check "control: the planted file's own settings are used as one set (the 418 is an error)" 1 "$rc"
check "control: the stranger recorded the request with the file's own token" 1 \
    "$(grep -c 'Authorization: Bearer qr_planted_control' "$CAPTURE" || true)"
check "control: still never the victim's token" 0 "$(token_reached_stranger)"
: >"$CAPTURE"

# --- --url with the token only in the environment: refused ---------------------------
rc=0
out=$(env QUORUM_TOKEN="$VICTIM_TOKEN" "$CTL" --url "https://127.0.0.1:$SPORT" \
    --ca "$E2E_DIR/stranger/ca.crt" org list 2>&1) || rc=$?
check "--url given, token only in QUORUM_TOKEN: exit 2" 2 "$rc"
check "... one line" 1 "$(echo "$out" | wc -l)"
case "$out" in
*"QUORUM_TOKEN is not sent to a URL given on the command line"*"give --token too"*) pass "... and says what to do" ;;
*) fail "mixed --url: $out" ;;
esac
rc=0
out=$(env QUORUM_TOKEN="$VICTIM_TOKEN" QUORUM_CA="$CA" "$CTL" --url "$URL" org list 2>&1) || rc=$?
check "--url with QUORUM_TOKEN and QUORUM_CA: exit 2" 2 "$rc"
rc=0
out=$(env QUORUM_TOKEN="$VICTIM_TOKEN" "$AGENT" exec --url "https://127.0.0.1:$SPORT" \
    --ca "$E2E_DIR/stranger/ca.crt" --project 1 --idle-exit 1 --spool "$E2E_DIR/spool2" -- true 2>&1) || rc=$?
check "quorum-agent exec --url, token only in QUORUM_TOKEN: exit 2" 2 "$rc"
check "nothing reached the stranger's server" 0 "$(wc -c <"$CAPTURE")"
rc=0
out=$(env QUORUM_TOKEN=qr_other "$CTL" --url "$URL" --token "$VICTIM_TOKEN" --ca "$CA" org list 2>&1) || rc=$?
check "--url with --token and --ca: works whatever the environment holds" 0 "$rc"
rc=0
out=$(env QUORUM_URL="$URL" QUORUM_TOKEN="$VICTIM_TOKEN" QUORUM_CA="$CA" "$CTL" org list 2>&1) || rc=$?
check "QUORUM_URL, QUORUM_TOKEN and QUORUM_CA together: works" 0 "$rc"

# --- a .quorum/env of one's own works; unsafe ones are ignored with a warning -------------
OWN=$E2E_DIR/own
mkdir -p "$OWN/.quorum"
(umask 077 && printf "QUORUM_URL='%s'\nQUORUM_TOKEN='%s'\nQUORUM_CA='%s'\n" "$URL" "$VICTIM_TOKEN" "$CA" >"$OWN/.quorum/env")
rc=0
out=$(cd "$OWN" && "$CTL" org list 2>&1) || rc=$?
check "own .quorum/env, mode 0600: works" 0 "$rc"
chmod 664 "$OWN/.quorum/env"
rc=0
out=$(cd "$OWN" && "$CTL" org list 2>&1) || rc=$?
check "group-writable .quorum/env: ignored (no URL: exit 2)" 2 "$rc"
check "... one warning line" 1 "$(echo "$out" | grep -c warning)"
check "... naming it and why" \
    "quorumctl: warning: ignoring $OWN/.quorum/env: it is writable by group or others (mode 0664)" \
    "$(echo "$out" | grep warning)"
chmod 646 "$OWN/.quorum/env"
rc=0
out=$(cd "$OWN" && "$AGENT" exec --project 1 --idle-exit 1 --spool "$E2E_DIR/spool3" -- true 2>&1) || rc=$?
check "world-writable .quorum/env: quorum-agent ignores it too (exit 2)" 2 "$rc"
case "$out" in *"warning: ignoring $OWN/.quorum/env: it is writable by group or others (mode 0646)"*) pass "... with the warning" ;;
*) fail "quorum-agent on a world-writable file: $out" ;; esac
chmod 600 "$OWN/.quorum/env"
if [ "$(id -u)" = 0 ]; then
    chown nobody "$OWN/.quorum/env"
    rc=0
    out=$(cd "$OWN" && "$CTL" org list 2>&1) || rc=$?
    check "a .quorum/env owned by someone else: ignored (exit 2)" 2 "$rc"
    case "$out" in *"warning: ignoring $OWN/.quorum/env: it is owned by someone else"*) pass "... with the warning" ;;
    *) fail "foreign owner: $out" ;; esac
    chown 0 "$OWN/.quorum/env"
fi
mkdir -p "$E2E_DIR/linked/.quorum"
ln -s "$OWN/.quorum/env" "$E2E_DIR/linked/.quorum/env"
rc=0
out=$(cd "$E2E_DIR/linked" && "$CTL" org list 2>&1) || rc=$?
check "a .quorum/env that is a symbolic link: ignored (exit 2)" 2 "$rc"

finish
