#!/usr/bin/env bash
# The browser labeler at /ui/label/{project} (issue 17, point 2, for a plain
# label project), in Debian's chromium driven by tests/ui/label.py: an
# annotator labels 200 tasks with the keyboard and the mouse, skips one,
# gives one back and undoes one; the broker is stopped for a few seconds
# mid-run and started again on the same port while the annotator goes on
# labeling from the tasks held ahead. Then the annotations in PostgreSQL
# are exactly the labels given, none lost, none twice. The time from a
# label to the next task on screen is measured in the browser (p50, p99).
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3 # Debian's, which has python3-selenium
start_broker
CTL="$QR_BIN_DIR/quorumctl"

check "/ui/label/1 is the labeler's page" 200 \
    "$(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code}' "$URL/ui/label/1")"
for p in /ui/label/ /ui/label/x /ui/label/1/ /ui/label/1/2 /ui/label/-1 /ui/label/1234567890123456789; do
    check "GET $p: 404" 404 "$(curl -sS --cacert "$CA" --path-as-is -o /dev/null -w '%{http_code}' "$URL$p")"
done

P=$("$CTL" project create --name "topics by hand" --labels sports,technology,cooking,weather \
    --annotations-per-task 1)
seq 1 260 | sed 's/.*/{"data":{"text":"headline number &","_true_label":"secret"}}/' |
    "$CTL" import --project "$P" - >/dev/null
T=$(new_annotator ann1)
U=$(sql "SELECT id FROM users WHERE name = 'ann1'")

# The outage, on the page's request: label.py touches SYNC/cut, this stops
# the broker (SYNC/down), waits 4 s and starts it again on the same port
# (SYNC/back).
SYNC="$E2E_DIR/sync"
mkdir -p "$SYNC"
SHOTS="$QR_SOURCE_DIR/build/ui-screenshots"
mkdir -p "$SHOTS"
timeout 150 "$PY" "$QR_SOURCE_DIR/tests/ui/label.py" --url "$URL" --ca "$CA" --token "$T" --project "$P" \
    --n 200 --sync "$SYNC" --shots "$SHOTS" --out "$E2E_DIR/given.txt" \
    >"$E2E_DIR/label.out" 2>"$E2E_DIR/browser.log" &
LP=$!
for i in $(seq 1 1200); do
    [ -e "$SYNC/cut" ] && break
    kill -0 "$LP" 2>/dev/null || break
    sleep 0.1
done
if [ -e "$SYNC/cut" ]; then
    stop_broker
    touch "$SYNC/down"
    sleep 4
    QD_LISTEN="127.0.0.1:$PORT" start_quorumd "$QR_BIN_DIR/quorumd" "$E2E_DIR/quorumd.log" --pg "$E2E_PG" \
        --redis "127.0.0.1:$QR_REDIS_PORT" --cert "$E2E_DIR/tls/server.crt" \
        --key "$E2E_DIR/tls/server.key" || exit 1
    QUORUMD_PID=$QD_PID
    touch "$SYNC/back"
    pass "the broker was stopped for 4 s mid-run and started again on port $PORT"
else
    fail "label.py never asked for the outage: $(tail -5 "$E2E_DIR/browser.log")"
fi
wait "$LP" || fail "tests/ui/label.py exited $?: $(tail -20 "$E2E_DIR/browser.log")"
out=$(cat "$E2E_DIR/label.out")
echo "$out"
PASSES=$((PASSES + $(grep -c '^ok - ' <<<"$out" || true)))
FAILS=$((FAILS + $(grep -c '^not ok - ' <<<"$out" || true)))

sort -n "$E2E_DIR/given.txt" >"$E2E_DIR/given.sorted"
sql "SELECT task_id || ' ' || label FROM annotations WHERE project_id = $P AND annotator_id = $U ORDER BY task_id" \
    >"$E2E_DIR/stored.txt"
check "200 labels given in the browser" 200 "$(wc -l <"$E2E_DIR/given.sorted")"
check "the annotations in PostgreSQL are exactly the labels given (none lost, none extra)" "" \
    "$(diff "$E2E_DIR/given.sorted" "$E2E_DIR/stored.txt" | head -5)"
check "every annotation has its own idempotency key from the page" 200 \
    "$(sql "SELECT count(DISTINCT idempotency_key) FROM annotations WHERE project_id = $P AND annotator_id = $U")"
check "one skip, recorded in the lease log" 1 \
    "$(wait_sql 1 "SELECT count(*) FROM lease_events WHERE project_id = $P AND kind = 'skip'")"
for s in label label-outage; do
    check "screenshot $s.png written" true "$([ -s "$SHOTS/$s.png" ] && echo true || echo false)"
done
finish
