#!/usr/bin/env bash
# The agent's spool and settings end to end.
#  - A spool left by a crash: three results (one of them already stored by
#    the broker, its acknowledgement lost) and a torn fourth record. The
#    agent reports the tear, sends the three first, stores nothing twice, and
#    ends with an empty spool. The spool is written here by an independent
#    encoder (Python, zlib.crc32), which also checks our CRC against zlib's.
#  - login writes a 0600 profile that later commands read; a wrong CA is
#    refused with a message naming the certificate problem (exit 4);
#    --insecure is loud.
. "$(dirname "$0")/lib.sh"

start_broker --reaper-ms 200
AGENT="$QR_BIN_DIR/quorum-agent"
TOKEN=$(api POST /v1/users "$ADMIN_TOKEN" '{"name":"spool-ann","role":"annotator"}' | cut -d' ' -f2- | jq -r .token)
r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"spool","labels":["x","y"],"annotations_per_task":1,"lease_ttl_ms":60000}')
P=$(echo "${r#* }" | jq .id)
seq 1 5 | sed 's/.*/{"text":"t&"}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null

r=$(api POST "/v1/projects/$P/leases" "$TOKEN" '{"max":3}')
LEASES=$(echo "${r#* }" | jq -c '[.leases[] | {lease, task_id}]')
check "three leases" 3 "$(echo "$LEASES" | jq length)"
L1=$(echo "$LEASES" | jq -r '.[0].lease')
# The first result reached the broker before the crash; its ack did not.
r=$(api POST "/v1/projects/$P/leases/$L1/submit" "$TOKEN" '{"label":"x","idempotency_key":"spool-key-1","active_ms":10}')
check "first result stored before the crash" 201 "${r%% *}"

SPOOL="$E2E_DIR/state/spool"
mkdir -p "$E2E_DIR/state"
python3 - "$SPOOL" "$URL" "$TOKEN" "$P" "$LEASES" <<'EOF'
import hashlib, json, struct, sys, zlib
path, url, token, project, leases = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
who = hashlib.sha256(token.encode()).hexdigest()[:16]
def record(kind, rid, payload):
    body = kind + struct.pack("<Q", rid) + payload
    return struct.pack("<II", len(payload), zlib.crc32(body)) + body
out = b"QRSPOOL1"
for i, l in enumerate(leases):
    rec = {"url": url, "who": who, "project": project, "lease": l["lease"], "task_id": l["task_id"],
           "label": "xy"[i % 2], "idempotency_key": "spool-key-%d" % (i + 1), "active_ms": 10 + i,
           "spooled_at_ms": 1700000000000}
    out += record(b"R", i + 1, json.dumps(rec).encode())
torn = record(b"R", 4, b'{"label":"y","lease":"99"}')
out += torn[: len(torn) // 2]            # power lost mid-write
open(path, "wb").write(out)
EOF
chmod 600 "$SPOOL"

out=$("$AGENT" spool --spool "$SPOOL" 2>"$E2E_DIR/spool.err")
echo "$out" | sed 's/^/    /'
sed 's/^/    /' "$E2E_DIR/spool.err"
check "spool lists the three intact results" 3 "$(echo "$out" | head -1 | grep -o '[0-9]* result' | cut -d' ' -f1)"
case "$(cat "$E2E_DIR/spool.err")" in *"torn record at byte"*"checksum"*|*"torn record at byte"*"incomplete"*) pass "spool reports the torn tail" ;; *) fail "no torn-tail report" ;; esac
check "spool (read-only) changes nothing" 0 "$(ls "$E2E_DIR/state" | grep -c torn || true)"

set +e
QUORUM_TOKEN=$TOKEN timeout 60 "$AGENT" exec --project "$P" --idle-exit 1 --spool "$SPOOL" -- \
    sh -c 'echo "{\"label\":\"y\"}"' 2>"$E2E_DIR/exec.err"
rc=$?
set -e
sed 's/^/    /' "$E2E_DIR/exec.err"
check "exec exits 0" 0 "$rc"
grep -q 'torn record at byte' "$E2E_DIR/exec.err" && pass "exec reports the torn tail" || fail "exec did not report the tear"
grep -q 'sent 3 spooled result(s) first' "$E2E_DIR/exec.err" && pass "spooled results sent first" || fail "spooled results not sent first"
check "torn bytes kept aside in one file" 1 "$(ls "$E2E_DIR/state" | grep -c 'spool.torn-')"
for i in 1 2 3; do
    check "spooled result $i stored exactly once" 1 "$(sql "SELECT count(*) FROM annotations WHERE project_id = $P AND idempotency_key = 'spool-key-$i'")"
done
check "every task labeled exactly once (the rest by exec)" "5 5" \
    "$(sql "SELECT count(*), count(DISTINCT task_id) FROM annotations WHERE project_id = $P" | tr '|' ' ')"
check "labels of the spooled results as spooled" "x y x" \
    "$(for i in 0 1 2; do sql "SELECT label FROM annotations WHERE project_id = $P AND task_id = $(echo "$LEASES" | jq ".[$i].task_id")"; done | tr '\n' ' ' | sed 's/ $//')"
check "spool empty afterwards" "spool $SPOOL: 0 result(s) pending" "$("$AGENT" spool --spool "$SPOOL" 2>/dev/null)"

# --- login and the profile ---------------------------------------------------
export XDG_CONFIG_HOME="$E2E_DIR/config"
out=$(env -u QUORUM_URL -u QUORUM_TOKEN -u QUORUM_CA "$AGENT" login --url "$URL" --token "$TOKEN" --ca "$CA")
check "login prints where it stored the profile" "logged in to $URL; settings stored in $XDG_CONFIG_HOME/quorum/profile" "$out"
check "profile mode 0600" 600 "$(stat -c %a "$XDG_CONFIG_HOME/quorum/profile")"
check "profile directory mode 0700" 700 "$(stat -c %a "$XDG_CONFIG_HOME/quorum")"
seq 6 7 | sed 's/.*/{"text":"t&"}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
set +e
(cd "$E2E_DIR" && env -u QUORUM_URL -u QUORUM_TOKEN -u QUORUM_CA timeout 60 "$AGENT" exec --project "$P" \
    --idle-exit 1 --spool "$E2E_DIR/state/spool2" -- sh -c 'echo "{\"label\":\"x\"}"' 2>"$E2E_DIR/exec2.err")
rc=$?
set -e
check "exec with only the profile: exit 0" 0 "$rc"
check "the profile's token labeled the new tasks" 2 "$(sql "SELECT count(*) FROM annotations a JOIN users u ON u.id = a.annotator_id JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $P AND u.name = 'spool-ann' AND t.data->>'text' IN ('t6', 't7')")"
chmod 644 "$XDG_CONFIG_HOME/quorum/profile"
set +e
out=$(env -u QUORUM_URL -u QUORUM_TOKEN -u QUORUM_CA "$AGENT" spool --send --spool "$E2E_DIR/state/spool2" 2>&1); rc=$?
set -e
check "a profile readable by others is refused (exit 2)" 2 "$rc"
case "$out" in *"readable by others"*) pass "and says why" ;; *) fail "profile mode: $out" ;; esac
chmod 600 "$XDG_CONFIG_HOME/quorum/profile"

# --- a wrong CA is refused, naming the certificate problem -------------------------
mkdir -p "$E2E_DIR/other"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj "/CN=Some other CA" -keyout "$E2E_DIR/other/ca.key" -out "$E2E_DIR/other/ca.crt" 2>/dev/null
set +e
out=$(QUORUM_TOKEN=$TOKEN "$AGENT" exec --ca "$E2E_DIR/other/ca.crt" --project "$P" --spool "$E2E_DIR/state/spool3" -- true 2>&1); rc=$?
set -e
echo "    $out"
check "wrong CA: exit 4" 4 "$rc"
check "wrong CA: one line" 1 "$(echo "$out" | wc -l)"
case "$out" in *"TLS certificate problem"*"certificate"*) pass "wrong CA: names the certificate problem" ;; *) fail "wrong CA: $out" ;; esac
set +e
out=$(env -u QUORUM_URL -u QUORUM_TOKEN -u QUORUM_CA "$AGENT" login --url "$URL" --token "$TOKEN" --ca "$E2E_DIR/other/ca.crt" 2>&1); rc=$?
set -e
check "login with the wrong CA: exit 4, profile untouched" "4 $CA" "$rc $(grep QUORUM_CA "$XDG_CONFIG_HOME/quorum/profile" | cut -d"'" -f2)"
set +e
out=$(QUORUM_TOKEN=qr_nope "$AGENT" login --url "$URL" --token qr_nope --ca "$CA" 2>&1); rc=$?
set -e
check "login with a bad token: exit 3" 3 "$rc"
set +e
out=$(QUORUM_TOKEN=$TOKEN "$AGENT" login --url "$URL" --ca "$CA" 2>&1); rc=$?
set -e
check "login --url with the token only in QUORUM_TOKEN: exit 2 (never sent)" 2 "$rc"
case "$out" in *"QUORUM_TOKEN is not sent to a URL given on the command line"*) pass "and says why" ;; *) fail "mixed sources: $out" ;; esac
set +e
out=$(QUORUM_TOKEN=$TOKEN "$AGENT" --insecure exec --ca "$E2E_DIR/other/ca.crt" --project "$P" --idle-exit 0.5 \
    --spool "$E2E_DIR/state/spool3" -- true 2>&1); rc=$?
set -e
check "--insecure connects despite the wrong CA" 0 "$rc"
case "$out" in *"WARNING: --insecure"*"NOT verified"*) pass "--insecure is loud" ;; *) fail "--insecure: $out" ;; esac
set +e
out=$("$AGENT" login --insecure --url "$URL" --token "$TOKEN" 2>&1); rc=$?
set -e
check "login refuses to store --insecure" 2 "$rc"

finish
